import type { Store } from '../store/store.ts';

/** How long finished messages are kept (config `retention.*`, in milliseconds). */
export interface RetentionPolicy {
  /** Bodies of finished messages received longer ago than this are deleted. */
  bodiesMs: number;
  /**
   * Finished messages received longer ago than this are deleted with recipients and events, and
   * traffic shaping events that ended longer ago.
   */
  metadataMs: number;
}

export interface RetentionOptions {
  /** Messages per store call, each one short transaction (default 500). */
  batchSize?: number;
  /** Checked between batches: shutdown or a lost leadership stops the run; what is done stays done. */
  signal?: AbortSignal;
  /** Awaited between batches so the process serves other work meanwhile (default: setImmediate). */
  pause?: () => Promise<void>;
}

export interface RetentionResult {
  /** Bodies deleted (of messages that are kept). */
  bodies: number;
  /** Messages deleted entirely. */
  messages: number;
  /** Traffic shaping events deleted (Store.purgeShapingEvents). */
  shapingEvents: number;
  /** Webhook attempts and batches, and events about no message, deleted (Store.purgeEventLog). */
  eventLog: number;
  /** False when `signal` stopped the run before everything due was deleted. */
  complete: boolean;
}

export type RetentionStore = Pick<
  Store,
  'purgeBodies' | 'purgeMessages' | 'purgeShapingEvents' | 'purgeEventLog'
> &
  Partial<Pick<Store, 'listAccountRetention'>>;

// A batch holds the SQLite write lock for its transaction: 500 messages (20 KB bodies, two
// recipients, three events) took 16 ms median, 34 ms at most, fsync included (2 cores), so intake
// commits wait at most that long behind a batch.
const DEFAULT_BATCH_SIZE = 500;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Applies the retention policy as of `now`: first deletes finished messages older than
 * `metadataMs` (so their bodies are not deleted one step earlier for nothing), then the bodies of
 * finished messages older than `bodiesMs`, then traffic shaping events that ended more than
 * `metadataMs` ago, then webhook attempts, finished webhook batches and events about no message
 * older than `metadataMs`. Runs batch after batch until a batch comes back short,
 * yielding between batches; never touches a message with a recipient still waiting for delivery.
 * Safe to run on several nodes at once (each batch is its own transaction), though the cluster
 * runs it on its elected node only.
 */
export async function runRetention(
  store: RetentionStore,
  policy: RetentionPolicy,
  now: number,
  options: RetentionOptions = {},
): Promise<RetentionResult> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`runRetention: batchSize must be a positive integer, got ${batchSize}`);
  }
  const pause = options.pause ?? nextTurn;
  const signal = options.signal;
  let complete = true;

  const drain = async (purge: (limit: number) => Promise<number>): Promise<number> => {
    let total = 0;
    for (;;) {
      if (signal?.aborted) {
        complete = false;
        return total;
      }
      const n = await purge(batchSize);
      total += n;
      if (n < batchSize) return total;
      await pause();
    }
  };

  // Accounts with their own retention (`postbote accounts set-retention`) are purged on their
  // own terms and left out of the default pass.
  const own = store.listAccountRetention ? await store.listAccountRetention() : [];
  const ownMetadata = own.filter((r) => r.metadataMs !== null);
  const ownBodies = own.filter((r) => r.bodiesMs !== null);
  const except = (list: typeof own) =>
    list.length > 0 ? { exceptAccountIds: list.map((r) => r.accountId) } : {};
  let messages = await drain((limit) =>
    store.purgeMessages({ before: now - policy.metadataMs, limit, ...except(ownMetadata) }),
  );
  for (const r of ownMetadata) {
    messages += await drain((limit) =>
      store.purgeMessages({
        before: now - (r.metadataMs ?? policy.metadataMs),
        limit,
        accountId: r.accountId,
      }),
    );
  }
  let bodies = await drain((limit) =>
    store.purgeBodies({ before: now - policy.bodiesMs, limit, ...except(ownBodies) }),
  );
  for (const r of ownBodies) {
    bodies += await drain((limit) =>
      store.purgeBodies({ before: now - (r.bodiesMs ?? policy.bodiesMs), limit, accountId: r.accountId }),
    );
  }
  const shapingEvents = await drain((limit) =>
    store.purgeShapingEvents({ before: now - policy.metadataMs, limit }),
  );
  // Webhook deliveries and message-less events, on the metadata terms of their account.
  let eventLog = await drain((limit) =>
    store.purgeEventLog({ before: now - policy.metadataMs, limit, ...except(ownMetadata) }),
  );
  for (const r of ownMetadata) {
    eventLog += await drain((limit) =>
      store.purgeEventLog({
        before: now - (r.metadataMs ?? policy.metadataMs),
        limit,
        accountId: r.accountId,
      }),
    );
  }
  return { bodies, messages, shapingEvents, eventLog, complete };
}
