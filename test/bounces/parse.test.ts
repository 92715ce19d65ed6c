/**
 * parseReport on hostile input: the inbound MX hands it whatever strangers send, so it must
 * answer, quickly and without throwing, for oversize messages, MIME bombs and garbage.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { parseReport } from '../../src/bounces/parse.ts';

/** Runs parseReport and checks it stays within a time budget (generous: CI machines are slow). */
function timed(raw: Buffer, budgetMs = 2000, options = {}) {
  const start = performance.now();
  const report = parseReport(raw, options);
  const ms = performance.now() - start;
  assert.ok(ms < budgetMs, `took ${Math.round(ms)} ms`);
  return report;
}

const dsnHead =
  'From: MAILER-DAEMON@mx.example\nTo: b+TOK@pb-bounces.shop.test\nSubject: Undelivered Mail\n' +
  'Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n';

describe('parseReport: size limits', () => {
  it('refuses a message over 10 MB unread, and an empty one', () => {
    const big = Buffer.alloc(10 * 1024 * 1024 + 1, 0x61);
    const got = timed(big, 500);
    assert.equal(got.kind, 'other');
    assert.match(got.problem ?? '', /larger than 10485760/);
    assert.deepEqual(parseReport(Buffer.alloc(0)), {
      kind: 'other',
      recipients: [],
      format: 'none',
      problem: 'empty',
    });
  });

  it('honours a smaller maxBytes', () => {
    assert.match(parseReport(Buffer.alloc(2000, 0x61), { maxBytes: 1000 }).problem ?? '', /larger than 1000/);
  });

  it('reads only the first 256 KB of a text part', () => {
    // The recipient line sits past the text limit: it is not seen.
    const filler = 'x'.repeat(80);
    const lines = Array.from({ length: 4000 }, () => filler).join('\n');
    const raw = Buffer.from(
      `From: MAILER-DAEMON@mx.example\nSubject: failure notice\n\nHi. This is the qmail-send program at mx.example.\n${lines}\n<late@example.org>:\nno mailbox (#5.1.1)\n`,
    );
    const got = timed(raw);
    assert.equal(got.kind, 'bounce');
    assert.deepEqual(got.recipients, []);
    const all = timed(raw, 2000, { maxTextBytes: 1024 * 1024 });
    assert.deepEqual(
      all.recipients.map((r) => r.email),
      ['late@example.org'],
    );
  });
});

describe('parseReport: MIME bombs', () => {
  it('deep nesting is cut at the depth limit', () => {
    let body = 'Content-Type: text/plain\n\ninnermost\n';
    for (let i = 0; i < 2000; i++)
      body = `Content-Type: multipart/mixed; boundary=b${i}\n\n--b${i}\n${body}--b${i}--\n`;
    const got = timed(Buffer.from(`Subject: deep\n${body}`));
    assert.equal(got.kind, 'other');
    assert.match(got.problem ?? '', /depth or part limit/);
  });

  it('enclosed messages nested without end are cut too', () => {
    let body = 'Subject: in\n\nbody\n';
    for (let i = 0; i < 500; i++) body = `Content-Type: message/rfc822\n\n${body}`;
    assert.match(timed(Buffer.from(body)).problem ?? '', /depth or part limit/);
  });

  it('a hundred thousand parts are cut at the part limit', () => {
    const part = '--b\nContent-Type: text/plain\n\nx\n';
    const raw = Buffer.from(
      `Subject: many\nContent-Type: multipart/mixed; boundary=b\n\n${part.repeat(100_000)}--b--\n`,
    );
    assert.match(timed(raw).problem ?? '', /depth or part limit/);
  });

  it('base64 messages enclosed in base64 messages stay bounded', () => {
    let inner = 'Subject: core\n\ncore\n';
    for (let i = 0; i < 12; i++) {
      inner = `Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n${Buffer.from(inner).toString('base64')}\n`;
    }
    assert.match(timed(Buffer.from(inner)).problem ?? '', /depth or part limit/);
  });

  it('a DSN with a hundred thousand recipients keeps the first thousand', () => {
    const groups = 'Final-Recipient: rfc822; u@x.example\nAction: failed\nStatus: 5.1.1\n\n'.repeat(100_000);
    const raw = Buffer.from(
      `${dsnHead}--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; m\n\n${groups}--B--\n`,
    );
    const got = timed(raw, 5000, { maxTextBytes: 8 * 1024 * 1024 });
    assert.equal(got.kind, 'bounce');
    assert.equal(got.recipients.length, 1000);
  });
});

describe('parseReport: garbage', () => {
  it('random bytes, NULs, lone CRs and a header with no end', () => {
    for (let i = 0; i < 20; i++) assert.equal(parseReport(randomBytes(4096)).kind, 'other');
    assert.equal(parseReport(Buffer.alloc(100_000, 0)).kind, 'other');
    assert.equal(parseReport(Buffer.from('Subject: a\rFrom: b\r\rbody\r'.repeat(1000))).kind, 'other');
    assert.equal(timed(Buffer.from(`X-Long: ${'a'.repeat(1_000_000)}`)).kind, 'other');
    assert.equal(timed(Buffer.from(`X: y\n${'Z: '.repeat(300_000)}`)).kind, 'other');
  });

  it('a broken Content-Type, a boundary that never appears, a binary body', () => {
    const cases = [
      'Content-Type: multipart/report; boundary=\n\n--\n',
      'Content-Type: multipart/report; report-type=delivery-status; boundary="never"\n\nno parts at all\n',
      'Content-Type: ;;;===;\n\nx',
      'Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n!!!not base64!!!\n',
      `Content-Type: text/plain; charset=utf-7\n\n${'+AGEAYgBj-'.repeat(100)}`,
    ];
    for (const c of cases) assert.doesNotThrow(() => parseReport(Buffer.from(c)), c);
  });

  it('text made to slow regexes down stays fast', () => {
    const attacks = [
      `${'a'.repeat(200_000)}@`,
      `x@${'a.'.repeat(100_000)}`,
      `${'<'.repeat(200_000)}`,
      `${'<style>'.repeat(30_000)}`,
      `${'550 5.1.1 '.repeat(20_000)}`,
      `${'a@b.cc '.repeat(30_000)}`,
      `${'-'.repeat(200_000)}`,
    ];
    for (const attack of attacks) {
      for (const type of ['text/plain', 'text/html']) {
        const raw = Buffer.from(
          `From: MAILER-DAEMON@mx.example\nSubject: Undeliverable\nContent-Type: ${type}\n\n${attack}\n`,
        );
        assert.doesNotThrow(() => timed(raw), `${type}: ${attack.slice(0, 20)}`);
      }
      const diag = Buffer.from(
        `${dsnHead}--B\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@x.example\nAction: failed\nStatus: 5.7.1\nDiagnostic-Code: smtp; 550 5.7.1 ${attack}\n--B--\n`,
      );
      assert.equal(timed(diag).kind, 'bounce');
    }
  });
});

describe('parseReport: the original message and our return path', () => {
  it('finds the token in the original Return-Path when the notice names someone else', () => {
    const raw = Buffer.from(
      'From: MAILER-DAEMON@mx.example\nTo: someone-else@forwarder.example\nSubject: failure notice\n\n' +
        "Hi. This is the qmail-send program at mx.example.\nI'm afraid I wasn't able to deliver your message to the following addresses.\n\n" +
        '<gone@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n' +
        '--- Below this line is a copy of the message.\n\n' +
        'Return-Path: <b+RET123@pb-bounces.shop.test>\nMessage-ID: <orig.1@shop.test>\nTo: gone@example.org\n\nbody\n',
    );
    const got = parseReport(raw);
    assert.equal(got.returnPathToken, 'b+RET123@pb-bounces.shop.test');
    assert.equal(got.originalMessageId, '<orig.1@shop.test>');
    assert.deepEqual(got.originalHeaders?.[0], ['Return-Path', '<b+RET123@pb-bounces.shop.test>']);
  });

  it('takes another VERP shape when told', () => {
    const raw = Buffer.from(
      'To: pb-01HZX@pb-bounces.shop.test\nSubject: Out of office\nAuto-Submitted: auto-replied\n\naway\n',
    );
    assert.equal(parseReport(raw).returnPathToken, undefined);
    assert.equal(
      parseReport(raw, { returnPathPattern: /(pb-[0-9A-Z]+@[a-z.-]+)/g }).returnPathToken,
      'pb-01HZX@pb-bounces.shop.test',
    );
  });
});
