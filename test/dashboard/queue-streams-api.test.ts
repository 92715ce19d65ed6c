/**
 * The /v1 routes the dashboard's Queue, Streams and Domains pages need: the account's queue
 * with retry/hold/release/delete (read to look, admin to act, audited, another account's mail
 * neither counted nor touched), streams with their tracking switches (PATCH), and DKIM
 * rotation. Over fastify inject on a real SQLite store.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ApiApp, startApiApp } from '../support/api-app.ts';

describe('queue, streams and DKIM rotation over /v1', () => {
  let api: ApiApp;
  const call = async (key: string, method: 'GET' | 'POST' | 'PATCH', url: string, payload?: unknown) => {
    const res = await api.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${key}` },
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
    return {
      status: res.statusCode,
      body: res.json() as Record<string, unknown> & { error?: { code: string } },
    };
  };
  const send = async (key: string, to: string[], sendAt?: string) => {
    const r = await call(key, 'POST', '/v1/messages', {
      from: 'shop@sender.test',
      to,
      subject: 'queued',
      text: 'hello',
      ...(sendAt ? { send_at: sendAt } : {}),
    });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return String(r.body.id);
  };

  before(async () => {
    api = await startApiApp();
  });
  after(async () => {
    await api.close();
  });

  it('shows only the account’s own queue; acts by message and by domain with admin; audits', async () => {
    const mine = await send(api.keys.all, ['a@slow.test', 'b@slow.test', 'c@fast.test']);
    const theirs = await send(api.keys.other, ['d@slow.test']);
    const q = await call(api.keys.read, 'GET', '/v1/queue');
    assert.equal(q.status, 200);
    assert.deepEqual(q.body.totals, { queued: 3, deferred: 0, delivering: 0, held: 0 });
    assert.deepEqual(
      (q.body.domains as { domain: string; queued: number }[]).map((d) => [d.domain, d.queued]),
      [
        ['slow.test', 2],
        ['fast.test', 1],
      ],
    );
    assert.equal((q.body.sites as { ready: number }[])[0]?.ready, 3);

    // The read key may look but not act.
    const refused = await call(api.keys.read, 'POST', '/v1/queue/hold', { domain: 'slow.test' });
    assert.equal(refused.status, 403);
    // Bad selectors.
    for (const body of [
      {},
      { domain: 'slow.test', message_id: mine },
      { domain: 'a b' },
      { message_id: 'x/y' },
      { x: 1 },
      [],
    ]) {
      const bad = await call(api.keys.all, 'POST', '/v1/queue/hold', body);
      assert.equal(bad.status, 400, JSON.stringify(body));
    }

    const held = await call(api.keys.all, 'POST', '/v1/queue/hold', { domain: 'SLOW.test' });
    assert.deepEqual(held.body, { action: 'hold', recipients: 2 });
    const after = await call(api.keys.read, 'GET', '/v1/queue');
    assert.deepEqual(after.body.totals, { queued: 1, deferred: 0, delivering: 0, held: 2 });
    assert.deepEqual(after.body.held, [{ stream: 'outbound', reason: 'operator', count: 2 }]);
    // The other account's recipient at slow.test is still queued, and its own view is its own.
    const other = await call(api.keys.other, 'GET', '/v1/queue');
    assert.deepEqual(other.body.totals, { queued: 1, deferred: 0, delivering: 0, held: 0 });
    // Another account's message by id: nothing.
    const foreign = await call(api.keys.all, 'POST', '/v1/queue/delete', { message_id: theirs });
    assert.deepEqual(foreign.body, { action: 'delete', recipients: 0 });

    const released = await call(api.keys.all, 'POST', '/v1/queue/release', { message_id: mine });
    assert.equal(released.body.recipients, 3, 'two released, one made due now');
    assert.equal(((await call(api.keys.read, 'GET', '/v1/queue')).body.totals as { held: number }).held, 0);
    const retried = await call(api.keys.all, 'POST', '/v1/queue/retry', { domain: 'fast.test' });
    assert.equal(retried.body.recipients, 1);
    const deleted = await call(api.keys.all, 'POST', '/v1/queue/delete', { message_id: mine });
    assert.equal(deleted.body.recipients, 3);
    const detail = await call(api.keys.read, 'GET', `/v1/messages/${mine}`);
    assert.ok(
      (detail.body.recipients as { status: string }[]).every((r) => r.status === 'cancelled'),
      JSON.stringify(detail.body.recipients),
    );

    const audit = await call(api.keys.all, 'GET', '/v1/audit');
    const actions = (audit.body.data as { action: string; target: string }[])
      .filter((e) => e.action.startsWith('queue.'))
      .map((e) => `${e.action} ${e.target}`)
      .sort();
    assert.deepEqual(
      actions,
      [
        `queue.delete ${mine}`,
        `queue.delete ${theirs}`,
        'queue.hold slow.test',
        `queue.release ${mine}`,
        'queue.retry fast.test',
      ].sort(),
    );
  });

  it('lists streams with kind and tracking; PATCH changes a switch, null restores the default', async () => {
    const list = await call(api.keys.read, 'GET', '/v1/streams');
    assert.equal(list.status, 200);
    const streams = list.body.data as { name: string; kind: string; tracking: Record<string, boolean> }[];
    const broadcast = streams.find((s) => s.name === 'broadcast');
    assert.equal(broadcast?.kind, 'broadcast');
    assert.equal(broadcast?.tracking.opens, true);

    const off = await call(api.keys.all, 'PATCH', '/v1/streams/broadcast', { tracking: { opens: false } });
    assert.equal(off.status, 200, JSON.stringify(off.body));
    assert.equal((off.body.tracking as Record<string, boolean>).opens, false);
    assert.deepEqual(off.body.tracking_overrides, { opens: false });
    const again = (await call(api.keys.read, 'GET', '/v1/streams')).body.data as typeof streams;
    assert.equal(again.find((s) => s.name === 'broadcast')?.tracking.opens, false);
    // Another account's stream of the same name is untouched.
    const theirs = (await call(api.keys.other, 'GET', '/v1/streams')).body.data as typeof streams;
    assert.equal(theirs.find((s) => s.name === 'broadcast')?.tracking.opens, true);
    const reset = await call(api.keys.all, 'PATCH', '/v1/streams/broadcast', { tracking: { opens: null } });
    assert.deepEqual(reset.body.tracking_overrides, {});

    assert.equal(
      (await call(api.keys.read, 'PATCH', '/v1/streams/broadcast', { tracking: { opens: true } })).status,
      403,
    );
    assert.equal(
      (await call(api.keys.all, 'PATCH', '/v1/streams/nope', { tracking: { opens: true } })).status,
      404,
    );
    for (const body of [
      {},
      { kind: 'broadcast' },
      { tracking: { opens: 'yes' } },
      { tracking: { pixel: true } },
      { tracking: {} },
    ]) {
      const bad = await call(api.keys.all, 'PATCH', '/v1/streams/broadcast', body);
      assert.equal(bad.status, 400, JSON.stringify(body));
    }
  });

  it('rotates a domain’s DKIM key (admin, own domains only), then deletes the domain', async () => {
    const added = await call(api.keys.all, 'POST', '/v1/domains', { domain: 'rot.test' });
    assert.equal(added.status, 201);
    assert.equal((await call(api.keys.read, 'POST', '/v1/domains/rot.test/rotate-dkim')).status, 403);
    assert.equal((await call(api.keys.other, 'POST', '/v1/domains/rot.test/rotate-dkim')).status, 404);
    const rotated = await call(api.keys.all, 'POST', '/v1/domains/rot.test/rotate-dkim');
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    const pending = rotated.body.rotated as { selector: string; state: string }[];
    assert.equal(pending.length, 1);
    assert.equal(pending[0]?.state, 'pending');
    const records = rotated.body.records as { name: string }[];
    assert.ok(
      records.some((r) => r.name.startsWith(`${pending[0]?.selector}._domainkey.`)),
      'the new record',
    );
    const del = await api.app.inject({
      method: 'DELETE',
      url: '/v1/domains/rot.test',
      headers: { authorization: `Bearer ${api.keys.all}` },
    });
    assert.equal(del.statusCode, 204);
  });
  it('previews unsaved template parts with variables; the send scope; bad input refused', async () => {
    const ok = await call(api.keys.send, 'POST', '/v1/templates/preview', {
      subject: 'Hi {{name}}',
      html: '<p>{{name}} &amp; co</p>',
      text: 'Hi {{name}}',
      variables: { name: 'Ada <3' },
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body, { subject: 'Hi Ada <3', html: '<p>Ada &lt;3 &amp; co</p>', text: 'Hi Ada <3' });
    assert.equal((await call(api.keys.read, 'POST', '/v1/templates/preview', { subject: 'x' })).status, 403);
    const missing = await call(api.keys.send, 'POST', '/v1/templates/preview', { subject: 'Hi {{name}}' });
    assert.equal(missing.status, 422, JSON.stringify(missing.body));
    assert.equal(missing.body.error?.code, 'template_render_error');
    const syntax = await call(api.keys.send, 'POST', '/v1/templates/preview', { html: '{{#if}}' });
    assert.equal(syntax.body.error?.code, 'template_render_error');
    for (const body of [[], { subject: 1 }, { from: 'x' }, { variables: [] }]) {
      const bad = await call(api.keys.send, 'POST', '/v1/templates/preview', body);
      assert.equal(bad.status, 400, JSON.stringify(body));
    }
    const huge = await call(api.keys.send, 'POST', '/v1/templates/preview', {
      html: 'x'.repeat(512 * 1024 + 1),
    });
    assert.equal(huge.body.error?.code, 'invalid_template');
  });
});
