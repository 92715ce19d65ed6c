/**
 * The content scan against a real rspamd (Debian's, stock rules): its /checkv2 answer is read,
 * an ordinary message passes, the GTUBE test pattern is refused at the reject threshold and held
 * at the hold threshold. Skipped with the reason where rspamd is not installed (CI installs it).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rspamdCheck } from '../../src/content/rspamd.ts';
import { type ContentConfig, createScreening, type ScreenInput } from '../../src/content/screen.ts';
import { SendError } from '../../src/intake/send-errors.ts';
import { type RunningRspamd, rspamdMissing, startRspamd } from '../support/rspamd.ts';

const crlf = (lines: string[]) => Buffer.from(`${lines.join('\r\n')}\r\n`);
const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

const message = (body: string) =>
  crlf([
    'From: Shop <orders@shop.example>',
    'To: <reader@example.org>',
    'Subject: Your order',
    'Date: Sat, 28 Nov 2026 10:00:00 +0000',
    'Message-ID: <order-1@shop.example>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    body,
  ]);

const input = (raw: Buffer): ScreenInput => ({
  accountId: 'acct',
  messageId: 'm1',
  stream: 'outbound',
  kind: 'transactional',
  raw,
  mailFrom: 'orders@shop.example',
  recipients: ['reader@example.org'],
  clientIp: '192.0.2.10',
  credentialId: null,
});

describe('content scan with a real rspamd', () => {
  const missing = rspamdMissing();
  let rspamd: RunningRspamd | undefined;
  before(async () => {
    if (!missing) rspamd = await startRspamd();
  });
  after(async () => {
    await rspamd?.stop();
  });
  const config = (hold: string, reject: string): ContentConfig => ({
    action: 'warn',
    max_image_size: 1_000_000,
    rspamd: {
      url: rspamd?.url ?? '',
      timeout: 10_000,
      hold_score: hold,
      reject_score: reject,
      fail_open: false,
    },
  });
  const skip = (t: { skip(reason: string): void }): boolean => {
    if (!missing) return false;
    if (process.env.CI) assert.fail(`${missing}: CI must have it (.ci/run installs it)`);
    t.skip(missing);
    return true;
  };

  it('reads score, action and symbols of an ordinary message, which passes', {
    timeout: 90_000,
  }, async (t) => {
    if (skip(t) || !rspamd) return;
    const scan = await rspamdCheck({
      url: rspamd.url,
      timeoutMs: 10_000,
      raw: message('Thank you for your order. It ships tomorrow.'),
      from: 'orders@shop.example',
      recipients: ['reader@example.org'],
      ip: '192.0.2.10',
      queueId: 'm1',
    });
    assert.equal(typeof scan.score, 'number');
    assert.ok(scan.score < 15, `score ${scan.score}`);
    assert.ok(Array.isArray(scan.symbols));
    const screened = await createScreening({ content: config('10', '15') }).screen(
      input(message('Thank you for your order. It ships tomorrow.')),
    );
    assert.equal(screened.held, undefined);
  });

  it('refuses the GTUBE test message at the reject threshold and holds it at the hold threshold', {
    timeout: 90_000,
  }, async (t) => {
    if (skip(t) || !rspamd) return;
    const spam = message(`This is spam.\r\n${GTUBE}`);
    await assert.rejects(
      createScreening({ content: config('', '15') }).screen(input(spam)),
      (err: unknown) =>
        err instanceof SendError && err.code === 'content_rejected' && /rspamd score/.test(err.message),
    );
    const held = await createScreening({ content: config('15', '') }).screen(input(spam));
    assert.equal(held.held?.reason, 'content');
    assert.match(held.held?.details ?? '', /rspamd score/);
  });
});
