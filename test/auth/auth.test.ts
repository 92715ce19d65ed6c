import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AuthInputError,
  createAccount,
  createCredential,
  setAccountWeight,
} from '../../src/auth/accounts.ts';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { cidrMatcher } from '../../src/auth/cidr.ts';
import { generatePassword, hashSecret, verifySecret } from '../../src/auth/secret-hash.ts';
import { createStream, requireStream } from '../../src/auth/streams.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { fakeClock } from '../support/fake-clock.ts';

async function memoryStore(): Promise<SqliteStore> {
  const store = new SqliteStore(':memory:');
  await store.migrate();
  return store;
}

describe('auth', () => {
  it('hashes secrets with scrypt and verifies them', async () => {
    const hash = await hashSecret('s3cret');
    assert.match(hash, /^scrypt\$32768\$8\$1\$/);
    assert.equal(await verifySecret('s3cret', hash), true);
    assert.equal(await verifySecret('s3cret!', hash), false);
    assert.equal(await verifySecret('s3cret', 'garbage'), false);
  });

  it('generates SMTP passwords of 24 letters and digits, never starting with "-"', () => {
    const seen = new Set<string>();
    const chars = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const password = generatePassword();
      assert.match(password, /^[A-Za-z0-9]{24}$/);
      seen.add(password);
      for (const c of password) chars.add(c);
    }
    assert.equal(seen.size, 2000);
    assert.equal(chars.size, 62, 'every letter and digit turns up');
  });

  it('issues SMTP, API and IP credentials; secrets are returned once and stored hashed', async () => {
    const store = await memoryStore();
    const account = await createAccount(store, 'shop', 1);
    const smtp = await createCredential(store, account, { kind: 'smtp', username: 'shop-app' }, 2);
    assert.ok(smtp.secret);
    assert.match(smtp.secret, /^[A-Za-z0-9]{24}$/);
    assert.notEqual(smtp.credential.secretHash, smtp.secret);
    assert.equal(
      await verifySecret(smtp.secret, (await store.findCredential('smtp', 'shop-app'))!.secretHash),
      true,
    );
    const api = await createCredential(store, account, { kind: 'api' }, 3);
    assert.match(api.secret ?? '', /^pb_[0-9a-f]{12}\.[A-Za-z0-9_-]+$/);
    assert.equal(api.credential.name, api.secret?.split('.')[0]);
    const ip = await createCredential(store, account, { kind: 'ip', cidrs: ['10.1.0.0/16', '::1'] }, 4);
    assert.equal(ip.secret, undefined);
    await assert.rejects(
      createCredential(store, account, { kind: 'ip', cidrs: ['10.1.0.0/33'] }, 5),
      AuthInputError,
    );
    await assert.rejects(
      createCredential(store, account, { kind: 'smtp', username: 'shop-app' }, 6),
      /already in use/,
    );
    await assert.rejects(createAccount(store, 'shop', 7), /already exists/);
    await assert.rejects(createAccount(store, 'bad name', 7), /not valid/);
    await store.close();
  });

  it('streams: names are checked and stored in lower case; defaults exist and cannot be created again', async () => {
    const store = await memoryStore();
    const account = await createAccount(store, 'shop', 1);
    const news = await createStream(store, account, { name: ' News ', kind: 'broadcast', pool: 'Bulk' }, 2);
    assert.deepEqual([news.name, news.kind, news.pool, news.isDefault], ['news', 'broadcast', 'bulk', false]);
    await assert.rejects(
      createStream(store, account, { name: 'news', kind: 'broadcast' }, 3),
      /already has a stream "news"/,
    );
    await assert.rejects(
      createStream(store, account, { name: 'Outbound', kind: 'transactional' }, 3),
      /default stream/,
    );
    await assert.rejects(
      createStream(store, account, { name: 'x y', kind: 'broadcast' }, 3),
      /stream name "x y" is not valid/,
    );
    await assert.rejects(
      createStream(store, account, { name: 'x', kind: 'bulk' }, 3),
      /transactional or broadcast/,
    );
    await assert.rejects(
      createStream(store, account, { name: 'x', kind: 'broadcast', pool: '-' }, 3),
      /pool name/,
    );
    assert.equal((await requireStream(store, account, 'NEWS')).name, 'news');
    assert.equal((await requireStream(store, account, 'broadcast')).kind, 'broadcast');
    await assert.rejects(
      requireStream(store, account, 'nope'),
      /has no stream "nope" \(see: postbote streams list --account shop\)/,
    );
    await store.close();
  });

  it('credentials: a default stream must exist for the account', async () => {
    const store = await memoryStore();
    const account = await createAccount(store, 'shop', 1);
    const other = await createAccount(store, 'other', 1);
    await createStream(store, other, { name: 'news', kind: 'broadcast' }, 2);
    await assert.rejects(
      createCredential(store, account, { kind: 'smtp', username: 'app', stream: 'news' }, 3),
      /account "shop" has no stream "news"/,
    );
    assert.equal(await store.findCredential('smtp', 'app'), undefined, 'nothing created');
    await createStream(store, account, { name: 'news', kind: 'broadcast' }, 4);
    const issued = await createCredential(
      store,
      account,
      { kind: 'smtp', username: 'app', stream: 'News' },
      5,
    );
    assert.equal(issued.credential.defaultStream, 'news');
    assert.equal((await store.findCredential('smtp', 'app'))?.defaultStream, 'news');
    const plain = await createCredential(store, account, { kind: 'api' }, 6);
    assert.equal(plain.credential.defaultStream, '', 'no default: outbound');
    await store.close();
  });

  it('account weights are whole numbers from 1 to 1000', async () => {
    const store = await memoryStore();
    const account = await createAccount(store, 'shop', 1);
    assert.equal(account.weight, 1);
    assert.equal((await setAccountWeight(store, account, 4)).weight, 4);
    assert.equal((await store.getAccount(account.id))?.weight, 4);
    for (const bad of [0, -1, 1.5, 1001, Number.NaN]) {
      await assert.rejects(
        setAccountWeight(store, account, bad),
        /weight must be a whole number from 1 to 1000/,
      );
    }
    await store.close();
  });

  it('matches client addresses against CIDRs, including IPv4-mapped IPv6', () => {
    const matches = cidrMatcher(['127.0.0.0/8', '2001:db8::/32']);
    assert.equal(matches('127.0.0.5'), true);
    assert.equal(matches('::ffff:127.0.0.5'), true);
    assert.equal(matches('2001:db8::1'), true);
    assert.equal(matches('10.0.0.1'), false);
    assert.equal(matches('not-an-ip'), false);
  });

  it('locks out a client IP and a username after repeated failures, then lets them in again', async () => {
    const store = await memoryStore();
    const clock = fakeClock();
    const account = await createAccount(store, 'shop', 1);
    const { secret } = await createCredential(store, account, { kind: 'smtp', username: 'app' }, 2);
    const auth = new Authenticator({
      store,
      clock: clock.now,
      maxFailures: 3,
      failureWindowMs: 60_000,
      lockoutMs: 600_000,
    });
    assert.equal((await auth.verifyPassword('192.0.2.1', 'app', 'wrong')).ok, false);
    assert.equal((await auth.verifyPassword('192.0.2.1', 'nobody', 'wrong')).ok, false);
    const third = await auth.verifyPassword('192.0.2.1', 'app', 'wrong');
    assert.deepEqual(third, { ok: false, reason: 'locked_out' });
    // Even the right password is refused while locked out.
    assert.deepEqual(await auth.verifyPassword('192.0.2.1', 'app', secret!), {
      ok: false,
      reason: 'locked_out',
    });
    // Another client may still log in with a username that is not locked out.
    assert.equal((await auth.verifyPassword('192.0.2.2', 'app', secret!)).ok, true);
    clock.advance(600_001);
    assert.equal((await auth.verifyPassword('192.0.2.1', 'app', secret!)).ok, true);
    await store.close();
  });

  it('finds the IP credential of a client and notices revocation', async () => {
    const store = await memoryStore();
    const clock = fakeClock();
    const account = await createAccount(store, 'shop', 1);
    const { credential } = await createCredential(store, account, { kind: 'ip', cidrs: ['127.0.0.0/8'] }, 2);
    const auth = new Authenticator({
      store,
      clock: clock.now,
      maxFailures: 3,
      failureWindowMs: 60_000,
      lockoutMs: 60_000,
      ipRefreshMs: 1000,
    });
    assert.equal((await auth.credentialForIp('127.0.0.9'))?.id, credential.id);
    assert.equal(await auth.credentialForIp('192.0.2.1'), undefined);
    await store.revokeCredential(credential.id, 3);
    clock.advance(1001);
    assert.equal(await auth.credentialForIp('127.0.0.9'), undefined);
    await store.close();
  });
});
