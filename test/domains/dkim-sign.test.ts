import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { type DkimKey, generateDkimKey } from '../../src/domains/dkim-keys.ts';
import {
  DkimSignError,
  type DkimSigningKey,
  signedFieldNames,
  signMessage,
} from '../../src/domains/dkim-sign.ts';
import { recordsToPublish } from '../../src/domains/dns-records.ts';
import { dkimpyVerify, haveDkimpy } from './verifiers.ts';

const DOMAIN = 'example.com';
const NOW = new Date('2026-11-03T10:00:00Z');

const rsa = await generateDkimKey('rsa', { now: NOW });
const ed25519 = await generateDkimKey('ed25519', { now: NOW });
const rsaNext = await generateDkimKey('rsa', { now: new Date('2027-02-01T00:00:00Z') });

const signingKey = (key: DkimKey): DkimSigningKey => ({ domain: DOMAIN, ...key });

/** The DKIM TXT records as recordsToPublish tells the customer to publish them. */
function dkimRecords(keys: DkimKey[]) {
  return recordsToPublish({
    domain: DOMAIN,
    dkim: keys,
    returnPath: `bounces.${DOMAIN}`,
    mxHost: 'mx.postbote.example.net',
    trackingHost: `click.${DOMAIN}`,
    trackingTarget: 'track.postbote.example.net',
    egressIps: ['192.0.2.10'],
  }).filter((record) => record.purpose === 'dkim');
}

const ALL_KEYS = [rsa, ed25519, rsaNext];

/** What each signature gets from mailauth's verifier: `pass`, `fail`, `neutral`... */
async function mailauthResults(message: Buffer, keys: DkimKey[] = ALL_KEYS): Promise<string[]> {
  const records = dkimRecords(keys);
  const result = await dkimVerify(message, {
    // The character-strings as published: the verifier has to join them.
    resolver: async (name: string, rrtype: string) => {
      const record = records.find((r) => r.name === name);
      if (rrtype !== 'TXT' || !record || record.type !== 'TXT') {
        throw Object.assign(new Error(`no ${rrtype} at ${name}`), { code: 'ENOTFOUND' });
      }
      return [record.strings];
    },
    curTime: NOW,
  });
  return result.results.map((r) => r.status.result);
}

/** Verifies each signature with dkimpy; true/false per signature. */
function dkimpyResults(message: Buffer, count: number, keys: DkimKey[] = ALL_KEYS): boolean[] {
  const records = Object.fromEntries(dkimRecords(keys).map((r) => [r.name, r.value]));
  return dkimpyVerify(message, records, count).map((r) => r.ok);
}

/** A typical newsletter, ~3 KB, CRLF. */
function newsletter(extraHeaders: string[] = []): Buffer {
  const paragraph =
    'Thank you for shopping with us. We packed your parcel this morning and handed it to the ' +
    'carrier, who expects to deliver it within two working days.';
  const text = Array.from({ length: 6 }, () => paragraph).join('\r\n\r\n');
  const html = `<html><body>${Array.from({ length: 6 }, () => `<p>${paragraph}</p>`).join('\r\n')}</body></html>`;
  return Buffer.from(
    [
      ...extraHeaders,
      'From: Example Shop <news@example.com>',
      'To: Customer <customer@example.org>',
      'Cc: archive@example.org',
      'Reply-To: support@example.com',
      'Subject: Your order has shipped',
      'Date: Tue, 03 Nov 2026 10:00:00 +0000',
      'Message-ID: <123.456@relay.example.net>',
      'List-Unsubscribe: <https://example.com/u/123>, <mailto:unsubscribe@example.com?subject=123>',
      'List-Unsubscribe-Post: List-Unsubscribe=One-Click',
      'Feedback-ID: 123:newsletter:postbote',
      'X-Campaign: autumn',
      'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      '',
      text,
      '--b1',
      'Content-Type: text/html; charset=utf-8',
      '',
      html,
      '--b1--',
      '',
    ].join('\r\n'),
  );
}

/** The DKIM-Signature fields in front of a signed message (unfolded). */
function signatureFields(signed: Buffer): string[] {
  const header = signed.toString('latin1').split('\r\n\r\n')[0]!;
  return header
    .replace(/\r\n[ \t]/g, ' ')
    .split('\r\n')
    .filter((line) => /^DKIM-Signature:/i.test(line));
}

const tag = (field: string, name: string) => new RegExp(`[;:]\\s*${name}=([^;]*)`).exec(field)?.[1]?.trim();

test('dual signing: one signature per key, in key order, each verified by mailauth', async () => {
  const message = newsletter();
  const signed = await signMessage(message, [signingKey(rsa), signingKey(ed25519)], { now: NOW });
  const fields = signatureFields(signed);
  assert.equal(fields.length, 2);
  assert.deepEqual(
    fields.map((f) => [tag(f, 'a'), tag(f, 's'), tag(f, 'd'), tag(f, 'c')]),
    [
      ['rsa-sha256', rsa.selector, DOMAIN, 'relaxed/relaxed'],
      ['ed25519-sha256', ed25519.selector, DOMAIN, 'relaxed/relaxed'],
    ],
  );
  assert.equal(tag(fields[0]!, 't'), String(NOW.getTime() / 1000));
  assert.deepEqual(await mailauthResults(signed), ['pass', 'pass']);
});

test('the signatures are prepended with CRLF; every byte of the message follows unchanged', async () => {
  const message = newsletter();
  const signed = await signMessage(message, [signingKey(rsa), signingKey(ed25519)], { now: NOW });
  assert.ok(signed.subarray(signed.length - message.length).equals(message));
  const prefix = signed.subarray(0, signed.length - message.length).toString('latin1');
  assert.match(prefix, /^DKIM-Signature: /);
  assert.ok(prefix.endsWith('\r\n'));
  assert.doesNotMatch(prefix, /[^\r]\n/, 'no bare LF');
  // Only DKIM-Signature fields and their folded continuation lines.
  for (const line of prefix.slice(0, -2).split('\r\n')) assert.match(line, /^(DKIM-Signature: |[ \t])/);
});

test('dkimpy, an independent verifier, passes the RSA and the Ed25519 signature', async (t) => {
  if (!haveDkimpy(t, ['rsa', 'ed25519'])) return;
  const signed = await signMessage(newsletter(), [signingKey(rsa), signingKey(ed25519)], { now: NOW });
  assert.deepEqual(dkimpyResults(signed, 2), [true, true]);
});

test('h= lists From once more than present, the List-Unsubscribe fields and the usual set', async () => {
  const signed = await signMessage(newsletter(), [signingKey(rsa), signingKey(ed25519)], { now: NOW });
  for (const field of signatureFields(signed)) {
    const h = signedFieldNames(field);
    assert.equal(h.filter((name) => name === 'from').length, 2, `From oversigned in h=${h.join(':')}`);
    for (const name of [
      'subject',
      'to',
      'cc',
      'reply-to',
      'date',
      'message-id',
      'mime-version',
      'content-type',
      'list-unsubscribe',
      'list-unsubscribe-post',
      'feedback-id',
    ]) {
      assert.equal(h.filter((n) => n === name).length, 1, `${name} once in h=${h.join(':')}`);
    }
    assert.ok(!h.includes('x-campaign'), 'custom X- fields are not signed');
  }
});

test('a message without List-Unsubscribe is signed without it in h=', async () => {
  const plain = Buffer.from(
    'From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\nDate: Tue, 03 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n',
  );
  const signed = await signMessage(plain, [signingKey(ed25519)], { now: NOW });
  assert.deepEqual(signedFieldNames(signatureFields(signed)[0]!).sort(), [
    'date',
    'from',
    'from',
    'subject',
    'to',
  ]);
  assert.deepEqual(await mailauthResults(signed), ['pass']);
});

test('a changed Subject fails every signature, for mailauth and for dkimpy', async (t) => {
  const signed = await signMessage(newsletter(), [signingKey(rsa), signingKey(ed25519)], { now: NOW });
  const tampered = Buffer.from(
    signed.toString('latin1').replace('Subject: Your order has shipped', 'Subject: Your order was cancelled'),
    'latin1',
  );
  assert.notDeepEqual(tampered, signed);
  assert.deepEqual(await mailauthResults(tampered), ['fail', 'fail']);
  if (!haveDkimpy(t, ['rsa', 'ed25519'])) return;
  assert.deepEqual(dkimpyResults(signed, 2), [true, true]);
  assert.deepEqual(dkimpyResults(tampered, 2), [false, false]);
});

test('a second From added in transit fails the signatures (what oversigning is for)', async () => {
  const signed = await signMessage(newsletter(), [signingKey(rsa), signingKey(ed25519)], { now: NOW });
  const text = signed.toString('latin1');
  // Above the original, where some mail readers show the first From.
  const injected = Buffer.from(
    text.replace('From: Example Shop', 'From: Security Team <security@example.com>\r\nFrom: Example Shop'),
    'latin1',
  );
  assert.deepEqual(await mailauthResults(injected), ['fail', 'fail']);
});

test('relaxed/relaxed: re-folding, header case and trailing spaces in transit keep the signatures', async (t) => {
  const signed = await signMessage(newsletter(), [signingKey(rsa), signingKey(ed25519)], { now: NOW });
  const rewritten = Buffer.from(
    signed
      .toString('latin1')
      .replace('Subject: Your order has shipped', 'SUBJECT:   Your order\r\n   has shipped')
      // Trailing white space on a body line; spaces inside a line would change it.
      .replace('</p>\r\n', '</p> \t \r\n'),
    'latin1',
  );
  assert.deepEqual(await mailauthResults(rewritten), ['pass', 'pass']);
  if (!haveDkimpy(t, ['rsa', 'ed25519'])) return;
  assert.deepEqual(dkimpyResults(rewritten, 2), [true, true]);
});

test('during a rotation the old and the new key both sign, and both verify', async (t) => {
  const signed = await signMessage(newsletter(), [signingKey(rsa), signingKey(rsaNext)], { now: NOW });
  assert.deepEqual(
    signatureFields(signed).map((f) => tag(f, 's')),
    [rsa.selector, rsaNext.selector],
  );
  assert.deepEqual(await mailauthResults(signed), ['pass', 'pass']);
  // A receiver that only finds the new key in DNS still passes the message on that signature.
  assert.deepEqual(await mailauthResults(signed, [rsaNext]), ['neutral', 'pass']);
  if (!haveDkimpy(t, ['rsa'])) return;
  assert.deepEqual(dkimpyResults(signed, 2), [true, true]);
});

async function signError(promise: Promise<Buffer>): Promise<DkimSignError> {
  const error = await promise.then(
    () => assert.fail('expected signing to fail'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof DkimSignError, `expected a DkimSignError, got ${String(error)}`);
  return error;
}

test('a key that cannot sign is an error, never an unsigned or partly signed message', async () => {
  const message = newsletter();
  // An RSA key declared as Ed25519, next to a good key.
  const mismatch = await signError(
    signMessage(message, [signingKey(ed25519), { ...signingKey(rsa), algorithm: 'ed25519' }]),
  );
  assert.equal(mismatch.code, 'SIGN_FAILED');
  assert.deepEqual(
    mismatch.failures.map((f) => [f.selector, f.domain, f.code]),
    [[rsa.selector, DOMAIN, 'EINVALIDTYPE']],
  );

  const garbage = await signError(signMessage(message, [{ ...signingKey(rsa), privateKeyPem: 'not a key' }]));
  assert.equal(garbage.failures.length, 1);

  const selector = await signError(signMessage(message, [{ ...signingKey(rsa), selector: 'bad selector' }]));
  assert.equal(selector.failures[0]?.code, 'EINVALIDSELECTOR');

  assert.equal((await signError(signMessage(message, []))).code, 'NO_KEYS');
});

test('a message without From cannot be signed (RFC 6376 §5.4)', async () => {
  const error = await signError(
    signMessage(Buffer.from('To: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n'), [signingKey(rsa)]),
  );
  assert.equal(error.failures[0]?.code, 'ENOFROM');
});
