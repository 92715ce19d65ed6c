/**
 * Builds the delivery status notification we send back to a sender when a recipient
 * bounced or expired (or, for `delayed`, is still being retried): RFC 3464 inside an
 * RFC 6522 multipart/report with three parts —
 *
 *   1. text/plain: what failed and why, in plain words, for the human reading it;
 *   2. message/delivery-status: the machine-readable per-message and per-recipient fields;
 *   3. text/rfc822-headers (RET=HDRS, the default) or message/rfc822 (RET=FULL, when the
 *      original is small enough), so the sender can tell which message it was.
 *
 * Pure: the clock (`now`) and the Message-ID come in, the MIME boundary is derived from the
 * Message-ID, so the same input gives the same bytes. CRLF line endings throughout and no
 * line longer than 998 octets (RFC 5322 §2.1.1).
 */
import { createHash } from 'node:crypto';

export interface DsnRecipient {
  /** The address we tried (Final-Recipient). */
  address: string;
  /** ORCPT as received (`rfc822;addr` or a bare address). */
  originalRecipient?: string;
  action: 'failed' | 'delayed';
  /** RFC 3463 status, e.g. '5.1.1', or '4.4.7' for an expired message. */
  status: string;
  /** Host name of the MX that answered. */
  remoteMta?: string;
  /** `smtp; 550 5.1.1 …` (a bare reply gets the `smtp;` type). */
  diagnosticCode?: string;
  lastAttemptDate?: Date;
  /** For `delayed`: when we will give up. */
  willRetryUntil?: Date;
}

export interface BuildDsnOptions {
  /** Our host name: Reporting-MTA and the MAILER-DAEMON address. */
  reportingMta: string;
  /** Where a puzzled sender can ask for help; named in the text part. */
  postmaster: string;
  /** ENVID of the original transaction (RFC 3461). */
  originalEnvelopeId?: string;
  arrivalDate: Date;
  originalMessage: Buffer;
  /** RFC 3461 RET; HDRS unless the sender asked for FULL. */
  ret?: 'FULL' | 'HDRS';
  /** Largest original returned in full (default 50,000 bytes, as Postfix's bounce_size_limit). */
  maxFullSize?: number;
  /** The envelope sender of the original: the DSN goes there. Never empty (see below). */
  originalMailFrom: string;
  recipients: DsnRecipient[];
  now: Date;
  /** Message-ID of the DSN itself, with or without angle brackets. */
  messageId: string;
}

const MAX_LINE = 998;
const WRAP = 76;
const STATUS = /^([245])\.(\d{1,3})\.(\d{1,3})$/;

export function buildDsn(options: BuildDsnOptions): Buffer {
  // RFC 5321 §6.1 / RFC 3464 §2: never notify the null sender, or bounces loop.
  if (options.originalMailFrom.trim() === '') {
    throw new TypeError('a DSN cannot be sent for a message with a null envelope sender');
  }
  if (options.recipients.length === 0) throw new TypeError('a DSN needs at least one recipient');
  for (const r of options.recipients) {
    if (!STATUS.test(r.status)) throw new TypeError(`invalid RFC 3463 status "${r.status}" for ${r.address}`);
  }

  const original = toCrlf(options.originalMessage);
  const headerEnd = original.indexOf('\r\n\r\n');
  const originalHeaders = headerEnd < 0 ? original : original.subarray(0, headerEnd + 2);
  const maxFull = options.maxFullSize ?? 50_000;
  const wantsFull = options.ret === 'FULL';
  // A full copy must keep its lines intact; if it cannot, headers are the honest fallback.
  const returnFull = wantsFull && original.length <= maxFull && longestLine(original) <= MAX_LINE;
  const returned = returnFull ? original : hardWrapLines(originalHeaders);

  const messageId = options.messageId.replace(/^<|>$/g, '');
  const failed = options.recipients.some((r) => r.action === 'failed');
  const human = Buffer.from(humanText(options, wantsFull && !returnFull), 'utf8');
  const status = Buffer.from(deliveryStatus(options), 'latin1');
  const boundary = chooseBoundary(messageId, [human, status, returned]);
  const eightBit = hasHighBytes(returned) || hasHighBytes(human);

  const headers = [
    `From: Mail Delivery System <MAILER-DAEMON@${options.reportingMta}>`,
    `To: <${options.originalMailFrom}>`,
    `Subject: ${failed ? 'Undelivered Mail Returned to Sender' : 'Delayed Mail (still being retried)'}`,
    `Date: ${rfc5322Date(options.now)}`,
    `Message-ID: <${messageId}>`,
    // RFC 3834 §5: an automatic response, so responders and vacation scripts stay quiet.
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;\r\n boundary="${boundary}"`,
    `Content-Transfer-Encoding: ${eightBit ? '8bit' : '7bit'}`,
  ];

  const parts: Array<string | Buffer> = [
    headers.join('\r\n'),
    '\r\n\r\nThis is a MIME-encapsulated message.\r\n',
    `\r\n--${boundary}\r\n`,
    'Content-Description: Notification\r\n',
    'Content-Type: text/plain; charset=utf-8\r\n',
    `Content-Transfer-Encoding: ${hasHighBytes(human) ? '8bit' : '7bit'}\r\n\r\n`,
    human,
    `\r\n--${boundary}\r\n`,
    'Content-Description: Delivery report\r\n',
    'Content-Type: message/delivery-status\r\n\r\n',
    status,
    `\r\n--${boundary}\r\n`,
    returnFull
      ? 'Content-Description: Undelivered message\r\n'
      : 'Content-Description: Undelivered message headers\r\n',
    returnFull ? 'Content-Type: message/rfc822\r\n' : 'Content-Type: text/rfc822-headers\r\n',
    `Content-Transfer-Encoding: ${hasHighBytes(returned) ? '8bit' : '7bit'}\r\n\r\n`,
    returned,
    endsWithCrlf(returned) ? '' : '\r\n',
    `\r\n--${boundary}--\r\n`,
  ];
  return Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : part)));
}

function humanText(options: BuildDsnOptions, tooLargeForFull: boolean): string {
  const failed = options.recipients.filter((r) => r.action === 'failed');
  const delayed = options.recipients.filter((r) => r.action === 'delayed');
  const paragraphs: string[] = [`This is the mail system at ${options.reportingMta}.`];

  if (failed.length > 0) {
    paragraphs.push(
      'Your message could not be delivered to the recipients below. This is a permanent failure: ' +
        'we will not try again. Check the address or the reason given, then send the message again if it still applies.',
    );
    for (const r of failed) paragraphs.push(describeRecipient(r));
  }
  if (delayed.length > 0) {
    paragraphs.push(
      'Delivery to the recipients below is delayed. Nothing needs to be done yet: ' +
        'we keep trying and will tell you if we give up.',
    );
    for (const r of delayed) {
      const until = r.willRetryUntil ? ` We will keep trying until ${rfc5322Date(r.willRetryUntil)}.` : '';
      paragraphs.push(describeRecipient(r) + until);
    }
  }
  paragraphs.push(
    tooLargeForFull
      ? 'The message was too large to return in full; its headers are attached.'
      : 'The headers of your message (or the whole message, if you asked for it) are attached.',
  );
  paragraphs.push(`If you need help, contact <${options.postmaster}> and include this report.`);
  return `${paragraphs.map(wrapParagraph).join('\r\n\r\n')}\r\n`;
}

function describeRecipient(r: DsnRecipient): string {
  const why = explainStatus(r.status);
  // Without a Remote-MTA the reply may be our own (a timeout, a refused connection).
  const reply = r.diagnosticCode?.replace(/^[^;]*;\s*/, '');
  const lead = r.remoteMta ? `The receiving server ${r.remoteMta} said:` : 'The last attempt ended with:';
  const said = reply ? ` ${lead} ${reply}` : '';
  return `<${r.address}>: ${why}.${said}`;
}

/** Plain words for the status codes senders meet most (RFC 3463 §3). */
function explainStatus(status: string): string {
  const [klass, subject, detail] = status.split('.');
  const specific: Record<string, string> = {
    '1.1': 'the mailbox does not exist at the receiving domain',
    '1.2': 'the recipient domain does not exist or does not accept mail',
    '1.3': 'the recipient address is not valid',
    '2.1': 'the mailbox is disabled',
    '2.2': 'the mailbox is full',
    '3.4': 'the message is larger than the receiving server accepts',
    '4.7': 'the message could not be delivered within the time allowed',
    '6.7': 'the receiving server cannot accept internationalised addresses',
    '7.1':
      "the receiving server refused the message by policy (for example a spam filter or the recipient's settings)",
  };
  const bySubject: Record<string, string> = {
    '1': 'there is a problem with the address',
    '2': 'there is a problem with the mailbox',
    '3': 'the receiving mail system has a problem',
    '4': 'the receiving server could not be reached reliably',
    '5': 'the conversation with the receiving server failed',
    '6': 'the message content could not be accepted',
    '7': 'the message was refused for security or policy reasons',
  };
  const text = specific[`${subject}.${detail}`] ?? bySubject[subject ?? ''];
  if (text) return text;
  return klass === '5'
    ? 'the receiving server rejected the message'
    : 'a temporary problem prevented delivery';
}

function deliveryStatus(options: BuildDsnOptions): string {
  const perMessage = [field('Reporting-MTA', `dns; ${options.reportingMta}`)];
  if (options.originalEnvelopeId) perMessage.push(field('Original-Envelope-Id', options.originalEnvelopeId));
  perMessage.push(field('Arrival-Date', rfc5322Date(options.arrivalDate)));

  const blocks = options.recipients.map((r) => {
    const lines = [field('Final-Recipient', `rfc822; ${r.address}`)];
    if (r.originalRecipient) {
      const orcpt = r.originalRecipient.includes(';')
        ? r.originalRecipient
        : `rfc822; ${r.originalRecipient}`;
      lines.push(field('Original-Recipient', orcpt.replace(/;\s*/, '; ')));
    }
    lines.push(field('Action', r.action), field('Status', r.status));
    if (r.remoteMta) lines.push(field('Remote-MTA', `dns; ${r.remoteMta}`));
    if (r.diagnosticCode) {
      const typed = /^[A-Za-z-]+;/.test(r.diagnosticCode) ? r.diagnosticCode : `smtp; ${r.diagnosticCode}`;
      lines.push(field('Diagnostic-Code', typed));
    }
    if (r.lastAttemptDate) lines.push(field('Last-Attempt-Date', rfc5322Date(r.lastAttemptDate)));
    if (r.willRetryUntil) lines.push(field('Will-Retry-Until', rfc5322Date(r.willRetryUntil)));
    return lines.join('\r\n');
  });
  return `${[perMessage.join('\r\n'), ...blocks].join('\r\n\r\n')}\r\n`;
}

/**
 * One delivery-status field, folded at spaces to about 78 columns (RFC 5322 §2.2.3).
 * The part is 7-bit (RFC 3464 §2.1), so anything else becomes xtext-style `+HH`.
 */
function field(name: string, value: string): string {
  const ascii = Buffer.from(value.replace(/[\r\n]+/g, ' '), 'utf8')
    .toString('latin1')
    .replace(/[^\x20-\x7e]/g, (ch) => `+${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
  const words = `${name}: ${ascii}`.split(' ');
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line !== '' && line.length + 1 + word.length > WRAP) {
      lines.push(line);
      line = ` ${word}`;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
    while (line.length > MAX_LINE) {
      lines.push(line.slice(0, MAX_LINE));
      line = ` ${line.slice(MAX_LINE)}`;
    }
  }
  lines.push(line);
  return lines.join('\r\n');
}

function wrapParagraph(text: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > WRAP) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  // A single word (a long URL in a reply) may still pass 998 octets: cut it.
  return lines.flatMap((l) => (l.length > MAX_LINE ? (l.match(/.{1,998}/g) ?? []) : [l])).join('\r\n');
}

/** Bare LF and bare CR become CRLF, so the copy is valid inside our CRLF message. */
function toCrlf(buf: Buffer): Buffer {
  return Buffer.from(buf.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
}

/** Header lines longer than 998 octets are folded (a diagnostic copy may gain whitespace). */
function hardWrapLines(buf: Buffer): Buffer {
  const lines = buf.toString('latin1').split('\r\n');
  const wrapped = lines.flatMap((line) => {
    if (line.length <= MAX_LINE) return [line];
    const pieces = [line.slice(0, MAX_LINE)];
    for (let i = MAX_LINE; i < line.length; i += MAX_LINE - 1)
      pieces.push(` ${line.slice(i, i + MAX_LINE - 1)}`);
    return pieces;
  });
  return Buffer.from(wrapped.join('\r\n'), 'latin1');
}

function longestLine(buf: Buffer): number {
  let longest = 0;
  let start = 0;
  for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, start)) {
    longest = Math.max(longest, i - start - 1);
    start = i + 1;
  }
  return Math.max(longest, buf.length - start);
}

function hasHighBytes(buf: Buffer): boolean {
  for (const byte of buf) if (byte > 0x7f) return true;
  return false;
}

function endsWithCrlf(buf: Buffer): boolean {
  return buf.length >= 2 && buf[buf.length - 2] === 0x0d && buf[buf.length - 1] === 0x0a;
}

/** Derived from the Message-ID (deterministic), lengthened until no content line contains it. */
function chooseBoundary(messageId: string, contents: Buffer[]): string {
  let boundary = `=_postbote_${createHash('sha256').update(messageId).digest('hex').slice(0, 24)}`;
  while (contents.some((c) => c.includes(`--${boundary}`))) boundary += '_';
  return boundary;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 §3.3 date-time in UTC: `Tue, 03 Nov 2026 12:00:00 +0000`. */
export function rfc5322Date(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${DAYS[date.getUTCDay()]}, ${pad(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`
  );
}
