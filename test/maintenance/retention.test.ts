import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { type RetentionStore, runRetention } from '../../src/maintenance/retention.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { PurgeBatch } from '../../src/store/types.ts';
import { sampleMessage, T0 } from '../store/contract.ts';
import { tempDir } from '../support/temp-dir.ts';

const DAY = 86_400_000;
const policy = { bodiesMs: 7 * DAY, metadataMs: 90 * DAY };

/** A store with `due` messages, bodies and shaping events to delete, recording every call. */
function fakeStore(due: { messages: number; bodies: number; shaping?: number; log?: number }) {
  const calls: string[] = [];
  const left = { shaping: 0, log: 0, ...due };
  const take = (kind: 'messages' | 'bodies' | 'shaping' | 'log', batch: PurgeBatch): number => {
    const n = Math.min(left[kind], batch.limit);
    left[kind] -= n;
    calls.push(`${kind} before=${(T0 - batch.before) / DAY}d limit=${batch.limit} -> ${n}`);
    return n;
  };
  const store: RetentionStore = {
    purgeMessages: async (batch) => take('messages', batch),
    purgeBodies: async (batch) => take('bodies', batch),
    purgeShapingEvents: async (batch) => take('shaping', batch),
    purgeEventLog: async (batch) => take('log', batch),
  };
  return { store, calls };
}

describe('runRetention', () => {
  it('deletes old messages first, then old bodies, then old shaping events and the event log, in batches until one comes back short', async () => {
    const { store, calls } = fakeStore({ messages: 5, bodies: 4, shaping: 1, log: 3 });
    const result = await runRetention(store, policy, T0, { batchSize: 2 });
    assert.deepEqual(result, { messages: 5, bodies: 4, shapingEvents: 1, eventLog: 3, complete: true });
    assert.deepEqual(calls, [
      'messages before=90d limit=2 -> 2',
      'messages before=90d limit=2 -> 2',
      'messages before=90d limit=2 -> 1',
      'bodies before=7d limit=2 -> 2',
      'bodies before=7d limit=2 -> 2',
      'bodies before=7d limit=2 -> 0',
      'shaping before=90d limit=2 -> 1',
      'log before=90d limit=2 -> 2',
      'log before=90d limit=2 -> 1',
    ]);
  });

  it('lets the event loop run between batches', async () => {
    const { store, calls } = fakeStore({ messages: 3, bodies: 0 });
    // Work queued while retention runs gets its turn before the next batch, not after the run.
    const order: string[] = [];
    const run = runRetention(store, policy, T0, { batchSize: 1 });
    setImmediate(() => order.push(`other work after ${calls.length} batch(es)`));
    await run;
    order.push('retention done');
    assert.deepEqual(order, ['other work after 1 batch(es)', 'retention done']);
  });

  it('stops between batches when its signal is aborted, reporting what it did', async () => {
    const { store, calls } = fakeStore({ messages: 10, bodies: 10 });
    const controller = new AbortController();
    const result = await runRetention(store, policy, T0, {
      batchSize: 3,
      signal: controller.signal,
      pause: async () => {
        if (calls.length === 2) controller.abort();
      },
    });
    assert.deepEqual(result, { messages: 6, bodies: 0, shapingEvents: 0, eventLog: 0, complete: false });
    assert.equal(calls.length, 2);
  });

  it('refuses a batch size that would never finish', async () => {
    const { store } = fakeStore({ messages: 1, bodies: 1 });
    await assert.rejects(runRetention(store, policy, T0, { batchSize: 0 }), RangeError);
  });

  it('on a real store: keeps unfinished and recent mail, counts what it removed', async () => {
    const dir = tempDir();
    const store = new SqliteStore(join(dir.path, 'postbote.db'));
    try {
      await store.migrate();
      await store.createAccount({ id: 'a1', name: 'shop', createdAt: T0 });
      const at = (daysAgo: number) =>
        sampleMessage('a1', [`r${daysAgo}@one.test`], { receivedAt: T0 - daysAgo * DAY });
      const ancient = [100, 120, 91].map(at);
      // A tagged one: its events' rows in the event log's tag index go with it.
      const tagged = ancient[0];
      if (tagged) tagged.tags = ['newsletter', 'nov'];
      const old = [8, 30, 60, 89].map(at);
      const recent = at(6);
      const waiting = at(200);
      await store.insertMessages([...ancient, ...old, recent, waiting]);
      for (const m of [...ancient, ...old, recent]) await store.cancel({ messageId: m.id }, T0);
      const throttle = (at: number, until: number) => ({
        at,
        nodeId: 'n1',
        type: 'triggered' as const,
        rule: 'generic-421-try-again-later',
        kind: 'throttle' as const,
        scopeKey: 'site:*|provider:google',
        until,
      });
      // A throttle that ended 100 days ago goes; one of 10 days ago stays.
      await store.recordShapingEvents([
        throttle(T0 - 100 * DAY, T0 - 100 * DAY + 1_800_000),
        throttle(T0 - 10 * DAY, T0 - 10 * DAY + 1_800_000),
      ]);

      // Events about no message (a domain's status): one of 100 days ago goes, one of 10 stays.
      const domainEvent = (daysAgo: number) => ({
        at: T0 - daysAgo * DAY,
        type: 'domain_status_changed' as const,
        accountId: 'a1',
        data: { domain: 'shop.test' },
      });
      await store.appendEvents([domainEvent(100), domainEvent(10)]);

      const result = await runRetention(store, policy, T0, { batchSize: 2 });
      assert.deepEqual(result, { messages: 3, bodies: 4, shapingEvents: 1, eventLog: 1, complete: true });
      for (const m of ancient) assert.equal(await store.getMessage(m.id), undefined);
      for (const m of old) assert.equal((await store.getMessage(m.id))?.bodyPurged, true);
      assert.deepEqual(await store.getBody(recent.id), recent.body);
      assert.deepEqual(await store.getBody(waiting.id), waiting.body, 'a queued message is never touched');
      assert.deepEqual(await runRetention(store, policy, T0), {
        messages: 0,
        bodies: 0,
        shapingEvents: 0,
        eventLog: 0,
        complete: true,
      });
      await store.close();
      const db = new DatabaseSync(join(dir.path, 'postbote.db'));
      try {
        assert.equal(db.prepare('SELECT COUNT(*) AS n FROM event_tags').get()?.n, 0, 'no tag rows left');
        assert.equal(
          db.prepare(`SELECT COUNT(*) AS n FROM events WHERE message_id = ''`).get()?.n,
          1,
          'the recent domain event stays',
        );
      } finally {
        db.close();
      }
    } finally {
      await store.close();
      dir.cleanup();
    }
  });
});
