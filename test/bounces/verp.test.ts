/**
 * VERP return paths: a bounce to `b+<token>@<return-path domain>` names its recipient, and
 * nobody without the secret can make one that does (or move one to another domain).
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  BOUNCE_SECRET_FILE,
  loadBounceSecret,
  readVerp,
  readVerpAddress,
  verpAddress,
} from '../../src/bounces/verp.ts';
import { tempDir } from '../support/temp-dir.ts';

const secret = Buffer.alloc(32, 7);
const otherSecret = Buffer.alloc(32, 8);

function localPart(address: string): string {
  return address.slice(0, address.lastIndexOf('@'));
}

describe('VERP addresses', () => {
  it('round-trips recipient ids, small and large', () => {
    for (const id of [0, 1, 31, 32, 12345, 2 ** 31, Number.MAX_SAFE_INTEGER]) {
      const address = verpAddress(id, 'bounces.shop.example', secret);
      assert.match(address, /^b\+[0-9a-v]+-[0-9a-v]{10}@bounces\.shop\.example$/);
      assert.ok(localPart(address).length <= 64, 'fits a local part (RFC 5321 §4.5.3.1.1)');
      assert.equal(readVerp(localPart(address), 'bounces.shop.example', secret), id);
      assert.equal(readVerpAddress(address, secret), id);
    }
  });

  it('gives each recipient and each domain its own address', () => {
    const a = verpAddress(42, 'bounces.a.example', secret);
    assert.notEqual(a, verpAddress(43, 'bounces.a.example', secret));
    assert.notEqual(localPart(a), localPart(verpAddress(42, 'bounces.b.example', secret)));
  });

  it('reads addresses whatever their case, and writes the domain in lower case', () => {
    const address = verpAddress(987654, 'Bounces.Shop.Example', secret);
    assert.ok(address.endsWith('@bounces.shop.example'));
    assert.equal(readVerpAddress(address.toUpperCase(), secret), 987654);
    assert.equal(readVerp(localPart(address).toUpperCase(), 'BOUNCES.shop.example', secret), 987654);
  });

  it('refuses a token whose id or MAC was changed', () => {
    const local = localPart(verpAddress(1000, 'bounces.shop.example', secret));
    const [id, mac] = local.slice(2).split('-') as [string, string];
    const flip = (s: string, i: number): string =>
      s.slice(0, i) + (s[i] === 'a' ? 'b' : 'a') + s.slice(i + 1);
    assert.equal(readVerp(`b+${flip(id, 0)}-${mac}`, 'bounces.shop.example', secret), undefined);
    for (let i = 0; i < mac.length; i++) {
      assert.equal(readVerp(`b+${id}-${flip(mac, i)}`, 'bounces.shop.example', secret), undefined);
    }
    assert.equal(readVerp(`b+${id}-${mac.slice(0, 9)}`, 'bounces.shop.example', secret), undefined);
    assert.equal(readVerp(`b+${id}-${mac}a`, 'bounces.shop.example', secret), undefined);
    // The same id with a leading zero: one id has exactly one token.
    assert.equal(readVerp(`b+0${id}-${mac}`, 'bounces.shop.example', secret), undefined);
  });

  it('refuses a token minted for another domain or under another secret', () => {
    const local = localPart(verpAddress(5, 'bounces.a.example', secret));
    assert.equal(readVerp(local, 'bounces.b.example', secret), undefined);
    assert.equal(readVerp(local, 'bounces.a.example', otherSecret), undefined);
  });

  it('returns undefined for garbage and never throws', () => {
    const garbage = [
      '',
      'b+',
      'b+-',
      'b+abc',
      'b+abc-',
      'c+1-aaaaaaaaaa',
      'b+1-aaaaaaaaaa',
      'b+zz-aaaaaaaaaa',
      'b+vvvvvvvvvvvv-aaaaaaaaaa',
      'b+1-aaaaaaaaaa-aaaaaaaaaa',
      `b+${'1'.repeat(5000)}-aaaaaaaaaa`,
      'b+1-ééééééééé',
      'b+İ-aaaaaaaaaa',
      '\u0000\r\n',
      '"b+1-aaaaaaaaaa"',
    ];
    for (const g of garbage) {
      assert.equal(readVerp(g, 'bounces.shop.example', secret), undefined, JSON.stringify(g));
      assert.equal(readVerpAddress(`${g}@bounces.shop.example`, secret), undefined);
    }
    assert.equal(readVerp(localPart(verpAddress(1, 'x.example', secret)), '', secret), undefined);
    assert.equal(readVerpAddress('no-at-sign', secret), undefined);
    assert.equal(readVerpAddress('@bounces.shop.example', secret), undefined);
  });

  it('refuses to make an address for an id it could not read back', () => {
    for (const id of [-1, 1.5, Number.NaN, 2 ** 53]) {
      assert.throws(() => verpAddress(id, 'bounces.shop.example', secret), RangeError);
    }
    assert.throws(() => verpAddress(1, '', secret), RangeError);
  });
});

describe('loadBounceSecret', () => {
  it('uses the configured base64 secret', () => {
    const dir = tempDir();
    try {
      const key = Buffer.alloc(32, 3);
      assert.deepEqual(loadBounceSecret(dir.path, key.toString('base64')), key);
    } finally {
      dir.cleanup();
    }
  });

  it('refuses a configured secret that is not base64 or too short', () => {
    assert.throws(() => loadBounceSecret('/nonexistent', 'not base64!!'), /bounces\.secret/);
    assert.throws(() => loadBounceSecret('/nonexistent', Buffer.alloc(8).toString('base64')), /at least 16/);
  });

  it('generates a secret once into the data dir, private, and reads it afterwards', () => {
    const dir = tempDir();
    try {
      const first = loadBounceSecret(dir.path, '');
      assert.equal(first.length, 32);
      const file = join(dir.path, BOUNCE_SECRET_FILE);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64'), first);
      assert.deepEqual(loadBounceSecret(dir.path, ''), first);
      // Addresses made before a restart still read after it.
      const address = verpAddress(77, 'bounces.shop.example', first);
      assert.equal(readVerpAddress(address, loadBounceSecret(dir.path, '')), 77);
    } finally {
      dir.cleanup();
    }
  });

  it('fails loudly on a damaged secret file instead of replacing it', () => {
    const dir = tempDir();
    try {
      writeFileSync(join(dir.path, BOUNCE_SECRET_FILE), 'c2hvcnQ=\n');
      assert.throws(() => loadBounceSecret(dir.path, ''), /bounce-secret/);
      assert.equal(readFileSync(join(dir.path, BOUNCE_SECRET_FILE), 'utf8'), 'c2hvcnQ=\n');
    } finally {
      dir.cleanup();
    }
  });
});
