/**
 * DKIM private keys encrypted at rest (secrets.key): the sealed format, old plaintext keys still
 * read, new keys stored sealed and still signing, `domains encrypt-keys` (service and CLI), and
 * the start-up check that names a wrong or missing key.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAccount } from '../../src/auth/accounts.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createDomains } from '../../src/domains/domains.ts';
import {
  checkStoredKeys,
  createKeyBox,
  ENCRYPTED_PREFIX,
  loadSecretsKey,
  parseSecretsKey,
  SecretsKeyError,
} from '../../src/domains/key-encryption.ts';
import { createSenderGate } from '../../src/domains/sender-gate.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { Account } from '../../src/store/types.ts';
import { tempDir } from '../support/temp-dir.ts';

const PEM = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n';
const keyText = () => randomBytes(32).toString('base64');

describe('secrets key and the sealed format', () => {
  it('seals with AES-256-GCM under enc:v1:, opens, and reads plaintext as before', () => {
    const box = createKeyBox(parseSecretsKey(keyText(), 'test'));
    const sealed = box.seal(PEM);
    assert.ok(sealed.startsWith(ENCRYPTED_PREFIX));
    assert.ok(!sealed.includes('PRIVATE KEY'));
    assert.notEqual(box.seal(PEM), sealed, 'a fresh IV per value');
    assert.equal(box.open(sealed), PEM);
    assert.equal(box.open(PEM), PEM, 'a plaintext key from before the secrets key still reads');
    const plain = createKeyBox(undefined);
    assert.equal(plain.encrypting, false);
    assert.equal(plain.seal(PEM), PEM, 'without a key new keys stay plaintext');
    assert.throws(() => plain.open(sealed), /no secrets key is configured/);
  });

  it('a wrong key or a tampered value is a clear error, never garbage', () => {
    const sealed = createKeyBox(parseSecretsKey(keyText(), 'test')).seal(PEM);
    const other = createKeyBox(parseSecretsKey(keyText(), 'test'));
    assert.throws(
      () => other.open(sealed),
      (err: Error) => {
        assert.ok(err instanceof SecretsKeyError);
        assert.match(err.message, /does not decrypt the stored DKIM keys/);
        return true;
      },
    );
    const raw = Buffer.from(sealed.slice(ENCRYPTED_PREFIX.length), 'base64');
    raw[20]! ^= 1;
    const box = createKeyBox(Buffer.alloc(32, 1));
    assert.throws(() => box.open(ENCRYPTED_PREFIX + raw.toString('base64')), SecretsKeyError);
    assert.throws(() => box.open(`${ENCRYPTED_PREFIX}AAAA`), /truncated/);
  });

  it('the key is 32 bytes of base64, from secrets.key or secrets.key_file, not both', () => {
    assert.throws(() => parseSecretsKey('c2hvcnQ=', 'secrets.key'), /32 random bytes/);
    assert.throws(() => parseSecretsKey('not base64 at all!', 'secrets.key'), /32 random bytes/);
    assert.equal(loadSecretsKey({ key: '', key_file: '' }), undefined);
    const dir = tempDir();
    try {
      const text = keyText();
      writeFileSync(join(dir.path, 'secrets.key'), `${text}\n`);
      assert.deepEqual(
        loadSecretsKey({ key: '', key_file: join(dir.path, 'secrets.key') }),
        Buffer.from(text, 'base64'),
      );
      assert.throws(() => loadSecretsKey({ key: text, key_file: 'x' }), /not both/);
      assert.throws(() => loadSecretsKey({ key: '', key_file: join(dir.path, 'missing') }), /cannot be read/);
    } finally {
      dir.cleanup();
    }
  });
});

describe('DKIM keys at rest', () => {
  const dir = tempDir();
  const dbPath = join(dir.path, 'postbote.db');
  const store = new SqliteStore(dbPath);
  const secret = keyText();
  const now = Date.parse('2026-11-28T10:00:00Z');
  let shop: Account;
  const configWith = (env: Record<string, string>) =>
    loadConfig({
      env,
      cwd: dir.path,
      overrides: { hostname: 'relay.test', data_dir: dir.path, domains: { public_ips: ['192.0.2.10'] } },
    });
  const stored = async (domain: string) => {
    const d = await store.getDomain(domain);
    return (await store.listDkimKeys(d!.id)).map((k) => k.privateKeyPem);
  };

  before(async () => {
    await store.migrate();
    shop = await createAccount(store, 'shop', now);
  });
  after(async () => {
    await store.close();
    dir.cleanup();
  });

  it('keys made without a key stay plaintext; with one they are stored sealed and still sign', async () => {
    await createDomains({ store, clock: () => now, config: configWith({}) }).add(shop, 'old.test');
    assert.ok((await stored('old.test'))[0]!.startsWith('-----BEGIN PRIVATE KEY-----'));

    const config = configWith({ POSTBOTE_SECRETS__KEY: secret });
    await createDomains({ store, clock: () => now, config }).add(shop, 'new.test');
    const sealed = (await stored('new.test'))[0]!;
    assert.ok(sealed.startsWith(ENCRYPTED_PREFIX));

    for (const domain of ['old.test', 'new.test']) {
      await store.setDomainVerified((await store.getDomain(domain))!.id, now, 'admin');
    }
    const box = createKeyBox(loadSecretsKey(config.secrets));
    await checkStoredKeys(() => store.signingDomains(), box);
    const gate = createSenderGate({ store, clock: () => now, keys: box });
    for (const domain of ['old.test', 'new.test']) {
      const { bodies } = await gate.apply({
        accountId: shop.id,
        messageId: 'm1',
        bodies: [Buffer.from(`From: a@${domain}\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n`)],
      });
      assert.match(bodies[0]!.toString(), new RegExp(`^DKIM-Signature:[^]*d=${domain.replace('.', '\\.')}`));
    }
  });

  it('the start-up check names a wrong or a missing key', async () => {
    const signing = () => store.signingDomains();
    await assert.rejects(
      checkStoredKeys(signing, createKeyBox(parseSecretsKey(keyText(), 'x'))),
      /DKIM key pb\d+-rsa-\w+ of new\.test: the configured secrets key does not decrypt/,
    );
    await assert.rejects(checkStoredKeys(signing, createKeyBox(undefined)), /no secrets key is configured/);
  });

  it('postbote domains encrypt-keys seals the plaintext keys (and refuses without a key)', async () => {
    const main = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');
    const cli = (env: Record<string, string>) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [main, 'domains', 'encrypt-keys', '--json'],
          { env: { PATH: process.env.PATH ?? '', POSTBOTE_DATA_DIR: dir.path, ...env }, timeout: 30_000 },
          (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
        );
      });
    const refused = await cli({});
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /no secrets key configured/);
    const plainBefore = (await stored('old.test'))[0]!;
    const done = await cli({ POSTBOTE_SECRETS__KEY: secret });
    assert.equal(done.code, 0, done.stderr);
    assert.deepEqual(JSON.parse(done.stdout), { encrypted: 1, alreadyEncrypted: 1 });
    const after = (await stored('old.test'))[0]!;
    assert.ok(after.startsWith(ENCRYPTED_PREFIX));
    assert.equal(createKeyBox(parseSecretsKey(secret, 'x')).open(after), plainBefore);
    const wrong = await cli({ POSTBOTE_SECRETS__KEY: keyText() });
    assert.notEqual(wrong.code, 0, 'a second key is refused: the first one sealed keys already');
    assert.match(wrong.stderr, /does not decrypt/);
  });
});
