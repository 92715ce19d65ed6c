import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseFeedbackReport, readArf } from '../../src/bounces/arf.ts';
import { parseMime } from '../../src/bounces/mime.ts';
import { parseReport } from '../../src/bounces/parse.ts';

function arf(fields: string, original = '', outer = 'multipart/report; report-type=feedback-report'): Buffer {
  return Buffer.from(
    `From: fbl@isp.example\nTo: fbl@pb-bounces.shop.test\nSubject: report\nMIME-Version: 1.0\nContent-Type: ${outer}; boundary=F\n\n` +
      '--F\nContent-Type: text/plain\n\nA complaint.\n\n' +
      `--F\nContent-Type: message/feedback-report\n\n${fields}\n` +
      original +
      '--F--\n',
  );
}

describe('parseFeedbackReport (RFC 5965 §3.1)', () => {
  it('reads the fields, folded ones too, and every Original-Rcpt-To once', () => {
    const r = parseFeedbackReport(
      [
        'Feedback-Type: Abuse',
        'User-Agent: SomeGenerator/1.0',
        'Version: 1',
        'Original-Mail-From: <b+ABC123@pb-bounces.shop.test>',
        'Original-Rcpt-To: <one@isp.example>',
        'Original-Rcpt-To: two@isp.example',
        'Original-Rcpt-To: <One@ISP.example>',
        'Arrival-Date: Thu, 8 Mar 2026 14:00:00 EDT',
        'Source-IP: 192.0.2.25',
        'Reported-Domain: shop.test',
        'Reporting-MTA: dns; mail.isp.example',
        'Authentication-Results: mail.isp.example;',
        '  spf=pass smtp.mailfrom=pb-bounces.shop.test',
        'Incidents: 3',
      ].join('\r\n'),
    );
    assert.equal(r.feedbackType, 'abuse');
    assert.equal(r.userAgent, 'SomeGenerator/1.0');
    assert.equal(r.version, '1');
    assert.equal(r.originalMailFrom, 'b+ABC123@pb-bounces.shop.test');
    assert.deepEqual(r.originalRcptTo, ['one@isp.example', 'two@isp.example']);
    assert.equal(r.arrivalDate, 'Thu, 8 Mar 2026 14:00:00 EDT');
    assert.equal(r.sourceIp, '192.0.2.25');
    assert.equal(r.reportedDomain, 'shop.test');
    assert.equal(r.reportingMta, 'mail.isp.example');
    assert.equal(r.incidents, 3);
    assert.deepEqual(
      r.fields.find(([n]) => n === 'Authentication-Results'),
      ['Authentication-Results', 'mail.isp.example; spf=pass smtp.mailfrom=pb-bounces.shop.test'],
    );
  });

  it('a report without Feedback-Type is of type other', () => {
    assert.equal(parseFeedbackReport('User-Agent: x\n').feedbackType, 'other');
    assert.equal(parseFeedbackReport('Feedback-Type: auth-failure\n').feedbackType, 'auth-failure');
  });
});

describe('readArf and parseReport on complaints', () => {
  it('matches the complaint through the enclosed headers when the recipient is redacted', () => {
    const raw = arf(
      'Feedback-Type: abuse\nUser-Agent: x/1\nVersion: 1\n',
      '--F\nContent-Type: text/rfc822-headers\n\nReturn-Path: <b+Z9Y8X7@pb-bounces.shop.test>\nFrom: Shop <n@shop.test>\nTo: [redacted]\nMessage-ID: <news.1@shop.test>\n\n',
    );
    const got = parseReport(raw);
    assert.equal(got.kind, 'complaint');
    assert.equal(got.feedbackType, 'abuse');
    assert.deepEqual(got.recipients, []);
    assert.equal(got.returnPathToken, 'b+Z9Y8X7@pb-bounces.shop.test');
    assert.equal(got.originalMessageId, '<news.1@shop.test>');
  });

  it('takes the enclosed To when Original-Rcpt-To is missing and To names one address', () => {
    const got = parseReport(
      arf(
        'Feedback-Type: abuse\n',
        '--F\nContent-Type: message/rfc822\n\nTo: Lena <lena@isp.example>\nSubject: s\n\nbody\n',
      ),
    );
    assert.deepEqual(
      got.recipients.map((r) => [r.email, r.status, r.category, r.permanent]),
      [['lena@isp.example', '', 'other', false]],
    );
  });

  it('finds a feedback-report part outside multipart/report, and one mislabelled text/plain', () => {
    assert.equal(parseReport(arf('Feedback-Type: virus\n', '', 'multipart/mixed')).feedbackType, 'virus');
    const mislabelled = Buffer.from(
      'Subject: r\nContent-Type: multipart/report; report-type=feedback-report; boundary=F\n\n' +
        '--F\nContent-Type: text/plain\n\nhuman\n--F\nContent-Type: text/plain\n\nFeedback-Type: fraud\nOriginal-Rcpt-To: a@isp.example\n--F--\n',
    );
    const report = readArf(parseMime(mislabelled.toString('latin1')));
    assert.equal(report?.feedbackType, 'fraud');
    assert.deepEqual(report?.originalRcptTo, ['a@isp.example']);
  });
});
