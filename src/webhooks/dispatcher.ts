import { createEventFeed, type FeedEvent } from '../events/feed.ts';
import type { Store } from '../store/store.ts';
import type { WebhookBatch, WebhookEndpoint } from '../store/types.ts';
import { attemptBatch } from './attempt.ts';
import { makeBatches, wants } from './payload.ts';
import type { WebhookSettings } from './settings.ts';
import type { LookupAll } from './target.ts';

/** The feed consumer's name (event_cursors row). */
export const WEBHOOK_FEED = 'webhooks';
/** Events read from the feed per turn (several reads per turn while there are more). */
const READ_LIMIT = 1000;
const MAX_READS_PER_TURN = 10;

export interface DispatcherLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface WebhookDispatcher {
  /** One turn: batch new events, then send what is due (tests drive it directly). */
  turn(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Turns the event log into webhook requests. It runs on the elected node only (`isLeader`,
 * maintenance/maintenance.ts), every `batch_wait`:
 *
 * 1. reads new events from the feed (events/feed.ts, cursor `webhooks`, starting at the end the
 *    first time; while no endpoint is enabled it only moves the cursor to the newest event),
 *    makes batches for each enabled endpoint that wants them, and stores them pending together
 *    with the new feed position in one transaction: nothing is acknowledged before its batches
 *    are durable, so a crash re-reads (and the deterministic batch ids keep the re-read from
 *    storing twice) rather than drops;
 * 2. sends the due pending batches, `concurrency` at a time (webhooks/attempt.ts).
 *
 * Two leaders can overlap for one election check (maintenance), so a batch may be sent twice
 * then: receivers drop duplicates by `webhook-id`.
 */
export function startWebhookDispatcher(deps: {
  store: Store;
  settings: WebhookSettings;
  isLeader: () => boolean;
  logger: DispatcherLogger;
  clock?: () => number;
  random?: () => number;
  lookupAll?: LookupAll;
  /** Run turns on a timer (default); tests call `turn()` themselves. */
  autoStart?: boolean;
}): WebhookDispatcher {
  const { store, settings, logger } = deps;
  const clock = deps.clock ?? Date.now;
  const random = deps.random ?? Math.random;
  const newFeed = () => createEventFeed({ store, name: WEBHOOK_FEED, clock, start: 'end' });
  // Made again at each election: another node may have moved the persisted position meanwhile.
  let feed = newFeed();
  let wasLeader = false;
  let stopped = false;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  // Read fresh after each feed read: an endpoint created just before an event happened must see
  // it (a cached list could miss it, and the feed position moves on). One small query per read.
  const currentEndpoints = (): Promise<WebhookEndpoint[]> => store.listWebhooks();

  const batchNewEvents = async (): Promise<number> => {
    // Without an enabled endpoint nothing is batched: the position moves to the newest event id
    // read before the (empty) list instead of reading every event with its message (in the
    // PostgreSQL relay bench, without webhooks, that read was a tenth of the statement time).
    // An endpoint created after that list reads from there, as a fresh dispatcher would.
    const newest = await store.lastEventId();
    if (!(await currentEndpoints()).some((e) => e.enabled)) {
      await feed.ack(newest);
      return 0;
    }
    let made = 0;
    for (let read = 0; read < MAX_READS_PER_TURN && !stopped; read++) {
      const events = await feed.read(READ_LIMIT);
      const last = events.at(-1);
      if (!last) break;
      const now = clock();
      const batches: WebhookBatch[] = [];
      for (const endpoint of await currentEndpoints()) {
        const wanted: FeedEvent[] = events.filter((e) => wants(endpoint, e));
        if (wanted.length === 0) continue;
        batches.push(
          ...makeBatches({
            endpoint,
            events: wanted,
            size: settings.batchSize,
            kind: 'events',
            idPrefix: `msg_${endpoint.id}`,
            now,
          }),
        );
      }
      await store.enqueueWebhookBatches(batches, { name: WEBHOOK_FEED, position: last.id, now });
      await feed.ack(last.id);
      made += batches.length;
      if (events.length < READ_LIMIT) break;
    }
    return made;
  };

  const sendDue = async (): Promise<number> => {
    const due = await store.dueWebhookBatches(clock(), settings.concurrency * 4);
    if (due.length === 0) return 0;
    const byId = new Map((await currentEndpoints()).map((e) => [e.id, e]));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!stopped && next < due.length) {
        const batch = due[next++] as WebhookBatch;
        const endpoint = byId.get(batch.webhookId) ?? (await store.getWebhook(batch.webhookId));
        if (!endpoint?.enabled) continue;
        try {
          await attemptBatch(
            {
              store,
              settings,
              clock,
              random,
              ...(deps.lookupAll ? { lookupAll: deps.lookupAll } : {}),
              onDisabled: (e, reason) =>
                logger.warn({ webhookId: e.id, account: e.accountId, reason }, 'webhook endpoint disabled'),
            },
            endpoint,
            batch,
          );
        } catch (err) {
          logger.warn({ err, webhookId: batch.webhookId, batch: batch.id }, 'webhook attempt not recorded');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(settings.concurrency, due.length) }, worker));
    return due.length;
  };

  const turn = async (): Promise<void> => {
    const leader = deps.isLeader();
    if (leader && !wasLeader) feed = newFeed();
    wasLeader = leader;
    if (!leader) return;
    await batchNewEvents();
    await sendDue();
  };

  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = turn()
        .catch((err: unknown) => logger.warn({ err }, 'webhook dispatcher turn failed; trying again'))
        .finally(() => {
          running = undefined;
          schedule();
        });
    }, settings.batchWaitMs);
    timer.unref();
  };
  if (deps.autoStart !== false) schedule();

  return {
    turn,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
