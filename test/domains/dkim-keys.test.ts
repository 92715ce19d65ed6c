import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { test } from 'node:test';
import { dkimSelector, generateDkimKey } from '../../src/domains/dkim-keys.ts';

const NOW = new Date('2026-11-03T10:00:00Z');
const SELECTOR = /^pb\d{8}-(rsa|ed25519)-[a-z2-7]{4}$/;

/** True when the private key's signature verifies with the public key as published. */
function matches(privateKeyPem: string, publicKey: ReturnType<typeof createPublicKey>): boolean {
  const data = Buffer.from('postbote');
  return verify(null, data, publicKey, sign(null, data, createPrivateKey(privateKeyPem)));
}

test('an RSA key is 2048 bits by default; p= is the SubjectPublicKeyInfo of the private key', async () => {
  const key = await generateDkimKey('rsa', { now: NOW });
  assert.equal(key.algorithm, 'rsa');
  assert.match(key.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  const publicKey = createPublicKey({
    key: Buffer.from(key.publicKey, 'base64'),
    format: 'der',
    type: 'spki',
  });
  assert.equal(publicKey.asymmetricKeyType, 'rsa');
  assert.equal(publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  assert.equal(publicKey.asymmetricKeyDetails?.publicExponent, 65537n);
  assert.ok(matches(key.privateKeyPem, publicKey));
});

test('an RSA key can be 3072 or 4096 bits; weaker or odd sizes are refused', async () => {
  const key = await generateDkimKey('rsa', { bits: 3072, now: NOW });
  const publicKey = createPublicKey({
    key: Buffer.from(key.publicKey, 'base64'),
    format: 'der',
    type: 'spki',
  });
  assert.equal(publicKey.asymmetricKeyDetails?.modulusLength, 3072);
  await assert.rejects(generateDkimKey('rsa', { bits: 1024, now: NOW }), RangeError);
  await assert.rejects(generateDkimKey('rsa', { bits: 2000, now: NOW }), RangeError);
});

test('an Ed25519 p= is the raw 32-byte public key (RFC 8463), not a SubjectPublicKeyInfo', async () => {
  const key = await generateDkimKey('ed25519', { now: NOW });
  assert.equal(key.algorithm, 'ed25519');
  const raw = Buffer.from(key.publicKey, 'base64');
  assert.equal(raw.length, 32);
  // The same key, as node sees it from the private key.
  const jwk = createPublicKey(createPrivateKey(key.privateKeyPem)).export({ format: 'jwk' });
  assert.equal(jwk.x, raw.toString('base64url'));
  assert.ok(
    matches(
      key.privateKeyPem,
      createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' }),
    ),
  );
});

test('selectors are dated (UTC), name the algorithm and are valid DNS labels', async () => {
  const rsa = await generateDkimKey('rsa', { now: NOW });
  const ed = await generateDkimKey('ed25519', { now: NOW });
  assert.match(rsa.selector, SELECTOR);
  assert.ok(rsa.selector.startsWith('pb20261103-rsa-'));
  assert.ok(ed.selector.startsWith('pb20261103-ed25519-'));
  for (const selector of [rsa.selector, ed.selector]) {
    assert.ok(selector.length <= 63);
    assert.match(selector, /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
  }
  // 23:30 in New York is already the next day in UTC.
  assert.ok(dkimSelector('rsa', new Date('2026-12-31T23:30:00-05:00')).startsWith('pb20270101-rsa-'));
  assert.throws(() => dkimSelector('rsa', new Date('not a date')), RangeError);
});

test('keys made the same day for the same algorithm get different selectors', () => {
  const selectors = new Set(Array.from({ length: 10 }, () => dkimSelector('ed25519', NOW)));
  assert.equal(selectors.size, 10);
});
