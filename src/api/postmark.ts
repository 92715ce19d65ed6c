import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import addressparser from 'nodemailer/lib/addressparser';
import { SendError, type SendErrorCode } from '../intake/send-errors.ts';
import type { Attachment, Mailbox, SendRequest, SendResult, TrackOptions } from '../intake/send-request.ts';
import type { ApiPrincipal, KeyGate, SendApi } from './send-api.ts';

/**
 * Postmark-compatible send endpoints: code written against the official `postmark` SDK (or
 * Postmark's HTTP API) works against Postbote by changing only the host. A Postbote API key with
 * the `send` scope stands in for the Postmark server token.
 *
 * Reference: postmarkapp.com/developer/api/email-api and /developer/api/overview#error-codes.
 */

/** An error reply in Postmark's shape: the HTTP status and the body's `ErrorCode`. */
interface PostmarkFailure {
  status: number;
  errorCode: number;
  message: string;
}

/**
 * What each intake refusal answers. Postmark files nearly every validation failure under 300
 * ("Invalid email request", which the SDK raises as InvalidEmailRequestError), so only refusals
 * with a closer documented code differ:
 * - 400 "Sender Signature not found": the From address may not be used.
 * - 1101 "TemplateId not found".
 * - 1122 "A Templated field has been submitted that is invalid": Postmark checks templates when
 *   they are saved and has no send-time render error; 1122 names the template as the culprit,
 *   where 1109 ("No Template data received") would send the caller looking at its request.
 * - 1235: the MessageStream is unknown or may not send (a message-stream code newer than
 *   Postmark's older published table; not checked against a live Postmark answer).
 * - payload_too_large keeps 300 in the body but answers HTTP 413, as Postmark does for its own
 *   size limit (the SDK raises that as UnknownError with statusCode 413).
 * `Record<SendErrorCode, …>` keeps this exhaustive: a new intake code fails the type check here.
 */
const SEND_ERROR_REPLIES: Record<SendErrorCode, { status: number; errorCode: number }> = {
  invalid_request: { status: 422, errorCode: 300 },
  invalid_address: { status: 422, errorCode: 300 },
  missing_recipients: { status: 422, errorCode: 300 },
  too_many_recipients: { status: 422, errorCode: 300 },
  missing_content: { status: 422, errorCode: 300 },
  invalid_header: { status: 422, errorCode: 300 },
  invalid_attachment: { status: 422, errorCode: 300 },
  too_many_attachments: { status: 422, errorCode: 300 },
  payload_too_large: { status: 413, errorCode: 300 },
  invalid_send_at: { status: 422, errorCode: 300 },
  invalid_metadata: { status: 422, errorCode: 300 },
  invalid_tag: { status: 422, errorCode: 300 },
  unknown_stream: { status: 422, errorCode: 1235 },
  sender_not_allowed: { status: 422, errorCode: 400 },
  template_not_found: { status: 422, errorCode: 1101 },
  template_render_error: { status: 422, errorCode: 1122 },
  invalid_template: { status: 422, errorCode: 300 },
};

/**
 * The replies that do not come from intake. A key without the `send` scope answers 401 like an
 * unknown one (not 403): Postmark answers 401 for every token that may not call an endpoint, and
 * the SDK turns only 401 into InvalidAPIKeyError, which is what the caller has to fix.
 */
const REPLIES = {
  missingToken: {
    status: 401,
    errorCode: 10,
    message: "Missing API token: send it in 'X-Postmark-Server-Token'",
  },
  badToken: { status: 401, errorCode: 10, message: 'Bad or missing API token' },
  cannotSend: {
    status: 401,
    errorCode: 10,
    message: "This API key may not send (it lacks the 'send' scope)",
  },
  invalidJson: { status: 422, errorCode: 402, message: 'Invalid JSON' },
  jsonRequired: {
    status: 422,
    errorCode: 409,
    message: "JSON required: send 'Content-Type: application/json'",
  },
  tooManyMessages: {
    status: 422,
    errorCode: 410,
    message: 'Too many batch messages: at most 500 per request',
  },
  bodyTooLarge: { status: 413, errorCode: 300, message: 'Request body too large' },
  internal: { status: 500, errorCode: 1, message: 'internal error' },
} as const satisfies Record<string, PostmarkFailure>;

function rateLimited(retryAfterSeconds: number): PostmarkFailure {
  return {
    status: 429,
    errorCode: 429,
    message: `Rate limit exceeded: retry after ${retryAfterSeconds} seconds`,
  };
}

/** Postmark's batch limit. */
const MAX_BATCH_MESSAGES = 500;

const TRACK_LINKS = new Set(['None', 'HtmlAndText', 'HtmlOnly', 'TextOnly']);

/** Thrown by the handlers for a refusal that is not intake's; the error handler answers it. */
class PostmarkReplyError extends Error {
  readonly failure: PostmarkFailure;
  constructor(failure: PostmarkFailure) {
    super(failure.message);
    this.name = 'PostmarkReplyError';
    this.failure = failure;
  }
}

/** `/email` reads content fields; the template endpoints read the template fields instead, as Postmark does. */
type MessageKind = 'content' | 'template';

type JsonObject = Record<string, unknown>;

interface SentReply {
  To?: string;
  SubmittedAt: string;
  MessageID: string;
  ErrorCode: 0;
  Message: 'OK';
}

interface FailedReply {
  ErrorCode: number;
  Message: string;
}

export function registerPostmarkRoutes(app: FastifyInstance, deps: { send: SendApi; keys: KeyGate }): void {
  app.register(async (scope) => {
    // Set by the onRequest hook of every route in this scope, so always present in the handlers.
    const principals = new WeakMap<FastifyRequest, ApiPrincipal>();
    const principalOf = (request: FastifyRequest): ApiPrincipal => {
      const principal = principals.get(request);
      if (!principal) throw new Error('postmark route ran without an authenticated principal');
      return principal;
    };

    // onRequest runs before the body is read: an unknown key or a spent budget costs no parsing.
    scope.addHook('onRequest', async (request, reply) => {
      const token = request.headers['x-postmark-server-token'];
      if (typeof token !== 'string' || token.trim() === '') return sendFailure(reply, REPLIES.missingToken);
      const principal = await deps.keys.authenticate(token.trim(), request.ip);
      if (!principal) return sendFailure(reply, REPLIES.badToken);
      if (!principal.scopes.includes('send')) return sendFailure(reply, REPLIES.cannotSend);
      const budget = deps.keys.take(principal);
      if (!budget.ok) {
        const seconds = Math.max(1, Math.ceil(budget.retryAfterSeconds));
        reply.header('retry-after', String(seconds));
        return sendFailure(reply, rateLimited(seconds));
      }
      principals.set(request, principal);
    });

    scope.setErrorHandler((error, request, reply) => {
      const failure = failureFor(error);
      if (failure.status >= 500) request.log.error({ err: error }, 'postmark endpoint failed');
      return sendFailure(reply, failure);
    });

    const sendOne = async (request: FastifyRequest, kind: MessageKind): Promise<SentReply> => {
      const message = requireObject(request.body);
      const result = await deps.send.send(principalOf(request), toSendRequest(message, kind), request.ip);
      return sentReply(message, result);
    };

    const sendMany = async (
      request: FastifyRequest,
      messages: unknown,
      kind: MessageKind,
    ): Promise<(SentReply | FailedReply)[]> => {
      if (!Array.isArray(messages)) throw new PostmarkReplyError(REPLIES.invalidJson);
      if (messages.length > MAX_BATCH_MESSAGES) throw new PostmarkReplyError(REPLIES.tooManyMessages);
      const replies: (SentReply | FailedReply | undefined)[] = new Array(messages.length);
      const accepted: { index: number; message: JsonObject; request: SendRequest }[] = [];
      messages.forEach((message: unknown, index) => {
        try {
          if (!isObject(message)) {
            throw new SendError('invalid_request', 'Each message must be a JSON object');
          }
          accepted.push({ index, message, request: toSendRequest(message, kind) });
        } catch (error) {
          if (!(error instanceof SendError)) throw error;
          replies[index] = failedReply(error);
        }
      });
      if (accepted.length > 0) {
        const items = await deps.send.sendBatch(
          principalOf(request),
          accepted.map((entry) => entry.request),
          request.ip,
        );
        if (items.length !== accepted.length) {
          throw new Error(`sendBatch answered ${items.length} items for ${accepted.length} messages`);
        }
        items.forEach((item, k) => {
          const { index, message } = accepted[k]!;
          replies[index] = item.ok ? sentReply(message, item.result) : failedReply(item.error);
        });
      }
      return replies as (SentReply | FailedReply)[];
    };

    scope.post('/email', (request) => sendOne(request, 'content'));
    scope.post('/email/withTemplate', (request) => sendOne(request, 'template'));
    scope.post('/email/batch', (request) => sendMany(request, request.body, 'content'));
    scope.post('/email/batchWithTemplates', (request) =>
      sendMany(request, requireObject(request.body)['Messages'], 'template'),
    );
  });
}

function sendFailure(reply: FastifyReply, failure: PostmarkFailure): FastifyReply {
  return reply.code(failure.status).send({ ErrorCode: failure.errorCode, Message: failure.message });
}

function failureFor(error: unknown): PostmarkFailure {
  if (error instanceof PostmarkReplyError) return error.failure;
  if (error instanceof SendError) return { ...SEND_ERROR_REPLIES[error.code], message: error.message };
  switch (isObject(error) ? error['code'] : undefined) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return REPLIES.invalidJson;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return REPLIES.jsonRequired;
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return REPLIES.bodyTooLarge;
    default:
      return REPLIES.internal;
  }
}

function sentReply(message: JsonObject, result: SendResult): SentReply {
  const to = message['To'];
  return {
    ...(typeof to === 'string' ? { To: to } : {}),
    SubmittedAt: new Date(result.acceptedAt).toISOString(),
    MessageID: result.id,
    ErrorCode: 0,
    Message: 'OK',
  };
}

function failedReply(error: SendError): FailedReply {
  return { ErrorCode: SEND_ERROR_REPLIES[error.code].errorCode, Message: error.message };
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireObject(body: unknown): JsonObject {
  if (!isObject(body)) throw new PostmarkReplyError(REPLIES.invalidJson);
  return body;
}

/** One Postmark message (field names case-sensitive, as Postmark's) as a SendRequest; unknown fields are ignored. */
function toSendRequest(message: JsonObject, kind: MessageKind): SendRequest {
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
  return addressparser(value, { flatten: true }).map((entry) => {
    if (!entry.address) {
      throw new SendError('invalid_address', `Invalid '${name}' address: '${entry.name || value}'`, name);
    }
    return entry.name ? { address: entry.address, name: entry.name } : { address: entry.address };
  });
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
