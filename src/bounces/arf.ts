/**
 * RFC 5965 abuse reports (ARF), as mailbox providers send them through feedback loops:
 * `multipart/report; report-type=feedback-report` with a human part, a
 * `message/feedback-report` part of fields, and the reported message (message/rfc822) or its
 * headers (text/rfc822-headers). Providers redact: Original-Rcpt-To is often missing and the
 * enclosed To may be blanked, so the enclosed headers (our Message-ID, our VERP return path)
 * are what ties a complaint to a message.
 */
import { firstAddress } from './address.ts';
import { type HeaderField, type MimeMessage, type MimePart, partText, walkParts } from './mime.ts';

export interface FeedbackReport {
  /** abuse, fraud, virus, not-spam, auth-failure (RFC 6591), other… lower case; `other` when absent. */
  feedbackType: string;
  userAgent?: string;
  version?: string;
  /** The envelope sender of the reported message. */
  originalMailFrom?: string;
  /** The envelope recipients, when the provider discloses them. */
  originalRcptTo: string[];
  arrivalDate?: string;
  sourceIp?: string;
  reportedDomain?: string;
  reportingMta?: string;
  incidents?: number;
  fields: HeaderField[];
}

export interface ArfReport extends FeedbackReport {
  humanText?: string;
  /** The reported message or its headers. */
  original?: MimePart;
}

const ORIGINAL_TYPES = new Set([
  'message/rfc822',
  'message/global',
  'text/rfc822-headers',
  'message/rfc822-headers',
  'message/global-headers',
]);

/** Finds and reads the feedback report in a parsed message; undefined when there is none. */
export function readArf(
  message: MimeMessage,
  options: { maxTextBytes?: number } = {},
): ArfReport | undefined {
  const maxText = options.maxTextBytes ?? 256 * 1024;
  const root = message.root;
  const parts = [...walkParts(root)];
  let reportPart = parts.find((p) => p.type === 'message/feedback-report');
  if (
    !reportPart &&
    root.type === 'multipart/report' &&
    /feedback-report/i.test(root.params['report-type'] ?? '')
  ) {
    reportPart = parts.find(
      (p) => p.type === 'text/plain' && /^feedback-type\s*:/im.test(partText(p, maxText)),
    );
  }
  if (!reportPart) return undefined;

  const report: ArfReport = parseFeedbackReport(partText(reportPart, maxText));
  const human = parts.find((p) => p !== reportPart && (p.type === 'text/plain' || p.type === 'text/html'));
  if (human) report.humanText = partText(human, maxText);
  const original = parts.find((p) => ORIGINAL_TYPES.has(p.type) && p.message);
  if (original?.message) report.original = original.message;
  return report;
}

/** Reads the fields of a message/feedback-report body (RFC 5965 §3.1). */
export function parseFeedbackReport(text: string): FeedbackReport {
  const fields: HeaderField[] = [];
  let current: HeaderField | undefined;
  for (const line of text.split(/\r?\n/).slice(0, 2000)) {
    if ((line[0] === ' ' || line[0] === '\t') && current) {
      current[1] += ` ${line.trim()}`;
      continue;
    }
    const m = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:(.*)$/.exec(line);
    current = m ? [m[1]!, m[2]!.trim()] : undefined;
    if (current) fields.push(current);
  }
  const get = (name: string) => fields.find(([n]) => n.toLowerCase() === name)?.[1].trim() || undefined;

  const type = get('feedback-type')
    ?.toLowerCase()
    .match(/^[a-z0-9-]+/)?.[0];
  const report: FeedbackReport = { feedbackType: type ?? 'other', originalRcptTo: [], fields };
  const set = <K extends keyof FeedbackReport>(key: K, value: FeedbackReport[K] | undefined) => {
    if (value !== undefined) report[key] = value;
  };
  set('userAgent', get('user-agent'));
  set('version', get('version'));
  const from = get('original-mail-from');
  set('originalMailFrom', from === undefined ? undefined : firstAddress(from));
  for (const [name, value] of fields) {
    if (name.toLowerCase() !== 'original-rcpt-to') continue;
    const address = firstAddress(value);
    const seen = (a: string) => a.toLowerCase() === address?.toLowerCase();
    if (address && !report.originalRcptTo.some(seen)) report.originalRcptTo.push(address);
  }
  set('arrivalDate', get('arrival-date') ?? get('received-date'));
  set('sourceIp', get('source-ip'));
  set('reportedDomain', get('reported-domain'));
  set('reportingMta', get('reporting-mta')?.replace(/^[^;]*;\s*/, ''));
  const incidents = Number(get('incidents'));
  if (Number.isInteger(incidents) && incidents > 0) report.incidents = incidents;
  return report;
}
