import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BuildDsnOptions, buildDsn, rfc5322Date } from '../../src/delivery/dsn.ts';

const original = Buffer.from(
  'From: Alice <alice@example.org>\r\n' +
    'To: bob@example.net, nobody@example.net\r\n' +
    'Subject: Quarterly numbers\r\n' +
    'Message-ID: <abc123@example.org>\r\n' +
    '\r\n' +
    'The secret body text.\r\n',
);

const gmail =
  "smtp; 550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's " +
  'email address for typos or unnecessary spaces. For more information, go to https://support.google.com/mail/?p=NoSuchUser - gsmtp';

function options(overrides: Partial<BuildDsnOptions> = {}): BuildDsnOptions {
  return {
    reportingMta: 'relay.postbote.test',
    postmaster: 'postmaster@postbote.test',
    originalEnvelopeId: 'env-42',
    arrivalDate: new Date(Date.UTC(2026, 10, 3, 12, 0, 0)),
    originalMessage: original,
    originalMailFrom: 'bounces+abc@example.org',
    recipients: [
      {
        address: 'nobody@example.net',
        originalRecipient: 'rfc822;nobody@example.net',
        action: 'failed',
        status: '5.1.1',
        remoteMta: 'mx.example.net',
        diagnosticCode: gmail,
        lastAttemptDate: new Date(Date.UTC(2026, 10, 3, 12, 0, 5)),
      },
    ],
    now: new Date(Date.UTC(2026, 10, 3, 12, 0, 6)),
    messageId: '<dsn-1@relay.postbote.test>',
    ...overrides,
  };
}

interface Parsed {
  raw: string;
  headers: string;
  boundary: string;
  parts: Array<{ headers: string; body: string }>;
}

/** Splits the report with plain string operations, the way a careful reader would. */
function parse(dsn: Buffer): Parsed {
  const raw = dsn.toString('utf8');
  const headerEnd = raw.indexOf('\r\n\r\n');
  const headers = raw.slice(0, headerEnd).replace(/\r\n[ \t]+/g, ' ');
  const boundary = /boundary="([^"]+)"/.exec(headers)?.[1];
  assert.ok(boundary, 'boundary parameter present');
  const body = raw.slice(headerEnd + 4);
  const closing = `\r\n--${boundary}--\r\n`;
  assert.ok(body.endsWith(closing), 'ends with the closing boundary');
  const sections = body.slice(0, -closing.length).split(`\r\n--${boundary}\r\n`);
  const parts = sections.slice(1).map((section) => {
    const end = section.indexOf('\r\n\r\n');
    return { headers: section.slice(0, end), body: section.slice(end + 4) };
  });
  return { raw, headers, boundary, parts };
}

function unfold(text: string): string {
  return text.replace(/\r\n[ \t]+/g, ' ');
}

describe('buildDsn', () => {
  it('builds a multipart/report with the three RFC 6522 parts in order', () => {
    const { headers, parts } = parse(buildDsn(options()));
    assert.match(headers, /^From: Mail Delivery System <MAILER-DAEMON@relay\.postbote\.test>$/m);
    assert.match(headers, /^To: <bounces\+abc@example\.org>$/m);
    assert.match(headers, /^Auto-Submitted: auto-replied$/m);
    assert.match(headers, /^Message-ID: <dsn-1@relay\.postbote\.test>$/m);
    assert.match(headers, /^Date: Tue, 03 Nov 2026 12:00:06 \+0000$/m);
    assert.match(headers, /^Subject: Undelivered Mail Returned to Sender$/m);
    assert.match(headers, /^MIME-Version: 1\.0$/m);
    assert.match(headers, /^Content-Type: multipart\/report; report-type=delivery-status; boundary="/m);

    assert.equal(parts.length, 3);
    assert.match(parts[0]!.headers, /^Content-Type: text\/plain; charset=utf-8$/m);
    assert.match(parts[1]!.headers, /^Content-Type: message\/delivery-status$/m);
    assert.match(parts[2]!.headers, /^Content-Type: text\/rfc822-headers$/m);
  });

  it('explains the failure in plain words and names the recipient and the reason', () => {
    const text = unfold(parse(buildDsn(options())).parts[0]!.body);
    assert.match(text, /could not be delivered/);
    assert.match(text, /<nobody@example\.net>: the mailbox does not exist at the receiving domain\./);
    assert.match(text, /The receiving server mx\.example\.net said: 550 5\.1\.1 The email account/);
    assert.match(text, /we will not try again/);
    assert.match(text, /postmaster@postbote\.test/);
  });

  it('writes the per-message and per-recipient delivery-status fields', () => {
    const status = parse(buildDsn(options())).parts[1]!.body;
    const [perMessage, perRecipient, ...rest] = status.replace(/\r\n$/, '').split('\r\n\r\n');
    assert.equal(rest.length, 0);
    assert.equal(
      perMessage,
      'Reporting-MTA: dns; relay.postbote.test\r\n' +
        'Original-Envelope-Id: env-42\r\n' +
        'Arrival-Date: Tue, 03 Nov 2026 12:00:00 +0000',
    );
    const fields = unfold(perRecipient!).split('\r\n');
    assert.deepEqual(fields, [
      'Final-Recipient: rfc822; nobody@example.net',
      'Original-Recipient: rfc822; nobody@example.net',
      'Action: failed',
      'Status: 5.1.1',
      'Remote-MTA: dns; mx.example.net',
      `Diagnostic-Code: ${gmail}`,
      'Last-Attempt-Date: Tue, 03 Nov 2026 12:00:05 +0000',
    ]);
  });

  it('folds long fields and keeps every line within 998 octets, CRLF only', () => {
    const longHeader = `X-Long: ${'x'.repeat(2500)}`;
    const message = Buffer.from(`Subject: hi\n${longHeader}\nTo: b@example.net\n\nbody\n`);
    const dsn = buildDsn(options({ originalMessage: message }));
    const raw = dsn.toString('latin1');
    assert.equal(/[^\r]\n/.test(raw), false, 'no bare LF');
    assert.equal(/\r[^\n]/.test(raw), false, 'no bare CR');
    for (const line of raw.split('\r\n')) assert.ok(line.length <= 998, `line of ${line.length} octets`);
    // The Diagnostic-Code was folded (it is longer than 78 columns) but survives unfolding.
    const status = parse(dsn).parts[1]!.body;
    const diagnostic = /^Diagnostic-Code: .*(\r\n .*)*/m.exec(status)?.[0] ?? '';
    const folded = diagnostic.split('\r\n');
    assert.ok(folded.length > 1, 'folded onto continuation lines');
    for (const line of folded) assert.ok(line.length <= 78, `folded line of ${line.length} columns`);
    // The oversized original header was wrapped, not dropped.
    const returned = parse(dsn).parts[2]!.body;
    assert.equal(returned.replace(/\r\n /g, '').match(/x+/)?.[0].length, 2500);
  });

  it('returns only the headers by default (RET=HDRS)', () => {
    const returned = parse(buildDsn(options())).parts[2]!.body;
    assert.match(returned, /^Subject: Quarterly numbers$/m);
    assert.match(returned, /^Message-ID: <abc123@example\.org>$/m);
    assert.equal(returned.includes('secret body'), false);
  });

  it('returns the full message for RET=FULL when it is small enough', () => {
    const { parts } = parse(buildDsn(options({ ret: 'FULL' })));
    assert.match(parts[2]!.headers, /^Content-Type: message\/rfc822$/m);
    assert.equal(parts[2]!.body, original.toString('utf8'));
  });

  it('falls back to headers for RET=FULL when the message is too large, and says so', () => {
    const { parts } = parse(buildDsn(options({ ret: 'FULL', maxFullSize: 100 })));
    assert.match(parts[2]!.headers, /^Content-Type: text\/rfc822-headers$/m);
    assert.equal(parts[2]!.body.includes('secret body'), false);
    assert.match(unfold(parts[0]!.body), /too large to return in full/);
  });

  it('reports delayed recipients with Will-Retry-Until', () => {
    const dsn = buildDsn(
      options({
        recipients: [
          {
            address: 'slow@example.net',
            action: 'delayed',
            status: '4.2.2',
            remoteMta: 'mx.example.net',
            diagnosticCode: '452 4.2.2 Mailbox full',
            willRetryUntil: new Date(Date.UTC(2026, 10, 8, 12, 0, 0)),
          },
        ],
      }),
    );
    const { headers, parts } = parse(dsn);
    assert.match(headers, /^Subject: Delayed Mail \(still being retried\)$/m);
    assert.match(unfold(parts[0]!.body), /delayed\. Nothing needs to be done yet/);
    assert.match(unfold(parts[0]!.body), /the mailbox is full/);
    const status = unfold(parts[1]!.body);
    assert.match(status, /^Action: delayed$/m);
    assert.match(status, /^Diagnostic-Code: smtp; 452 4\.2\.2 Mailbox full$/m);
    assert.match(status, /^Will-Retry-Until: Sun, 08 Nov 2026 12:00:00 \+0000$/m);
  });

  it('lists several recipients, each in its own block', () => {
    const dsn = buildDsn(
      options({
        recipients: [
          { address: 'a@example.net', action: 'failed', status: '5.1.1' },
          {
            address: 'b@example.net',
            action: 'failed',
            status: '4.4.7',
            diagnosticCode: 'smtp; 421 4.4.2 timeout',
          },
        ],
      }),
    );
    const blocks = parse(dsn).parts[1]!.body.replace(/\r\n$/, '').split('\r\n\r\n');
    assert.equal(blocks.length, 3);
    assert.match(blocks[1]!, /^Final-Recipient: rfc822; a@example\.net$/m);
    assert.match(blocks[2]!, /^Final-Recipient: rfc822; b@example\.net$/m);
    assert.match(blocks[2]!, /^Status: 4\.4\.7$/m);
    assert.match(
      unfold(parse(dsn).parts[0]!.body),
      /<b@example\.net>: the message could not be delivered within the time/,
    );
  });

  it('is deterministic for the same input', () => {
    assert.deepEqual(buildDsn(options()), buildDsn(options()));
  });

  it('refuses to answer the null sender and rejects malformed statuses', () => {
    assert.throws(() => buildDsn(options({ originalMailFrom: '' })), TypeError);
    assert.throws(() => buildDsn(options({ recipients: [] })), TypeError);
    assert.throws(
      () =>
        buildDsn(options({ recipients: [{ address: 'a@example.net', action: 'failed', status: '550' }] })),
      TypeError,
    );
  });

  it('marks 8-bit originals as 8bit', () => {
    const utf8 = Buffer.from('Subject: Grüße\r\nTo: b@example.net\r\n\r\nbody\r\n');
    const { headers, parts } = parse(buildDsn(options({ originalMessage: utf8 })));
    assert.match(headers, /^Content-Transfer-Encoding: 8bit$/m);
    assert.match(parts[2]!.headers, /^Content-Transfer-Encoding: 8bit$/m);
    assert.match(parts[2]!.body, /^Subject: Grüße$/m);
  });
});

describe('rfc5322Date', () => {
  it('formats in UTC with a numeric zone', () => {
    assert.equal(rfc5322Date(new Date(Date.UTC(2026, 0, 5, 7, 8, 9))), 'Mon, 05 Jan 2026 07:08:09 +0000');
  });
});
