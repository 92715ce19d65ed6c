/**
 * Rollup arithmetic with a fake event feed over a real SQLite store: which counters each event
 * adds to, the tag rows, providers and sending domains, and that re-delivered events are never
 * counted twice.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { countersOf, ratesOf } from '../../src/stats/counters.ts';
import {
  mxProviders,
  providerOfDomain,
  providerOfMxHost,
  providerOfSite,
} from '../../src/stats/providers.ts';
import { readStats } from '../../src/stats/query.ts';
import {
  createRollup,
  type EventFeed,
  type FeedEvent,
  hourOf,
  incrementsOf,
  type RollupContext,
  sendingDomain,
} from '../../src/stats/rollup.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';

const providers = mxProviders();
const H10 = Date.parse('2026-11-28T10:00:00Z');

let nextId = 1;
function event(
  type: string,
  overrides: Partial<FeedEvent> = {},
  data: Record<string, unknown> = {},
): FeedEvent {
  return {
    id: nextId++,
    at: H10 + 60_000,
    type: type as FeedEvent['type'],
    messageId: 'm1',
    recipientId: 1,
    accountId: 'acct',
    recipient: 'ada@example.org',
    data,
    stream: 'outbound',
    tags: [],
    metadata: {},
    ...overrides,
  };
}

/** A feed over a fixed list, at-least-once like the real one: read() repeats until ack(). */
function fakeFeed(events: FeedEvent[]): EventFeed & { position: number; reads: number } {
  const feed = {
    position: 0,
    reads: 0,
    async read(limit: number) {
      feed.reads++;
      return events.filter((e) => e.id > feed.position).slice(0, limit);
    },
    async ack(lastId: number) {
      feed.position = lastId;
    },
  };
  return feed;
}

const ctx: RollupContext = {
  domainOf: () => 'sender.test',
  siteOf: () => '',
  providers,
};

describe('counters of an event', () => {
  it('maps every counted type, with bounce categories and open kinds', () => {
    assert.deepEqual(countersOf({ type: 'accepted', data: {} }), ['accepted']);
    assert.deepEqual(countersOf({ type: 'deferred', data: {} }), ['deferred']);
    assert.deepEqual(countersOf({ type: 'deferred', data: { category: 'mailbox_full', permanent: false } }), [
      'deferred',
      'soft_bounced',
      'soft_bounced:mailbox_full',
    ]);
    assert.deepEqual(countersOf({ type: 'bounced', data: { category: 'unknown_user' } }), [
      'hard_bounced',
      'hard_bounced:unknown_user',
    ]);
    // A category we do not know (hostile or old data) is `other`, never a new counter name.
    assert.deepEqual(countersOf({ type: 'bounced', data: { category: 'x"; DROP' } }), [
      'hard_bounced',
      'hard_bounced:other',
    ]);
    assert.deepEqual(countersOf({ type: 'opened', data: { machine: true } }), ['opened_machine']);
    assert.deepEqual(countersOf({ type: 'opened', data: { first: true } }), [
      'opened_human',
      'opened_unique',
    ]);
    assert.deepEqual(countersOf({ type: 'clicked', data: { first: true } }), ['clicked', 'clicked_unique']);
    for (const type of ['delivering', 'retried', 'dsn_sent', 'held', 'cancelled', 'nonsense']) {
      assert.deepEqual(countersOf({ type, data: {} }), [], type);
    }
  });

  it('derives rates with the documented denominators, null without any', () => {
    assert.deepEqual(
      ratesOf({ delivered: 90, hard_bounced: 8, expired: 2, complained: 1, opened_unique: 45 }),
      {
        delivery_rate: 0.9,
        bounce_rate: 0.08,
        complaint_rate: 0.011111,
        open_rate: 0.5,
        click_rate: 0,
      },
    );
    assert.deepEqual(ratesOf({ accepted: 5 }), {
      delivery_rate: null,
      bounce_rate: null,
      complaint_rate: null,
      open_rate: null,
      click_rate: null,
    });
  });
});

describe('providers and sending domains', () => {
  it('groups by MX host, site and consumer domain', () => {
    assert.equal(providerOfMxHost('ALT1.Gmail-SMTP-in.l.google.com.', providers), 'gmail');
    assert.equal(providerOfMxHost('hotmail-com.olc.protection.outlook.com', providers), 'outlook');
    assert.equal(providerOfMxHost('contoso-com.mail.protection.outlook.com', providers), 'outlook');
    assert.equal(providerOfMxHost('mta5.am0.yahoodns.net', providers), 'yahoo');
    assert.equal(providerOfMxHost('mx01.mail.icloud.com', providers), 'icloud');
    assert.equal(providerOfMxHost('mx00.emig.gmx.net', providers), 'gmx');
    assert.equal(providerOfMxHost('mx-ha03.web.de', providers), 'webde');
    assert.equal(providerOfMxHost('mx00.t-online.de', providers), 't-online');
    assert.equal(providerOfMxHost('mx.example.org', providers), 'other');
    assert.equal(providerOfMxHost('not a host', providers), undefined);
    assert.equal(providerOfSite('provider:google'), 'gmail');
    assert.equal(providerOfSite('mx1.a.test,mx2.a.test'), 'other');
    assert.equal(providerOfSite(''), undefined);
    assert.equal(providerOfDomain('GMail.com'), 'gmail');
    assert.equal(providerOfDomain('yahoo.co.uk'), 'yahoo');
    assert.equal(providerOfDomain('hotmail.de'), 'outlook');
    assert.equal(providerOfDomain('live.example.com'), 'other');
    assert.equal(providerOfDomain('web.de'), 'webde');
    assert.equal(providerOfDomain('example.org'), 'other');
  });

  it('takes the signing domain from our return path, else the envelope sender', () => {
    const paths = new Map([['pb-bounces.sender.test', 'sender.test']]);
    assert.equal(
      sendingDomain({ mailFrom: 'x@else.test', envelopeFrom: 'pb-1@pb-bounces.sender.test' }, paths),
      'sender.test',
    );
    assert.equal(
      sendingDomain({ mailFrom: 'Ada@Mail.Sender.Test', envelopeFrom: '' }, paths),
      'mail.sender.test',
    );
    assert.equal(sendingDomain({ mailFrom: '', envelopeFrom: '' }, paths), '');
  });
});

describe('increments of a batch', () => {
  it('counts once in the all-tags row and once per distinct tag, in the UTC hour', () => {
    const rows = incrementsOf(
      [
        event('delivered', { tags: ['a', 'b', 'a'], at: H10 + 3_599_999 }, { mxHost: 'aspmx.l.google.com' }),
        event('accepted', { recipient: 'x@gmail.com' }),
      ],
      ctx,
    );
    assert.deepEqual(
      rows.map((r) => [r.bucket, r.tag, r.provider, r.counter, r.n]),
      [
        [H10, '', 'gmail', 'delivered', 1],
        [H10, 'a', 'gmail', 'delivered', 1],
        [H10, 'b', 'gmail', 'delivered', 1],
        [H10, '', 'gmail', 'accepted', 1],
      ],
    );
    assert.equal(hourOf(H10 + 3_600_000), H10 + 3_600_000);
  });

  it('takes a complaint’s provider from the recipient’s last site, an accepted event’s never', () => {
    const withSite: RollupContext = { ...ctx, siteOf: () => 'provider:yahoo' };
    const [complaint] = incrementsOf([event('complained')], withSite);
    const [accepted] = incrementsOf([event('accepted')], withSite);
    assert.equal(complaint?.provider, 'yahoo');
    assert.equal(accepted?.provider, 'other');
  });
});

describe('the rollup task', () => {
  async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
    const store = new SqliteStore(':memory:');
    await store.migrate();
    try {
      await fn(store);
    } finally {
      await store.close();
    }
  }
  const totals = async (store: Store) =>
    (
      await readStats(store, {
        accountId: 'acct',
        from: H10 - 3_600_000,
        to: H10 + 3_600_000,
        interval: 'hour',
        groupBy: [],
      })
    ).totals[0]?.counters;

  it('drains the feed in batches, acks, and counts a mixed run', () =>
    withStore(async (store) => {
      const events = [
        event('accepted'),
        event('accepted'),
        event('accepted'),
        event('delivered', {}, { mxHost: 'mx.example.org' }),
        event('deferred', {}, { category: 'mailbox_full' }),
        event('bounced', {}, { category: 'unknown_user' }),
        event('complained'),
        event('opened', {}, { machine: true }),
        event('opened', {}, { first: true }),
        event('clicked', {}, { first: true }),
      ];
      const feed = fakeFeed(events);
      const rollup = createRollup({ store, feed, providers, batchSize: 3, clock: () => H10 });
      const run = await rollup.run();
      assert.equal(run.events, 10);
      assert.equal(feed.position, events.at(-1)?.id);
      assert.equal(await store.rollupCursor('stats'), events.at(-1)?.id);
      const c = await totals(store);
      assert.equal(c?.accepted, 3);
      assert.equal(c?.delivered, 1);
      assert.equal(c?.deferred, 1);
      assert.equal(c?.soft_bounced, 1);
      assert.equal(c?.hard_bounced, 1);
      assert.equal(c?.complained, 1);
      assert.equal(c?.opened_machine, 1);
      assert.equal(c?.opened_human, 1);
      assert.equal(c?.opened_unique, 1);
      assert.equal(c?.clicked_unique, 1);
      // Nothing new: nothing changes.
      assert.equal((await rollup.run()).events, 0);
      assert.deepEqual(await totals(store), c);
    }));

  it('does not count events again when the feed re-delivers them (crash before the ack)', () =>
    withStore(async (store) => {
      const events = Array.from({ length: 5 }, () =>
        event('delivered', {}, { mxHost: 'aspmx.l.google.com' }),
      );
      const feed = fakeFeed(events);
      // The ack is lost once: the feed keeps its old position and hands everything out again.
      const lossy: EventFeed = { read: (n) => feed.read(n), ack: async () => {} };
      assert.equal((await createRollup({ store, feed: lossy, providers }).run()).events, 5);
      assert.equal(feed.position, 0);
      assert.equal((await createRollup({ store, feed, providers }).run()).events, 0);
      assert.equal(feed.position, events.at(-1)?.id, 'the feed is moved on');
      // A batch overlapping what was applied counts only the new part.
      const more = [...events, event('delivered', {}, { mxHost: 'aspmx.l.google.com' })];
      const overlap: EventFeed = { read: async () => more, ack: async () => {} };
      assert.equal((await createRollup({ store, feed: overlap, providers }).run()).events, 1);
      assert.equal((await totals(store))?.delivered, 6);
    }));

  it('two leaders at once: each batch is applied by one of them only', () =>
    withStore(async (store) => {
      const events = Array.from({ length: 50 }, () => event('accepted'));
      const a = createRollup({ store, feed: fakeFeed(events), providers, batchSize: 7 });
      const b = createRollup({ store, feed: fakeFeed(events), providers, batchSize: 7 });
      await Promise.all([a.run(), b.run()]);
      assert.equal((await totals(store))?.accepted, 50);
    }));

  it('stops when aborted and when maxBatches is reached', () =>
    withStore(async (store) => {
      const events = Array.from({ length: 10 }, () => event('accepted'));
      const controller = new AbortController();
      controller.abort();
      const feed = fakeFeed(events);
      assert.equal((await createRollup({ store, feed, providers }).run(controller.signal)).events, 0);
      assert.equal(feed.reads, 0);
      assert.equal(
        (await createRollup({ store, feed, providers, batchSize: 2, maxBatches: 2 }).run()).events,
        4,
      );
    }));
});
