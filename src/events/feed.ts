import type { Store } from '../store/store.ts';
import type { EnrichedEventRow } from '../store/types.ts';

/** An event as the feed hands it out: with its message's stream, tags and metadata. */
export type FeedEvent = EnrichedEventRow;

export interface EventFeed {
  /**
   * Events after the persisted position in id order, at most `limit`. Gap-aware: on PostgreSQL
   * ids can commit out of order, so it stops before a missing id until that id appears or
   * `gapWaitMs` (default 10 s) has passed since the gap was first seen.
   */
  read(limit: number): Promise<FeedEvent[]>;
  /** Persist the position (at-least-once: call after handling). */
  ack(lastId: number): Promise<void>;
}

export interface EventFeedOptions {
  store: Store;
  /** The consumer's name: its position is the `event_cursors` row of that name. */
  name: string;
  clock?: () => number;
  gapWaitMs?: number;
  /**
   * Where a consumer without a persisted position starts: `beginning` (every event still stored,
   * the default) or `end` (only events written from now on; the position is persisted at once).
   */
  start?: 'beginning' | 'end';
  /** Keep the position in memory only (`postbote events tail`): nothing is written. */
  ephemeral?: boolean;
}

/** A run of missing ids and when the feed first saw any part of it missing. */
interface Gap {
  from: number;
  to: number;
  firstSeen: number;
}

export const DEFAULT_GAP_WAIT_MS = 10_000;

/**
 * A durable, ordered read of the event log for one consumer (webhooks, statistics). Why gaps:
 * a PostgreSQL sequence hands out ids when rows are inserted, not when they commit, so event 7
 * can be visible before event 6 whose transaction is still running. Reading past 6 and
 * persisting 7 would lose 6 for ever. The feed therefore stops before a missing id and hands
 * out what follows only once the id shows up, or once it has been missing for `gapWaitMs`: then
 * it was rolled back or deleted (retention) and will never appear. SQLite writes one transaction
 * at a time, so there gaps only come from deleted events.
 *
 * A missing id that appears only after its gap was given up on is never handed out; with the
 * default 10 s that takes a transaction holding an event insert open for 10 s.
 */
export function createEventFeed(opts: EventFeedOptions): EventFeed {
  const { store, name } = opts;
  const clock = opts.clock ?? Date.now;
  const gapWaitMs = opts.gapWaitMs ?? DEFAULT_GAP_WAIT_MS;
  let position: number | undefined;
  let gaps: Gap[] = [];

  const load = async (): Promise<number> => {
    if (position !== undefined) return position;
    const stored = opts.ephemeral ? undefined : await store.getEventCursor(name);
    if (stored !== undefined) {
      position = stored;
    } else if (opts.start === 'end') {
      position = await store.lastEventId();
      if (!opts.ephemeral) await store.setEventCursor(name, position, clock());
    } else {
      position = 0;
    }
    return position;
  };

  /** When the missing run [from, to] was first seen: a part of an older gap keeps its time. */
  const firstSeen = (from: number, to: number, now: number): number => {
    const older = gaps.find((g) => g.from <= from && to <= g.to);
    if (older) return older.firstSeen;
    gaps.push({ from, to, firstSeen: now });
    return now;
  };

  return {
    async read(limit: number): Promise<FeedEvent[]> {
      const start = await load();
      const rows = await store.eventsAfter(start, limit);
      const now = clock();
      const out: FeedEvent[] = [];
      let expected = start + 1;
      let blocked = false;
      for (const row of rows) {
        // Every gap in sight starts its wait now, not only the first: they expire together.
        const waiting = row.id > expected && now - firstSeen(expected, row.id - 1, now) < gapWaitMs;
        blocked ||= waiting;
        if (!blocked) out.push(row);
        expected = row.id + 1;
      }
      // Gaps entirely behind what was handed out are settled.
      const handedOut = (out.at(-1)?.id ?? start) + 1;
      gaps = gaps.filter((g) => g.to >= handedOut);
      return out;
    },

    async ack(lastId: number): Promise<void> {
      const current = await load();
      if (lastId <= current) return;
      if (!opts.ephemeral) await store.setEventCursor(name, lastId, clock());
      position = lastId;
    },
  };
}
