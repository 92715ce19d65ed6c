import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Store } from '../../src/store/store.ts';
import type { WebhookBatch, WebhookEndpoint } from '../../src/store/types.ts';
import { startWebhookDispatcher } from '../../src/webhooks/dispatcher.ts';
import type { WebhookSettings } from '../../src/webhooks/settings.ts';
import { feedEvent } from '../support/feed-events.ts';

const settings: WebhookSettings = {
  batchSize: 100,
  batchWaitMs: 1000,
  timeoutMs: 1000,
  retryFirstMs: 1000,
  retryForMs: 60_000,
  disableAfterMs: 60_000,
  concurrency: 1,
  policy: { allowPrivate: true, allowHosts: [] },
};

/** Just enough of a store for the dispatcher: events by id, endpoints, one cursor, batches kept. */
function fakeStore() {
  const events: number[] = [];
  const endpoints: WebhookEndpoint[] = [];
  const cursors = new Map<string, number>();
  const enqueued: WebhookBatch[] = [];
  const reads: number[] = [];
  /** Runs inside listWebhooks: what happens between the dispatcher's reads. */
  let duringList: (() => void) | undefined;
  const store = {
    async eventsAfter(afterId: number, limit: number) {
      reads.push(afterId);
      return events
        .filter((id) => id > afterId)
        .slice(0, limit)
        .map((id) => feedEvent(id, 'delivered'));
    },
    async lastEventId() {
      return events.at(-1) ?? 0;
    },
    async getEventCursor(name: string) {
      return cursors.get(name);
    },
    async setEventCursor(name: string, position: number) {
      cursors.set(name, position);
    },
    async listWebhooks() {
      duringList?.();
      duringList = undefined;
      return endpoints.map((e) => ({ ...e }));
    },
    async enqueueWebhookBatches(batches: WebhookBatch[], cursor?: { name: string; position: number }) {
      enqueued.push(...batches);
      if (cursor) cursors.set(cursor.name, cursor.position);
    },
    async dueWebhookBatches() {
      return [];
    },
  } as unknown as Store;
  return {
    store,
    events,
    endpoints,
    cursors,
    enqueued,
    reads,
    setDuringList: (f: () => void) => {
      duringList = f;
    },
  };
}

const endpoint = (createdAt: number, enabled = true): WebhookEndpoint => ({
  id: 'wh1',
  accountId: 'a',
  url: 'http://127.0.0.1:9/hook',
  secret: 'whsec_dGVzdA==',
  eventTypes: [],
  enabled,
  disabledReason: enabled ? '' : 'admin',
  disabledAt: enabled ? null : 1,
  failingSince: null,
  createdAt,
});

const silent = { warn: () => {}, info: () => {} };

describe('webhook dispatcher', () => {
  it('without an enabled endpoint reads no events and moves its cursor to the newest one read before the list', async () => {
    const s = fakeStore();
    const dispatcher = startWebhookDispatcher({
      store: s.store,
      settings,
      isLeader: () => true,
      logger: silent,
      autoStart: false,
    });
    s.events.push(1, 2, 3);
    s.endpoints.push(endpoint(0, false));
    await dispatcher.turn();
    assert.deepEqual(s.reads, [], 'a disabled endpoint wants nothing: no event is read');
    assert.equal(s.cursors.get('webhooks'), 3);

    // An event committed between the newest-id read and the (empty) list stays ahead of the
    // cursor: an endpoint created right after the list gets it.
    s.events.push(4);
    s.setDuringList(() => s.events.push(5));
    await dispatcher.turn();
    assert.equal(s.cursors.get('webhooks'), 4, 'not past what was newest before the list');
    assert.deepEqual(s.reads, []);
    s.endpoints[0] = endpoint(5);
    s.events.push(6);
    await dispatcher.turn();
    assert.equal(s.reads[0], 4, 'the first read starts at the cursor');
    assert.deepEqual(
      s.enqueued.map((b) => [b.firstEventId, b.lastEventId, b.count]),
      [[5, 6, 2]],
    );
    assert.equal(s.cursors.get('webhooks'), 6);
    await dispatcher.stop();
  });
});
