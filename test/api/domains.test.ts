/**
 * Sending domains over the API, and the sender policy at intake: an account of policy
 * `verified` sends only as its verified domains; what it sends is DKIM-signed and leaves with an
 * envelope sender on the domain's return path.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { createAccount, createCredential } from '../../src/auth/accounts.ts';
import type { Resolve } from '../../src/domains/checks/types.ts';
import { type ApiApp, call, startApiApp } from '../support/api-app.ts';

describe('sending domains over the API', () => {
  let api: ApiApp;
  let key = '';
  let strictId = '';
  /** The DNS the checks see: a TXT per name, set by the tests. */
  const txt = new Map<string, string[]>();
  const resolve: Resolve = async (name, rrtype) => {
    const found = rrtype === 'TXT' ? txt.get(name) : undefined;
    if (!found) throw Object.assign(new Error(`no ${rrtype} at ${name}`), { code: 'ENOTFOUND' });
    return found.map((v) => [v]);
  };

  before(async () => {
    api = await startApiApp({ resolve });
    const strict = await createAccount(api.store, 'strict', api.clock.now);
    strictId = strict.id;
    key =
      (
        await createCredential(
          api.store,
          strict,
          { kind: 'api', scopes: ['send', 'read', 'admin'] },
          api.clock.now,
        )
      ).secret ?? '';
  });
  after(() => api.close());

  const message = (from: string, extra: Record<string, unknown> = {}) => ({
    from,
    to: 'rcpt@example.org',
    subject: 'Hello',
    text: 'signed?',
    ...extra,
  });

  it('refuses a From domain the account has not verified: 422 sender_not_allowed, nothing stored', async () => {
    const res = await call(api, key, 'POST', '/v1/messages', message('shop@shop.test'));
    assert.equal(res.statusCode, 422, res.body);
    assert.equal(res.json().error.code, 'sender_not_allowed');
    assert.match(res.json().error.message, /shop\.test/);
    assert.deepEqual(await api.store.listMessages({ accountId: strictId }), []);
  });

  it('POST /v1/domains adds a domain and answers the records to publish; still refused until verified', async () => {
    const res = await call(api, key, 'POST', '/v1/domains', { domain: 'shop.test' });
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    assert.equal(body.verified, false);
    assert.equal(body.return_path, 'pb-bounces.shop.test');
    assert.deepEqual(body.records.map((r: { purpose: string }) => r.purpose).sort(), [
      'dkim',
      'dmarc',
      'return_path',
      'spf',
      'tracking',
    ]);
    assert.ok(body.zone.some((line: string) => line.includes('_domainkey.shop.test.')));
    const taken = await call(api, api.keys.other, 'POST', '/v1/domains', { domain: 'shop.test' });
    assert.equal(taken.statusCode, 409);
    assert.equal(taken.json().error.code, 'domain_taken');
    const bad = await call(api, key, 'POST', '/v1/domains', { domain: 'no domain' });
    assert.equal(bad.json().error.code, 'invalid_domain');
    const send = await call(api, key, 'POST', '/v1/messages', message('shop@shop.test'));
    assert.equal(send.json().error.code, 'sender_not_allowed');
  });

  it('GET /v1/domains/{d} checks live: verified once the DKIM record is published', async () => {
    const missing = (await call(api, key, 'GET', '/v1/domains/shop.test')).json();
    assert.equal(missing.verified, false);
    assert.equal(missing.checks.find((c: { record: string }) => c.record === 'dkim').status, 'missing');
    const dkim = missing.records.find((r: { purpose: string }) => r.purpose === 'dkim');
    txt.set(dkim.name, [dkim.value]);
    const published = (await call(api, key, 'GET', '/v1/domains/shop.test')).json();
    assert.equal(published.verified, true, JSON.stringify(published.checks));
    assert.equal(published.verified_by, 'dns');
    assert.equal((await call(api, api.keys.other, 'GET', '/v1/domains/shop.test')).statusCode, 404);
    const list = (await call(api, key, 'GET', '/v1/domains')).json();
    assert.deepEqual(
      list.data.map((d: { domain: string }) => d.domain),
      ['shop.test'],
    );
  });

  it('a verified domain sends, DKIM-signed, with the envelope sender on its return path', async () => {
    const res = await call(api, key, 'POST', '/v1/messages', message('Shop <shop@shop.test>'));
    assert.equal(res.statusCode, 202, res.body);
    const id = res.json().id;
    const body = (await api.store.getBody(id)) ?? Buffer.alloc(0);
    assert.match(body.toString(), /^DKIM-Signature: .*d=shop\.test/m);
    const verified = await dkimVerify(body, {
      resolver: async (name: string) => {
        const found = txt.get(name);
        if (!found) throw Object.assign(new Error('none'), { code: 'ENOTFOUND' });
        return found.map((v) => [v]);
      },
    });
    assert.deepEqual(
      verified.results.map((r: { status: { result: string } }) => r.status.result),
      ['pass'],
    );
    assert.equal((await api.store.getMessage(id))?.mailFrom, 'shop@shop.test');
    const [leased] = await api.store.leaseDue({
      owner: 't',
      now: api.clock.now,
      limit: 100,
      leaseUntil: api.clock.now + 60_000,
    });
    assert.equal(leased?.mailFrom, `pb-${id}@pb-bounces.shop.test`);
  });

  it('subdomains of a verified domain may send (signed by it); a foreign Sender field may not', async () => {
    const sub = await call(api, key, 'POST', '/v1/messages', message('news@news.shop.test'));
    assert.equal(sub.statusCode, 202, sub.body);
    assert.match((await api.store.getBody(sub.json().id))?.toString() ?? '', /d=shop\.test/);
    const sender = await call(
      api,
      key,
      'POST',
      '/v1/messages',
      message('shop@shop.test', { headers: { Sender: 'x@elsewhere.test' } }),
    );
    // Sender is a field Postbote composes itself or refuses; either way it may not name a foreign domain.
    assert.equal(sender.statusCode, 422, sender.body);
    const raw = await call(api, key, 'POST', '/v1/messages/raw', {
      mail_from: 'shop@shop.test',
      rcpt_to: ['rcpt@example.org'],
      raw: Buffer.from(
        'From: shop@shop.test\r\nSender: x@elsewhere.test\r\nSubject: s\r\n\r\nbody\r\n',
      ).toString('base64'),
    });
    assert.equal(raw.statusCode, 422, raw.body);
    assert.equal(raw.json().error.code, 'sender_not_allowed');
  });

  it('DELETE /v1/domains/{d} removes it (admin scope); the account may no longer send as it', async () => {
    assert.equal((await call(api, api.keys.read, 'DELETE', '/v1/domains/shop.test')).statusCode, 403);
    assert.equal((await call(api, api.keys.other, 'DELETE', '/v1/domains/shop.test')).statusCode, 404);
    assert.equal((await call(api, key, 'DELETE', '/v1/domains/shop.test')).statusCode, 204);
    const res = await call(api, key, 'POST', '/v1/messages', message('shop@shop.test'));
    assert.equal(res.json().error.code, 'sender_not_allowed');
  });
});
