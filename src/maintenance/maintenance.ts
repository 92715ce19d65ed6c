import { createAudit } from '../audit/audit.ts';
import type { Config } from '../config/schema.ts';
import { createCheckResolver } from '../domains/checks/resolver.ts';
import { createDomains } from '../domains/domains.ts';
import { createEventFeed } from '../events/feed.ts';
import { createGuard, thresholdsFromConfig } from '../guard/guard.ts';
import type { Logger } from '../observability/logger.ts';
import { mxProviders } from '../stats/providers.ts';
import { createRollup, ROLLUP_CURSOR } from '../stats/rollup.ts';
import { electsLeader, type LeaderLock, type Store } from '../store/store.ts';
import { startWebhookDispatcher } from '../webhooks/dispatcher.ts';
import { webhookSettings } from '../webhooks/settings.ts';
import { type PeriodicTasks, startPeriodicTasks } from './periodic.ts';
import { runRetention } from './retention.ts';

/** How often the leader forgets nodes gone for a day. */
const FORGET_NODES_EVERY_MS = 60 * 60_000;
const IDEMPOTENCY_PURGE_EVERY_MS = 60 * 60_000;
/** A node silent this long is dropped from `postbote cluster status` (its leases expired long ago). */
export const FORGET_NODES_AFTER_MS = 24 * 60 * 60_000;

export interface Maintenance {
  isLeader(): boolean;
  stop(): Promise<void>;
}

/**
 * The node's share of cluster housekeeping: it competes for leadership (PostgreSQL advisory
 * lock; the embedded store's single node always leads) and, while it leads, runs the periodic
 * tasks: retention (`retention.*`), sending-domain DNS checks (`domains.check_interval`), old
 * idempotency keys, expired suppressions, statistics rollups (`stats.interval`), and forgetting
 * nodes gone for a day.
 */
export async function startMaintenance(deps: {
  config: Config;
  store: Store;
  logger: Logger;
  clock?: () => number;
}): Promise<Maintenance> {
  const { config, store, logger } = deps;
  const clock = deps.clock ?? Date.now;
  const lock: LeaderLock = electsLeader(store)
    ? await store.startLeaderLock({
        onError: (err) => logger.warn({ err }, 'lost the leader election connection; retrying'),
      })
    : { isLeader: () => true, stop: async () => {} };
  // Statistics rollups (stats/rollup.ts): new events → counters, from the event feed's position.
  const rollup = createRollup({
    store,
    feed: createEventFeed({ store, name: ROLLUP_CURSOR, clock }),
    providers: mxProviders(config.shaping.providers),
    clock,
    batchSize: config.stats.batch_size,
  });
  // Webhooks (webhooks/dispatcher.ts): a loop of its own, not a periodic task, so a long
  // retention run never holds up event delivery; it works only while this node leads.
  const webhooks = startWebhookDispatcher({
    store,
    settings: webhookSettings(config),
    isLeader: () => lock.isLeader(),
    logger,
    clock,
  });
  const guard = createGuard({
    store,
    clock,
    thresholds: thresholdsFromConfig(config.guard),
    audit: createAudit({ store, clock }),
    logger,
  });
  const periodic: PeriodicTasks = startPeriodicTasks({
    isLeader: () => lock.isLeader(),
    clock,
    logger,
    tasks: [
      {
        name: 'retention',
        everyMs: config.retention.interval,
        run: async (now, signal) => {
          const result = await runRetention(
            store,
            { bodiesMs: config.retention.bodies, metadataMs: config.retention.metadata },
            now,
            { signal },
          );
          return result.bodies + result.messages + result.shapingEvents + result.eventLog > 0 ||
            !result.complete
            ? { ...result }
            : undefined;
        },
      },
      {
        // Every sending domain's DNS, again: verification, DKIM rotation, and what changed.
        name: 'domain-checks',
        everyMs: config.domains.check_interval,
        run: async (_now, signal) => {
          const domains = createDomains({ store, clock, config });
          const resolve = createCheckResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeout });
          let checked = 0;
          for (const d of await store.listDomains()) {
            if (signal.aborted) break;
            try {
              const { changes } = await domains.check(await domains.get(d.domain), resolve);
              checked++;
              // domains.check records the change as a domain_status_changed event.
              if (changes.length > 0) {
                logger.info({ event: 'domain_changed', domain: d.domain, changes }, 'domain status changed');
              }
            } catch (err) {
              logger.warn({ err, domain: d.domain }, 'domain check failed');
            }
          }
          return checked > 0 ? { checked } : undefined;
        },
      },
      {
        // Suppressions added with an expiry (by hand, by import) end by themselves.
        name: 'expired-suppressions',
        everyMs: IDEMPOTENCY_PURGE_EVERY_MS,
        run: async (now, signal) => {
          // Soft bounces older than the counting window no longer count either.
          const drain = async (purge: () => Promise<number>): Promise<number> => {
            let purged = 0;
            for (;;) {
              const n = await purge();
              purged += n;
              if (n < 1000 || signal.aborted) return purged;
            }
          };
          const suppressions = await drain(() =>
            store.purgeExpiredSuppressions({ before: now, limit: 1000 }),
          );
          const softBounces = await drain(() =>
            store.purgeSoftBounces({ before: now - config.suppressions.soft_bounce_window, limit: 1000 }),
          );
          return suppressions + softBounces > 0 ? { suppressions, softBounces } : undefined;
        },
      },
      {
        // Idempotency-Key answers older than api.idempotency_ttl are never replayed again.
        name: 'idempotency-keys',
        everyMs: IDEMPOTENCY_PURGE_EVERY_MS,
        run: async (now, signal) => {
          let purged = 0;
          for (;;) {
            const n = await store.purgeIdempotencyKeys({
              before: now - config.api.idempotency_ttl,
              limit: 1000,
            });
            purged += n;
            if (n < 1000 || signal.aborted) break;
          }
          return purged > 0 ? { purged } : undefined;
        },
      },
      {
        name: 'stats-rollup',
        everyMs: config.stats.interval,
        run: async (_now, signal) => {
          const { events, cursor } = await rollup.run(signal);
          // Logged only when catching up (after an upgrade or an outage), not every 10 s.
          return events >= 10_000 ? { events, cursor } : undefined;
        },
      },
      {
        // The reputation guard (guard/guard.ts): bounce and complaint rates per account and
        // stream over guard.window; warnings, pauses, and mail released after a resume.
        name: 'guard',
        everyMs: config.guard.interval,
        run: async () => {
          if (!config.guard.enabled) return undefined;
          const result = await guard.run();
          return result.warned.length + result.paused.length + result.released > 0
            ? { ...result }
            : undefined;
        },
      },
      {
        name: 'forget-nodes',
        everyMs: FORGET_NODES_EVERY_MS,
        run: async (now) => {
          const forgotten = await store.forgetNodes(now - FORGET_NODES_AFTER_MS);
          return forgotten > 0 ? { forgotten } : undefined;
        },
      },
    ],
  });
  return {
    isLeader: () => periodic.isLeader(),
    async stop() {
      await webhooks.stop();
      await periodic.stop();
      await lock.stop();
    },
  };
}
