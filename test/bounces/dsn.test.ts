import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDeliveryStatus, readDsn } from '../../src/bounces/dsn.ts';
import { parseMime } from '../../src/bounces/mime.ts';
import { parseReport } from '../../src/bounces/parse.ts';

/** A multipart/report around the given delivery-status text (LF line endings, as files have). */
function report(status: string, options: { statusHeaders?: string; original?: string } = {}): Buffer {
  return Buffer.from(
    'From: MAILER-DAEMON@mx.example.net\nTo: b+TOK3N@pb-bounces.shop.test\nSubject: Undelivered Mail\n' +
      'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n' +
      '--B\nContent-Type: text/plain\n\nIt failed.\n\n' +
      `--B\n${options.statusHeaders ?? 'Content-Type: message/delivery-status'}\n\n${status}\n` +
      (options.original ?? '') +
      '--B--\n',
    'latin1',
  );
}

describe('parseDeliveryStatus', () => {
  it('reads the per-message group and every recipient group (RFC 3464 §2.2, §2.3)', () => {
    const ds = parseDeliveryStatus(
      [
        'Reporting-MTA: dns; mx.example.net',
        'Original-Envelope-Id: order-42',
        'Arrival-Date: Tue, 03 Nov 2026 12:00:00 +0000',
        'X-Postfix-Sender: rfc822; b+TOK3N@pb-bounces.shop.test',
        '',
        'Final-Recipient: rfc822; one@example.org',
        'Original-Recipient: rfc822;One+2Bx@example.org',
        'Action: failed',
        'Status: 5.1.1 (bad destination mailbox address)',
        'Remote-MTA: dns; mx1.example.org (192.0.2.1)',
        'Diagnostic-Code: smtp; 550 5.1.1 <one@example.org>:',
        '    Recipient address rejected: User unknown',
        'Last-Attempt-Date: Tue, 03 Nov 2026 12:00:05 +0000',
        '',
        'Final-Recipient: RFC822; <Two@Example.ORG>',
        'Action: delayed',
        'Status: 4.4.1',
        'Diagnostic-Code: X-Postfix; connect to mx2.example.org: Connection timed out',
        'Will-Retry-Until: Thu, 05 Nov 2026 12:00:00 +0000',
      ].join('\r\n'),
    );
    assert.equal(ds.perMessage.reportingMta, 'mx.example.net');
    assert.equal(ds.perMessage.originalEnvelopeId, 'order-42');
    assert.equal(ds.perMessage.arrivalDate, 'Tue, 03 Nov 2026 12:00:00 +0000');
    assert.deepEqual(ds.perMessage.fields[3], ['X-Postfix-Sender', 'rfc822; b+TOK3N@pb-bounces.shop.test']);
    assert.equal(ds.recipients.length, 2);
    const [one, two] = ds.recipients;
    assert.equal(one?.finalRecipient, 'one@example.org');
    assert.equal(one?.originalRecipient, 'One+x@example.org', 'xtext +2B decoded in Original-Recipient');
    assert.equal(one?.action, 'failed');
    assert.equal(one?.status, '5.1.1');
    assert.equal(one?.remoteMta, 'mx1.example.org');
    assert.equal(one?.diagnosticType, 'smtp');
    assert.equal(
      one?.diagnosticCode,
      '550 5.1.1 <one@example.org>: Recipient address rejected: User unknown',
    );
    assert.equal(one?.lastAttemptDate, 'Tue, 03 Nov 2026 12:00:05 +0000');
    assert.equal(two?.finalRecipient, 'Two@example.org', 'domain lower-cased, local part kept');
    assert.equal(two?.action, 'delayed');
    assert.equal(two?.diagnosticType, 'x-postfix');
    assert.equal(two?.willRetryUntil, 'Thu, 05 Nov 2026 12:00:00 +0000');
  });

  it('splits recipients that come without blank lines between them', () => {
    const ds = parseDeliveryStatus(
      'Reporting-MTA: dns; gw.example\nFinal-Recipient: rfc822; a@x.example\nAction: failed\nStatus: 5.1.1\n' +
        'Final-Recipient: rfc822; b@x.example\nAction: failed\nStatus: 5.2.2\n',
    );
    assert.deepEqual(
      ds.recipients.map((r) => [r.finalRecipient, r.status]),
      [
        ['a@x.example', '5.1.1'],
        ['b@x.example', '5.2.2'],
      ],
    );
  });

  it('keeps a recipient that has only an Original-Recipient, and reads RFC 6533 utf-8 addresses', () => {
    const ds = parseDeliveryStatus(
      'Reporting-MTA: dns; m\n\nOriginal-Recipient: utf-8; j\\x{FC}rgen@m\\x{FC}ller.example\nAction: failed\nStatus: 5.1.1\n',
    );
    assert.equal(ds.recipients[0]?.originalRecipient, 'jürgen@müller.example');
    assert.equal(ds.recipients[0]?.finalRecipient, undefined);
  });

  it('caps the number of recipient groups', () => {
    const groups = Array.from(
      { length: 50 },
      (_, i) => `Final-Recipient: rfc822; u${i}@x.example\nAction: failed\nStatus: 5.1.1\n`,
    );
    assert.equal(
      parseDeliveryStatus(`Reporting-MTA: dns; m\n\n${groups.join('\n')}`, { maxRecipients: 7 }).recipients
        .length,
      7,
    );
  });

  it('ignores lines that are not fields', () => {
    const ds = parseDeliveryStatus(
      'garbage line\n: no name\nFinal-Recipient: rfc822; a@x.example\nStatus: 5.0.0\n',
    );
    assert.equal(ds.recipients.length, 1);
  });
});

describe('readDsn', () => {
  it('reads a base64-encoded status part and a base64-encoded returned message', () => {
    const status = Buffer.from(
      'Reporting-MTA: dns; m\n\nFinal-Recipient: rfc822; a@x.example\nAction: failed\nStatus: 5.1.1\n',
    ).toString('base64');
    const original = Buffer.from('From: Shop <o@shop.test>\nMessage-ID: <m1@shop.test>\n\nhi\n').toString(
      'base64',
    );
    const raw = report(status, {
      statusHeaders: 'Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64',
      original: `--B\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n${original}\n`,
    });
    const dsn = readDsn(parseMime(raw.toString('latin1')));
    assert.equal(dsn?.recipients[0]?.finalRecipient, 'a@x.example');
    assert.equal(dsn?.humanText?.trim(), 'It failed.');
    assert.deepEqual(dsn?.original?.headers, [
      ['From', ' Shop <o@shop.test>'],
      ['Message-ID', ' <m1@shop.test>'],
    ]);
  });

  it('reads a status part mislabelled text/plain inside report-type=delivery-status', () => {
    const raw = report(
      'Reporting-MTA: dns; m\n\nFinal-Recipient: rfc822; a@x.example\nAction: failed\nStatus: 5.2.2\n',
      {
        statusHeaders: 'Content-Type: text/plain',
      },
    );
    const dsn = readDsn(parseMime(raw.toString('latin1')));
    assert.equal(dsn?.recipients[0]?.status, '5.2.2');
  });

  it('is undefined for a message without a delivery status', () => {
    assert.equal(readDsn(parseMime('Subject: hello\n\nnothing here\n')), undefined);
  });
});

describe('parseReport on DSNs', () => {
  it('lists only the failed recipients of a mixed report', () => {
    const got = parseReport(
      report(
        'Reporting-MTA: dns; m\n\n' +
          'Final-Recipient: rfc822; ok@x.example\nAction: relayed\nStatus: 2.0.0\n\n' +
          'Final-Recipient: rfc822; bad@x.example\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n',
      ),
    );
    assert.equal(got.kind, 'bounce');
    assert.deepEqual(
      got.recipients.map((r) => [r.email, r.action, r.code, r.category, r.permanent]),
      [['bad@x.example', 'failed', 550, 'unknown_user', true]],
    );
    assert.equal(got.returnPathToken, 'b+TOK3N@pb-bounces.shop.test');
    assert.equal(got.reportingMta, 'm');
  });

  it('a delay or success notice is not a bounce', () => {
    const delayed = parseReport(
      report(
        'Reporting-MTA: dns; m\n\nFinal-Recipient: rfc822; a@x.example\nAction: delayed\nStatus: 4.2.2\n',
      ),
    );
    assert.equal(delayed.kind, 'other');
    assert.deepEqual(
      delayed.recipients.map((r) => [r.email, r.category, r.permanent]),
      [['a@x.example', 'mailbox_full', false]],
    );
    const delivered = parseReport(
      report(
        'Reporting-MTA: dns; m\n\nFinal-Recipient: rfc822; a@x.example\nAction: delivered\nStatus: 2.0.0\n',
      ),
    );
    assert.equal(delivered.kind, 'other');
    assert.equal(delivered.recipients[0]?.permanent, false);
  });

  it('prefers the reply’s enhanced code to a bare 5.0.0 status, and infers what is missing', () => {
    const got = parseReport(
      report(
        'Reporting-MTA: dns; m\n\n' +
          'Final-Recipient: rfc822; a@x.example\nAction: failed\nStatus: 5.0.0\nDiagnostic-Code: smtp; 552 5.2.2 over quota\n\n' +
          'Final-Recipient: rfc822; b@x.example\nDiagnostic-Code: smtp; 550 5.1.1 unknown\n\n' +
          'Final-Recipient: rfc822; c@x.example\nAction: failed\n',
      ),
    );
    assert.deepEqual(
      got.recipients.map((r) => [r.email, r.status, r.category, r.permanent]),
      [
        ['a@x.example', '5.2.2', 'mailbox_full', true],
        ['b@x.example', '5.1.1', 'unknown_user', true],
        ['c@x.example', '5.0.0', 'other', true],
      ],
    );
  });

  it('a failure after retries (failed with 4.x.x) is soft and keeps the last reason’s category', () => {
    const got = parseReport(
      report(
        'Reporting-MTA: dns; m\n\nFinal-Recipient: rfc822; a@x.example\nAction: failed\nStatus: 4.4.1\nDiagnostic-Code: X-Postfix; connect to mx: Connection refused\n',
      ),
    );
    assert.deepEqual(
      got.recipients.map((r) => [r.status, r.code, r.category, r.permanent, r.diagnostic]),
      [['4.4.1', undefined, 'network', false, 'connect to mx: Connection refused']],
    );
  });

  it('uses the classifier it is given', () => {
    const got = parseReport(
      report(
        'Reporting-MTA: dns; m\n\nFinal-Recipient: rfc822; a@x.example\nAction: failed\nStatus: 5.1.1\n',
      ),
      {
        classifier: () => ({ category: 'policy', permanent: false }),
      },
    );
    assert.deepEqual([got.recipients[0]?.category, got.recipients[0]?.permanent], ['policy', false]);
  });
});
