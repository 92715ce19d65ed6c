import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newId } from '../../src/store/ids.ts';
import type { Store } from '../../src/store/store.ts';
import { EVENT_WRITE_SLACK_MS, type WebhookBatch, type WebhookEndpoint } from '../../src/store/types.ts';
import { withStoreOf } from '../store/adapters.ts';
import { sampleMessage, T0 } from '../store/contract.ts';

/**
 * The event log's part of the Store contract (listEvents, eventsAfter, cursors, appendEvents,
 * webhook tables): every adapter setup runs it (test/events/store.test.ts).
 */
export function eventsStoreContract(
  name: string,
  open: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
): void {
  const withStore = withStoreOf(open);

  async function account(store: Store, accountName: string): Promise<string> {
    const id = newId(T0);
    await store.createAccount({ id, name: accountName, createdAt: T0 });
    return id;
  }

  describe(`${name}: event log`, () => {
    it('labels events with their message stream and tags, pages newest first by id, keeps accounts apart', async () => {
      await withStore(async (store) => {
        const a = await account(store, 'a');
        const b = await account(store, 'b');
        const news = sampleMessage(a, ['x@one.test', 'y@one.test'], {
          stream: 'broadcast',
          kind: 'broadcast',
          tags: ['news', 'nov'],
          metadata: { campaign: 'c1' },
          receivedAt: T0,
        });
        const plain = sampleMessage(a, ['x@one.test'], { receivedAt: T0 + 1000 });
        const other = sampleMessage(b, ['x@one.test'], { tags: ['news'], receivedAt: T0 + 2000 });
        await store.insertMessages([news]);
        await store.insertMessages([plain]);
        await store.insertMessages([other]);

        const all = await store.listEvents({ accountId: a });
        assert.deepEqual(
          all.map((e) => [e.type, e.messageId, e.recipient, e.stream, e.tags, e.recipientOrdinal]),
          [
            ['accepted', plain.id, 'x@one.test', 'outbound', [], 0],
            ['accepted', news.id, 'y@one.test', 'broadcast', ['news', 'nov'], 1],
            ['accepted', news.id, 'x@one.test', 'broadcast', ['news', 'nov'], 0],
          ],
        );
        assert.deepEqual(all[1]?.metadata, { campaign: 'c1' });
        assert.ok((all[0]?.id ?? 0) > (all[1]?.id ?? 0));

        const tagged = await store.listEvents({ accountId: a, tag: 'news' });
        assert.deepEqual(
          tagged.map((e) => e.messageId),
          [news.id, news.id],
          'the tag filter never crosses accounts',
        );
        assert.equal((await store.listEvents({ accountId: a, stream: 'broadcast' })).length, 2);
        assert.equal((await store.listEvents({ accountId: a, stream: 'outbound' })).length, 1);
        assert.deepEqual(
          (await store.listEvents({ accountId: a, recipient: 'y@one.test' })).map((e) => e.messageId),
          [news.id],
        );
        assert.equal((await store.listEvents({ accountId: a, messageId: other.id })).length, 0);
        assert.equal((await store.listEvents({ accountId: b, messageId: other.id })).length, 1);

        // Keyset paging: the second page starts below the first page's last id.
        const page1 = await store.listEvents({ accountId: a, limit: 2 });
        const page2 = await store.listEvents({ accountId: a, limit: 2, beforeId: page1.at(-1)?.id });
        assert.deepEqual(
          [...page1, ...page2].map((e) => e.id),
          all.map((e) => e.id),
        );
        const up = await store.listEvents({ accountId: a, ascending: true, afterId: all[2]?.id });
        assert.deepEqual(
          up.map((e) => e.id),
          [all[1]?.id, all[0]?.id],
        );
      });
    });

    it('filters by type and time (from inclusive, to exclusive)', async () => {
      await withStore(async (store) => {
        const a = await account(store, 'a');
        const m1 = sampleMessage(a, ['x@one.test'], { receivedAt: T0 });
        const m2 = sampleMessage(a, ['x@one.test'], { receivedAt: T0 + 60_000 });
        const m3 = sampleMessage(a, ['x@one.test'], { receivedAt: T0 + 3_600_000 });
        for (const m of [m1, m2, m3]) await store.insertMessages([m]);
        await store.cancel({ messageId: m2.id }, T0 + 3_600_001);
        const times = async (from?: number, to?: number) =>
          (await store.listEvents({ accountId: a, from, to, types: ['accepted'] })).map((e) => e.at);
        assert.deepEqual(await times(), [T0 + 3_600_000, T0 + 60_000, T0]);
        assert.deepEqual(await times(T0 + 60_000), [T0 + 3_600_000, T0 + 60_000]);
        assert.deepEqual(await times(undefined, T0 + 60_000), [T0]);
        assert.deepEqual(await times(T0 + 1, T0 + 3_600_000), [T0 + 60_000]);
        assert.deepEqual(
          (await store.listEvents({ accountId: a, types: ['cancelled'] })).map((e) => e.messageId),
          [m2.id],
        );
        assert.equal((await store.listEvents({ accountId: a, types: ['accepted', 'cancelled'] })).length, 4);
      });
    });

    it('time bounds hold for events written out of time order (within the write slack) and across gaps in the ids', async () => {
      await withStore(async (store) => {
        const a = await account(store, 'a');
        // Written in this order; each is up to a whole slack older than its place in the order
        // (a late writer), never more: times go backwards here and there.
        let seed = 7;
        const random = () => {
          seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
          return seed / 2 ** 31;
        };
        const times = Array.from(
          { length: 400 },
          (_, i) => T0 + i * 30_000 - Math.floor(random() * EVENT_WRITE_SLACK_MS),
        );
        const ids = await store.appendEvents(
          times.map((at, i) => ({ at, type: 'domain_status_changed', accountId: a, data: { i } })),
        );
        // Gaps: the oldest events go (ids stay as they were).
        await store.purgeEventLog({ before: T0 - EVENT_WRITE_SLACK_MS + 40 * 30_000, limit: 1000 });
        const left = new Set((await store.listEvents({ accountId: a, limit: 1000 })).map((e) => e.id));
        assert.ok(left.size > 300 && left.size < 400, `${left.size} left after the purge`);
        const kept = ids.map((id, i) => ({ id, at: times[i] ?? 0 })).filter((e) => left.has(e.id));
        for (const [from, to] of [
          [T0 + 1_000_000, T0 + 2_000_000],
          [T0 - EVENT_WRITE_SLACK_MS, T0 + 500_000],
          [T0 + 11_000_000, undefined],
          [undefined, T0 + 3_000_000],
          [T0 + 20_000_000, undefined],
          [undefined, T0 - 10 * EVENT_WRITE_SLACK_MS],
        ] as [number | undefined, number | undefined][]) {
          const got = (await store.listEvents({ accountId: a, from, to, limit: 1000, ascending: true })).map(
            (e) => e.id,
          );
          const want = kept
            .filter((e) => (from === undefined || e.at >= from) && (to === undefined || e.at < to))
            .map((e) => e.id);
          assert.deepEqual(got, want, `from ${from} to ${to}`);
        }
      });
    });

    it('finds the events of an address with and without a recipient row', async () => {
      await withStore(async (store) => {
        const a = await account(store, 'a');
        const m = sampleMessage(a, ['x@one.test', 'y@one.test'], { receivedAt: T0 });
        await store.insertMessages([m]);
        await store.appendEvents([
          { at: T0 + 1, type: 'unsubscribed', accountId: a, recipient: 'x@one.test', data: {} },
          { at: T0 + 2, type: 'unsubscribed', accountId: a, recipient: 'z@one.test', data: {} },
        ]);
        const of = async (recipient: string) =>
          (await store.listEvents({ accountId: a, recipient })).map((e) => [e.type, e.recipient]);
        assert.deepEqual(await of('x@one.test'), [
          ['unsubscribed', 'x@one.test'],
          ['accepted', 'x@one.test'],
        ]);
        assert.deepEqual(await of('z@one.test'), [['unsubscribed', 'z@one.test']]);
        // A page holding only the second recipient's events still numbers it within its message.
        assert.deepEqual(
          (await store.listEvents({ accountId: a, recipient: 'y@one.test' })).map((e) => e.recipientOrdinal),
          [1],
        );
        assert.deepEqual(
          (await store.listEvents({ accountId: a, recipient: 'x@one.test' })).map((e) => e.recipientOrdinal),
          [null, 0],
          'an event without a recipient row has no position',
        );
        assert.deepEqual(await of('w@one.test'), []);
        const b = await account(store, 'b');
        assert.deepEqual(
          (await store.listEvents({ accountId: b, recipient: 'x@one.test' })).map((e) => e.id),
          [],
          'never across accounts',
        );
      });
    });

    it('appends events about no message, and feeds every event in id order with cursors', async () => {
      await withStore(async (store) => {
        const a = await account(store, 'a');
        assert.equal(await store.lastEventId(), 0);
        const [domainEvent] = await store.appendEvents([
          {
            at: T0,
            type: 'domain_status_changed',
            accountId: a,
            data: { domain: 'one.test', changes: ['verified'] },
          },
        ]);
        const m = sampleMessage(a, ['x@one.test'], { tags: ['t'], receivedAt: T0 + 1 });
        await store.insertMessages([m]);
        const fed = await store.eventsAfter(0, 10);
        assert.deepEqual(
          fed.map((e) => [e.type, e.messageId, e.stream, e.tags, e.recipientOrdinal]),
          [
            ['domain_status_changed', '', '', [], null],
            ['accepted', m.id, 'outbound', ['t'], 0],
          ],
        );
        assert.equal(fed[0]?.id, domainEvent);
        assert.deepEqual(fed[0]?.data, { domain: 'one.test', changes: ['verified'] });
        assert.deepEqual(await store.eventsAfter(fed[0]?.id ?? 0, 10), fed.slice(1));
        assert.equal(await store.lastEventId(), fed[1]?.id);
        const [m2] = await store.listEvents({ accountId: a, types: ['domain_status_changed'] });
        assert.equal(m2?.id, domainEvent);

        assert.equal(await store.getEventCursor('webhooks'), undefined);
        await store.setEventCursor('webhooks', 5, T0);
        await store.setEventCursor('webhooks', 7, T0 + 1);
        await store.setEventCursor('stats', 1, T0);
        assert.equal(await store.getEventCursor('webhooks'), 7);
        assert.equal(await store.getEventCursor('stats'), 1);
      });
    });
  });

  describe(`${name}: webhooks`, () => {
    const endpoint = (accountId: string, id = newId(T0)): WebhookEndpoint => ({
      id,
      accountId,
      url: 'https://hooks.example/in',
      secret: 'whsec_c2VjcmV0',
      eventTypes: ['delivered', 'bounced'],
      enabled: true,
      disabledReason: '',
      disabledAt: null,
      failingSince: null,
      createdAt: T0,
    });
    const batch = (w: WebhookEndpoint, id: string, due: number): WebhookBatch => ({
      id,
      webhookId: w.id,
      accountId: w.accountId,
      kind: 'events',
      firstEventId: 1,
      lastEventId: 2,
      count: 2,
      body: '{"events":[]}',
      state: 'pending',
      attempts: 0,
      nextAttemptAt: due,
      createdAt: T0,
      updatedAt: T0,
      lastError: '',
    });

    it('stores endpoints per account, batches with the cursor, attempts, and disables', async () => {
      await withStore(async (store) => {
        const a = await account(store, 'a');
        const b = await account(store, 'b');
        const wa = endpoint(a);
        const wb = endpoint(b);
        await store.createWebhook(wa);
        await store.createWebhook(wb);
        assert.deepEqual(await store.getWebhook(wa.id), wa);
        assert.deepEqual(
          (await store.listWebhooks(a)).map((w) => w.id),
          [wa.id],
        );
        assert.equal((await store.listWebhooks()).length, 2);

        await store.enqueueWebhookBatches(
          [batch(wa, 'b1', T0), batch(wa, 'b2', T0 + 5000), batch(wb, 'b3', T0)],
          {
            name: 'webhooks',
            position: 2,
            now: T0,
          },
        );
        // The same batch again (a re-read after a crash) is not stored twice.
        await store.enqueueWebhookBatches([batch(wa, 'b1', T0)]);
        assert.equal(await store.getEventCursor('webhooks'), 2);
        assert.deepEqual((await store.dueWebhookBatches(T0, 10)).map((x) => x.id).sort(), ['b1', 'b3']);
        await store.recordWebhookAttempt(
          { batchId: 'b1', webhookId: wa.id, at: T0 + 10, status: 503, error: 'HTTP 503', durationMs: 12 },
          { state: 'pending', attempts: 1, nextAttemptAt: T0 + 30_000, lastError: 'HTTP 503' },
        );
        await store.recordWebhookAttempt(
          { batchId: 'b3', webhookId: wb.id, at: T0 + 10, status: 200, error: '', durationMs: 3 },
          { state: 'delivered', attempts: 1, nextAttemptAt: T0 + 10, lastError: '' },
        );
        assert.deepEqual(
          (await store.dueWebhookBatches(T0 + 10_000, 10)).map((x) => x.id),
          ['b2'],
        );
        const attempts = await store.listWebhookAttempts(wa.id, 10);
        assert.deepEqual(
          attempts.map((x) => [x.batchId, x.status, x.error]),
          [['b1', 503, 'HTTP 503']],
        );
        const b1 = (await store.listWebhookBatches(wa.id, 10)).find((x) => x.id === 'b1');
        assert.deepEqual([b1?.state, b1?.attempts, b1?.lastError], ['pending', 1, 'HTTP 503']);

        // A disabled endpoint's batches are not due; failing them ends them.
        await store.updateWebhook(wa.id, { enabled: false, disabledReason: 'gone', disabledAt: T0 + 20 });
        assert.deepEqual(await store.dueWebhookBatches(T0 + 60_000, 10), []);
        const w = await store.getWebhook(wa.id);
        assert.deepEqual([w?.enabled, w?.disabledReason, w?.disabledAt], [false, 'gone', T0 + 20]);
        assert.equal(await store.failWebhookBatches(wa.id, 'endpoint disabled', T0 + 20), 2);

        assert.equal(await store.deleteWebhook(a, wb.id, T0), false, 'not the account of the webhook');
        assert.equal(await store.deleteWebhook(b, wb.id, T0), true);
        assert.equal(await store.getWebhook(wb.id), undefined);
        assert.deepEqual(
          (await store.listWebhooks()).map((x) => x.id),
          [wa.id],
        );
      });
    });

    it('purgeEventLog: old attempts, finished batches and message-less events go, by account scope', async () => {
      await withStore(async (store) => {
        const a = await account(store, 'a');
        const b = await account(store, 'b');
        const wa = endpoint(a);
        const wb = endpoint(b);
        await store.createWebhook(wa);
        await store.createWebhook(wb);
        const aged = (x: WebhookBatch, at: number): WebhookBatch => ({ ...x, createdAt: at, updatedAt: at });
        await store.enqueueWebhookBatches([
          aged(batch(wa, 'old-done', T0), T0 - 100),
          aged(batch(wa, 'old-pending', T0), T0 - 100),
          aged(batch(wa, 'new-done', T0), T0 + 100),
          aged(batch(wb, 'b-old-done', T0), T0 - 100),
        ]);
        const done = { state: 'delivered' as const, attempts: 1, nextAttemptAt: T0, lastError: '' };
        for (const [id, webhookId, at] of [
          ['old-done', wa.id, T0 - 100],
          ['new-done', wa.id, T0 + 100],
          ['b-old-done', wb.id, T0 - 100],
        ] as const) {
          await store.recordWebhookAttempt(
            { batchId: id, webhookId, at, status: 200, error: '', durationMs: 1 },
            done,
          );
        }
        const domainEvent = (accountId: string, at: number) => ({
          at,
          type: 'domain_status_changed' as const,
          accountId,
          data: { domain: 'shop.test' },
        });
        await store.appendEvents([
          domainEvent(a, T0 - 100),
          domainEvent(a, T0 + 100),
          domainEvent(b, T0 - 100),
        ]);

        assert.deepEqual(await store.webhookBacklog(), { batches: 1, events: 2 }, 'the one pending batch');
        // Account b has its own (longer) retention: the default pass leaves it alone.
        assert.equal(await store.purgeEventLog({ before: T0, limit: 10, exceptAccountIds: [b] }), 4);
        assert.deepEqual(
          (await store.listWebhookBatches(wa.id, 10)).map((x) => x.id).sort(),
          ['new-done', 'old-pending'],
          'a pending batch stays whatever its age',
        );
        assert.deepEqual(
          (await store.listWebhookAttempts(wa.id, 10)).map((x) => x.batchId),
          ['new-done'],
        );
        assert.deepEqual(
          (await store.listWebhookBatches(wb.id, 10)).map((x) => x.id),
          ['b-old-done'],
        );
        const left = async (accountId: string) =>
          (await store.listEvents({ accountId, limit: 10 })).map((e) => e.at);
        assert.deepEqual(await left(a), [T0 + 100]);
        assert.deepEqual(await left(b), [T0 - 100]);
        assert.equal(await store.purgeEventLog({ before: T0, limit: 10, accountId: b }), 2);
        assert.deepEqual(await left(b), []);
      });
    });
  });
}
