import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readToken, signToken, type TrackingToken, trackingKey } from '../../src/tracking/token.ts';

const key = trackingKey(Buffer.alloc(32, 7));
const MESSAGE = '01jd5x3k0f8n2pq4r6st';

describe('tracking tokens', () => {
  it('round-trips opens, clicks (URL with | and non-ASCII) and unsubscribes', () => {
    const tokens: TrackingToken[] = [
      { kind: 'open', messageId: MESSAGE, recipient: 0 },
      { kind: 'unsubscribe', messageId: MESSAGE, recipient: 41 },
      { kind: 'click', messageId: MESSAGE, recipient: 3, link: 2, url: 'https://shop.test/a?b=1&c=x|y#frag' },
      { kind: 'click', messageId: MESSAGE, recipient: 1, link: 0, url: 'https://shop.test/%C3%BC' },
    ];
    for (const t of tokens) {
      const text = signToken(t, key);
      assert.match(text, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
      assert.deepEqual(readToken(text, key), t);
    }
  });

  it('refuses a changed payload, a changed MAC, another key, and odd encodings', () => {
    const text = signToken(
      { kind: 'click', messageId: MESSAGE, recipient: 0, link: 0, url: 'https://a.test/' },
      key,
    );
    const [body = '', mac = ''] = text.split('.');
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    assert.equal(readToken(`${flip(body, 5)}.${mac}`, key), undefined, 'payload changed');
    assert.equal(readToken(`${body}.${flip(mac, 3)}`, key), undefined, 'mac changed');
    assert.equal(readToken(text, trackingKey(Buffer.alloc(32, 8))), undefined, 'another secret');
    assert.equal(readToken(`${body}.${mac}.`, key), undefined);
    assert.equal(readToken(`${body}`, key), undefined);
    assert.equal(readToken('', key), undefined);
    assert.equal(readToken(`${body}=.${mac}`, key), undefined, 'padding is not base64url');
    assert.equal(readToken(`${'A'.repeat(9000)}.${mac}`, key), undefined, 'too long');
    // A different URL with the MAC of the original: refused.
    const other = Buffer.from(`v1|c|${MESSAGE}|0|0|https://evil.test/`).toString('base64url');
    assert.equal(readToken(`${other}.${mac}`, key), undefined);
  });

  it('binds the kind: an open token is not an unsubscribe token', () => {
    const open = signToken({ kind: 'open', messageId: MESSAGE, recipient: 5 }, key);
    const read = readToken(open, key);
    assert.equal(read?.kind, 'open');
    // Re-labelled payload under the old MAC.
    const [, mac] = open.split('.');
    const relabelled = Buffer.from(`v1|u|${MESSAGE}|5`).toString('base64url');
    assert.equal(readToken(`${relabelled}.${mac}`, key), undefined);
  });

  it('refuses to sign what it could not read back', () => {
    assert.throws(() => signToken({ kind: 'open', messageId: 'has|bar', recipient: 0 }, key), RangeError);
    assert.throws(() => signToken({ kind: 'open', messageId: MESSAGE, recipient: -1 }, key), RangeError);
    assert.throws(() => signToken({ kind: 'click', messageId: MESSAGE, recipient: 0 }, key), RangeError);
  });
});

describe('tracking token MAC', () => {
  it('is HMAC-SHA256 (RFC 2104) of the payload, cut to 128 bits', async () => {
    const { createHmac } = await import('node:crypto');
    const text = signToken({ kind: 'open', messageId: MESSAGE, recipient: 9 }, key);
    const [body = '', mac = ''] = text.split('.');
    const payload = Buffer.from(body, 'base64url').toString('utf8');
    const expected = createHmac('sha256', key).update(payload).digest().subarray(0, 16).toString('base64url');
    assert.equal(mac, expected);
  });
});
