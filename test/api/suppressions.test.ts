/**
 * Suppression lists over the API, and what intake does with them: a listed recipient is stored
 * `suppressed` with the reason, never sent, and the send answer says so.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ApiApp, call, startApiApp } from '../support/api-app.ts';

describe('suppressions API', () => {
  let api: ApiApp;
  before(async () => {
    api = await startApiApp();
  });
  after(() => api.close());

  const send = (to: string[], extra: Record<string, unknown> = {}) =>
    call(api, api.keys.all, 'POST', '/v1/messages', { from: 'a@sender.test', to, text: 'x', ...extra });

  it('adds entries (admin scope), lists them with a cursor, refuses bad ones', async () => {
    const res = await call(api, api.keys.all, 'POST', '/v1/suppressions', {
      suppressions: [
        { address: 'Gone@Example.org', details: 'asked by phone' },
        { address: 'b@example.org', reason: 'complaint' },
        { address: 'c@example.org', scope: 'broadcast', reason: 'unsubscribe' },
      ],
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(
      res
        .json()
        .data.map((s: { address: string; reason: string; source: string }) => [
          s.address,
          s.reason,
          s.source,
        ]),
      [
        ['gone@example.org', 'manual', 'api'],
        ['b@example.org', 'complaint', 'api'],
        ['c@example.org', 'unsubscribe', 'api'],
      ],
    );
    assert.equal(
      (await call(api, api.keys.send, 'POST', '/v1/suppressions', { suppressions: [{ address: 'x@y.org' }] }))
        .statusCode,
      403,
    );
    const bad = await call(api, api.keys.all, 'POST', '/v1/suppressions', {
      suppressions: [{ address: 'nope' }],
    });
    assert.equal(bad.statusCode, 422);
    assert.equal(bad.json().error.code, 'invalid_address');
    const page = (await call(api, api.keys.read, 'GET', '/v1/suppressions?limit=2')).json();
    assert.deepEqual(
      page.data.map((s: { address: string }) => s.address),
      ['b@example.org', 'c@example.org'],
    );
    const rest = (
      await call(api, api.keys.read, 'GET', `/v1/suppressions?limit=2&cursor=${page.next_cursor}`)
    ).json();
    assert.deepEqual(
      rest.data.map((s: { address: string }) => s.address),
      ['gone@example.org'],
    );
    assert.equal(rest.next_cursor, null);
    assert.deepEqual((await call(api, api.keys.other, 'GET', '/v1/suppressions')).json().data, []);
  });

  it('intake: a suppressed recipient is stored suppressed with its reason; the others go out', async () => {
    const res = await send(['gone@example.org', 'fine@example.org']);
    assert.equal(res.statusCode, 202, res.body);
    assert.deepEqual(
      res
        .json()
        .recipients.map((r: { email: string; status: string; reason?: string }) => [
          r.email,
          r.status,
          r.reason,
        ]),
      [
        ['gone@example.org', 'suppressed', 'manual'],
        ['fine@example.org', 'queued', undefined],
      ],
    );
    const shown = (await call(api, api.keys.read, 'GET', `/v1/messages/${res.json().id}`)).json();
    assert.deepEqual(
      shown.recipients.map((r: { status: string }) => r.status),
      ['suppressed', 'queued'],
    );
    const event = shown.events.find((e: { type: string }) => e.type === 'suppressed');
    assert.equal(event.recipient, 'gone@example.org');
    assert.equal(event.data.reason, 'manual');
    const leased = await api.store.leaseDue({
      owner: 't',
      now: api.clock.now,
      limit: 100,
      leaseUntil: api.clock.now + 60_000,
    });
    assert.ok(
      !leased.some((r) => r.address === 'gone@example.org'),
      'a suppressed recipient is never leased',
    );
  });

  it('an unsubscribe applies to broadcast only; transactional mail still goes out', async () => {
    await call(api, api.keys.all, 'POST', '/v1/suppressions', {
      suppressions: [{ address: 'unsub@example.org', reason: 'unsubscribe' }],
    });
    const tx = await send(['unsub@example.org']);
    assert.equal(tx.json().recipients[0].status, 'queued');
    const news = await send(['unsub@example.org'], { stream: 'broadcast' });
    assert.equal(news.json().recipients[0].status, 'suppressed');
    // c@example.org is suppressed for the broadcast stream only.
    assert.equal((await send(['c@example.org'])).json().recipients[0].status, 'queued');
    assert.equal(
      (await send(['c@example.org'], { stream: 'broadcast' })).json().recipients[0].status,
      'suppressed',
    );
  });

  it('CSV: export, import into another account, bad rows refused with the line', async () => {
    const csv = await call(api, api.keys.read, 'GET', '/v1/suppressions/export');
    assert.equal(csv.statusCode, 200);
    assert.match(csv.headers['content-type'] as string, /text\/csv/);
    assert.match(csv.body, /^address,scope,reason,category,source,details,created_at,expires_at\r\n/);
    assert.match(csv.body, /gone@example\.org,,manual,,api,asked by phone,/);
    const imported = await api.app.inject({
      method: 'POST',
      url: '/v1/suppressions/import',
      headers: { authorization: `Bearer ${api.keys.other}`, 'content-type': 'text/csv' },
      payload: csv.body,
    });
    assert.equal(imported.statusCode, 200, imported.body);
    assert.equal(imported.json().imported, 4);
    const bad = await api.app.inject({
      method: 'POST',
      url: '/v1/suppressions/import',
      headers: { authorization: `Bearer ${api.keys.other}`, 'content-type': 'text/csv' },
      payload: 'address\r\nok@example.org\r\nbroken\r\n',
    });
    assert.equal(bad.statusCode, 422);
    assert.match(bad.json().error.message, /line 3/);
  });

  it('DELETE removes an entry; the next send goes out', async () => {
    assert.equal(
      (await call(api, api.keys.all, 'DELETE', '/v1/suppressions/gone@example.org')).statusCode,
      204,
    );
    assert.equal(
      (await call(api, api.keys.all, 'DELETE', '/v1/suppressions/gone@example.org')).statusCode,
      404,
    );
    assert.equal((await send(['gone@example.org'])).json().recipients[0].status, 'queued');
  });
});
