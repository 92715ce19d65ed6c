import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Client, escapeIdentifier } from 'pg';
import { createEventFeed } from '../../src/events/feed.ts';
import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import type { Store } from '../../src/store/store.ts';
import { feedEvent } from '../support/feed-events.ts';
import { freshSchemaName, postgresOrSkip, testDatabaseUrl } from '../support/postgres.ts';

/** Just enough of a store for the feed: visible events by id and one cursor table. */
function fakeStore(): { store: Store; visible: Set<number>; cursors: Map<string, number> } {
  const visible = new Set<number>();
  const cursors = new Map<string, number>();
  const store = {
    async eventsAfter(afterId: number, limit: number) {
      return [...visible]
        .filter((id) => id > afterId)
        .sort((x, y) => x - y)
        .slice(0, limit)
        .map((id) => feedEvent(id));
    },
    async lastEventId() {
      return Math.max(0, ...visible);
    },
    async getEventCursor(name: string) {
      return cursors.get(name);
    },
    async setEventCursor(name: string, position: number) {
      cursors.set(name, position);
    },
  } as unknown as Store;
  return { store, visible, cursors };
}

describe('event feed', () => {
  it('stops before a missing id until it appears, and persists only what is acknowledged', async () => {
    const { store, visible, cursors } = fakeStore();
    let now = 1000;
    const feed = createEventFeed({ store, name: 'webhooks', clock: () => now });
    for (const id of [1, 2, 4, 5]) visible.add(id);
    assert.deepEqual(
      (await feed.read(10)).map((e) => e.id),
      [1, 2],
    );
    await feed.ack(2);
    assert.equal(cursors.get('webhooks'), 2);
    now += 5000;
    assert.deepEqual(await feed.read(10), [], 'id 3 is still missing within the wait');
    visible.add(3);
    assert.deepEqual(
      (await feed.read(10)).map((e) => e.id),
      [3, 4, 5],
    );
    // Not acknowledged: a new feed of the same name starts again after 2 (at-least-once).
    const again = createEventFeed({ store, name: 'webhooks', clock: () => now });
    assert.deepEqual(
      (await again.read(2)).map((e) => e.id),
      [3, 4],
    );
  });

  it('gives up on a gap after gapWaitMs (rolled back or deleted ids), counted from when it was first seen', async () => {
    const { store, visible } = fakeStore();
    let now = 0;
    const feed = createEventFeed({ store, name: 'stats', clock: () => now, gapWaitMs: 10_000 });
    for (const id of [1, 5, 6, 9]) visible.add(id);
    assert.deepEqual(
      (await feed.read(10)).map((e) => e.id),
      [1],
    );
    await feed.ack(1);
    now = 6000;
    // Part of the gap appears: the rest keeps the time the whole gap was first seen.
    visible.add(2);
    assert.deepEqual(
      (await feed.read(10)).map((e) => e.id),
      [2],
    );
    await feed.ack(2);
    now = 10_000;
    // Every gap in sight was first seen at 0 (3–4 and 7–8): both are given up on together.
    assert.deepEqual(
      (await feed.read(10)).map((e) => e.id),
      [5, 6, 9],
    );
    await feed.ack(9);
    visible.add(12);
    assert.deepEqual(await feed.read(10), [], '10 and 11 are first seen missing now');
    now = 19_999;
    assert.deepEqual(await feed.read(10), []);
    now = 20_000;
    assert.deepEqual(
      (await feed.read(10)).map((e) => e.id),
      [12],
    );
  });

  it('starts at the end when asked, and an ephemeral feed writes nothing', async () => {
    const { store, visible, cursors } = fakeStore();
    for (const id of [1, 2, 3]) visible.add(id);
    const fromEnd = createEventFeed({ store, name: 'webhooks', start: 'end' });
    assert.deepEqual(await fromEnd.read(10), []);
    assert.equal(cursors.get('webhooks'), 3);
    visible.add(4);
    assert.deepEqual(
      (await fromEnd.read(10)).map((e) => e.id),
      [4],
    );
    const tail = createEventFeed({ store, name: 'tail', start: 'end', ephemeral: true });
    assert.deepEqual(await tail.read(10), []);
    visible.add(5);
    const got = await tail.read(10);
    await tail.ack(got.at(-1)?.id ?? 0);
    assert.deepEqual(
      got.map((e) => e.id),
      [5],
    );
    assert.equal(cursors.has('tail'), false);
  });
});

const admin = await postgresOrSkip('the event feed on postgres');
if (admin) {
  after(() => admin.end());
  it('event feed on postgres: an event committed after a later id is not skipped', async () => {
    const schema = freshSchemaName('postbote_feed');
    const store = new PostgresStore({ url: testDatabaseUrl, schema, poolSize: 2 });
    const slow = new Client({ connectionString: testDatabaseUrl });
    try {
      await store.migrate();
      await store.createAccount({ id: 'acc', name: 'acc', createdAt: 1 });
      const feed = createEventFeed({ store, name: 'webhooks', gapWaitMs: 60_000 });
      await slow.connect();
      await slow.query(`SET search_path TO ${escapeIdentifier(schema)}`);
      // A transaction draws an id and holds it uncommitted while a later id commits.
      await slow.query('BEGIN');
      await slow.query(
        `INSERT INTO events (at, type, message_id, account_id, data) VALUES (1, 'account_paused', '', 'acc', '{}')`,
      );
      const [later] = await store.appendEvents([
        { at: 2, type: 'account_resumed', accountId: 'acc', data: {} },
      ]);
      assert.deepEqual(await feed.read(10), [], 'the earlier id is still in flight');
      await slow.query('COMMIT');
      const got = await feed.read(10);
      assert.deepEqual(
        got.map((e) => e.type),
        ['account_paused', 'account_resumed'],
      );
      assert.equal(got[1]?.id, later);
    } finally {
      await slow.end().catch(() => {});
      await store.close();
      await admin.query(`DROP SCHEMA IF EXISTS ${escapeIdentifier(schema)} CASCADE`);
    }
  });
}
