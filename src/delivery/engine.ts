import { readFileSync } from 'node:fs';
import { classify } from '../bounces/classify.ts';
import { createBounceFeedback } from '../bounces/feedback.ts';
import { useRulesFile } from '../bounces/rules-file.ts';
import { createSuppressions } from '../bounces/suppressions.ts';
import { loadBounceSecret, verpAddress } from '../bounces/verp.ts';
import { type Config, defaultNodeId } from '../config/schema.ts';
import { createResolver } from '../dns/resolver.ts';
import { returnPathDomain } from '../domains/sender-gate.ts';
import { type Handoff, HandoffCredits } from '../intake/handoff.ts';
import { startMaintenance } from '../maintenance/maintenance.ts';
import type { Logger } from '../observability/logger.ts';
import { createDeliveryMetrics } from '../stats/delivery-metrics.ts';
import { createLoopDelayMonitor } from '../stats/loop-delay.ts';
import { type Store, sharesConnectionSlots, watchesDue } from '../store/store.ts';
import { type ConnectionPermits, createClusterPermits } from './connection-permits.ts';
import { createMxDestination, type Directory } from './destination.ts';
import { createDsnSender } from './dsn-sender.ts';
import { HEARTBEAT_MS } from './heartbeat.ts';
import { createMtaSts, httpsPolicyFetch } from './mta-sts.ts';
import { outcomeJournalPath, recoverOutcomeJournal } from './outcome-journal.ts';
import { createRetryPolicy } from './retry-policy.ts';
import { createRouter, routerInput } from './routing/router.ts';
import { Scheduler } from './scheduler.ts';
import { createSessionPool, type PoolKeyStats } from './session-pool.ts';
import { createAdaptiveShaper, describeAction } from './shaping/adaptive.ts';
import { createCircuitBreaker } from './shaping/circuit.ts';
import { createShapingPolicy } from './shaping/policy.ts';
import { createRateLimiter } from './shaping/rate-limiter.ts';
import { createShapingEventRecorder } from './shaping-events.ts';

/** How often a cluster node counts the live nodes (its share of rates and caps). */
const NODE_COUNT_MS = 5_000;

/** Wake-ups by other nodes' notifications are at least this far apart. */
const REMOTE_WAKE_MS = 10;

/** Open connections per site, most first, at most `limit` sites (heartbeat info for `queue summary`). */
export function connectionsBySite(
  stats: readonly PoolKeyStats[],
  limit = 20,
): { site: string; open: number }[] {
  const bySite = new Map<string, number>();
  for (const key of stats) if (key.open > 0) bySite.set(key.site, (bySite.get(key.site) ?? 0) + key.open);
  return [...bySite]
    .map(([site, open]) => ({ site, open }))
    .sort((a, b) => b.open - a.open || a.site.localeCompare(b.site))
    .slice(0, limit);
}

export interface DeliveryEngine {
  /** New mail was committed, or an operator asked for a retry. */
  wake(): void;
  /** Intake's side of the handoff of fresh mail (handoff.ts). */
  handoff: Handoff;
  /** Stops leasing, gives in-flight deliveries their grace, releases the rest, closes sessions. */
  stop(): Promise<void>;
}

/**
 * The delivery engine of one node: DNS, the session pool, the MX destination, DSNs and the
 * scheduler, wired from the config. Runs in-process or on its own thread (delivery/thread.ts).
 */
export async function startDeliveryEngine(deps: {
  config: Config;
  store: Store;
  logger: Logger;
  clock?: () => number;
  random?: () => number;
  /** The credits intake takes from (handoff.ts); on the delivery thread, shared with the main thread. */
  credits?: HandoffCredits;
}): Promise<DeliveryEngine> {
  const { config, store, logger } = deps;
  const clock = deps.clock ?? Date.now;
  // Before any delivery: `queue summary` counts a node's shaping events only from its start on.
  const startedAt = clock();
  const random = deps.random ?? Math.random;
  const delivery = config.delivery;
  // Several nodes on one database: the per-host connection limit holds across all of them, and
  // freed slots go first to a node below its share (counted from the heartbeats at each request).
  // Slots left by an earlier run of this node id are its own to take back now.
  let permits: ConnectionPermits | undefined;
  if (sharesConnectionSlots(store)) {
    await store.connectionSlots.releaseSlots(config.node_id, null);
    permits = createClusterPermits({
      slots: store.connectionSlots,
      holder: config.node_id,
      leaseMs: delivery.lease,
      liveWindowMs: 3 * HEARTBEAT_MS,
      clock,
      logger,
    });
  }
  // Several nodes on one database share message rates and warm-up caps: each keeps to its share
  // (live nodes, from their heartbeats), so together they stay within the limit.
  let liveNodes = 1;
  const share = (): number => liveNodes;
  const resolver = createResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeout, clock });
  // Traffic shaping (delivery/shaping/): sites and their limits, message rates, adaptive rules
  // on replies, a circuit breaker per (source, site). Its state is this node's own.
  const shaping = createShapingPolicy(config);
  const limiter = createRateLimiter();
  // Its changes go to the store too, for `postbote queue summary` (another process).
  const shapingEvents = createShapingEventRecorder({ store, nodeId: config.node_id, logger });
  const circuit = createCircuitBreaker(shaping.circuit, random, (event) => {
    logger.info(
      { circuit: event.key, state: event.type, failures: event.failures, until: event.until },
      'site circuit',
    );
    shapingEvents.circuit(event, circuit.status(event.key));
  });
  const adaptive = createAdaptiveShaper({
    rules: shaping.rules,
    onEvent: (event) => {
      logger.warn(
        {
          shaping: event.type,
          rule: event.action.rule,
          scope: event.action.scopeKey,
          until: event.action.until,
        },
        `${event.type}: ${describeAction(event.action)}`,
      );
      shapingEvents.action(event);
      scheduleExpiry();
    },
  });
  let expiryTimer: NodeJS.Timeout | undefined;
  const scheduleExpiry = (): void => {
    clearTimeout(expiryTimer);
    const next = adaptive.nextExpiry();
    if (next === undefined) return;
    expiryTimer = setTimeout(() => adaptive.expire(clock()), Math.max(0, next - clock()));
    expiryTimer.unref();
  };
  const sweeper = setInterval(() => {
    limiter.sweep(clock());
    circuit.sweep(clock());
  }, 60_000);
  sweeper.unref();
  const mtaStsConfig = delivery.mta_sts;
  const trustedCa = mtaStsConfig.ca_file === '' ? undefined : readFileSync(mtaStsConfig.ca_file, 'utf8');
  const mtaSts = mtaStsConfig.enabled
    ? createMtaSts({
        resolver,
        clock,
        logger,
        fetch: httpsPolicyFetch({
          resolver,
          timeoutMs: mtaStsConfig.fetch_timeout,
          allowPrivate: delivery.allow_private_mx,
          ...(trustedCa ? { ca: trustedCa } : {}),
          port: mtaStsConfig.port,
        }),
      })
    : undefined;
  const pool = createSessionPool({
    maxConnectionsPerKey: delivery.max_connections_per_host,
    maxMessagesPerConnection: delivery.max_messages_per_connection,
    connectTimeoutMs: delivery.connect_timeout,
    greetingTimeoutMs: delivery.greeting_timeout,
    socketTimeoutMs: delivery.socket_timeout,
    ehloName: delivery.ehlo_name || config.hostname,
    // Every leased recipient may wait for a connection: never refuse work the window admitted.
    maxQueuePerKey: delivery.window,
    logger,
    ...(permits ? { permits } : {}),
    ...(trustedCa ? { trustedCa } : {}),
    limiter,
    circuit,
    clock,
  });
  // Routes (MX, smarthost, hold, failover) and egress sources with their warm-up caps.
  const router = createRouter(routerInput(config), {
    clock: { now: clock },
    random,
    share,
    onEvent: (event) =>
      logger.warn(
        {
          route: event.route,
          failover: event.type,
          ...('fallback' in event ? { fallback: event.fallback } : {}),
        },
        event.type === 'down' ? 'route down: traffic moves to its fallback' : 'route recovered',
      ),
  });
  const destination = createMxDestination({
    shaping,
    adaptive,
    router,
    directory: createDirectory(store),
    share,
    clock,
    resolver,
    pool,
    port: delivery.port,
    allowPrivate: delivery.allow_private_mx,
    starttls: delivery.starttls as 'opportunistic' | 'required' | 'none',
    ...(mtaSts ? { mtaSts } : {}),
    random,
    logger,
  });
  const dsnSender = createDsnSender({ store, clock, hostname: config.hostname, logger });
  const bounceSecret = loadBounceSecret(config.data_dir, config.bounces.secret);
  const stopRules = useRulesFile(config.bounces.rules_file, logger);
  const feedback = createBounceFeedback({
    store,
    clock,
    logger,
    suppressions: createSuppressions({
      store,
      clock,
      transactionalIgnoresUnsubscribes: config.suppressions.transactional_ignores_unsubscribes,
    }),
    softLimit: config.suppressions.soft_bounce_limit,
    softWindowMs: config.suppressions.soft_bounce_window,
  });
  // Deliveries by result and provider, accept→delivered latency, this thread's event-loop delay:
  // they reach /metrics on the main thread in the heartbeat (stats/delivery-metrics.ts).
  const loopDelay = createLoopDelayMonitor();
  const deliveryMetrics = createDeliveryMetrics({ loopDelay: () => loopDelay.read() });
  // A kill between a remote 250 and its store commit would send the mail again: what the last
  // run's journal says was delivered is recorded before its leases are released below.
  const journalPath = outcomeJournalPath({
    dataDir: config.data_dir,
    sharedDatabase: config.database.url !== '',
    nodeId: config.node_id,
    nodeIdConfigured: config.node_id !== defaultNodeId(config.hostname),
  });
  const journal = journalPath
    ? await recoverOutcomeJournal({ path: journalPath, store, owner: config.node_id, logger })
    : undefined;
  const credits = deps.credits ?? new HandoffCredits();
  const scheduler = new Scheduler({
    store,
    destination,
    credits,
    ...(journal ? { journal } : {}),
    retryPolicy: createRetryPolicy(
      {
        firstRetrySeconds: delivery.retry.first / 1000,
        multiplier: delivery.retry.multiplier,
        maxIntervalSeconds: delivery.retry.max_interval / 1000,
        maxAgeSeconds: delivery.retry.max_age / 1000,
      },
      random,
    ),
    clock,
    logger,
    owner: config.node_id,
    window: delivery.window,
    batchSize: delivery.batch_size,
    leaseMs: delivery.lease,
    maxRecipientsPerTransaction: delivery.max_recipients_per_transaction,
    onRecorded: (outcomes) => deliveryMetrics.observe(outcomes),
    onFinalFailure: (failures) => {
      void dsnSender.send(failures).then((n: number) => n > 0 && scheduler.wake());
    },
    bounces: { classify, afterOutcomes: feedback.afterOutcomes },
    // Mail of a sending domain leaves with a VERP address on its return path: a bounce that
    // comes back names its recipient (bounces/verp.ts).
    envelopeFor: (r) => {
      const domain = returnPathDomain(r.mailFrom, r.messageId);
      return domain === undefined ? undefined : verpAddress(r.id, domain, bounceSecret);
    },
  });

  // Crash recovery: on the embedded store this process is the only one (pid lock), so every
  // lease left behind by a previous run (whatever its node id) is taken back now instead of
  // after expiry.
  // On a shared database only this node's own leases are its to take back, which a restart can
  // recognise when node_id is configured (the default, hostname:pid, changes every run; then
  // the leases expire after delivery.lease instead).
  const released = await store.releaseLeases(config.database.url === '' ? null : config.node_id, clock());
  if (released > 0) logger.info({ released }, 'released leases left by an earlier run');
  scheduler.start();
  // Work committed by other nodes (PostgreSQL): wake on their notification, not the next poll.
  // Under load every intake commit of every node notifies; at most one wake per
  // REMOTE_WAKE_MS lets each lease take what several commits made due.
  let remoteWake: NodeJS.Timeout | undefined;
  let lastRemoteWake = 0;
  const wakeFromRemote = (): void => {
    if (remoteWake) return;
    const wait = lastRemoteWake + REMOTE_WAKE_MS - performance.now();
    if (wait <= 0) {
      lastRemoteWake = performance.now();
      scheduler.wake();
      return;
    }
    remoteWake = setTimeout(() => {
      remoteWake = undefined;
      lastRemoteWake = performance.now();
      scheduler.wake();
    }, wait);
  };
  const dueWatch = watchesDue(store)
    ? await store.watchDue(wakeFromRemote, (err) =>
        logger.warn({ err }, 'lost the due-work notification connection; reconnecting'),
      )
    : undefined;
  // Cluster housekeeping (retention, …) on the elected node.
  const maintenance = await startMaintenance({ config, store, logger, clock });
  // Heartbeats: `postbote cluster status` shows which nodes are alive and what they do.
  const openConnections = (): number => pool.stats().reduce((n, key) => n + key.open, 0);
  const beat = (): void => {
    // The elected node runs the webhook dispatcher: its backlog goes to /metrics with the beat.
    const backlog = maintenance.isLeader()
      ? store.webhookBacklog().catch((err: unknown) => {
          logger.warn({ err }, 'could not read the webhook backlog');
          return undefined;
        })
      : Promise.resolve(undefined);
    backlog
      .then((webhooks) =>
        store.heartbeat(
          {
            id: config.node_id,
            startedAt,
            info: {
              ...scheduler.stats(),
              connections: openConnections(),
              sites: connectionsBySite(pool.stats()),
              // Routing state for `queue summary`: warm-up counts and route health, this node's.
              warmup: router.capsStatus(clock()),
              routes: router.failover.status(clock()).filter((r) => r.state !== 'up'),
              leader: maintenance.isLeader(),
              hostname: config.hostname,
              metrics: deliveryMetrics.snapshot(),
              ...(webhooks ? { webhookBacklog: webhooks.events, webhookBatches: webhooks.batches } : {}),
            },
          },
          clock(),
        ),
      )
      .catch((err: unknown) => logger.warn({ err }, 'could not record the node heartbeat'));
  };
  beat();
  const heartbeat = setInterval(beat, HEARTBEAT_MS);
  heartbeat.unref();
  const countNodes = (): void => {
    store
      .clusterStatus()
      .then((nodes) => {
        const now = clock();
        liveNodes = Math.max(1, nodes.filter((n) => now - n.heartbeatAt < 3 * HEARTBEAT_MS).length);
      })
      .catch((err: unknown) => logger.warn({ err }, 'could not count the live nodes'));
  };
  // Only where nodes share a store; the embedded store has one node.
  const nodeCount = permits ? setInterval(countNodes, NODE_COUNT_MS) : undefined;
  nodeCount?.unref();
  if (permits) countNodes();
  return {
    wake: () => scheduler.wake(),
    handoff: {
      owner: config.node_id,
      leaseMs: delivery.lease,
      credits,
      deliver: (handed) => scheduler.adopt(handed),
    },
    async stop() {
      clearInterval(heartbeat);
      clearTimeout(remoteWake);
      clearInterval(nodeCount);
      clearTimeout(expiryTimer);
      clearInterval(sweeper);
      loopDelay.stop();
      stopRules();
      await maintenance.stop();
      await dueWatch?.stop();
      // No new leases, and no new transactions: the pool turns away at once what still waits
      // for a connection (never attempted; its lease is released, not counted as an attempt),
      // and what is talking to a remote server now gets the scheduler's grace
      // (delivery.shutdown_grace) to finish. The pool cuts the rest a moment after the scheduler
      // has released their leases.
      const grace = delivery.shutdown_grace;
      await Promise.all([scheduler.stop(grace), pool.close(grace + 1000)]);
      await permits?.stop();
      await shapingEvents.flush();
      journal?.close();
    },
  };
}

/** Account names and stream pools by id, remembered for a short while (routing asks per transaction). */
function createDirectory(store: Store): Directory {
  const TTL_MS = 10_000;
  const names = new Map<string, { at: number; value: Promise<string> }>();
  const pools = new Map<string, { at: number; value: Promise<string> }>();
  const cached = (
    map: Map<string, { at: number; value: Promise<string> }>,
    key: string,
    load: () => Promise<string>,
  ): Promise<string> => {
    const hit = map.get(key);
    if (hit && performance.now() - hit.at < TTL_MS) return hit.value;
    const value = load().catch(() => {
      map.delete(key);
      return '';
    });
    if (map.size > 10_000) map.clear();
    map.set(key, { at: performance.now(), value });
    return value;
  };
  return {
    accountName: (id) => cached(names, id, async () => (await store.getAccount(id))?.name ?? id),
    streamPool: (accountId, stream) =>
      cached(
        pools,
        `${accountId}\0${stream}`,
        async () => (await store.getStream(accountId, stream))?.pool ?? '',
      ),
  };
}
