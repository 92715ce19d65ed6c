import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuthInputError, createAccount, createCredential } from '../../src/auth/accounts.ts';
import { ApiKeyVerifier } from '../../src/auth/api-keys.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../support/temp-dir.ts';

describe('API keys', () => {
  const dir = tempDir();
  const store = new SqliteStore(join(dir.path, 'postbote.db'));
  let now = 1_800_000_000_000;
  const clock = () => now;
  let key = '';
  let credentialId = '';
  before(async () => {
    await store.migrate();
    const account = await createAccount(store, 'acme', now);
    const issued = await createCredential(store, account, { kind: 'api', scopes: ['send', 'admin'] }, now);
    key = issued.secret ?? '';
    credentialId = issued.credential.id;
  });
  after(async () => {
    await store.close();
    dir.cleanup();
  });

  it('are issued with the scopes asked for (default send,read) and refuse unknown scopes', async () => {
    const account = await store.getAccountByName('acme');
    assert.ok(account);
    assert.deepEqual((await store.getCredential(credentialId))?.scopes, ['send', 'admin']);
    const plain = await createCredential(store, account, { kind: 'api' }, now);
    assert.deepEqual(plain.credential.scopes, ['send', 'read']);
    await assert.rejects(
      createCredential(store, account, { kind: 'api', scopes: ['root' as never] }, now),
      AuthInputError,
    );
  });

  it('verify the key, and a revoked key stops working at once despite the verified cache', async () => {
    const verifier = new ApiKeyVerifier({
      store,
      clock,
      maxFailures: 3,
      failureWindowMs: 60_000,
      lockoutMs: 60_000,
    });
    const ok = await verifier.verify(key, '10.0.0.1');
    assert.equal(ok.ok && ok.credential.id, credentialId);
    assert.deepEqual(await verifier.verify(`${key}x`, '10.0.0.1'), { ok: false, reason: 'invalid' });
    await store.revokeCredential(credentialId, now);
    assert.deepEqual(await verifier.verify(key, '10.0.0.1'), { ok: false, reason: 'invalid' });
  });

  it('lock a client IP out after repeated failures, until the lockout ends', async () => {
    const verifier = new ApiKeyVerifier({
      store,
      clock,
      maxFailures: 3,
      failureWindowMs: 60_000,
      lockoutMs: 60_000,
    });
    for (let i = 0; i < 3; i++) await verifier.verify('pb_000000000000.wrongwrongwrongwrong', '10.0.0.9');
    assert.deepEqual(await verifier.verify('anything', '10.0.0.9'), { ok: false, reason: 'locked_out' });
    assert.notDeepEqual(await verifier.verify('anything', '10.0.0.10'), { ok: false, reason: 'locked_out' });
    now += 61_000;
    assert.deepEqual(await verifier.verify('anything', '10.0.0.9'), { ok: false, reason: 'invalid' });
  });
});
