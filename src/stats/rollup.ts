/**
 * Statistics rollups: events from the event feed become counter increments per account, UTC
 * hour, stream, tag, sending domain and mailbox provider, applied by the elected node's periodic
 * task, never in the delivery path.
 *
 * At-least-once without double counting: the feed may hand out an event again (a crash between
 * our commit and its ack), so the rollup keeps its own position (`stats_cursors`), moved in the
 * same transaction as the counters (Store.applyRollup), and skips what is at or below it. A batch
 * whose cursor moved meanwhile (a second leader for a moment) is not applied; the next read
 * starts from where the cursor is.
 */
import type { Provider } from '../delivery/shaping/site.ts';
import { HOUR_MS } from '../store/stats-sql.ts';
import type { Store } from '../store/store.ts';
import type { EventRow, RollupIncrement, StatsLookup } from '../store/types.ts';
import { countersOf } from './counters.ts';
import { providerOfDomain, providerOfMxHost, providerOfSite } from './providers.ts';

/** An event as the feed (src/events/feed.ts) hands it out: the row plus its message's labels. */
export interface FeedEvent extends EventRow {
  stream: string;
  tags: string[];
  metadata: Record<string, string>;
}

/** The part of the event feed the rollup uses (src/events/feed.ts `createEventFeed`). */
export interface EventFeed {
  /** Events after the feed's persisted position, in id order. */
  read(limit: number): Promise<FeedEvent[]>;
  /** Persists the feed's position (at-least-once: unacked events are read again). */
  ack(lastId: number): Promise<void>;
}

/** The name of the rollup's cursor (stats_cursors) and of its event feed. */
export const ROLLUP_CURSOR = 'stats';

/**
 * Events that happen before any delivery attempt: their provider comes from the recipient's
 * domain only, never from the recipient's last site, which depends on when the rollup runs.
 */
const BEFORE_ATTEMPT = new Set(['accepted', 'suppressed', 'held', 'cancelled']);

/** What increments need besides the events: looked up once per batch. */
export interface RollupContext {
  /** Sending domain by message id ('' when unknown). */
  domainOf(messageId: string): string;
  /** Last site by recipient id ('' when none or unknown). */
  siteOf(recipientId: number): string;
  providers: readonly Provider[];
}

export const hourOf = (at: number): number => at - (((at % HOUR_MS) + HOUR_MS) % HOUR_MS);

const domainOfAddress = (address: string | null | undefined): string => {
  if (!address) return '';
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
};

/** The mailbox provider of an event's recipient (providers.ts: MX host, else site, else domain). */
export function providerOfEvent(event: FeedEvent, ctx: RollupContext): string {
  const mx = event.data?.mxHost;
  if (typeof mx === 'string') {
    const byMx = providerOfMxHost(mx, ctx.providers);
    if (byMx) return byMx;
  }
  if (!BEFORE_ATTEMPT.has(event.type) && event.recipientId !== null) {
    const bySite = providerOfSite(ctx.siteOf(event.recipientId));
    if (bySite) return bySite;
  }
  return providerOfDomain(domainOfAddress(event.recipient));
}

/**
 * The counter increments of a batch of events (pure). Each counted event adds 1 to its counters
 * in the all-tags row (tag '') and in one row per distinct tag of its message.
 */
export function incrementsOf(events: readonly FeedEvent[], ctx: RollupContext): RollupIncrement[] {
  const out: RollupIncrement[] = [];
  for (const event of events) {
    const counters = countersOf(event);
    if (counters.length === 0) continue;
    const base = {
      accountId: event.accountId,
      bucket: hourOf(event.at),
      stream: event.stream,
      domain: ctx.domainOf(event.messageId),
      provider: providerOfEvent(event, ctx),
    };
    const tags = ['', ...new Set((event.tags ?? []).filter((t) => typeof t === 'string' && t !== ''))];
    for (const tag of tags) for (const counter of counters) out.push({ ...base, tag, counter, n: 1 });
  }
  return out;
}

/**
 * The sending domain of a message: the From domain it was signed for when it left with our
 * return path (`envelope_from` = `pb-<id>@<return path>`, the return path mapped back to its
 * sending domain), else the domain of the envelope sender as submitted (`mail_from`; for API
 * sends the From address). The From header itself is not stored; for signed mail it is this
 * domain or a subdomain of it. '' for the null sender.
 */
export function sendingDomain(
  message: { mailFrom: string; envelopeFrom: string },
  returnPaths: ReadonlyMap<string, string>,
): string {
  if (message.envelopeFrom !== '') {
    const returnPath = domainOfAddress(message.envelopeFrom);
    return returnPaths.get(returnPath) ?? returnPath;
  }
  return domainOfAddress(message.mailFrom);
}

export interface RollupRun {
  /** Events counted (re-delivered ones not included). */
  events: number;
  /** The cursor after the run. */
  cursor: number;
}

/**
 * The rollup task: reads up to `batchSize` events at a time and applies them, until the feed is
 * drained, `maxBatches` were applied, or `signal` aborts.
 */
export function createRollup(options: {
  store: Store;
  feed: EventFeed;
  providers: readonly Provider[];
  clock?: () => number;
  cursor?: string;
  batchSize?: number;
  maxBatches?: number;
}): { run(signal?: AbortSignal): Promise<RollupRun> } {
  const { store, feed } = options;
  const clock = options.clock ?? Date.now;
  const name = options.cursor ?? ROLLUP_CURSOR;
  const batchSize = options.batchSize ?? 1000;
  const maxBatches = options.maxBatches ?? 100;

  const context = async (events: readonly FeedEvent[]): Promise<RollupContext> => {
    const lookup: StatsLookup = await store.statsLookup({
      messageIds: events.map((e) => e.messageId),
      recipientIds: events.flatMap((e) =>
        e.recipientId !== null && !BEFORE_ATTEMPT.has(e.type) && typeof e.data?.mxHost !== 'string'
          ? [e.recipientId]
          : [],
      ),
    });
    const returnPaths = new Map(
      lookup.messages.some((m) => m.envelopeFrom !== '')
        ? (await store.listDomains()).map((d) => [d.returnPath, d.domain] as const)
        : [],
    );
    const domains = new Map(lookup.messages.map((m) => [m.id, sendingDomain(m, returnPaths)]));
    const sites = new Map(lookup.recipients.map((r) => [r.id, r.lastSite]));
    return {
      domainOf: (id) => domains.get(id) ?? '',
      siteOf: (id) => sites.get(id) ?? '',
      providers: options.providers,
    };
  };

  return {
    async run(signal) {
      let counted = 0;
      let cursor = await store.rollupCursor(name);
      for (let batch = 0; batch < maxBatches && !signal?.aborted; batch++) {
        const events = await feed.read(batchSize);
        const last = events[events.length - 1];
        if (!last) break;
        const fresh = events.filter((e) => e.id > cursor);
        if (fresh.length > 0) {
          const increments = incrementsOf(fresh, await context(fresh));
          const applied = await store.applyRollup({
            cursor: name,
            fromId: cursor,
            toId: last.id,
            increments,
            at: clock(),
          });
          if (!applied) {
            // Another node moved the cursor: read the same events again from where it is now.
            cursor = await store.rollupCursor(name);
            continue;
          }
          counted += fresh.length;
          cursor = last.id;
        }
        await feed.ack(last.id);
        if (events.length < batchSize) break;
      }
      return { events: counted, cursor };
    },
  };
}
