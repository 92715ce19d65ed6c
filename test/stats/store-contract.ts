/**
 * The Store contract of the statistics methods (applyRollup, rollupCursor, queryStats,
 * statsLookup, queueDepth): every adapter setup runs it (test/stats/store.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Store } from '../../src/store/store.ts';
import type { RollupIncrement } from '../../src/store/types.ts';
import { withStoreOf } from '../store/adapters.ts';
import { sampleMessage, T0 } from '../store/contract.ts';

const HOUR = 3_600_000;
const DAY0 = Date.parse('2026-11-28T00:00:00Z');

function inc(overrides: Partial<RollupIncrement>): RollupIncrement {
  return {
    accountId: 'a1',
    bucket: DAY0 + 10 * HOUR,
    stream: 'outbound',
    tag: '',
    domain: 'sender.test',
    provider: 'gmail',
    counter: 'delivered',
    n: 1,
    ...overrides,
  };
}

export function statsStoreContract(
  name: string,
  open: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
): void {
  const withStore = withStoreOf(open);

  describe(`${name}: statistics rollups`, () => {
    it('adds increments and moves the cursor in one go; a batch from a stale cursor changes nothing', () =>
      withStore(async (store) => {
        assert.equal(await store.rollupCursor('stats'), 0);
        const batch = [inc({}), inc({}), inc({ counter: 'accepted', n: 3 }), inc({ tag: 'welcome' })];
        assert.equal(
          await store.applyRollup({ cursor: 'stats', fromId: 0, toId: 10, increments: batch, at: T0 }),
          true,
        );
        assert.equal(await store.rollupCursor('stats'), 10);
        // The same batch again (re-delivered after a crash before the feed's ack): refused.
        assert.equal(
          await store.applyRollup({ cursor: 'stats', fromId: 0, toId: 10, increments: batch, at: T0 }),
          false,
        );
        // Another cursor is independent.
        assert.equal(await store.rollupCursor('other'), 0);
        const rows = await store.queryStats({
          accountId: 'a1',
          from: DAY0,
          to: DAY0 + 24 * HOUR,
          interval: 'hour',
          groupBy: [],
        });
        assert.deepEqual(
          rows.map((r) => [r.bucket, r.counter, r.n]),
          [
            [DAY0 + 10 * HOUR, 'accepted', 3],
            [DAY0 + 10 * HOUR, 'delivered', 2],
          ],
          'the tag row is not in the totals',
        );
        assert.equal(
          await store.applyRollup({
            cursor: 'stats',
            fromId: 10,
            toId: 12,
            increments: [inc({ n: 5 })],
            at: T0,
          }),
          true,
        );
        const again = await store.queryStats({
          accountId: 'a1',
          from: DAY0,
          to: DAY0 + 24 * HOUR,
          interval: 'hour',
          groupBy: [],
          filter: { provider: 'gmail' },
        });
        assert.deepEqual(
          again.map((r) => [r.counter, r.n]),
          [
            ['accepted', 3],
            ['delivered', 7],
          ],
        );
      }));

    it('groups by dimensions, sums days from hours, keeps accounts apart, filters', () =>
      withStore(async (store) => {
        await store.applyRollup({
          cursor: 'stats',
          fromId: 0,
          toId: 1,
          at: T0,
          increments: [
            inc({ bucket: DAY0 + HOUR, provider: 'gmail' }),
            inc({ bucket: DAY0 + 5 * HOUR, provider: 'outlook', n: 2 }),
            inc({ bucket: DAY0 + 25 * HOUR, provider: 'outlook' }),
            inc({ bucket: DAY0 + HOUR, tag: 'a' }),
            inc({ bucket: DAY0 + HOUR, tag: 'b', n: 4 }),
            inc({ bucket: DAY0 + HOUR, stream: 'broadcast', counter: 'hard_bounced:unknown_user' }),
            inc({ accountId: 'a2', bucket: DAY0 + HOUR, n: 100 }),
          ],
        });
        const q = { accountId: 'a1', from: DAY0, to: DAY0 + 2 * 24 * HOUR };
        const byDay = await store.queryStats({ ...q, interval: 'day', groupBy: ['provider'] });
        assert.deepEqual(
          byDay.map((r) => [r.bucket, r.provider, r.stream, r.counter, r.n]),
          [
            [DAY0, 'gmail', '', 'delivered', 1],
            [DAY0, 'gmail', '', 'hard_bounced:unknown_user', 1],
            [DAY0, 'outlook', '', 'delivered', 2],
            [DAY0 + 24 * HOUR, 'outlook', '', 'delivered', 1],
          ],
        );
        const byTag = await store.queryStats({ ...q, interval: 'day', groupBy: ['tag'] });
        assert.deepEqual(
          byTag.map((r) => [r.tag, r.n]),
          [
            ['a', 1],
            ['b', 4],
          ],
        );
        const oneTag = await store.queryStats({
          ...q,
          interval: 'day',
          groupBy: ['stream'],
          filter: { tag: 'b' },
        });
        assert.deepEqual(
          oneTag.map((r) => [r.stream, r.n]),
          [['outbound', 4]],
        );
        const other = await store.queryStats({ ...q, accountId: 'a2', interval: 'hour', groupBy: [] });
        assert.deepEqual(
          other.map((r) => r.n),
          [100],
        );
        const none = await store.queryStats({
          ...q,
          accountId: 'nobody',
          interval: 'hour',
          groupBy: ['domain'],
        });
        assert.deepEqual(none, []);
      }));

    it('keeps odd text as given (quotes, percent signs, unicode)', () =>
      withStore(async (store) => {
        const tag = `it's 100% "odd" ✓`;
        await store.applyRollup({ cursor: 'stats', fromId: 0, toId: 1, at: T0, increments: [inc({ tag })] });
        const rows = await store.queryStats({
          accountId: 'a1',
          from: DAY0,
          to: DAY0 + 24 * HOUR,
          interval: 'hour',
          groupBy: ['tag'],
          filter: { tag },
        });
        assert.deepEqual(
          rows.map((r) => [r.tag, r.n]),
          [[tag, 1]],
        );
      }));

    it('looks up envelope senders and last sites; counts waiting recipients by state and lane', () =>
      withStore(async (store) => {
        await store.createAccount({ id: 'acct', name: 'acme', createdAt: T0 });
        const m1 = sampleMessage('acct', ['x@gmail.com', 'y@example.org'], {
          id: 'm1',
          mailFrom: 'Ada@Sender.Test',
        });
        const m2 = sampleMessage('acct', ['z@example.org'], {
          id: 'm2',
          envelopeFrom: 'pb-m2@pb-bounces.sender.test',
          stream: 'broadcast',
          kind: 'broadcast',
        });
        await store.insertMessages([m1, m2]);
        const recipients = [...(await store.getRecipients('m1')), ...(await store.getRecipients('m2'))];
        const [first] = recipients;
        assert.ok(first);
        await store.leaseDue({
          owner: 'n1',
          now: T0,
          limit: 1,
          leaseUntil: T0 + 60_000,
          lanes: { broadcast: 0 },
        });
        const lookup = await store.statsLookup({
          messageIds: ['m1', 'm2', 'm1', 'missing'],
          recipientIds: [first.id, 999_999],
        });
        assert.deepEqual(
          lookup.messages.sort((a, b) => a.id.localeCompare(b.id)),
          [
            { id: 'm1', mailFrom: 'Ada@Sender.Test', envelopeFrom: '' },
            { id: 'm2', mailFrom: 'sender@example.com', envelopeFrom: 'pb-m2@pb-bounces.sender.test' },
          ],
        );
        assert.deepEqual(lookup.recipients, [{ id: first.id, lastSite: '', domain: 'gmail.com' }]);
        assert.deepEqual(await store.statsLookup({ messageIds: [], recipientIds: [] }), {
          messages: [],
          recipients: [],
        });
        assert.deepEqual(await store.queueDepth(), [
          { state: 'delivering', kind: 'transactional', count: 1 },
          { state: 'queued', kind: 'broadcast', count: 1 },
          { state: 'queued', kind: 'transactional', count: 1 },
        ]);
      }));
  });
}
