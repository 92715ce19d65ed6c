/**
 * The Prometheus text exposition format (version 0.0.4), written by hand: a few dozen lines
 * instead of prom-client's registry, whose global default registry and collectors would have to
 * be kept apart per thread anyway. Format rules (prometheus.io "Exposition formats"): one
 * `# HELP` and `# TYPE` per family, then its samples; label values escape `\`, `"` and newline;
 * HELP text escapes `\` and newline; histograms have cumulative `_bucket{le=…}` samples ending
 * with `le="+Inf"`, then `_sum` and `_count`.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface Sample {
  /** Appended to the family's name: `_bucket`, `_sum`, `_count` for histograms. */
  suffix?: string;
  labels?: Readonly<Record<string, string>>;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const escapeLabel = (v: string): string =>
  v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const escapeHelp = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

/** The exposition text of the families (a family without samples is left out). */
export function formatExposition(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  // A name may appear once: families given twice (two collectors, a hook and a heartbeat) are
  // merged; the HELP and TYPE of the first one stand.
  const merged = new Map<string, MetricFamily>();
  for (const family of families) {
    const seen = merged.get(family.name);
    if (seen) seen.samples = [...seen.samples, ...family.samples];
    else merged.set(family.name, { ...family });
  }
  for (const family of merged.values()) {
    if (family.samples.length === 0) continue;
    if (!NAME.test(family.name)) throw new TypeError(`not a metric name: ${family.name}`);
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      const labels = Object.entries(sample.labels ?? {});
      for (const [name] of labels) if (!LABEL.test(name)) throw new TypeError(`not a label name: ${name}`);
      const text = labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
      lines.push(
        `${family.name}${sample.suffix ?? ''}${text ? `{${text}}` : ''} ${formatValue(sample.value)}`,
      );
    }
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** A histogram's state: counts per upper bound (not cumulative), sum and count. */
export interface HistogramState {
  /** Upper bounds, ascending, without +Inf. */
  bounds: number[];
  /** One count per bound plus one for +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

export function createHistogram(
  bounds: readonly number[],
): HistogramState & { observe(value: number): void } {
  const state = {
    bounds: [...bounds],
    counts: new Array<number>(bounds.length + 1).fill(0),
    sum: 0,
    count: 0,
    observe(value: number): void {
      if (!Number.isFinite(value)) return;
      let i = state.bounds.findIndex((b) => value <= b);
      if (i < 0) i = state.bounds.length;
      state.counts[i] = (state.counts[i] ?? 0) + 1;
      state.sum += value;
      state.count++;
    },
  };
  return state;
}

/** A histogram's samples: cumulative buckets, +Inf, sum and count. */
export function histogramSamples(h: HistogramState, labels: Readonly<Record<string, string>> = {}): Sample[] {
  const out: Sample[] = [];
  let cumulative = 0;
  h.bounds.forEach((bound, i) => {
    cumulative += h.counts[i] ?? 0;
    out.push({ suffix: '_bucket', labels: { ...labels, le: formatValue(bound) }, value: cumulative });
  });
  cumulative += h.counts[h.bounds.length] ?? 0;
  out.push({ suffix: '_bucket', labels: { ...labels, le: '+Inf' }, value: cumulative });
  out.push({ suffix: '_sum', labels, value: h.sum });
  out.push({ suffix: '_count', labels, value: h.count });
  return out;
}

/** Something that contributes families at scrape time. */
export type Collector = () => MetricFamily[] | Promise<MetricFamily[]>;

export interface MetricsRegistry {
  /** Adds a collector; a collector that throws is logged by the caller and left out of that scrape. */
  register(collector: Collector): void;
  /**
   * Sets a gauge other parts of the node own (a hook: e.g. the webhook dispatcher sets
   * `postbote_webhook_backlog` to its undelivered events). Same name and labels replace the value.
   */
  setGauge(name: string, help: string, value: number, labels?: Readonly<Record<string, string>>): void;
  /** Every family, collected now. Failing collectors are reported through `onError` and skipped. */
  collect(onError?: (err: unknown) => void): Promise<MetricFamily[]>;
}

export function createMetricsRegistry(): MetricsRegistry {
  const collectors: Collector[] = [];
  const gauges = new Map<string, { help: string; values: Map<string, Sample> }>();
  return {
    register: (collector) => {
      collectors.push(collector);
    },
    setGauge(name, help, value, labels = {}) {
      if (!NAME.test(name)) throw new TypeError(`not a metric name: ${name}`);
      let gauge = gauges.get(name);
      if (!gauge) {
        gauge = { help, values: new Map() };
        gauges.set(name, gauge);
      }
      const key = JSON.stringify(Object.entries(labels).sort());
      gauge.values.set(key, { labels: { ...labels }, value });
    },
    async collect(onError) {
      const families: MetricFamily[] = [];
      for (const collector of collectors) {
        try {
          families.push(...(await collector()));
        } catch (err) {
          onError?.(err);
        }
      }
      for (const [name, gauge] of gauges) {
        families.push({ name, help: gauge.help, type: 'gauge', samples: [...gauge.values.values()] });
      }
      return families;
    },
  };
}
