import { randomBytes } from 'node:crypto';
import type { FeedEvent } from '../events/feed.ts';
import { type EventQueryError, parseTime } from '../events/query.ts';
import { isPublicEventType, PUBLIC_EVENT_TYPES } from '../events/schema.ts';
import { newId } from '../store/ids.ts';
import type { Store } from '../store/store.ts';
import type { WebhookAttempt, WebhookBatch, WebhookEndpoint } from '../store/types.ts';
import { post } from './attempt.ts';
import type { PostResult } from './http-post.ts';
import { batchBody, makeBatches, wants } from './payload.ts';
import type { WebhookSettings } from './settings.ts';
import { newWebhookSecret } from './signing.ts';
import { type LookupAll, parseWebhookUrl, resolveTarget, WebhookTargetError } from './target.ts';

/** A request the webhook service refuses; `field` names the offending input. */
export class WebhookError extends Error {
  readonly code: 'invalid_request' | 'not_found';
  readonly field: string;
  constructor(code: 'invalid_request' | 'not_found', message: string, field: string) {
    super(message);
    this.name = 'WebhookError';
    this.code = code;
    this.field = field;
  }
}

/** Endpoints per account: enough for any integration, few enough that every event stays cheap. */
export const MAX_WEBHOOKS_PER_ACCOUNT = 20;
/** Events one replay call may queue; a longer range is replayed in several calls. */
export const MAX_REPLAY_EVENTS = 10_000;
/** Pages of 1000 events one replay call looks at (a narrow type filter over a long range). */
const MAX_REPLAY_PAGES = 100;

/** An endpoint as listings show it: never the secret. */
export type WebhookView = Omit<WebhookEndpoint, 'secret'>;

export function withoutSecret(w: WebhookEndpoint): WebhookView {
  const { secret: _secret, ...view } = w;
  return view;
}

export interface ReplayRange {
  fromEventId?: number;
  toEventId?: number;
  from?: string;
  to?: string;
}

/** The API's and CLI's view of webhooks (create, list, delete, test, replay, attempts). */
export function createWebhooks(deps: {
  store: Store;
  settings: WebhookSettings;
  clock?: () => number;
  lookupAll?: LookupAll;
}) {
  const { store, settings } = deps;
  const clock = deps.clock ?? Date.now;

  const owned = async (accountId: string, id: string): Promise<WebhookEndpoint> => {
    const w = await store.getWebhook(id);
    if (!w || w.accountId !== accountId)
      throw new WebhookError('not_found', `no webhook ${id.slice(0, 40)}`, 'id');
    return w;
  };

  return {
    /** Stores an endpoint after checking its URL and target (SSRF guard); the secret is returned only here. */
    async create(input: { accountId: string; url: unknown; events?: unknown }): Promise<WebhookEndpoint> {
      if (typeof input.url !== 'string') throw new WebhookError('invalid_request', 'url is required', 'url');
      let eventTypes: string[] = [];
      if (input.events !== undefined && input.events !== null) {
        if (!Array.isArray(input.events) || input.events.some((t) => typeof t !== 'string')) {
          throw new WebhookError('invalid_request', 'events is a list of event types', 'events');
        }
        for (const [i, t] of (input.events as string[]).entries()) {
          if (!isPublicEventType(t)) {
            throw new WebhookError(
              'invalid_request',
              `unknown event type "${t.slice(0, 40)}"; one of ${PUBLIC_EVENT_TYPES.join(', ')}`,
              `events[${i}]`,
            );
          }
        }
        eventTypes = [...new Set(input.events as string[])];
      }
      try {
        await resolveTarget(parseWebhookUrl(input.url), settings.policy, deps.lookupAll);
      } catch (err) {
        if (err instanceof WebhookTargetError) throw new WebhookError('invalid_request', err.message, 'url');
        throw err;
      }
      if ((await store.listWebhooks(input.accountId)).length >= MAX_WEBHOOKS_PER_ACCOUNT) {
        throw new WebhookError(
          'invalid_request',
          `at most ${MAX_WEBHOOKS_PER_ACCOUNT} webhooks per account`,
          'url',
        );
      }
      const now = clock();
      const endpoint: WebhookEndpoint = {
        id: `wh_${newId(now)}`,
        accountId: input.accountId,
        url: input.url,
        secret: newWebhookSecret(),
        eventTypes,
        enabled: true,
        disabledReason: '',
        disabledAt: null,
        failingSince: null,
        createdAt: now,
      };
      await store.createWebhook(endpoint);
      return endpoint;
    },

    async list(accountId: string): Promise<WebhookView[]> {
      return (await store.listWebhooks(accountId)).map(withoutSecret);
    },

    async get(accountId: string, id: string): Promise<WebhookView> {
      return withoutSecret(await owned(accountId, id));
    },

    async remove(accountId: string, id: string): Promise<void> {
      if (!(await store.deleteWebhook(accountId, id, clock()))) {
        throw new WebhookError('not_found', `no webhook ${id.slice(0, 40)}`, 'id');
      }
    },

    /** Sends one sample event now (signed like any batch) and answers what the endpoint said. */
    async test(accountId: string, id: string): Promise<PostResult & { id: string }> {
      const endpoint = await owned(accountId, id);
      const now = clock();
      const body = batchBody(
        [
          {
            id: 0,
            at: now,
            type: 'delivered',
            messageId: 'test',
            recipientId: null,
            accountId,
            recipient: 'test@example.com',
            data: { test: true, reply: { code: 250, text: 'this is a test event from postbote' } },
            recipientOrdinal: null,
            stream: 'outbound',
            tags: [],
            metadata: {},
          },
        ],
        now,
      );
      const batchId = `test_${randomBytes(8).toString('hex')}`;
      const result = await post(
        { settings, clock, ...(deps.lookupAll ? { lookupAll: deps.lookupAll } : {}) },
        endpoint,
        {
          id: batchId,
          body,
        },
      );
      const ok = result.status >= 200 && result.status < 300;
      const batch: WebhookBatch = {
        id: batchId,
        webhookId: endpoint.id,
        accountId,
        kind: 'test',
        firstEventId: 0,
        lastEventId: 0,
        count: 1,
        body,
        state: ok ? 'delivered' : 'failed',
        attempts: 1,
        nextAttemptAt: now,
        createdAt: now,
        updatedAt: now,
        lastError: result.error,
      };
      await store.enqueueWebhookBatches([batch]);
      await store.recordWebhookAttempt(
        {
          batchId,
          webhookId: endpoint.id,
          at: clock(),
          status: result.status,
          error: result.error,
          durationMs: result.durationMs,
        },
        { state: batch.state, attempts: 1, nextAttemptAt: now, lastError: result.error },
      );
      return { id: batchId, ...result };
    },

    /**
     * Queues the account's events in a range again for this endpoint (its type filter applies),
     * by id (`fromEventId`..`toEventId`, inclusive) or by time (`from` inclusive, `to` exclusive).
     * At most MAX_REPLAY_EVENTS per call: `nextFromEventId` says where the next call goes on.
     */
    async replay(
      accountId: string,
      id: string,
      range: ReplayRange,
    ): Promise<{ events: number; batches: number; nextFromEventId: number | null }> {
      const endpoint = await owned(accountId, id);
      let from: number | undefined;
      let to: number | undefined;
      try {
        if (range.from !== undefined) from = parseTime(range.from, 'from');
        if (range.to !== undefined) to = parseTime(range.to, 'to');
      } catch (err) {
        const e = err as EventQueryError;
        throw new WebhookError('invalid_request', e.message, e.field);
      }
      for (const [key, value] of [
        ['from_event_id', range.fromEventId],
        ['to_event_id', range.toEventId],
      ] as const) {
        if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
          throw new WebhookError('invalid_request', `${key} must be a whole number ≥ 0`, key);
        }
      }
      if (range.fromEventId === undefined && from === undefined) {
        throw new WebhookError('invalid_request', 'give from_event_id or from (a time)', 'from_event_id');
      }
      const events: FeedEvent[] = [];
      let afterId = range.fromEventId === undefined ? 0 : range.fromEventId - 1;
      // Where the next call goes on, when this one stops before the end of the range.
      let nextFrom: number | null = null;
      const all = { ...endpoint, enabled: true, createdAt: 0 };
      for (let pages = 0; nextFrom === null; pages++) {
        if (pages === MAX_REPLAY_PAGES) {
          nextFrom = afterId + 1;
          break;
        }
        const page = await store.listEvents({
          accountId,
          ascending: true,
          afterId,
          ...(range.toEventId === undefined ? {} : { beforeId: range.toEventId + 1 }),
          ...(from === undefined ? {} : { from }),
          ...(to === undefined ? {} : { to }),
          limit: 1000,
        });
        for (const e of page) {
          if (!wants(all, e)) continue;
          if (events.length === MAX_REPLAY_EVENTS) {
            nextFrom = e.id;
            break;
          }
          events.push(e);
        }
        const last = page.at(-1);
        if (!last || page.length < 1000) break;
        afterId = last.id;
      }
      const batches = makeBatches({
        endpoint,
        events,
        size: settings.batchSize,
        kind: 'replay',
        idPrefix: `rpl_${randomBytes(6).toString('hex')}`,
        now: clock(),
      });
      await store.enqueueWebhookBatches(batches);
      return { events: events.length, batches: batches.length, nextFromEventId: nextFrom };
    },

    async attempts(accountId: string, id: string, limit = 50): Promise<WebhookAttempt[]> {
      await owned(accountId, id);
      return store.listWebhookAttempts(id, limit);
    },
  };
}

export type Webhooks = ReturnType<typeof createWebhooks>;
