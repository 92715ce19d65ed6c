import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { DomainError } from '../domains/domains.ts';
import { SendError, type SendErrorCode } from '../intake/send-errors.ts';
import { isStoreUnavailable } from '../store/errors.ts';
import { TemplateError } from '../templates/templates.ts';

/**
 * The native API's error catalogue: every `code` a client may see, with its HTTP status.
 * Codes are a contract: add, never rename. Bodies are `{error: {code, message, field?}}`.
 */
const STATUS: Record<SendErrorCode | ApiOnlyCode, number> = {
  invalid_request: 400,
  invalid_json: 400,
  invalid_address: 422,
  missing_recipients: 422,
  too_many_recipients: 422,
  missing_content: 422,
  invalid_header: 422,
  invalid_attachment: 422,
  too_many_attachments: 422,
  payload_too_large: 413,
  invalid_send_at: 422,
  invalid_metadata: 422,
  invalid_tag: 422,
  unknown_stream: 422,
  sender_not_allowed: 422,
  template_not_found: 404,
  template_render_error: 422,
  invalid_template: 422,
  content_rejected: 422,
  template_alias_taken: 409,
  invalid_domain: 422,
  domain_taken: 409,
  domain_not_found: 404,
  sending_addresses_unknown: 422,
  batch_too_large: 413,
  unauthorized: 401,
  forbidden: 403,
  rate_limited: 429,
  not_found: 404,
  not_cancellable: 409,
  idempotency_key_reused: 409,
  idempotency_key_in_use: 409,
  invalid_idempotency_key: 400,
  unsupported_media_type: 415,
  unavailable: 503,
  internal_error: 500,
};

type ApiOnlyCode =
  | 'invalid_json'
  | 'template_alias_taken'
  | 'invalid_domain'
  | 'domain_taken'
  | 'domain_not_found'
  | 'sending_addresses_unknown'
  | 'batch_too_large'
  | 'unauthorized'
  | 'forbidden'
  | 'rate_limited'
  | 'not_found'
  | 'not_cancellable'
  | 'idempotency_key_reused'
  | 'idempotency_key_in_use'
  | 'invalid_idempotency_key'
  | 'unsupported_media_type'
  | 'unavailable'
  | 'internal_error';

export type ApiErrorCode = keyof typeof STATUS;

/** A refusal the API answers as `{error: {code, message, field?}}` with the catalogue's status. */
export class ApiError extends Error {
  readonly code: ApiErrorCode;
  readonly field: string | undefined;
  readonly status: number;
  /** Extra response headers (Retry-After). */
  readonly headers: Record<string, string>;
  constructor(code: ApiErrorCode, message: string, field?: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.field = field;
    this.status = STATUS[code];
    this.headers = headers;
  }
}

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

export function errorBody(code: string, message: string, field?: string): ErrorBody {
  return { error: { code, message, ...(field ? { field } : {}) } };
}

/** Any error a handler throws as the catalogue's shape; unknown errors never show their text. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof SendError) return new ApiError(err.code, err.message, err.field);
  if (err instanceof TemplateError) return new ApiError(err.code, err.message, err.field);
  if (err instanceof DomainError) return new ApiError(err.code, err.message, 'domain');
  const e = err as Partial<FastifyError> & {
    validation?: { instancePath?: string; params?: Record<string, unknown> }[];
  };
  if (e.validation) {
    const first = e.validation[0];
    const missing = first?.params?.missingProperty;
    const path = `${(first?.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.')}${
      typeof missing === 'string' ? `${first?.instancePath ? '.' : ''}${missing}` : ''
    }`;
    return new ApiError('invalid_request', e.message ?? 'invalid request', path || undefined);
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('payload_too_large', 'the request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('unsupported_media_type', 'send application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError('invalid_json', 'the request body is not valid JSON');
  }
  if (e.statusCode === 400 && e instanceof SyntaxError)
    return new ApiError('invalid_json', 'the request body is not valid JSON');
  if (typeof e.statusCode === 'number' && e.statusCode === 404) return new ApiError('not_found', 'not found');
  if (isStoreUnavailable(err)) return storeUnavailable();
  return new ApiError('internal_error', 'internal error');
}

/** The store is full or not reachable: nothing was stored, the same request may be sent again. */
export function storeUnavailable(): ApiError {
  return new ApiError(
    'unavailable',
    'the message store is unavailable (full or not reachable); nothing was stored, try again',
    undefined,
    { 'retry-after': String(STORE_RETRY_AFTER_S) },
  );
}

/** What 503 answers suggest as Retry-After (seconds). */
export const STORE_RETRY_AFTER_S = 5;

export function sendApiError(reply: FastifyReply, err: ApiError): FastifyReply {
  for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
  return reply.code(err.status).send(errorBody(err.code, err.message, err.field));
}

/** One error handler for the native API (compatibility routes answer in their own shapes). */
export function installErrorHandler(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((err, request, reply) => {
    const apiError = toApiError(err);
    if (apiError.code === 'internal_error') {
      logger.error({ err, method: request.method, url: request.url }, 'HTTP request failed');
    } else if (apiError.code === 'unavailable') {
      logger.warn({ err, method: request.method, url: request.url }, 'store unavailable; answered 503');
    }
    return sendApiError(reply, apiError);
  });
  app.setNotFoundHandler((request, reply) =>
    sendApiError(reply, new ApiError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );
}
