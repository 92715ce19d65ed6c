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
 * The native API's JSON (POST /v1/messages, each item of /batch, /raw) into intake's request.
 * Hand-written rather than left to the route schema: a batch item must fail alone, with the
 * same stable code and field path a single message gets (`to[1].email`, `attachments[0].content`).
 */

type Json = Record<string, unknown>;

const MESSAGE_FIELDS = new Set([
  'from',
  'to',
  'cc',
  'bcc',
  'reply_to',
  'subject',
  'text',
  'html',
  'attachments',
  'headers',
  'tags',
  'metadata',
  'stream',
  'template',
  'send_at',
  'track',
  'recipients',
]);
const RAW_FIELDS = new Set(['mail_from', 'rcpt_to', 'raw', 'tags', 'metadata', 'stream', 'send_at', 'track']);
const BASE64 = /^[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*$/;

function invalid(message: string, field: string): SendError {
  return new SendError('invalid_request', message, field);
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function onlyKnown(body: Json, known: Set<string>, prefix = ''): void {
  for (const key of Object.keys(body)) {
    if (!known.has(key)) throw invalid(`unknown field "${key}"`, `${prefix}${key}`);
  }
}

function optionalString(body: Json, key: string, field = key): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(`${field} must be a string`, field);
  return value;
}

/** `"Name <a@b>"`, `"a@b"` or `{email, name}`; a string may hold a comma-separated list. */
function mailboxes(value: unknown, field: string): Mailbox[] {
  if (value === undefined || value === null) return [];
  const items = Array.isArray(value) ? value : [value];
  const out: Mailbox[] = [];
  for (const [i, item] of items.entries()) {
    const at = Array.isArray(value) ? `${field}[${i}]` : field;
    if (typeof item === 'string') {
      const parsed = parseAddressList(item);
      if (parsed.problem || parsed.mailboxes.length === 0) {
        throw new SendError(
          'invalid_address',
          `${JSON.stringify(item.slice(0, 80))} is not a valid email address`,
          at,
        );
      }
      out.push(...parsed.mailboxes);
    } else if (isObject(item)) {
      onlyKnown(item, new Set(['email', 'name']), `${at}.`);
      const email = optionalString(item, 'email', `${at}.email`);
      if (!email) throw new SendError('invalid_address', 'an address needs an email', `${at}.email`);
      const name = optionalString(item, 'name', `${at}.name`);
      out.push(name ? { address: email, name } : { address: email });
    } else {
      throw new SendError('invalid_address', 'an address is a string or {email, name}', at);
    }
  }
  return out;
}

function single(value: unknown, field: string): Mailbox {
  const list = mailboxes(value, field);
  if (list.length !== 1 || !list[0])
    throw new SendError('invalid_address', `${field} needs exactly one address`, field);
  return list[0];
}

function decodeBase64(content: unknown, field: string): Buffer {
  if (typeof content !== 'string' || !BASE64.test(content)) {
    throw new SendError('invalid_attachment', 'content must be base64', field);
  }
  return Buffer.from(content, 'base64');
}

function attachments(value: unknown): Attachment[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value))
    throw new SendError('invalid_attachment', 'attachments must be a list', 'attachments');
  return value.map((item, i): Attachment => {
    const at = `attachments[${i}]`;
    if (!isObject(item)) throw new SendError('invalid_attachment', 'an attachment is an object', at);
    onlyKnown(item, new Set(['filename', 'content', 'content_type', 'content_id']), `${at}.`);
    const filename = optionalString(item, 'filename', `${at}.filename`)?.trim();
    if (!filename || filename.length > 255 || /[\r\n\0/\\]/.test(filename)) {
      throw new SendError(
        'invalid_attachment',
        'an attachment needs a filename of 1-255 characters without slashes',
        `${at}.filename`,
      );
    }
    const contentType = optionalString(item, 'content_type', `${at}.content_type`) ?? '';
    if (contentType !== '' && !/^[\w.+-]+\/[\w.+-]+$/.test(contentType)) {
      throw new SendError(
        'invalid_attachment',
        `"${contentType.slice(0, 60)}" is not a MIME type`,
        `${at}.content_type`,
      );
    }
    const contentId = optionalString(item, 'content_id', `${at}.content_id`);
    if (contentId !== undefined && !/^[\x21-\x3b\x3d\x3f-\x7e]{1,200}$/.test(contentId)) {
      throw new SendError(
        'invalid_attachment',
        'content_id must be printable ASCII without spaces or <>',
        `${at}.content_id`,
      );
    }
    return {
      filename,
      content: decodeBase64(item.content, `${at}.content`),
      contentType,
      ...(contentId ? { contentId } : {}),
    };
  });
}

function headers(value: unknown): [string, string][] {
  if (value === undefined || value === null) return [];
  if (!isObject(value))
    throw new SendError('invalid_header', 'headers must be an object of strings', 'headers');
  return Object.entries(value).map(([name, v]) => {
    if (typeof v !== 'string')
      throw new SendError('invalid_header', `header ${name} must be a string`, `headers.${name}`);
    return [name, v];
  });
}

function list(value: unknown, field: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalid(`${field} must be a list`, field);
  return value;
}

function variables(value: unknown, field: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) throw invalid(`${field} must be an object`, field);
  return value;
}

function template(value: unknown): TemplateRef | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw invalid('template must be an object', 'template');
  onlyKnown(value, new Set(['id', 'alias', 'version', 'variables']), 'template.');
  const id = optionalString(value, 'id', 'template.id');
  const alias = optionalString(value, 'alias', 'template.alias');
  if ((id === undefined) === (alias === undefined)) {
    throw invalid('template needs either an id or an alias', 'template');
  }
  const version = value.version;
  if (version !== undefined && version !== null && (!Number.isInteger(version) || (version as number) < 1)) {
    throw invalid('template.version must be a whole number from 1', 'template.version');
  }
  return {
    ...(id === undefined ? {} : { id }),
    ...(alias === undefined ? {} : { alias }),
    ...(typeof version === 'number' ? { version } : {}),
    variables: variables(value.variables, 'template.variables'),
  };
}

function track(value: unknown): TrackOptions | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isObject(value)) throw invalid('track must be an object', 'track');
  onlyKnown(value, new Set(['opens', 'clicks']), 'track.');
  const out: TrackOptions = {};
  for (const key of ['opens', 'clicks'] as const) {
    const v = value[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'boolean') throw invalid(`track.${key} must be true or false`, `track.${key}`);
    out[key] = v;
  }
  return out;
}

/** RFC 3339 date-time (with a zone) into epoch ms. */
export function parseSendAt(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (
    typeof value !== 'string' ||
    !/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(value)
  ) {
    throw new SendError(
      'invalid_send_at',
      'send_at must be an RFC 3339 date-time with a zone, e.g. 2026-12-01T09:00:00Z',
      'send_at',
    );
  }
  const at = Date.parse(value);
  if (!Number.isFinite(at))
    throw new SendError('invalid_send_at', `send_at "${value}" is not a real time`, 'send_at');
  return at;
}

function personal(value: unknown): PersonalRecipient[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw invalid('recipients must be a list', 'recipients');
  return value.map((item, i): PersonalRecipient => {
    const at = `recipients[${i}]`;
    if (typeof item === 'string') return { ...single(item, at), variables: {} };
    if (!isObject(item))
      throw new SendError('invalid_address', 'a recipient is {email, name, variables}', at);
    onlyKnown(item, new Set(['email', 'name', 'variables']), `${at}.`);
    const email = optionalString(item, 'email', `${at}.email`);
    if (!email) throw new SendError('invalid_address', 'a recipient needs an email', `${at}.email`);
    const name = optionalString(item, 'name', `${at}.name`);
    return {
      address: email,
      ...(name ? { name } : {}),
      variables: variables(item.variables, `${at}.variables`),
    };
  });
}

/** One message of the native API (a single send or a batch item). */
export function parseMessage(body: unknown): SendRequest {
  if (!isObject(body)) throw invalid('a message is a JSON object', '');
  onlyKnown(body, MESSAGE_FIELDS);
  if (body.from === undefined || body.from === null) {
    throw new SendError('invalid_address', 'a message needs a from address', 'from');
  }
  const recipients = personal(body.recipients);
  const tpl = template(body.template);
  const tr = track(body.track);
  const sendAt = parseSendAt(body.send_at);
  const stream = optionalString(body, 'stream');
  const subject = optionalString(body, 'subject');
  const text = optionalString(body, 'text');
  const html = optionalString(body, 'html');
  return {
    from: single(body.from, 'from'),
    to: mailboxes(body.to, 'to'),
    cc: mailboxes(body.cc, 'cc'),
    bcc: mailboxes(body.bcc, 'bcc'),
    replyTo: mailboxes(body.reply_to, 'reply_to'),
    ...(subject === undefined ? {} : { subject }),
    ...(text === undefined ? {} : { text }),
    ...(html === undefined ? {} : { html }),
    attachments: attachments(body.attachments),
    headers: headers(body.headers),
    tags: list(body.tags, 'tags') as string[],
    metadata: (body.metadata ?? {}) as Record<string, string>,
    ...(stream === undefined ? {} : { stream }),
    ...(tpl ? { template: tpl } : {}),
    ...(sendAt === undefined ? {} : { sendAt }),
    ...(tr ? { track: tr } : {}),
    ...(recipients ? { recipients } : {}),
  };
}

/** POST /v1/messages/raw: `raw` is the RFC 5322 message, base64 (bytes survive JSON untouched). */
export function parseRawMessage(body: unknown): RawSendRequest {
  if (!isObject(body)) throw invalid('the request is a JSON object', '');
  onlyKnown(body, RAW_FIELDS);
  const mailFrom = body.mail_from;
  if (typeof mailFrom !== 'string')
    throw new SendError('invalid_address', 'mail_from must be an address ("" for none)', 'mail_from');
  const rcptTo = list(body.rcpt_to, 'rcpt_to').map((a, i) => {
    if (typeof a !== 'string')
      throw new SendError('invalid_address', 'rcpt_to holds addresses', `rcpt_to[${i}]`);
    return a;
  });
  if (typeof body.raw !== 'string' || !BASE64.test(body.raw)) {
    throw invalid('raw must be the message as base64', 'raw');
  }
  const sendAt = parseSendAt(body.send_at);
  const stream = optionalString(body, 'stream');
  const tr = track(body.track);
  return {
    mailFrom,
    rcptTo,
    raw: Buffer.from(body.raw, 'base64'),
    tags: list(body.tags, 'tags') as string[],
    metadata: (body.metadata ?? {}) as Record<string, string>,
    ...(stream === undefined ? {} : { stream }),
    ...(sendAt === undefined ? {} : { sendAt }),
    ...(tr ? { track: tr } : {}),
  };
}
