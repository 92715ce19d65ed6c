/**
 * Delivery metrics of one node: deliveries by result and mailbox provider, and the time from
 * acceptance to delivery. They are counted on the delivery thread (scheduler outcomes) and reach
 * the HTTP listener on the main thread the way the scheduler's other counters do: in the node's
 * heartbeat (`nodes.info.metrics`, every 10 s; delivery/engine.ts). So /metrics shows them up to
 * one heartbeat late, costs no extra thread messages, and works the same on SQLite and
 * PostgreSQL. Counters run from the delivery engine's start, like Prometheus counters of a
 * process.
 */
import type { Outcome } from '../store/types.ts';
import { createHistogram, histogramSamples, type MetricFamily } from './prometheus.ts';
import { providerOfSite } from './providers.ts';

/** accept→delivered, in seconds: from a fast local relay to a day of retries. */
export const LATENCY_BOUNDS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

/** What the heartbeat carries (JSON). */
export interface DeliveryMetricsSnapshot {
  /** `result|provider` → count. */
  deliveries: Record<string, number>;
  latency: { bounds: number[]; counts: number[]; sum: number; count: number };
  /** Event-loop delay of the delivery thread since the previous snapshot, seconds. */
  loopDelay?: { p50: number; p99: number; max: number };
}

export interface DeliveryMetrics {
  /** Outcomes the store applied (Scheduler `onRecorded`). */
  observe(outcomes: readonly Outcome[]): void;
  snapshot(): DeliveryMetricsSnapshot;
}

export function createDeliveryMetrics(
  options: { loopDelay?: () => DeliveryMetricsSnapshot['loopDelay'] } = {},
): DeliveryMetrics {
  const deliveries = new Map<string, number>();
  const latency = createHistogram(LATENCY_BOUNDS);
  return {
    observe(outcomes) {
      for (const o of outcomes) {
        if (!o.attempted && o.state !== 'held') continue;
        // No site: the domain did not resolve, or the attempt never left (held, suspended).
        const provider = o.site === undefined ? 'none' : (providerOfSite(o.site) ?? 'none');
        const key = `${o.state}|${provider}`;
        deliveries.set(key, (deliveries.get(key) ?? 0) + 1);
        const queueMs = o.event?.data.queueMs;
        if (o.state === 'delivered' && typeof queueMs === 'number') latency.observe(queueMs / 1000);
      }
    },
    snapshot() {
      const loopDelay = options.loopDelay?.();
      return {
        deliveries: Object.fromEntries(deliveries),
        latency: {
          bounds: latency.bounds,
          counts: [...latency.counts],
          sum: latency.sum,
          count: latency.count,
        },
        ...(loopDelay ? { loopDelay } : {}),
      };
    },
  };
}

const finite = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/**
 * The families of a node's snapshot as it came out of the heartbeat (JSON from the store: each
 * field is checked, a malformed one is left out rather than failing the scrape).
 */
export function deliveryFamilies(snapshot: unknown): MetricFamily[] {
  if (typeof snapshot !== 'object' || snapshot === null) return [];
  const s = snapshot as Partial<DeliveryMetricsSnapshot>;
  const families: MetricFamily[] = [];
  const deliveries = typeof s.deliveries === 'object' && s.deliveries !== null ? s.deliveries : {};
  families.push({
    name: 'postbote_deliveries_total',
    help: 'Delivery attempts by result (delivered, deferred, bounced, expired, held) and mailbox provider, since the delivery engine started.',
    type: 'counter',
    samples: Object.entries(deliveries).map(([key, n]) => {
      const [result = '', provider = ''] = key.split('|');
      return { labels: { result, provider }, value: finite(n) };
    }),
  });
  const l = s.latency;
  if (
    l &&
    Array.isArray(l.bounds) &&
    Array.isArray(l.counts) &&
    l.counts.length === l.bounds.length + 1 &&
    l.bounds.every((b) => typeof b === 'number')
  ) {
    families.push({
      name: 'postbote_delivery_latency_seconds',
      help: 'Time from acceptance to delivery of delivered recipients, since the delivery engine started.',
      type: 'histogram',
      samples: histogramSamples({
        bounds: l.bounds,
        counts: l.counts.map(finite),
        sum: finite(l.sum),
        count: finite(l.count),
      }),
    });
  }
  const d = s.loopDelay;
  if (d && typeof d === 'object') {
    families.push({
      name: 'postbote_delivery_event_loop_delay_seconds',
      help: 'Event-loop delay of the delivery thread over the last heartbeat interval.',
      type: 'gauge',
      samples: (['p50', 'p99', 'max'] as const).map((q) => ({ labels: { stat: q }, value: finite(d[q]) })),
    });
  }
  return families;
}
