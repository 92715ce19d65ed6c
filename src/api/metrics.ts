/**
 * Operations endpoints on the HTTP listener, outside /v1 and its API keys:
 *
 * - `GET /healthz`, liveness: the process answers. Never asks the store, so an orchestrator does
 *   not restart a healthy node because its database is away (`/readyz` says that).
 * - `GET /readyz`, readiness: the store answers, the listeners are up, and the delivery thread's
 *   heartbeat is fresh; 503 with the failing checks otherwise.
 * - `GET /metrics`, Prometheus text format: queue depth by state and lane, deliveries by result
 *   and provider, accept→delivered latency, process figures, and gauges other parts set through
 *   the registry (`postbote_webhook_backlog`). Open unless `http.metrics_token` is set, then it
 *   wants `Authorization: Bearer <token>`: the listener is loopback by default, and queue depths
 *   and provider mixes are business figures once it is not.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { deliveryFamilies } from '../stats/delivery-metrics.ts';
import { createLoopDelayMonitor } from '../stats/loop-delay.ts';
import { formatExposition, type MetricFamily, type MetricsRegistry } from '../stats/prometheus.ts';
import type { Store } from '../store/store.ts';

/** Store calls of a scrape or a readiness check give up after this long. */
const STORE_TIMEOUT_MS = 3000;

export interface OperationsDeps {
  store: Store;
  nodeId: string;
  startedAt: number;
  /** Gauges and collectors other parts of the node contribute (webhook backlog). */
  registry: MetricsRegistry;
  /** '' = /metrics is open; else the bearer token it wants. */
  metricsToken: string;
  readiness?: {
    /** Every configured listener is listening (false from the start of shutdown). */
    listeners?: () => boolean;
    /** The delivery thread's heartbeat (nodes row of `nodeId`) must be younger than this. */
    heartbeatMaxAgeMs?: number;
  };
  clock?: () => number;
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: no answer within ${STORE_TIMEOUT_MS} ms`)),
      STORE_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function tokenMatches(request: FastifyRequest, token: string): boolean {
  const header = request.headers.authorization;
  const given = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function registerOperationsRoutes(app: FastifyInstance, deps: OperationsDeps): void {
  const clock = deps.clock ?? Date.now;
  const loop = createLoopDelayMonitor();
  app.addHook('onClose', async () => loop.stop());

  const ownNode = async () =>
    (await withTimeout(deps.store.clusterStatus(), 'cluster status')).find((n) => n.id === deps.nodeId);

  app.get('/healthz', async () => ({
    status: 'ok',
    node: deps.nodeId,
    uptimeSeconds: Math.round((clock() - deps.startedAt) / 1000),
  }));

  app.get('/readyz', async (_request, reply) => {
    const checks: Record<string, { ok: boolean; detail?: string }> = {};
    try {
      await withTimeout(deps.store.getAccount(''), 'store');
      checks.store = { ok: true };
    } catch (err) {
      checks.store = { ok: false, detail: (err as Error).message };
    }
    const listeners = deps.readiness?.listeners;
    if (listeners) checks.listeners = listeners() ? { ok: true } : { ok: false, detail: 'not listening' };
    const maxAge = deps.readiness?.heartbeatMaxAgeMs;
    if (maxAge !== undefined) {
      if (!checks.store.ok) {
        checks.delivery = { ok: false, detail: 'unknown: the store does not answer' };
      } else {
        try {
          const node = await ownNode();
          const age = node ? clock() - node.heartbeatAt : undefined;
          checks.delivery =
            age !== undefined && age < maxAge
              ? { ok: true }
              : {
                  ok: false,
                  detail:
                    age === undefined ? 'no heartbeat yet' : `last heartbeat ${Math.round(age / 1000)} s ago`,
                };
        } catch (err) {
          checks.delivery = { ok: false, detail: (err as Error).message };
        }
      }
    }
    const ready = Object.values(checks).every((c) => c.ok);
    return reply
      .code(ready ? 200 : 503)
      .send({ status: ready ? 'ready' : 'not_ready', node: deps.nodeId, checks });
  });

  // What this node knows without asking anyone.
  deps.registry.register(() => {
    const memory = process.memoryUsage();
    const delay = loop.read();
    return [
      {
        name: 'postbote_process_resident_memory_bytes',
        help: 'Resident set size of the process (all threads).',
        type: 'gauge',
        samples: [{ value: memory.rss }],
      },
      {
        name: 'postbote_process_heap_used_bytes',
        help: 'V8 heap in use on the main thread.',
        type: 'gauge',
        samples: [{ value: memory.heapUsed }],
      },
      {
        name: 'postbote_process_uptime_seconds',
        help: 'Seconds since this node started.',
        type: 'gauge',
        samples: [{ value: Math.round((clock() - deps.startedAt) / 1000) }],
      },
      {
        name: 'postbote_event_loop_delay_seconds',
        help: 'Event-loop delay of the main thread (SMTP, HTTP, intake) since the previous scrape.',
        type: 'gauge',
        samples: (['p50', 'p99', 'max'] as const).map((stat) => ({ labels: { stat }, value: delay[stat] })),
      },
    ];
  });
  // The queue, from the store: every node of a cluster reports the same cluster-wide figures.
  deps.registry.register(async () => [
    {
      name: 'postbote_queue_recipients',
      help: 'Recipients not yet final, by state and lane (the whole store, not only this node).',
      type: 'gauge',
      samples: (await withTimeout(deps.store.queueDepth(), 'queue depth')).map((q) => ({
        labels: { state: q.state, lane: q.kind },
        value: q.count,
      })),
    },
  ]);
  // The delivery thread's figures, from this node's last heartbeat.
  deps.registry.register(async (): Promise<MetricFamily[]> => {
    const node = await ownNode();
    if (!node) return [];
    return [
      {
        name: 'postbote_delivery_heartbeat_age_seconds',
        help: "Seconds since the delivery thread's last heartbeat (the delivery figures are this old).",
        type: 'gauge',
        samples: [{ value: Math.max(0, (clock() - node.heartbeatAt) / 1000) }],
      },
      ...deliveryFamilies(node.info.metrics),
      // The webhook dispatcher's hook when it runs on the delivery thread: `webhookBacklog` in
      // the heartbeat info (on the main thread it sets the gauge in the registry instead).
      ...(typeof node.info.webhookBacklog === 'number'
        ? [
            {
              name: 'postbote_webhook_backlog',
              help: 'Events waiting to be delivered to webhook endpoints.',
              type: 'gauge' as const,
              samples: [{ value: node.info.webhookBacklog }],
            },
          ]
        : []),
    ];
  });

  app.get('/metrics', async (request, reply) => {
    if (deps.metricsToken !== '' && !tokenMatches(request, deps.metricsToken)) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="metrics"')
        .type('text/plain; charset=utf-8')
        .send('send the metrics token (http.metrics_token) as "Authorization: Bearer <token>"\n');
    }
    let failed = 0;
    const families = await deps.registry.collect((err) => {
      failed++;
      request.log.warn({ err }, 'a metrics collector failed; its figures are left out of this scrape');
    });
    families.push({
      name: 'postbote_metrics_collector_errors',
      help: 'Collectors that failed in this scrape (their figures are missing): 0 when all answered.',
      type: 'gauge',
      samples: [{ value: failed }],
    });
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(formatExposition(families));
  });
}
