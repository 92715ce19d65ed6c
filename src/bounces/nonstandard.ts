/**
 * Bounces that are not RFC 3464 reports: the plain-text (or HTML) notices of qmail, Exim,
 * Sendmail, old Postfix, Exchange, Gmail, Yahoo, Courier, Lotus Domino and whatever else a
 * MAILER-DAEMON writes. No two agree on a format, but they share a shape:
 *
 *   an introduction ("could not be delivered to one or more recipients"),
 *   per failed recipient, the address at the start of a line and the reason after it,
 *   a marker ("--- Below this line is a copy of the message."), then the original.
 *
 * So one reader does all of them: it cuts the text at the marker, takes addresses that open
 * a line as failed recipients and the lines after each as its diagnostic, then looks for the
 * SMTP reply and the enhanced status code in the diagnostic. The profiles below only name the
 * MTA (for logs and tests) and say which wording means "delayed, still trying".
 */
import { addressPattern, normalizeAddress } from './address.ts';
import { fieldValue, type HeaderField } from './mime.ts';

export interface NonStandardRecipient {
  email: string;
  /** The SMTP reply code found in the diagnostic. */
  code?: number;
  /** The RFC 3463 code found in the diagnostic. */
  enhanced?: string;
  diagnostic: string;
}

export interface NonStandardBounce {
  /** Which MTA's wording was recognised; `generic` when only the sender or subject said "bounce". */
  mta: string;
  /** A warning that delivery is still being tried, not a failure. */
  delayed: boolean;
  recipients: NonStandardRecipient[];
  /** The text after the "copy of the original message" marker, where the original headers are. */
  originalText?: string;
}

export interface NonStandardInput {
  /** The notice's own header fields. */
  headers: readonly HeaderField[];
  /** The decoded Subject. */
  subject: string;
  /** The human-readable text of the notice. */
  text: string;
  /** Addresses that are never the failed recipient (the return path it was sent to, our sender). */
  exclude?: Iterable<string>;
  maxRecipients?: number;
}

interface Profile {
  mta: string;
  detect: RegExp;
  delayed?: RegExp;
}

// Wording from each MTA's documented or long-stable notice text: enough to name the MTA.
const PROFILES: readonly Profile[] = [
  {
    mta: 'qmail',
    detect: /This is the qmail-send program|I'm afraid I wasn't able to deliver your message/i,
  },
  { mta: 'yahoo', detect: /Sorry, we were unable to deliver your message to the following address/i },
  {
    mta: 'exim',
    detect:
      /This message was created automatically by mail delivery software|following address(\(es\)|es)? failed:/i,
    delayed:
      /has not yet been delivered|has not been delivered to all of its recipients|No action is required on your part/i,
  },
  {
    mta: 'sendmail',
    // (?<!-): start at the first dash of a run, or a long run of dashes costs quadratic time.
    detect:
      /(?<!-)-{3}-* ?(The following addresses had (permanent fatal|transient non-fatal) errors|Transcript of session follows)/i,
    delayed: /transient non-fatal errors|Warning: could not send message for past/i,
  },
  {
    mta: 'postfix',
    detect: /This is the (Postfix program|mail system) at host/i,
    delayed: /THIS IS A WARNING ONLY/i,
  },
  {
    mta: 'exchange',
    detect:
      /did not reach (some or all of )?the (following|intended) recipient|Delivery has failed to these recipients or groups|Diagnostic information for administrators|The following recipient\(s\) (could not|cannot) be reached|Your message (wasn't|couldn't be) delivered/i,
    delayed: /Delivery is delayed to these recipients|hasn't been delivered yet|delivery has been delayed/i,
  },
  {
    mta: 'gmail',
    detect:
      /Delivery to the following recipients? (failed|has been delayed)|Technical details of (permanent|temporary) failure/i,
    delayed: /has been delayed|Technical details of temporary failure/i,
  },
  { mta: 'courier', detect: /Courier mail server|UNDELIVERABLE MAIL|DELAYED MAIL/, delayed: /DELAYED MAIL/ },
  { mta: 'domino', detect: /was not delivered to:|Domino Directory|Lotus Domino/i },
];

// Subjects and senders that say "this is a bounce" whatever the MTA.
const BOUNCE_SUBJECT =
  /undeliver|undelivered|not delivered|delivery (status notification|failure|failed|has failed|problem|report|notification)|returned mail|failure notice|mail delivery (failed|failure|system|subsystem|problem)|non-?deliver|nondeliverable|could not be delivered|delivery not possible|unzustellbar|nicht zustellbar|non remis|onbestelbaar|no entregado|non recapitabile|mail system error|delayed mail|delivery (delayed|warning)|warning: could not send/i;
const DAEMON =
  /^(mailer-daemon|postmaster|mail-daemon|mailerdaemon|mmdf|mail delivery (system|subsystem))\b/i;
const DAEMON_ADDRESS = /^(mailer-daemon|postmaster|mail-daemon|mailerdaemon|double-bounce|root)@/i;
const GENERIC_DELAYED =
  /will (continue|keep) (trying|to try|retrying)|(is|are) still being (retried|tried)|THIS IS A WARNING ONLY|(has|have) been delayed|delivery (is |has been )?delayed|not yet been delivered|delayed mail|will be retried/i;

// Where the original message starts. Anchored at line starts; the wording varies by MTA.
const ORIGINAL_MARKER = new RegExp(
  [
    '^[ \\t]*-+ ?Below this line is a copy of the message',
    '^[ \\t]*-+ ?This is a copy of the message',
    "^[ \\t]*-+ ?This is a copy of (the )?(message's|message) headers",
    '^[ \\t]*-+ ?(The )?Original message( (follows|headers?|text))?\\b',
    '^[ \\t]*-+ ?Message header(s)? follows?',
    '^\\|?-+ ?Message text follows',
    '^[ \\t]*-+ ?(Undelivered|Unsent|Returned) (message|mail)( headers)?',
    '^[ \\t]*-+ ?Headers of (the )?(original|returned|your) message',
    '^[ \\t]*Original message headers:',
    '^[ \\t]*-+ ?Forwarded message',
    '^[ \\t]*Original-Message-Headers:',
  ].join('|'),
  'im',
);
const SEPARATOR = /^[-=_*#~]{5,}$|^-{3,}.*-{3,}$/;
// "Recipient: user@x" and its translations open a recipient's paragraph too.
const RECIPIENT_PREFIX =
  /^(?:(?:final|original|failed|invalid|unknown|intended)[ -])?(?:recipient|address|e-?mail|rcpt to|empfänger|destinataire|destinatario|ontvanger|mottagare|adresse)(?:\(s\)|s)?(?: address(?:es)?)?\s*:\s*/i;
// A copy of the original's header fields inside the text is neither recipient nor reason.
const HEADER_LINE =
  /^(from|to|cc|bcc|subject|date|sent|sender|reply-to|return-path|message-id|received|references|in-reply-to|x-[\w-]+)\s*:/i;

const FAILURE_WORDS =
  /deliver|fail|reject|refused|bounce|unknown|not exist|does not|full|quota|unable|invalid|zugestellt|unzustellbar/i;
const HELP_BEFORE = /(contact|mail to|write to|reach|assistance|questions|support|help)\W*<?$/i;
const REPLY_WITH_STATUS = /(?:^|[\s#(:'"<[])([45]\d\d)[ -]#?([245]\.\d{1,3}\.\d{1,3})(?![\d.])/;
const REPLY_CODE =
  /(?:^|said:|<<<|error:|returned was:|returned|reply:|response:|[#'"(])\s*#?([45]\d\d)(?=[\s:-]|$)/im;
const STATUS_IN_TEXT = /(?:^|[\s#(["'])([245]\.\d{1,3}\.\d{1,3})(?![\d.])/;

/** Reads a non-standard bounce; undefined when neither the wording, the sender nor the subject says bounce. */
export function readNonStandard(input: NonStandardInput): NonStandardBounce | undefined {
  const text = input.text;
  const marker = ORIGINAL_MARKER.exec(text);
  const section = marker ? text.slice(0, marker.index) : text;
  const head = section.slice(0, 16 * 1024);

  const profile = PROFILES.find((p) => p.detect.test(head));
  const from = fieldValue(input.headers, 'from') ?? '';
  const fromDaemon = DAEMON.test(from.replace(/^"/, '')) || /(^|<|\s)(mailer-daemon|postmaster)@/i.test(from);
  const bounceSubject = BOUNCE_SUBJECT.test(input.subject);
  if (!profile && !fromDaemon && !bounceSubject) return undefined;

  const exclude = new Set<string>();
  for (const address of input.exclude ?? []) exclude.add(address.toLowerCase());
  const recipients = findRecipients(section, exclude, input.maxRecipients ?? 1000);
  // Sender or subject alone, with no recipient named: not enough to call it a bounce.
  if (!profile && recipients.length === 0 && !(fromDaemon && bounceSubject)) return undefined;

  const delayed = (profile?.delayed ?? GENERIC_DELAYED).test(head) || /delay/i.test(input.subject);
  const result: NonStandardBounce = { mta: profile?.mta ?? 'generic', delayed, recipients };
  if (marker) {
    // From the line after the marker (its own line may end in " ---" or ".").
    const eol = text.indexOf('\n', marker.index + marker[0].length);
    result.originalText = eol < 0 ? '' : text.slice(eol + 1);
  }
  return result;
}

function findRecipients(section: string, exclude: Set<string>, max: number): NonStandardRecipient[] {
  const blocks = new Map<string, string[]>();
  const known = (address: string) => blocks.has(address);
  const excluded = (address: string) => exclude.has(address.toLowerCase()) || DAEMON_ADDRESS.test(address);
  let current: string | undefined;
  let blank = 0;

  for (const raw of section.split('\n', 5000)) {
    // No recipient line is longer than this; longer lines are cut so that no regex sees more.
    const line = raw.slice(0, 1000).trim();
    if (line === '') {
      // Two blank lines end a recipient's paragraph (Domino puts one inside it).
      if (++blank >= 2) current = undefined;
      continue;
    }
    blank = 0;
    if (SEPARATOR.test(line)) {
      current = undefined;
      continue;
    }
    if (HEADER_LINE.test(line)) continue;
    // The address scan is the costly part: most lines have no `@` at all.
    const anchor = line.includes('@') ? anchorAddress(line) : undefined;
    if (anchor && !excluded(anchor.address)) {
      current = anchor.address;
      if (!known(current)) {
        if (blocks.size >= max) break;
        blocks.set(current, []);
      }
      if (anchor.rest !== '') blocks.get(current)!.push(anchor.rest);
      continue;
    }
    // A later line naming a recipient we know (Sendmail's transcript, Exchange's admin section).
    const mentioned = blocks.size > 0 && line.includes('@') ? mentionedRecipient(line, known) : undefined;
    if (mentioned) current = mentioned;
    if (current) blocks.get(current)!.push(line);
  }

  if (blocks.size === 0) return mentionedInProse(section, excluded, max);
  return [...blocks].map(([email, lines]) => {
    const diagnostic = collapse(lines.join(' ')).slice(0, 1000);
    return { email, diagnostic, ...findReply(diagnostic) };
  });
}

/**
 * The last resort, when no address opens a line: "Your message to alice@x could not be
 * delivered because…". Every address in the prose is a recipient, its paragraph the reason.
 */
function mentionedInProse(
  section: string,
  excluded: (address: string) => boolean,
  max: number,
): NonStandardRecipient[] {
  const found = new Map<string, string>();
  for (const paragraph of section.slice(0, 64 * 1024).split(/\r?\n[ \t]*\r?\n/)) {
    if (!paragraph.includes('@') || !FAILURE_WORDS.test(paragraph)) continue;
    const text = collapse(
      paragraph
        .split(/\r?\n/)
        .filter((line) => !HEADER_LINE.test(line.trim()))
        .join(' '),
    ).slice(0, 1000);
    const pattern = addressPattern();
    for (let m = pattern.exec(text); m && found.size < max; m = pattern.exec(text)) {
      const address = normalizeAddress(m[0]);
      // "please contact help@isp.example": a helpdesk, not a recipient.
      const before = text.slice(Math.max(0, m.index - 24), m.index);
      if (excluded(address) || found.has(address) || HELP_BEFORE.test(before)) continue;
      found.set(address, text);
    }
  }
  return [...found].map(([email, diagnostic]) => ({ email, diagnostic, ...findReply(diagnostic) }));
}

/** An address that opens the line (`user@x`, `<user@x>:`, `Recipient: user@x`), with what follows it. */
function anchorAddress(line: string): { address: string; rest: string } | undefined {
  const prefix = RECIPIENT_PREFIX.exec(line);
  const start = prefix ? prefix[0].length : 0;
  const pattern = addressPattern();
  pattern.lastIndex = start;
  const m = pattern.exec(line);
  if (!m) return undefined;
  // Only quotes, brackets and spaces may stand before the address.
  if (!/^[\s<"'([]*$/.test(line.slice(start, m.index))) return undefined;
  const rest = line
    .slice(m.index + m[0].length)
    .replace(/^[>"')\]]*:?\s*/, '')
    .trim();
  return { address: normalizeAddress(m[0]), rest };
}

function mentionedRecipient(line: string, known: (address: string) => boolean): string | undefined {
  const pattern = addressPattern();
  for (let m = pattern.exec(line); m; m = pattern.exec(line)) {
    const address = normalizeAddress(m[0]);
    if (known(address)) return address;
  }
  return undefined;
}

/** The SMTP reply code and RFC 3463 code a diagnostic quotes, when it does (classes must agree). */
export function findReply(text: string): { code?: number; enhanced?: string } {
  const both = REPLY_WITH_STATUS.exec(text);
  if (both && both[1]![0] === both[2]![0]) return { code: Number(both[1]), enhanced: both[2]! };
  const code = REPLY_CODE.exec(text)?.[1];
  const enhanced = STATUS_IN_TEXT.exec(text)?.[1];
  const out: { code?: number; enhanced?: string } = {};
  if (code) out.code = Number(code);
  if (enhanced && (!code || code[0] === enhanced[0])) out.enhanced = enhanced;
  return out;
}

function collapse(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
