import addressparser from 'nodemailer/lib/addressparser';
import { parseAddressList } from '../intake/address.ts';
import { SendError } from '../intake/send-errors.ts';
import type {
  Attachment,
  Mailbox,
  PersonalRecipient,
  RawSendRequest,
  SendRequest,
  TemplateRef,
  TrackOptions,
} from '../intake/send-request.ts';

/**
 * A Mailgun send form as intake's request: the from/to/cc/bcc, h:, o:, v: and t: fields, the
 * attachment and inline file parts, and batch sending's recipient-variables with their
 * `%recipient.KEY%` placeholders rewritten for the template renderer. Pure functions: refusals
 * here concern the form's own fields (a missing from, JSON that does not parse, an unknown
 * o:tracking value) and name the Mailgun field; what the request means is intake's to judge.
 */

export interface FormFile {
  field: string;
  filename: string;
  contentType: string;
  content: Buffer;
}

/** A form as both encodings deliver it: text fields in the order sent, then the file parts. */
export interface MailgunForm {
  fields: [string, string][];
  files: FormFile[];
}

function values(form: MailgunForm, name: string): string[] {
  return form.fields.filter(([field]) => field === name).map(([, value]) => value);
}

/** The first non-empty value: Mailgun's single-valued fields. */
function single(form: MailgunForm, name: string): string | undefined {
  return values(form, name).find((value) => value !== '');
}

/** Every value may itself be a comma list with display names (`Bob <bob@example.com>, carol@…`). */
function mailboxes(list: string[], field: string): Mailbox[] {
  const parsed: Mailbox[] = [];
  for (const value of list) {
    const entries = parseAddressList(value);
    if (entries.problem === 'control') {
      const shown = JSON.stringify(value);
      throw new SendError(
        'invalid_address',
        `'${field}' has a line break or control character: ${shown}`,
        field,
      );
    }
    if (entries.problem) {
      throw new SendError('invalid_address', `'${field}' has an entry without an address: ${value}`, field);
    }
    parsed.push(...entries.mailboxes);
  }
  return parsed;
}

/** The form of `POST /v3/:domain/messages`. */
export function toSendRequest(form: MailgunForm): SendRequest {
  const from = mailboxes(values(form, 'from'), 'from');
  if (from.length !== 1) {
    const problem = from.length === 0 ? 'is missing' : 'must be a single address';
    throw new SendError('invalid_address', `'from' parameter ${problem}`, 'from');
  }
  const request: SendRequest = {
    from: from[0]!,
    to: mailboxes(values(form, 'to'), 'to'),
    cc: mailboxes(values(form, 'cc'), 'cc'),
    bcc: mailboxes(values(form, 'bcc'), 'bcc'),
    replyTo: [],
    attachments: attachments(form),
    headers: [],
    ...deliveryOptions(form),
  };
  for (const [name, value] of form.fields) {
    if (!name.startsWith('h:') || name.length === 2) continue;
    if (name.slice(2).toLowerCase() === 'reply-to') request.replyTo.push(...mailboxes([value], name));
    else request.headers.push([name.slice(2), value]);
  }
  const template = templateRef(form);
  if (template) request.template = template;
  const content = {
    subject: single(form, 'subject'),
    text: single(form, 'text'),
    html: single(form, 'html'),
  };
  const recipientVariables = single(form, 'recipient-variables');
  if (recipientVariables !== undefined) {
    request.recipients = personalRecipients(
      request.to,
      jsonObject(recipientVariables, 'recipient-variables'),
    );
    request.to = [];
    request.variables = {};
    const keys = sharedKeys(request.recipients);
    for (const part of ['subject', 'text', 'html'] as const) {
      const value = content[part];
      if (value !== undefined) content[part] = toHandlebars(value, keys);
    }
  }
  for (const part of ['subject', 'text', 'html'] as const) {
    const value = content[part];
    if (value !== undefined) request[part] = value;
  }
  return request;
}

/** The form of `POST /v3/:domain/messages.mime`: the `message` as is, the envelope from its From and `to`. */
export function toRawSendRequest(form: MailgunForm): RawSendRequest {
  const file = form.files.find((part) => part.field === 'message');
  const text = single(form, 'message');
  // The SDK sends a Buffer as a file part (bytes exact) and a string as a text field (UTF-8).
  const raw = file?.content ?? (text === undefined ? undefined : Buffer.from(text, 'utf8'));
  if (!raw) throw new SendError('missing_content', "'message' parameter is missing", 'message');
  const mailFrom = fromHeaderAddress(raw);
  if (mailFrom === undefined) {
    throw new SendError('invalid_address', "'message' has no From header with an address", 'message');
  }
  const rcptTo = mailboxes(values(form, 'to'), 'to').map((mailbox) => mailbox.address);
  return { mailFrom, rcptTo, raw, ...deliveryOptions(form) };
}

/** The options both endpoints share: o:tag, v:, o:deliverytime and the o:tracking family. */
function deliveryOptions(form: MailgunForm): Pick<SendRequest, 'tags' | 'metadata' | 'sendAt' | 'track'> {
  const options: Pick<SendRequest, 'tags' | 'metadata' | 'sendAt' | 'track'> = {
    tags: values(form, 'o:tag'),
    // Mailgun's user variables; a repeated name keeps its last value.
    metadata: Object.fromEntries(
      form.fields
        .filter(([name]) => name.startsWith('v:') && name.length > 2)
        .map(([name, value]) => [name.slice(2), value]),
    ),
  };
  const deliveryTime = single(form, 'o:deliverytime');
  if (deliveryTime !== undefined) {
    const sendAt = Date.parse(deliveryTime);
    if (Number.isNaN(sendAt)) {
      throw new SendError(
        'invalid_send_at',
        `'o:deliverytime' is not an RFC 2822 date (like "Fri, 14 Oct 2033 23:10:10 -0000"): ${deliveryTime}`,
        'o:deliverytime',
      );
    }
    options.sendAt = sendAt;
  }
  const track = tracking(form);
  if (track) options.track = track;
  return options;
}

/**
 * `o:tracking` sets both; `o:tracking-opens` and `o:tracking-clicks` win over it. TrackOptions
 * knows no text/HTML distinction, so Mailgun's `htmlonly` turns tracking on.
 */
function tracking(form: MailgunForm): TrackOptions | undefined {
  const both = yesNo(form, 'o:tracking');
  const opens = yesNo(form, 'o:tracking-opens') ?? both;
  const clicks = yesNo(form, 'o:tracking-clicks') ?? both;
  if (opens === undefined && clicks === undefined) return undefined;
  const track: TrackOptions = {};
  if (opens !== undefined) track.opens = opens;
  if (clicks !== undefined) track.clicks = clicks;
  return track;
}

function yesNo(form: MailgunForm, field: string): boolean | undefined {
  const value = single(form, field)?.toLowerCase();
  if (value === undefined) return undefined;
  if (value === 'yes' || value === 'true' || value === 'htmlonly') return true;
  if (value === 'no' || value === 'false') return false;
  throw new SendError('invalid_request', `'${field}' must be yes, no, true, false or htmlonly`, field);
}

function attachments(form: MailgunForm): Attachment[] {
  for (const [name] of form.fields) {
    if (/^(attachment|inline)(\[\d*\])?$/.test(name)) {
      throw new SendError(
        'invalid_attachment',
        `'${name}' must be a file part of a multipart/form-data request`,
        name,
      );
    }
  }
  const found: Attachment[] = [];
  for (const part of form.files) {
    // Other SDKs number repeated fields (`attachment[0]`); mailgun.js repeats the name.
    const kind = /^(attachment|inline)(?:\[\d*\])?$/.exec(part.field)?.[1];
    if (kind === undefined) continue;
    const filename = part.filename || 'attachment';
    // octet-stream is what clients send when they do not know; intake guesses from the name.
    const contentType = part.contentType === 'application/octet-stream' ? '' : part.contentType;
    const attachment: Attachment = { filename, content: part.content, contentType };
    // Mailgun names an inline part's Content-ID after its file: the HTML says `cid:logo.png`.
    if (kind === 'inline') attachment.contentId = filename;
    found.push(attachment);
  }
  return found;
}

function templateRef(form: MailgunForm): TemplateRef | undefined {
  const alias = single(form, 'template');
  if (alias === undefined) return undefined;
  const variables = single(form, 't:variables');
  const template: TemplateRef = {
    alias,
    variables: variables === undefined ? {} : jsonObject(variables, 't:variables'),
  };
  const version = single(form, 't:version');
  if (version !== undefined) {
    // Mailgun names versions by tag; Postbote numbers them.
    if (!/^\d+$/.test(version)) {
      throw new SendError(
        'invalid_template',
        `'t:version' must be a version number, not "${version}"`,
        't:version',
      );
    }
    template.version = Number(version);
  }
  return template;
}

function jsonObject(value: string, field: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new SendError('invalid_request', `'${field}' is not valid JSON`, field, { cause: error });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SendError('invalid_request', `'${field}' must be a JSON object`, field);
  }
  return parsed as Record<string, unknown>;
}

/**
 * Mailgun batch sending: every `to` address gets its own copy, rendered with its entry of
 * recipient-variables (looked up without regard to case) as `recipient`.
 */
function personalRecipients(to: Mailbox[], byAddress: Record<string, unknown>): PersonalRecipient[] {
  const lookup = new Map(Object.entries(byAddress).map(([address, vars]) => [address.toLowerCase(), vars]));
  return to.map((mailbox) => {
    const vars = lookup.get(mailbox.address.toLowerCase()) ?? {};
    if (typeof vars !== 'object' || vars === null || Array.isArray(vars)) {
      throw new SendError(
        'invalid_request',
        `'recipient-variables' must map ${mailbox.address} to a JSON object`,
        'recipient-variables',
      );
    }
    return { ...mailbox, variables: { recipient: vars } };
  });
}

/** The KEYs every recipient has a value for. */
function sharedKeys(recipients: PersonalRecipient[]): Set<string> {
  const perRecipient = recipients.map((recipient) => Object.keys(recipient.variables['recipient'] as object));
  const [first, ...rest] = perRecipient;
  return new Set((first ?? []).filter((key) => rest.every((keys) => keys.includes(key))));
}

// A content backslash in front of `{{` or a placeholder is captured so it can be kept.
const BRACES_OR_PLACEHOLDER = /(\\?)(?:\{\{|%recipient\.([^%\s{}[\]\\]+)%)/g;

/**
 * Mailgun's `%recipient.KEY%` as Handlebars (`{{{recipient.KEY}}}`, unescaped like Mailgun's
 * substitution), with every other `{{` made literal so content braces survive rendering.
 * Only KEYs every recipient has are rewritten; the others stay as literal text, so a recipient
 * without the value shows the placeholder instead of an empty gap Handlebars would leave.
 */
function toHandlebars(content: string, keys: ReadonlySet<string>): string {
  return content.replace(BRACES_OR_PLACEHOLDER, (match, backslash: string, key: string | undefined) => {
    if (key !== undefined && !keys.has(key)) return match;
    // Handlebars reads `\{{` as literal braces and `\\{{` as one backslash before a mustache,
    // so a content backslash becomes `\\` closed by an empty comment `{{!}}`.
    const kept = backslash ? '\\\\{{!}}' : '';
    return kept + (key === undefined ? '\\{{' : `{{{${recipientPath(key)}}}}`);
  });
}

function recipientPath(key: string): string {
  const plain =
    /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) && !['true', 'false', 'null', 'undefined', 'this'].includes(key);
  return plain ? `recipient.${key}` : `recipient.[${key}]`;
}

/**
 * The address of the message's From field, for the envelope. Reads only the header block and
 * accepts bare LF line ends (hand-made MIME files have them); the bytes sent stay untouched.
 */
function fromHeaderAddress(raw: Buffer): string | undefined {
  const ends = [raw.indexOf('\r\n\r\n'), raw.indexOf('\n\n')].filter((index) => index >= 0);
  const block = raw.subarray(0, ends.length > 0 ? Math.min(...ends) : raw.length).toString('utf8');
  let from: string | undefined;
  for (const line of block.split(/\r?\n/)) {
    if (from !== undefined) {
      if (line[0] !== ' ' && line[0] !== '\t') break;
      from += ` ${line.trim()}`;
      continue;
    }
    const field = /^from[ \t]*:(.*)$/i.exec(line);
    if (field) from = field[1]!.trim();
  }
  if (from === undefined) return undefined;
  return addressparser(from, { flatten: true }).find((mailbox) => mailbox.address)?.address;
}
