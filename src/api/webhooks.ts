import type { FastifyInstance } from 'fastify';
import { type Audit, credentialActor } from '../audit/audit.ts';
import { PUBLIC_EVENT_TYPES } from '../events/schema.ts';
import type { WebhookAttempt } from '../store/types.ts';
import { WebhookError, type Webhooks, type WebhookView } from '../webhooks/webhooks.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function webhookBody(w: WebhookView) {
  return {
    id: w.id,
    url: w.url,
    events: w.eventTypes,
    enabled: w.enabled,
    disabled_reason: w.disabledReason || null,
    disabled_at: iso(w.disabledAt),
    failing_since: iso(w.failingSince),
    created_at: iso(w.createdAt),
  };
}

function attemptBody(a: WebhookAttempt) {
  return {
    batch_id: a.batchId,
    at: iso(a.at),
    status: a.status,
    error: a.error || null,
    duration_ms: a.durationMs,
  };
}

const webhookSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    url: { type: 'string' },
    events: { type: 'array', items: { type: 'string' }, description: '[] = every type' },
    enabled: { type: 'boolean' },
    disabled_reason: { type: ['string', 'null'], description: 'gone (410), failing (a day of failures)' },
    disabled_at: { type: ['string', 'null'] },
    failing_since: { type: ['string', 'null'] },
    created_at: { type: 'string' },
  },
} as const;

const asApiError = (err: unknown): never => {
  if (err instanceof WebhookError) throw new ApiError(err.code, err.message, err.field);
  throw err;
};

/**
 * /v1/webhooks: an account's endpoints (scope `admin`). The secret (`whsec_…`) is in the answer
 * to POST only; listings never show it. Every route finds webhooks through the key's account,
 * so another account's webhook id is simply not found.
 */
export function registerWebhookRoutes(
  app: FastifyInstance,
  deps: { webhooks: Webhooks; keys: KeyGate; audit?: Audit },
): void {
  const { webhooks, keys } = deps;
  const tags = ['webhooks'];
  const idParam = { type: 'object', properties: { id: { type: 'string' } } } as const;

  app.post(
    '/v1/webhooks',
    documented({
      tags,
      summary: 'Create an endpoint; the answer carries its signing secret, shown this once',
      description:
        'Requests are JSON batches `{type, timestamp, data: {events: […]}}` signed per Standard Webhooks ' +
        '(`webhook-id`, `webhook-timestamp`, `webhook-signature`). Targets on loopback, private or link-local ' +
        'addresses are refused unless the server allows them.',
      security,
      body: {
        type: 'object',
        required: ['url'],
        properties: {
          url: { type: 'string', format: 'uri' },
          events: {
            type: 'array',
            items: { type: 'string', enum: [...PUBLIC_EVENT_TYPES] },
            description: 'omitted = all',
          },
        },
      },
      response: {
        201: { type: 'object', properties: { ...webhookSchema.properties, secret: { type: 'string' } } },
        '4xx': errorSchema,
      },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const body = (request.body ?? {}) as { url?: unknown; events?: unknown };
      if (typeof body !== 'object' || Array.isArray(body))
        throw new ApiError('invalid_request', 'the body is {url, events?}');
      for (const key of Object.keys(body)) {
        if (key !== 'url' && key !== 'events')
          throw new ApiError('invalid_request', `unknown field "${key.slice(0, 40)}"`, key);
      }
      const created = await webhooks
        .create({ accountId: principal.accountId, url: body.url, events: body.events })
        .catch(asApiError);
      await deps.audit?.record({
        actor: credentialActor(principal.credentialId),
        accountId: principal.accountId,
        action: 'webhook.create',
        target: created.id,
        details: { url: created.url },
      });
      return reply.code(201).send({ ...webhookBody(created), secret: created.secret });
    },
  );

  app.get(
    '/v1/webhooks',
    documented({ tags, summary: "The account's endpoints (without secrets)", security }),
    async (request) => {
      const principal = await authorize(keys, request, 'admin');
      return { data: (await webhooks.list(principal.accountId)).map(webhookBody) };
    },
  );

  app.get(
    '/v1/webhooks/:id',
    documented({ tags, summary: 'One endpoint with its latest attempts', security, params: idParam }),
    async (request) => {
      const principal = await authorize(keys, request, 'admin');
      const { id } = request.params as { id: string };
      const w = await webhooks.get(principal.accountId, id).catch(asApiError);
      const attempts = await webhooks.attempts(principal.accountId, id, 50);
      return { ...webhookBody(w), attempts: attempts.map(attemptBody) };
    },
  );

  app.delete(
    '/v1/webhooks/:id',
    documented({
      tags,
      summary: 'Delete an endpoint (its pending batches are dropped)',
      security,
      params: idParam,
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const { id } = request.params as { id: string };
      await webhooks.remove(principal.accountId, id).catch(asApiError);
      await deps.audit?.record({
        actor: credentialActor(principal.credentialId),
        accountId: principal.accountId,
        action: 'webhook.delete',
        target: id,
      });
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/webhooks/:id/test',
    documented({
      tags,
      summary: 'Send a sample event now; answers what the endpoint replied',
      security,
      params: idParam,
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'admin');
      const { id } = request.params as { id: string };
      const r = await webhooks.test(principal.accountId, id).catch(asApiError);
      return {
        webhook_id: r.id,
        ok: r.status >= 200 && r.status < 300,
        status: r.status,
        error: r.error || null,
        duration_ms: r.durationMs,
      };
    },
  );

  app.post(
    '/v1/webhooks/:id/replay',
    documented({
      tags,
      summary: 'Queue the events of a range again for this endpoint (by event id, inclusive, or by time)',
      description:
        '`{from_event_id, to_event_id?}` or `{from, to?}` (RFC 3339; from inclusive, to exclusive). At most ' +
        '10,000 events per call; `next_from_event_id` says where to go on.',
      security,
      params: idParam,
      body: {
        type: 'object',
        properties: {
          from_event_id: { type: 'integer', minimum: 0 },
          to_event_id: { type: 'integer', minimum: 0 },
          from: { type: 'string', format: 'date-time' },
          to: { type: 'string', format: 'date-time' },
        },
      },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const { id } = request.params as { id: string };
      const body = (request.body ?? {}) as Record<string, unknown>;
      const int = (key: string): number | undefined => {
        const v = body[key];
        if (v === undefined) return undefined;
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
          throw new ApiError('invalid_request', `${key} must be a whole number ≥ 0`, key);
        }
        return v;
      };
      const str = (key: string): string | undefined => {
        const v = body[key];
        if (v === undefined) return undefined;
        if (typeof v !== 'string')
          throw new ApiError('invalid_request', `${key} must be an RFC 3339 time`, key);
        return v;
      };
      const range = {
        fromEventId: int('from_event_id'),
        toEventId: int('to_event_id'),
        from: str('from'),
        to: str('to'),
      };
      const r = await webhooks
        .replay(
          principal.accountId,
          id,
          Object.fromEntries(Object.entries(range).filter(([, v]) => v !== undefined)),
        )
        .catch(asApiError);
      return reply
        .code(202)
        .send({ events: r.events, batches: r.batches, next_from_event_id: r.nextFromEventId });
    },
  );
}
