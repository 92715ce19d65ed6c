/**
 * The one entry point for everything that comes back to a return path or a feedback address:
 * `parseReport(raw)` says whether it is a bounce, a complaint, an auto-reply or something else,
 * and for bounces which recipients failed, with what status and why (classified).
 *
 * Readers, in order: an RFC 5965 feedback report, an RFC 3464 DSN, a non-standard MTA notice,
 * an RFC 3834 auto-reply. Hostile input is expected: the message is refused above `maxBytes`,
 * only `maxTextBytes` of each text part are read, the MIME tree is cut at `maxDepth` and
 * `maxParts`, and nothing here throws on malformed input.
 */
import { firstAddress, normalizeAddress } from './address.ts';
import { readArf } from './arf.ts';
import { detectAutoReply } from './auto-reply.ts';
import { type BounceCategory, type Classifier, classify, splitReply } from './classify.ts';
import { type DsnRecipientBlock, readDsn } from './dsn.ts';
import {
  decodeWords,
  fieldValue,
  fieldValues,
  type HeaderField,
  htmlToText,
  type MimeMessage,
  type MimePart,
  parseMime,
  partText,
  walkParts,
} from './mime.ts';
import { readNonStandard } from './nonstandard.ts';

export type ReportKind = 'bounce' | 'complaint' | 'auto_reply' | 'other';

export interface ReportRecipient {
  email: string;
  /** RFC 3463 status; `5.0.0`/`4.0.0` when the report gave only a class; empty for complaints. */
  status: string;
  /** Basic SMTP reply code, when the report quotes one. */
  code?: number;
  category: BounceCategory;
  /** Hard bounce: the receiver's answer is final for this recipient. */
  permanent: boolean;
  /** What the receiver (or the reporting MTA) said, one line. */
  diagnostic: string;
  /** DSN Action (failed, delayed, delivered, relayed, expanded). */
  action?: string;
  remoteMta?: string;
  originalRecipient?: string;
}

export interface ParsedReport {
  kind: ReportKind;
  /** For a bounce the failed recipients; for a complaint the complaining ones; else what was reported. */
  recipients: ReportRecipient[];
  /** Which reader recognised it: dsn, arf, an MTA name (qmail, exim, exchange…), auto-reply, none. */
  format: string;
  /** RFC 5965 Feedback-Type of a complaint (abuse, fraud, virus, not-spam, other…). */
  feedbackType?: string;
  /** Header fields of the returned or reported message. */
  originalHeaders?: HeaderField[];
  /** Message-ID of the original, with angle brackets. */
  originalMessageId?: string;
  /**
   * Our VERP return path, the whole `b+TOKEN@domain` address (verp.ts checks the token against
   * the domain), when the report shows it: the envelope sender as the reporter noted it, the
   * original's Return-Path, or the address the notice was sent to.
   */
  returnPathToken?: string;
  reportingMta?: string;
  /** Why the report was not (fully) read: a size refusal, a MIME limit. */
  problem?: string;
}

export interface ParseReportOptions {
  /** Larger messages are refused unread (default 10 MiB). */
  maxBytes?: number;
  /** Bytes of each text part read (default 256 KiB). */
  maxTextBytes?: number;
  maxDepth?: number;
  maxParts?: number;
  /** Recipients kept per report (default 1000). */
  maxRecipients?: number;
  /** Classifier to use (default: `classify` with the current rules). */
  classifier?: Classifier;
  /** Finds our return path in a header value; group 1 is the address (default `b+TOKEN@domain`). */
  returnPathPattern?: RegExp;
}

const DEFAULTS = {
  maxBytes: 10 * 1024 * 1024,
  maxTextBytes: 256 * 1024,
  maxDepth: 8,
  maxParts: 256,
  maxRecipients: 1000,
};
const RETURN_PATH =
  /(?:^|[\s<,;:"'(])(b\+[A-Za-z0-9][A-Za-z0-9._=-]{0,200}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?)/i;
const TEXT_TYPES = new Set(['text/plain', 'text/html']);

export function parseReport(raw: Buffer, options: ParseReportOptions = {}): ParsedReport {
  const limits = { ...DEFAULTS, ...options };
  if (!Buffer.isBuffer(raw) || raw.length === 0)
    return { kind: 'other', recipients: [], format: 'none', problem: 'empty' };
  if (raw.length > limits.maxBytes) {
    return {
      kind: 'other',
      recipients: [],
      format: 'none',
      problem: `message of ${raw.length} bytes is larger than ${limits.maxBytes}: not read`,
    };
  }
  const pattern = options.returnPathPattern;
  const ctx: Context = {
    ...limits,
    classifier: options.classifier ?? classify,
    // A caller's /g pattern would carry lastIndex from one exec to the next: drop the flag.
    returnPath: pattern ? new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '')) : RETURN_PATH,
  };
  const message = parseMime(raw.toString('latin1'), { maxDepth: limits.maxDepth, maxParts: limits.maxParts });
  const report = readReport(message, ctx);
  if (message.truncated) report.problem = 'MIME structure cut at the depth or part limit';
  return report;
}

interface Context {
  maxTextBytes: number;
  maxRecipients: number;
  classifier: Classifier;
  returnPath: RegExp;
}

function readReport(message: MimeMessage, ctx: Context): ParsedReport {
  const { classifier } = ctx;
  const headers = message.root.headers;
  const subject = decodeWords(fieldValue(headers, 'subject') ?? '');

  const arf = readArf(message, { maxTextBytes: ctx.maxTextBytes });
  if (arf) {
    const originalHeaders = arf.original?.headers;
    let emails = arf.originalRcptTo;
    if (emails.length === 0 && originalHeaders) {
      // Redacted reports: the enclosed To, when it names exactly one real address.
      const to = fieldValues(originalHeaders, 'to').join(', ');
      const addresses = to.match(/[^\s<>,;"]+@[^\s<>,;"]+/g) ?? [];
      if (addresses.length === 1) emails = [normalizeAddress(addresses[0]!)];
    }
    const result = finish(
      {
        kind: 'complaint',
        format: 'arf',
        feedbackType: arf.feedbackType,
        recipients: emails.slice(0, ctx.maxRecipients).map((email) => ({
          email,
          status: '',
          category: 'other',
          permanent: false,
          diagnostic: `feedback report: ${arf.feedbackType}`,
        })),
      },
      ctx,
      headers,
      originalHeaders,
      [arf.originalMailFrom ?? ''],
    );
    if (arf.reportingMta) result.reportingMta = arf.reportingMta;
    return result;
  }

  const dsn = readDsn(message, { maxTextBytes: ctx.maxTextBytes, maxRecipients: ctx.maxRecipients });
  const all = dsn ? dsn.recipients.flatMap((block) => dsnRecipient(block, classifier) ?? []) : [];
  // A delivery-status part that names nobody: read the notice as text instead.
  if (dsn && all.length > 0) {
    const failed = all.filter((r) => r.action === 'failed');
    const delayed = all.filter((r) => r.action === 'delayed');
    const kind: ReportKind = failed.length > 0 ? 'bounce' : 'other';
    const recipients = failed.length > 0 ? failed : delayed.length > 0 ? delayed : all;
    const envelopeSender = fieldValue(dsn.perMessage.fields, 'x-postfix-sender') ?? '';
    const result = finish({ kind, format: 'dsn', recipients }, ctx, headers, dsn.original?.headers, [
      envelopeSender,
    ]);
    if (dsn.perMessage.reportingMta) result.reportingMta = dsn.perMessage.reportingMta;
    return result;
  }

  const text = humanText(message.root, ctx.maxTextBytes);
  const exclude = excludedAddresses(headers);
  const notice = readNonStandard({ headers, subject, text, exclude, maxRecipients: ctx.maxRecipients });
  if (notice) {
    const original = enclosedMessage(message.root);
    const originalHeaders =
      original?.headers ?? (notice.originalText ? headerBlock(notice.originalText) : undefined);
    const recipients = notice.recipients.map((r): ReportRecipient => {
      const { code, enhanced, diagnostic } = r;
      const classification = classifier({ code, enhanced, text: diagnostic });
      const permanent = notice.delayed ? false : classification.permanent;
      const status = enhanced ?? (code ? `${String(code)[0]}.0.0` : permanent ? '5.0.0' : '4.0.0');
      const recipient: ReportRecipient = {
        email: r.email,
        status,
        category: classification.category,
        permanent,
        diagnostic,
        action: notice.delayed ? 'delayed' : 'failed',
      };
      if (code !== undefined) recipient.code = code;
      return recipient;
    });
    const kind = notice.delayed ? 'other' : 'bounce';
    return finish({ kind, format: notice.mta, recipients }, ctx, headers, originalHeaders, []);
  }

  const auto = detectAutoReply(headers, { subject, text });
  if (auto.autoReply)
    return finish({ kind: 'auto_reply', format: 'auto-reply', recipients: [] }, ctx, headers, undefined, []);
  const enclosed = enclosedMessage(message.root)?.headers;
  return finish({ kind: 'other', format: 'none', recipients: [] }, ctx, headers, enclosed, []);
}

function dsnRecipient(block: DsnRecipientBlock, classifier: Classifier): ReportRecipient | undefined {
  const email = block.finalRecipient ?? block.originalRecipient;
  if (!email) return undefined;
  const diagnostic = block.diagnosticCode ?? '';
  const reply = splitReply(diagnostic);
  let status = block.status;
  // A bare class (5.0.0) next to a reply that says more: the reply's code is the better status.
  if (reply.enhanced && (!status || (status.endsWith('.0.0') && status[0] === reply.enhanced[0]))) {
    status = reply.enhanced;
  }
  const action =
    block.action ?? (status?.[0] === '5' ? 'failed' : status?.[0] === '4' ? 'delayed' : undefined);
  status ??= reply.code
    ? `${String(reply.code)[0]}.0.0`
    : action === 'failed'
      ? '5.0.0'
      : action === 'delayed'
        ? '4.0.0'
        : '2.0.0';

  // A "failed" action with a 4.x.x status (RFC 3464 §2.3.3) means the reporting MTA gave up
  // retrying: the class keeps it soft and the category says what the last attempt ran into.
  const { category, permanent } = classifier({ code: reply.code, enhanced: status, text: reply.text });
  const recipient: ReportRecipient = {
    email,
    status,
    category,
    permanent: action === 'failed' && permanent,
    // The reply once, without the continuation prefixes glued into the field.
    diagnostic:
      reply.code === undefined
        ? diagnostic
        : [reply.code, reply.enhanced, reply.text].filter(Boolean).join(' '),
  };
  if (reply.code !== undefined) recipient.code = reply.code;
  if (action) recipient.action = action;
  if (block.remoteMta) recipient.remoteMta = block.remoteMta;
  if (block.originalRecipient) recipient.originalRecipient = block.originalRecipient;
  return recipient;
}

/** Fills in what the original headers and our return path tell, common to every kind. */
function finish(
  report: Omit<ParsedReport, 'originalHeaders'>,
  ctx: Context,
  headers: readonly HeaderField[],
  originalHeaders: HeaderField[] | undefined,
  moreAddresses: string[],
): ParsedReport {
  const result: ParsedReport = { ...report };
  if (originalHeaders && originalHeaders.length > 0) {
    result.originalHeaders = originalHeaders.map(([name, value]) => [name, value.trim()]);
    const id = fieldValue(originalHeaders, 'message-id')?.match(/<?([^<>\s]+@[^<>\s]+)>?/)?.[1];
    if (id) result.originalMessageId = `<${id}>`;
  }
  // Where our return path shows, most specific first: the envelope sender as the reporter
  // noted it (X-Postfix-Sender, Original-Mail-From), the original's Return-Path, then where
  // the notice itself was sent (Delivered-To, To…).
  const candidates = [
    ...moreAddresses,
    ...(originalHeaders ? fieldValues(originalHeaders, 'return-path') : []),
    ...['delivered-to', 'x-original-to', 'envelope-to', 'x-envelope-to', 'to'].flatMap((n) =>
      fieldValues(headers, n),
    ),
  ];
  for (const value of candidates) {
    const address = ctx.returnPath.exec(` ${value.slice(0, 1024)}`)?.[1];
    if (address) {
      result.returnPathToken = normalizeAddress(address);
      break;
    }
  }
  return result;
}

/** The notice's human-readable text: its first text part (HTML made readable), or the body. */
function humanText(root: MimePart, maxBytes: number): string {
  let html: MimePart | undefined;
  for (const part of walkParts(root)) {
    if (part.type === 'text/plain' && !isAttachment(part)) return partText(part, maxBytes);
    if (part.type === 'text/html' && !html && !isAttachment(part)) html = part;
  }
  if (html) return htmlToText(partText(html, maxBytes));
  return TEXT_TYPES.has(root.type) ? partText(root, maxBytes) : '';
}

function isAttachment(part: MimePart): boolean {
  return /^\s*attachment/i.test(fieldValue(part.headers, 'content-disposition') ?? '');
}

/** An original attached as message/rfc822 (or its headers) to a non-standard notice. */
function enclosedMessage(root: MimePart): MimePart | undefined {
  for (const part of walkParts(root)) if (part !== root && part.message) return part.message;
  return undefined;
}

/** Header fields at the start of a text (the copy of the original below an MTA's marker). */
function headerBlock(text: string): HeaderField[] | undefined {
  const lines = text
    .slice(0, 256 * 1024)
    .replace(/^(?:[ \t]*\r?\n)+/, '')
    .split(/\r?\n/);
  // Some notices indent the copy: take the first line's indentation off every line.
  const indent = /^[ \t]*/.exec(lines[0] ?? '')![0].length;
  const body =
    indent === 0
      ? lines.join('\n')
      : lines.map((l) => l.replace(/^[ \t]+/, (ws) => ws.slice(indent))).join('\n');
  const headers = parseMime(body, { maxParts: 1 }).root.headers;
  return headers.length > 0 ? headers : undefined;
}

/** Addresses that are not failed recipients: the notice's own From/To, where it was sent. */
function excludedAddresses(headers: readonly HeaderField[]): string[] {
  const out: string[] = [];
  for (const name of ['from', 'to', 'sender', 'reply-to', 'return-path', 'delivered-to', 'x-original-to']) {
    for (const value of fieldValues(headers, name)) {
      const address = firstAddress(value);
      if (address) out.push(address);
    }
  }
  return out;
}
