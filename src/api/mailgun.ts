import formbody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SendError } from '../intake/send-errors.ts';
import type { SendResult } from '../intake/send-request.ts';
import { isStoreUnavailable } from '../store/errors.ts';
import { type MailgunForm, toRawSendRequest, toSendRequest } from './mailgun-form.ts';
import type { ApiPrincipal, KeyGate, SendApi } from './send-api.ts';

/**
 * Mailgun-compatible send endpoints (`POST /v3/:domain/messages` and `/messages.mime`), so code
 * written for Mailgun's SDKs sends through Postbote by changing only the base URL. The form is
 * read here and translated into a SendRequest by mailgun-form.ts; everything it means (addresses,
 * limits, templates) is judged by intake, whose SendError messages go back to the client as
 * Mailgun's `{message}`.
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
  if (isStoreUnavailable(error)) {
    reply.log.warn({ err: error }, 'store unavailable; answered 503');
    return reply.code(503).header('retry-after', '5').send({ message: 'Service unavailable, try again' });
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
