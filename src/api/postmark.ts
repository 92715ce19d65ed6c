import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SendError, type SendErrorCode } from '../intake/send-errors.ts';
import type { SendRequest, SendResult } from '../intake/send-request.ts';
import { isStoreUnavailable } from '../store/errors.ts';
import { isObject, type JsonObject, type MessageKind, toSendRequest } from './postmark-message.ts';
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
  content_rejected: { status: 422, errorCode: 300 },
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
  // Postmark's own answer when it cannot take mail for a while.
  unavailable: { status: 503, errorCode: 1, message: 'the message store is unavailable; try again' },
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

/** Thrown by the handlers for a refusal that is not intake's; the error handler answers it. */
class PostmarkReplyError extends Error {
  readonly failure: PostmarkFailure;
  constructor(failure: PostmarkFailure) {
    super(failure.message);
    this.name = 'PostmarkReplyError';
    this.failure = failure;
  }
}

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
      return isStoreUnavailable(error) ? REPLIES.unavailable : REPLIES.internal;
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

function requireObject(body: unknown): JsonObject {
  if (!isObject(body)) throw new PostmarkReplyError(REPLIES.invalidJson);
  return body;
}
