import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_LOCAL_PART,
  MAX_MAILTO_INDEX,
  mailtoAddress,
  mailtoUri,
  readMailto,
  readMailtoAddress,
} from '../../src/tracking/mailto.ts';
import { trackingKey } from '../../src/tracking/token.ts';

const key = trackingKey(Buffer.alloc(32, 7));
const MESSAGE = '01jd5x3k0f8n2pq4r6st';
const DOMAIN = 'bounces.shop.test';

describe('mailto unsubscribe addresses', () => {
  it('round-trip, in any case, and name the message and the recipient index', () => {
    for (const recipient of [0, 1, 31, 32, 999, MAX_MAILTO_INDEX]) {
      const address = mailtoAddress({ messageId: MESSAGE, recipient }, DOMAIN, key);
      assert.match(address, /^u\+[0-9a-z]+-[0-9a-v]{1,6}-[0-9a-v]{12}@bounces\.shop\.test$/);
      const expected = { messageId: MESSAGE, recipient };
      assert.deepEqual(readMailtoAddress(address, key), expected);
      assert.deepEqual(readMailtoAddress(address.toUpperCase(), key), expected);
    }
  });

  it('keep the local part within 64 octets for the longest message id and index', () => {
    const address = mailtoAddress({ messageId: 'z'.repeat(40), recipient: MAX_MAILTO_INDEX }, DOMAIN, key);
    const local = address.slice(0, address.lastIndexOf('@'));
    assert.ok(local.length <= MAX_LOCAL_PART, `${local.length}`);
    assert.deepEqual(readMailtoAddress(address, key), {
      messageId: 'z'.repeat(40),
      recipient: MAX_MAILTO_INDEX,
    });
  });

  it('refuse a changed MAC, index or message, another domain, another key, non-canonical digits', () => {
    const address = mailtoAddress({ messageId: MESSAGE, recipient: 5 }, DOMAIN, key);
    const [local = ''] = address.split('@');
    const [prefixed = '', , mac = ''] = local.split('-');
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'a' ? 'b' : 'a') + s.slice(i + 1);
    const refused = [
      `${prefixed}-5-${flip(mac, 3)}@${DOMAIN}`,
      `${prefixed}-6-${mac}@${DOMAIN}`,
      `${prefixed}-05-${mac}@${DOMAIN}`,
      `${flip(prefixed, 4)}-5-${mac}@${DOMAIN}`,
      `${local}@bounces.other.test`,
      `${local}@${DOMAIN}.evil`,
      mailtoAddress({ messageId: MESSAGE, recipient: 5 }, DOMAIN, trackingKey(Buffer.alloc(32, 8))),
    ];
    for (const text of refused) assert.equal(readMailtoAddress(text, key), undefined, text);
    // The trailing dot of an absolute name is the same domain.
    assert.deepEqual(readMailto(local, `${DOMAIN}.`, key), { messageId: MESSAGE, recipient: 5 });
  });

  it('never throw on garbage', () => {
    for (const text of [
      '',
      '@',
      'u+',
      `u+@${DOMAIN}`,
      `u+--@${DOMAIN}`,
      `u+a-b-c-d@${DOMAIN}`,
      `u+${'a'.repeat(5000)}-1-aaaaaaaaaaaa@${DOMAIN}`,
      `u+${MESSAGE}-1-aaaaaaaaaaaa@`,
      `b+1-aaaaaaaaaa@${DOMAIN}`,
      `u+${MESSAGE}-zz-aaaaaaaaaaaa@${DOMAIN}`,
      `u+${MESSAGE}-1-\u00e9aaaaaaaaaaa@${DOMAIN}`,
      `"u+${MESSAGE}-1-aaaaaaaaaaaa"@${DOMAIN}`,
    ]) {
      assert.equal(readMailtoAddress(text, key), undefined, text);
    }
  });

  it('refuse to mint what they could not read back', () => {
    assert.throws(() => mailtoAddress({ messageId: 'Bad-Id', recipient: 1 }, DOMAIN, key), RangeError);
    assert.throws(() => mailtoAddress({ messageId: MESSAGE, recipient: -1 }, DOMAIN, key), RangeError);
    assert.throws(
      () => mailtoAddress({ messageId: MESSAGE, recipient: MAX_MAILTO_INDEX + 1 }, DOMAIN, key),
      RangeError,
    );
    assert.throws(() => mailtoAddress({ messageId: MESSAGE, recipient: 1 }, '', key), RangeError);
  });

  it('form the RFC 6068 URI with the subject', () => {
    assert.equal(mailtoUri('u+a-1-b@x.test'), 'mailto:u+a-1-b@x.test?subject=unsubscribe');
  });
});
