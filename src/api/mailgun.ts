import formbody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import addressparser from 'nodemailer/lib/addressparser';
import { SendError } from '../intake/send-errors.ts';
import type {
  Attachment,
  Mailbox,
  PersonalRecipient,
  RawSendRequest,
  SendRequest,
  SendResult,
  TemplateRef,
  TrackOptions,
} from '../intake/send-request.ts';
import type { ApiPrincipal, KeyGate, SendApi } from './send-api.ts';

/**
 * Mailgun-compatible send endpoints (`POST /v3/:domain/messages` and `/messages.mime`), so code
 * written for Mailgun's SDKs sends through Postbote by changing only the base URL. The form is
 * translated into a SendRequest here; everything it means (addresses, limits, templates) is
 * judged by intake, whose SendError messages go back to the client as Mailgun's `{message}`.
 */

// Room for what a form carries around the content: part headers and boundaries, the o:/h:/v:
// fields, recipient-variables. Intake holds the built message to maxMessageBytes itself.
const FORM_OVERHEAD_BYTES = 256 * 1024;
const MAX_FILES = 100;
const MAX_FIELDS = 1000;
const DOMAIN_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export interface MailgunDeps {
  send: SendApi;
  keys: KeyGate;
  /** The largest message Postbote stores; the form may be this plus FORM_OVERHEAD_BYTES. */
  maxMessageBytes: number;
}

interface FormFile {
  field: string;
  filename: string;
  contentType: string;
  content: Buffer;
}

/** A form as both encodings deliver it: text fields in the order sent, then the file parts. */
interface MailgunForm {
  fields: [string, string][];
  files: FormFile[];
}

/** A refusal this front end makes itself (auth, limits, form shape), as opposed to intake's SendError. */
class MailgunReply extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    message: string,
    headers: Record<string, string> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'MailgunReply';
    this.status = status;
    this.headers = headers;
  }
}

export function registerMailgunRoutes(app: FastifyInstance, deps: MailgunDeps): void {
  const formLimit = deps.maxMessageBytes + FORM_OVERHEAD_BYTES;
  // Percent-encoding turns one byte into up to three; the decoded fields are held to formLimit.
  const urlencodedLimit = 3 * deps.maxMessageBytes + FORM_OVERHEAD_BYTES;
  const tooLarge = (headers: Record<string, string> = {}) =>
    new MailgunReply(
      413,
      `The request is too large: Postbote accepts up to ${formLimit} bytes and ${MAX_FILES} files per message`,
      headers,
    );
  const principals = new WeakMap<FastifyRequest, ApiPrincipal>();

  app.register(async (scope) => {
    await scope.register(formbody);
    await scope.register(multipart, {
      throwFileSizeLimit: true,
      limits: {
        fileSize: deps.maxMessageBytes,
        files: MAX_FILES,
        fields: MAX_FIELDS,
        fieldSize: deps.maxMessageBytes,
        fieldNameSize: 1000,
        parts: MAX_FILES + MAX_FIELDS,
      },
    });

    scope.setErrorHandler((error, _request, reply) => replyWithError(reply, error));

    scope.addHook('onRequest', async (request) => {
      principals.set(request, await authorize(request, deps.keys));
      // Refused before a byte of the body is read; the multipart reader counts the rest.
      const declared = Number(request.headers['content-length']);
      if (request.headers['content-type']?.startsWith('multipart/') && declared > formLimit) throw tooLarge();
    });

    const readRequestForm = (request: FastifyRequest) =>
      readForm(request, { limit: formLimit, tooLarge: () => tooLarge({ connection: 'close' }) });

    scope.post<{ Params: { domain: string } }>(
      '/v3/:domain/messages',
      { bodyLimit: urlencodedLimit },
      async (request) => {
        const domain = sendingDomain(request.params.domain);
        const form = await readRequestForm(request);
        const result = await deps.send.send(
          principalOf(principals, request),
          toSendRequest(form),
          request.ip,
        );
        return queued(result, domain);
      },
    );

    scope.post<{ Params: { domain: string } }>(
      '/v3/:domain/messages.mime',
      { bodyLimit: urlencodedLimit },
      async (request) => {
        const domain = sendingDomain(request.params.domain);
        const form = await readRequestForm(request);
        const result = await deps.send.sendRaw(
          principalOf(principals, request),
          toRawSendRequest(form),
          request.ip,
        );
        return queued(result, domain);
      },
    );
  });
}

/**
 * HTTP Basic with user `api` and a Postbote API key as the password, as Mailgun's SDKs send it.
 * Mailgun answers a bad key with 401 and the plain-text body `Forbidden`; the SDKs surface that
 * body as the error's `details`.
 */
async function authorize(request: FastifyRequest, keys: KeyGate): Promise<ApiPrincipal> {
  const secret = basicPassword(request.headers.authorization);
  const principal = secret === undefined ? undefined : await keys.authenticate(secret, request.ip);
  if (!principal) throw new MailgunReply(401, 'Forbidden', { 'www-authenticate': 'Basic realm="Postbote"' });
  if (!principal.scopes.includes('send')) {
    throw new MailgunReply(403, 'This API key may not send: it lacks the send scope');
  }
  const taken = keys.take(principal);
  if (!taken.ok) {
    throw new MailgunReply(429, 'Too many requests for this API key', {
      'retry-after': String(taken.retryAfterSeconds),
    });
  }
  return principal;
}

function basicPassword(header: string | undefined): string | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!match) return undefined;
  const credentials = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = credentials.indexOf(':');
  if (colon < 0 || credentials.slice(0, colon) !== 'api') return undefined;
  return credentials.slice(colon + 1) || undefined;
}

function principalOf(
  principals: WeakMap<FastifyRequest, ApiPrincipal>,
  request: FastifyRequest,
): ApiPrincipal {
  const principal = principals.get(request);
  if (!principal) throw new Error('mailgun route reached without an authorised principal');
  return principal;
}

/** Syntax only: whether Postbote sends for the domain is a later check. */
function sendingDomain(domain: string): string {
  if (!DOMAIN_NAME.test(domain)) throw new MailgunReply(400, `"${domain}" is not a domain name`);
  return domain.toLowerCase();
}

/**
 * Mailgun's ids look like `<20240101120000.1.ABCD@domain>`, and clients store them as they are;
 * ours keep that shape around Postbote's message id, so the part before `@` is what the
 * native API and the events know the message by.
 */
function queued(result: SendResult, domain: string): { id: string; message: string } {
  return { id: `<${result.id}@${domain}>`, message: 'Queued. Thank you.' };
}

/** The one place errors become Mailgun-shaped replies; no stack or internal detail leaves here. */
function replyWithError(reply: FastifyReply, error: unknown): FastifyReply {
  if (error instanceof SendError) {
    return reply.code(error.code === 'payload_too_large' ? 413 : 400).send({ message: error.message });
  }
  if (error instanceof MailgunReply) {
    reply.code(error.status).headers(error.headers);
    return error.status === 401
      ? reply.type('text/plain').send(error.message)
      : reply.send({ message: error.message });
  }
  const status = (error as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return reply.code(status).send({ message: (error as Error).message });
  }
  reply.log.error({ err: error }, 'mailgun send endpoint failed');
  return reply.code(500).send({ message: 'Internal error' });
}

async function readForm(
  request: FastifyRequest,
  options: { limit: number; tooLarge: () => MailgunReply },
): Promise<MailgunForm> {
  if (request.isMultipart()) return readMultipart(request, options);
  const contentType = request.headers['content-type'];
  const form: MailgunForm = { fields: [], files: [] };
  if (contentType === undefined) return form;
  if (!contentType.startsWith('application/x-www-form-urlencoded')) {
    throw new MailgunReply(
      415,
      'Send the message as multipart/form-data or application/x-www-form-urlencoded',
    );
  }
  let total = 0;
  for (const [name, value] of Object.entries((request.body ?? {}) as Record<string, unknown>)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      form.fields.push([name, String(item)]);
      total += Buffer.byteLength(String(item));
    }
  }
  if (total > options.limit) throw options.tooLarge();
  return form;
}

/**
 * Reads the parts as they arrive and stops once their decoded size passes the limit. Such a
 * refusal closes the connection: the rest of the body is still on its way and nothing reads it.
 */
async function readMultipart(
  request: FastifyRequest,
  options: { limit: number; tooLarge: () => MailgunReply },
): Promise<MailgunForm> {
  const form: MailgunForm = { fields: [], files: [] };
  let total = 0;
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        const content = await part.toBuffer();
        total += content.length;
        form.files.push({
          field: part.fieldname,
          filename: part.filename,
          contentType: part.mimetype,
          content,
        });
      } else {
        // busboy cuts an over-long field silently; a cut text or header must not be sent.
        if (part.fieldnameTruncated || part.valueTruncated) throw options.tooLarge();
        const value = typeof part.value === 'string' ? part.value : JSON.stringify(part.value);
        total += Buffer.byteLength(value);
        form.fields.push([part.fieldname, value]);
      }
      if (total > options.limit) throw options.tooLarge();
    }
  } catch (error) {
    if (error instanceof MailgunReply) throw error;
    const status = (error as { statusCode?: unknown }).statusCode;
    if (status === 413) throw options.tooLarge();
    const reason = error instanceof Error ? error.message : String(error);
    throw new MailgunReply(
      typeof status === 'number' ? status : 400,
      `Malformed multipart/form-data: ${reason}`,
      {},
      {
        cause: error,
      },
    );
  }
  return form;
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
    for (const entry of addressparser(value, { flatten: true })) {
      if (!entry.address)
        throw new SendError('invalid_address', `'${field}' has an entry without an address: ${value}`, field);
      parsed.push(entry.name ? { address: entry.address, name: entry.name } : { address: entry.address });
    }
  }
  return parsed;
}

function toSendRequest(form: MailgunForm): SendRequest {
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

function toRawSendRequest(form: MailgunForm): RawSendRequest {
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
