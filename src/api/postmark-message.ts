import { parseAddressList } from '../intake/address.ts';
import { SendError } from '../intake/send-errors.ts';
import type { Attachment, Mailbox, SendRequest, TrackOptions } from '../intake/send-request.ts';

/**
 * A Postmark message (the body of `/email`, an item of `/email/batch`) as intake's request.
 * Pure functions: refusals are SendErrors naming the Postmark field, which postmark.ts answers
 * from its error table.
 */

const TRACK_LINKS = new Set(['None', 'HtmlAndText', 'HtmlOnly', 'TextOnly']);

/** `/email` reads content fields; the template endpoints read the template fields instead, as Postmark does. */
export type MessageKind = 'content' | 'template';

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One Postmark message (field names case-sensitive, as Postmark's) as a SendRequest; unknown fields are ignored. */
export function toSendRequest(message: JsonObject, kind: MessageKind): SendRequest {
  const request: SendRequest = {
    from: fromMailbox(message),
    to: mailboxList(message, 'To'),
    cc: mailboxList(message, 'Cc'),
    bcc: mailboxList(message, 'Bcc'),
    replyTo: mailboxList(message, 'ReplyTo'),
    attachments: attachmentList(message['Attachments']),
    headers: headerList(message['Headers']),
    tags: [],
    metadata: metadataOf(message['Metadata']),
  };
  const tag = optionalString(message, 'Tag');
  if (tag !== undefined) request.tags = [tag];
  const stream = optionalString(message, 'MessageStream');
  if (stream !== undefined) request.stream = stream;
  const track = trackOf(message);
  if (track) request.track = track;
  if (kind === 'template') {
    request.template = templateOf(message);
  } else {
    const subject = optionalString(message, 'Subject');
    if (subject !== undefined) request.subject = subject;
    const text = optionalString(message, 'TextBody');
    if (text !== undefined) request.text = text;
    const html = optionalString(message, 'HtmlBody');
    if (html !== undefined) request.html = html;
  }
  return request;
}

/** A string field; null and '' count as absent, as many clients serialise unset fields so. */
function optionalString(message: JsonObject, name: string): string | undefined {
  const value = message[name];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new SendError('invalid_request', `'${name}' must be a string`, name);
  return value;
}

/** A comma-separated address list; quoted display names may contain commas (`"Doe, Jane" <j@x.io>`). */
function mailboxList(message: JsonObject, name: string): Mailbox[] {
  const value = optionalString(message, name);
  if (value === undefined) return [];
  const parsed = parseAddressList(value);
  if (parsed.problem) {
    const shown = parsed.problem === 'control' ? JSON.stringify(value) : `'${parsed.entry}'`;
    throw new SendError('invalid_address', `Invalid '${name}' address: ${shown}`, name);
  }
  return parsed.mailboxes;
}

function fromMailbox(message: JsonObject): Mailbox {
  const list = mailboxList(message, 'From');
  if (list.length !== 1) {
    const problem = list.length === 0 ? "'From' is required" : "'From' must be one address";
    throw new SendError('invalid_address', problem, 'From');
  }
  return list[0]!;
}

function headerList(value: unknown): [string, string][] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    throw new SendError('invalid_header', "'Headers' must be an array of {Name, Value}", 'Headers');
  }
  return value.map((header: unknown, i): [string, string] => {
    if (!isObject(header) || typeof header['Name'] !== 'string' || header['Name'] === '') {
      throw new SendError('invalid_header', `Headers[${i}] needs a Name`, `Headers[${i}].Name`);
    }
    if (typeof header['Value'] !== 'string') {
      throw new SendError('invalid_header', `Headers[${i}].Value must be a string`, `Headers[${i}].Value`);
    }
    return [header['Name'], header['Value']];
  });
}

function metadataOf(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) throw new SendError('invalid_metadata', "'Metadata' must be an object", 'Metadata');
  const entries = Object.entries(value);
  for (const [key, item] of entries) {
    if (typeof item !== 'string') {
      throw new SendError('invalid_metadata', `Metadata '${key}' must be a string`, `Metadata.${key}`);
    }
  }
  // fromEntries defines own properties, so a key named __proto__ stays data.
  return Object.fromEntries(entries) as Record<string, string>;
}

function attachmentList(value: unknown): Attachment[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value))
    throw new SendError('invalid_attachment', "'Attachments' must be an array", 'Attachments');
  return value.map((item: unknown, i) => toAttachment(item, `Attachments[${i}]`));
}

function toAttachment(item: unknown, field: string): Attachment {
  if (!isObject(item)) throw new SendError('invalid_attachment', `${field} must be an object`, field);
  const name = item['Name'];
  if (typeof name !== 'string' || name === '') {
    throw new SendError('invalid_attachment', `${field}.Name is required`, `${field}.Name`);
  }
  const content = typeof item['Content'] === 'string' ? decodeBase64(item['Content']) : undefined;
  if (!content) {
    throw new SendError('invalid_attachment', `${field}.Content must be base64`, `${field}.Content`);
  }
  const contentType = item['ContentType'] ?? '';
  if (typeof contentType !== 'string') {
    throw new SendError(
      'invalid_attachment',
      `${field}.ContentType must be a string`,
      `${field}.ContentType`,
    );
  }
  const attachment: Attachment = { filename: name, content, contentType };
  const contentId = item['ContentID'] ?? '';
  if (typeof contentId !== 'string') {
    throw new SendError('invalid_attachment', `${field}.ContentID must be a string`, `${field}.ContentID`);
  }
  // Postmark documents ContentID as `cid:name`; senders also pass the bare name. Either makes it inline.
  const cid = contentId.replace(/^cid:/i, '');
  if (cid !== '') attachment.contentId = cid;
  return attachment;
}

/**
 * Strict base64 (RFC 4648 §4, padded), line breaks allowed as MIME encoders wrap it.
 * Buffer.from alone skips bad characters and would store a corrupt file without a word.
 */
function decodeBase64(text: string): Buffer | undefined {
  const compact = text.replace(/[\r\n\t ]+/g, '');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) return undefined;
  return Buffer.from(compact, 'base64');
}

/** TrackLinks HtmlOnly and TextOnly both turn click tracking on: Postbote tracks clicks per message. */
function trackOf(message: JsonObject): TrackOptions | undefined {
  const opens = message['TrackOpens'];
  const links = message['TrackLinks'];
  const track: TrackOptions = {};
  if (opens !== undefined && opens !== null) {
    if (typeof opens !== 'boolean')
      throw new SendError('invalid_request', "'TrackOpens' must be a boolean", 'TrackOpens');
    track.opens = opens;
  }
  if (links !== undefined && links !== null) {
    if (typeof links !== 'string' || !TRACK_LINKS.has(links)) {
      const allowed = [...TRACK_LINKS].join(', ');
      throw new SendError('invalid_request', `'TrackLinks' must be one of ${allowed}`, 'TrackLinks');
    }
    track.clicks = links !== 'None';
  }
  return Object.keys(track).length > 0 ? track : undefined;
}

function templateOf(message: JsonObject): NonNullable<SendRequest['template']> {
  const id = message['TemplateId'];
  const alias = optionalString(message, 'TemplateAlias');
  const hasId = id !== undefined && id !== null && id !== '';
  if (hasId === (alias !== undefined)) {
    throw new SendError('invalid_template', "Give either 'TemplateId' or 'TemplateAlias'", 'TemplateId');
  }
  const model = message['TemplateModel'] ?? {};
  if (!isObject(model))
    throw new SendError('invalid_template', "'TemplateModel' must be an object", 'TemplateModel');
  if (alias !== undefined) return { alias, variables: model };
  if (typeof id !== 'string' && !(typeof id === 'number' && Number.isSafeInteger(id))) {
    throw new SendError('invalid_template', "'TemplateId' must be a number", 'TemplateId');
  }
  return { id: String(id), variables: model };
}
