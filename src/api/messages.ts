import type { FastifyInstance, FastifySchema } from 'fastify';
import { recipientId, type Sender, type SendOutcome } from '../intake/send.ts';
import { SendError } from '../intake/send-errors.ts';
import type { SendResult } from '../intake/send-request.ts';
import type { Store } from '../store/store.ts';
import { type MessageRow, RECIPIENT_STATES, type RecipientRow, type RecipientState } from '../store/types.ts';
import { ApiError } from './errors.ts';
import type { Idempotency, StoredAnswer } from './idempotency.ts';
import { authorize } from './keys.ts';
import { parseMessage, parseRawMessage, parseSendAt } from './message-request.ts';
import {
  batchResultSchema,
  batchSchema,
  errorSchema,
  messageSchema,
  rawMessageSchema,
  security,
  sendResultSchema,
} from './schemas.ts';
import type { ApiPrincipal, KeyGate } from './send-api.ts';

export interface MessagesDeps {
  store: Store;
  sender: Sender;
  keys: KeyGate;
  idempotency: Idempotency;
  clock: () => number;
  maxBatch: number;
}

/**
 * Route options whose schema documents the route (OpenAPI) without validating or serialising:
 * requests are checked by message-request.ts, answers are written as they are.
 */
export function documented(schema: FastifySchema) {
  return {
    schema,
    validatorCompiler: () => () => true,
    serializerCompiler: () => (data: unknown) => JSON.stringify(data),
  };
}

function resultBody(r: SendResult) {
  return { id: r.id, recipients: r.recipients };
}

function context(principal: ApiPrincipal, clientIp: string) {
  return {
    accountId: principal.accountId,
    credentialId: principal.credentialId,
    defaultStream: principal.defaultStream,
    clientIp,
  };
}

/** A recipient's state as the API shows it: queued mail waiting for its send_at is `scheduled`. */
function apiStatus(r: RecipientRow, now: number): RecipientState | 'scheduled' {
  return r.state === 'queued' && r.attempts === 0 && r.nextAttemptAt > now ? 'scheduled' : r.state;
}

function messageBody(m: MessageRow) {
  return {
    id: m.id,
    from: m.mailFrom,
    subject: m.subject,
    message_id: m.messageIdHeader,
    stream: m.stream,
    tags: m.tags,
    metadata: m.metadata,
    ...(m.template ? { template: m.template } : {}),
    size: m.size,
    source: m.source,
    received_at: new Date(m.receivedAt).toISOString(),
  };
}

const batchAnswer = (outcomes: SendOutcome[]): StoredAnswer => {
  const data = [];
  const errors = [];
  for (const [index, o] of outcomes.entries()) {
    if (o.ok) data.push({ index, ...resultBody(o.result) });
    else {
      errors.push({
        index,
        code: o.error.code,
        message: o.error.message,
        ...(o.error.field ? { field: o.error.field } : {}),
      });
    }
  }
  return { status: errors.length > 0 ? 207 : 202, body: { data, errors } };
};

/** /v1/messages: send (single, batch, raw), look up, list and cancel. */
export function registerMessageRoutes(app: FastifyInstance, deps: MessagesDeps): void {
  const { store, sender, keys, idempotency, clock } = deps;
  const tags = ['messages'];

  app.post(
    '/v1/messages',
    documented({
      tags,
      summary: 'Send a message',
      security,
      body: messageSchema,
      response: { 202: sendResultSchema, '4xx': errorSchema },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'send');
      const answer = await idempotency.run(request, principal, async (remember) => {
        const message = parseMessage(request.body);
        const toAnswer = (outcomes: SendOutcome[]): StoredAnswer => {
          const first = outcomes[0];
          return { status: 202, body: first?.ok ? resultBody(first.result) : {} };
        };
        const result = await sender.send(context(principal, request.ip), message, remember?.(toAnswer));
        return { status: 202, body: resultBody(result) };
      });
      if (answer.replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(answer.status).send(answer.body);
    },
  );

  app.post(
    '/v1/messages/batch',
    documented({
      tags,
      summary: `Send up to ${deps.maxBatch} messages in one call`,
      description:
        'Each item is checked alone: the answer lists accepted items in `data` and refused ones in `errors` ' +
        '(202 when every item was accepted, 207 otherwise). Accepted items share one durable commit.',
      security,
      body: batchSchema,
      response: { 202: batchResultSchema, 207: batchResultSchema, '4xx': errorSchema },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'send');
      const body = request.body as { messages?: unknown } | null;
      if (typeof body !== 'object' || body === null || !Array.isArray(body.messages)) {
        throw new ApiError('invalid_request', 'the body is {"messages": [...]}', 'messages');
      }
      const items = body.messages;
      if (items.length === 0) throw new ApiError('invalid_request', 'messages is empty', 'messages');
      if (items.length > deps.maxBatch) {
        throw new ApiError('batch_too_large', `at most ${deps.maxBatch} messages per batch`, 'messages');
      }
      const answer = await idempotency.run(request, principal, async (remember) => {
        // A malformed item fails alone, like one the sender refuses.
        const parsed = items.map((item) => {
          try {
            return { ok: true as const, request: parseMessage(item) };
          } catch (err) {
            return { ok: false as const, err };
          }
        });
        const good = parsed.flatMap((p) => (p.ok ? [p.request] : []));
        const merge = (sent: SendOutcome[]): SendOutcome[] => {
          let next = 0;
          return parsed.map((p): SendOutcome => {
            if (p.ok) return sent[next++] as SendOutcome;
            if (p.err instanceof SendError) return { ok: false, error: p.err };
            throw p.err;
          });
        };
        const sent = await sender.sendBatch(
          context(principal, request.ip),
          good,
          remember?.((outcomes) => batchAnswer(merge(outcomes))),
        );
        return batchAnswer(merge(sent));
      });
      if (answer.replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(answer.status).send(answer.body);
    },
  );

  app.post(
    '/v1/messages/raw',
    documented({
      tags,
      summary: 'Send an RFC 5322 message as it is, with its envelope',
      security,
      body: rawMessageSchema,
      response: { 202: sendResultSchema, '4xx': errorSchema },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'send');
      const answer = await idempotency.run(request, principal, async (remember) => {
        const raw = parseRawMessage(request.body);
        const toAnswer = (outcomes: SendOutcome[]): StoredAnswer => {
          const first = outcomes[0];
          return { status: 202, body: first?.ok ? resultBody(first.result) : {} };
        };
        const result = await sender.sendRaw(context(principal, request.ip), raw, remember?.(toAnswer));
        return { status: 202, body: resultBody(result) };
      });
      if (answer.replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(answer.status).send(answer.body);
    },
  );

  /** The account's message, or 404 (another account's message is "not found" too). */
  async function own(principal: ApiPrincipal, id: string): Promise<MessageRow> {
    const message = /^[\w-]{1,64}$/.test(id) ? await store.getMessage(id) : undefined;
    if (!message || message.accountId !== principal.accountId) {
      throw new ApiError('not_found', `no message "${id.slice(0, 64)}"`, 'id');
    }
    return message;
  }

  async function details(message: MessageRow) {
    const [recipients, events] = await Promise.all([
      store.getRecipients(message.id),
      store.getEvents(message.id),
    ]);
    const now = clock();
    const publicId = new Map(recipients.map((r, i) => [r.id, recipientId(message.id, i)]));
    return {
      ...messageBody(message),
      recipients: recipients.map((r, i) => ({
        id: recipientId(message.id, i),
        email: r.address,
        status: apiStatus(r, now),
        attempts: r.attempts,
        ...(r.state === 'queued' || r.state === 'deferred'
          ? { next_attempt_at: new Date(r.nextAttemptAt).toISOString() }
          : {}),
        ...(r.lastReply ? { last_response: r.lastReply } : {}),
      })),
      events: events.map((e) => ({
        type: e.type,
        at: new Date(e.at).toISOString(),
        ...(e.recipient ? { recipient: e.recipient } : {}),
        ...(e.recipientId !== null && publicId.has(e.recipientId)
          ? { recipient_id: publicId.get(e.recipientId) }
          : {}),
        ...(message.metadata && Object.keys(message.metadata).length > 0
          ? { metadata: message.metadata }
          : {}),
        data: e.data,
      })),
    };
  }

  app.get(
    '/v1/messages/:id',
    documented({
      tags,
      summary: 'A message with its recipients and events',
      security,
      params: { type: 'object', properties: { id: { type: 'string' } } },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'read');
      const { id } = request.params as { id: string };
      return details(await own(principal, id));
    },
  );

  app.get(
    '/v1/messages',
    documented({
      tags,
      summary: "The account's messages, newest first",
      security,
      querystring: {
        type: 'object',
        properties: {
          recipient: { type: 'string' },
          status: { type: 'string', enum: [...RECIPIENT_STATES] },
          tag: { type: 'string' },
          subject: {
            type: 'string',
            maxLength: 200,
            description: 'text the subject contains (ASCII case ignored)',
          },
          after: { type: 'string', format: 'date-time' },
          limit: { type: 'integer', minimum: 1, maximum: 100, default: 50 },
          cursor: { type: 'string', description: 'next_cursor of the previous page' },
        },
      },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'read');
      const q = request.query as Record<string, string | undefined>;
      const known = new Set(['recipient', 'status', 'tag', 'subject', 'after', 'limit', 'cursor']);
      for (const key of Object.keys(q)) {
        if (!known.has(key)) throw new ApiError('invalid_request', `unknown parameter "${key}"`, key);
      }
      if (q.status !== undefined && !(RECIPIENT_STATES as readonly string[]).includes(q.status)) {
        throw new ApiError(
          'invalid_request',
          `status must be one of ${RECIPIENT_STATES.join(', ')}`,
          'status',
        );
      }
      const limit = q.limit === undefined ? 50 : Number(q.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
        throw new ApiError('invalid_request', 'limit must be a whole number from 1 to 100', 'limit');
      }
      let after: number | undefined;
      try {
        after = parseSendAt(q.after);
      } catch {
        throw new ApiError('invalid_request', 'after must be an RFC 3339 date-time with a zone', 'after');
      }
      if (q.cursor !== undefined && !/^[\w-]{1,64}$/.test(q.cursor)) {
        throw new ApiError('invalid_request', 'cursor is not one this API gave', 'cursor');
      }
      const rows = await store.listMessages({
        accountId: principal.accountId,
        ...(q.recipient ? { recipient: q.recipient } : {}),
        ...(q.status ? { status: q.status as RecipientState } : {}),
        ...(q.tag ? { tag: q.tag } : {}),
        ...(q.subject ? { subject: q.subject.slice(0, 200) } : {}),
        ...(after === undefined ? {} : { after }),
        ...(q.cursor ? { before: q.cursor } : {}),
        limit,
      });
      const last = rows[rows.length - 1];
      return {
        data: rows.map((m) => ({
          ...messageBody(m),
          recipients: m.recipients.map((r) => ({ email: r.address, status: r.state })),
        })),
        next_cursor: rows.length === limit && last ? last.id : null,
      };
    },
  );

  app.delete(
    '/v1/messages/:id',
    documented({
      tags,
      summary: 'Cancel what is not delivered yet (scheduled, queued, deferred or held recipients)',
      security,
      params: { type: 'object', properties: { id: { type: 'string' } } },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'send');
      const { id } = request.params as { id: string };
      const message = await own(principal, id);
      const cancelled = await store.cancel(
        { messageId: message.id, accountId: principal.accountId },
        clock(),
        'cancelled through the API',
      );
      if (cancelled === 0) {
        throw new ApiError(
          'not_cancellable',
          'nothing left to cancel: every recipient is delivered, bounced or final',
          'id',
        );
      }
      return { cancelled, ...(await details(message)) };
    },
  );
}
