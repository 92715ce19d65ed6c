import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cliActor, createAudit } from '../../src/audit/audit.ts';
import { call, startApiApp } from '../support/api-app.ts';

describe('audit trail', () => {
  it('API actions that change configuration are recorded with the key as actor; GET /v1/audit pages per account', async () => {
    const api = await startApiApp();
    try {
      const acme = await api.store.getAccountByName('acme');
      assert.ok(acme);
      const added = await call(api, api.keys.all, 'POST', '/v1/domains', { domain: 'news.example.com' });
      assert.equal(added.statusCode, 201, added.body);
      assert.equal((await call(api, api.keys.all, 'DELETE', '/v1/domains/news.example.com')).statusCode, 204);
      await call(api, api.keys.all, 'POST', '/v1/suppressions', { suppressions: [{ address: 'x@y.org' }] });
      assert.equal((await call(api, api.keys.all, 'DELETE', '/v1/suppressions/X@Y.org')).statusCode, 204);
      // A refused removal changes nothing and records nothing.
      assert.equal((await call(api, api.keys.all, 'DELETE', '/v1/suppressions/none@y.org')).statusCode, 404);

      const page1 = await call(api, api.keys.all, 'GET', '/v1/audit?limit=2');
      assert.equal(page1.statusCode, 200, page1.body);
      const first = page1.json();
      const page2 = (
        await call(api, api.keys.all, 'GET', `/v1/audit?limit=2&cursor=${first.next_cursor}`)
      ).json();
      const entries = [...first.data, ...page2.data];
      assert.deepEqual(
        entries.map((e: { action: string; target: string }) => [e.action, e.target]),
        [
          ['suppression.remove', 'x@y.org'],
          ['domain.remove', 'news.example.com'],
          ['domain.add', 'news.example.com'],
        ],
      );
      assert.match(entries[0].actor, /^credential:/);
      assert.equal(page2.next_cursor, null);
      // Admin scope only; another account sees none of it; a bad cursor is refused.
      assert.equal((await call(api, api.keys.read, 'GET', '/v1/audit')).statusCode, 403);
      assert.deepEqual((await call(api, api.keys.other, 'GET', '/v1/audit')).json().data, []);
      assert.equal((await call(api, api.keys.all, 'GET', '/v1/audit?cursor=abc')).statusCode, 400);
    } finally {
      await api.close();
    }
  });

  it('records CLI and system actors; long targets are cut', async () => {
    const api = await startApiApp();
    try {
      const audit = createAudit({ store: api.store, clock: () => 42 });
      await audit.record({
        actor: cliActor(),
        accountId: '',
        action: 'credential.revoke',
        target: 'c'.repeat(1000),
      });
      const [entry] = await audit.list({});
      assert.match(entry?.actor ?? '', /^cli:.+/);
      assert.equal(entry?.at, 42);
      assert.equal(entry?.target.length, 320);
      assert.deepEqual(entry?.details, {});
    } finally {
      await api.close();
    }
  });
});
