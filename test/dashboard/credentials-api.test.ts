/**
 * GET/POST/DELETE /v1/credentials: the account's SMTP logins and IP credentials for the
 * dashboard's Credentials page. Admin scope only; another account's credentials are neither
 * listed nor revocable; no answer carries a hash, and the SMTP password only the create answer
 * (and it works: the stored hash verifies it). Over fastify inject on a real SQLite store.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { verifySecret } from '../../src/auth/secret-hash.ts';
import { type ApiApp, startApiApp } from '../support/api-app.ts';

describe('SMTP logins and IP credentials over /v1/credentials', () => {
  let api: ApiApp;
  const call = async (key: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) => {
    const res = await api.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${key}` },
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
    return {
      status: res.statusCode,
      text: res.body,
      body: (res.body ? res.json() : {}) as Record<string, unknown> & {
        error?: { code: string; field?: string };
      },
    };
  };

  before(async () => {
    api = await startApiApp();
  });
  after(async () => {
    await api.close();
  });

  it('creates an SMTP login (password once, verifiable), an IP credential, lists without secrets, revokes, audits', async () => {
    const smtp = await call(api.keys.all, 'POST', '/v1/credentials', {
      kind: 'smtp',
      username: 'shop-relay',
    });
    assert.equal(smtp.status, 201, smtp.text);
    assert.equal(smtp.body.kind, 'smtp');
    assert.equal(smtp.body.username, 'shop-relay');
    assert.equal(smtp.body.stream, 'outbound');
    const password = String(smtp.body.password);
    assert.ok(password.length >= 20, smtp.text);
    const stored = await api.store.getCredential(String(smtp.body.id));
    assert.ok(
      stored && (await verifySecret(password, stored.secretHash)),
      'the password given is the stored one',
    );

    const ip = await call(api.keys.all, 'POST', '/v1/credentials', {
      kind: 'ip',
      cidrs: ['192.0.2.0/24', '2001:db8::/32'],
    });
    assert.equal(ip.status, 201, ip.text);
    assert.deepEqual(ip.body.cidrs, ['192.0.2.0/24', '2001:db8::/32']);
    assert.equal(ip.body.password, undefined);

    const list = await call(api.keys.all, 'GET', '/v1/credentials');
    assert.equal(list.status, 200);
    const rows = list.body.data as { id: string; kind: string }[];
    assert.deepEqual(rows.map((r) => r.kind).sort(), ['ip', 'smtp']);
    assert.ok(!list.text.includes(password), 'no password in the list');
    assert.doesNotMatch(list.text, /scrypt|secret|hash|password/i, 'no secret fields in the list');
    assert.ok(!rows.some((r) => r.kind === 'api'), 'API keys stay at /v1/keys');

    assert.equal((await call(api.keys.all, 'DELETE', `/v1/credentials/${smtp.body.id}`)).status, 204);
    assert.equal((await api.store.getCredential(String(smtp.body.id)))?.revokedAt !== null, true);
    const again = await call(api.keys.all, 'DELETE', `/v1/credentials/${smtp.body.id}`);
    assert.equal(again.status, 404, 'a revoked login is gone');
    const after = await call(api.keys.all, 'GET', '/v1/credentials');
    assert.deepEqual(
      (after.body.data as { kind: string }[]).map((r) => r.kind),
      ['ip'],
    );

    const audit = await call(api.keys.all, 'GET', '/v1/audit');
    const actions = (audit.body.data as { action: string; target: string }[])
      .filter((e) => e.target === smtp.body.id || e.target === ip.body.id)
      .map((e) => `${e.action} ${e.target === smtp.body.id ? 'smtp' : 'ip'}`)
      .sort();
    assert.deepEqual(actions, ['credential.create ip', 'credential.create smtp', 'credential.revoke smtp']);
    assert.ok(!audit.text.includes(password), 'no password in the audit log');
  });

  it('needs the admin scope: read and send keys are refused', async () => {
    for (const key of [api.keys.read, api.keys.send]) {
      assert.equal((await call(key, 'GET', '/v1/credentials')).status, 403);
      assert.equal(
        (await call(key, 'POST', '/v1/credentials', { kind: 'smtp', username: 'nope' })).status,
        403,
      );
    }
    assert.equal(await api.store.findCredential('smtp', 'nope'), undefined);
  });

  it('keeps accounts apart: another account neither sees nor revokes, and cannot revoke API keys here', async () => {
    const mine = await call(api.keys.all, 'POST', '/v1/credentials', { kind: 'smtp', username: 'mine-only' });
    assert.equal(mine.status, 201, mine.text);
    const theirs = await call(api.keys.other, 'GET', '/v1/credentials');
    assert.equal(theirs.status, 200);
    assert.ok(!theirs.text.includes('mine-only') && !theirs.text.includes(String(mine.body.id)), theirs.text);
    const steal = await call(api.keys.other, 'DELETE', `/v1/credentials/${mine.body.id}`);
    assert.equal(steal.status, 404);
    assert.equal((await api.store.getCredential(String(mine.body.id)))?.revokedAt, null);
    // An API key's id is not an SMTP/IP credential here.
    const keys = await call(api.keys.all, 'GET', '/v1/keys');
    const keyId = (keys.body.data as { id: string }[])[0]?.id;
    assert.ok(keyId);
    assert.equal((await call(api.keys.all, 'DELETE', `/v1/credentials/${keyId}`)).status, 404);
    // A taken username is refused for everyone (SMTP names are global).
    const taken = await call(api.keys.other, 'POST', '/v1/credentials', {
      kind: 'smtp',
      username: 'mine-only',
    });
    assert.equal(taken.status, 400);
    assert.equal(taken.body.error?.field, 'username');
  });

  it('refuses bad input with the field named and stores nothing', async () => {
    const cases: [unknown, string][] = [
      [{ kind: 'api' }, 'kind'],
      [{}, 'kind'],
      [{ kind: 'smtp' }, 'username'],
      [{ kind: 'smtp', username: 'has space' }, 'username'],
      [{ kind: 'smtp', username: 'x'.repeat(129) }, 'username'],
      [{ kind: 'smtp', username: 'a', cidrs: ['10.0.0.0/8'] }, 'cidrs'],
      [{ kind: 'ip', cidrs: [] }, 'cidrs'],
      [{ kind: 'ip', cidrs: ['not-a-cidr'] }, 'cidrs'],
      [{ kind: 'ip', cidrs: Array.from({ length: 65 }, (_, i) => `10.0.${i}.0/24`) }, 'cidrs'],
      [{ kind: 'ip', cidrs: ['10.0.0.0/8'], stream: 'no-such-stream' }, 'stream'],
      [{ kind: 'smtp', username: 'b', secret_hash: 'x' }, 'secret_hash'],
    ];
    const before = (await api.store.listCredentials({})).length;
    for (const [payload, field] of cases) {
      const res = await call(api.keys.all, 'POST', '/v1/credentials', payload);
      assert.equal(res.status, 400, `${JSON.stringify(payload).slice(0, 80)}: ${res.text}`);
      assert.equal(res.body.error?.field, field, `${JSON.stringify(payload).slice(0, 80)}: ${res.text}`);
    }
    assert.equal((await api.store.listCredentials({})).length, before);
    assert.equal((await call(api.keys.all, 'DELETE', '/v1/credentials/..%2F..')).status, 404);
  });
});
