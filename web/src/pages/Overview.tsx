import { useMemo, useState } from 'preact/hooks';
import { get, percent, query } from '../api.ts';
import { Chart, type Series } from '../components/Chart.tsx';
import { ErrorNote, Loading, Section } from '../components/ui.tsx';
import { useLoad } from '../hooks.ts';
import type { QueueView } from './Queue.tsx';

type Counters = Record<string, number>;
interface Rates {
  delivery_rate: number | null;
  bounce_rate: number | null;
  complaint_rate: number | null;
  open_rate: number | null;
  click_rate: number | null;
}
interface Entry {
  start?: string;
  stream?: string;
  provider?: string;
  counters: Counters;
  rates: Rates;
}
interface Stats {
  from: string;
  to: string;
  interval: 'hour' | 'day';
  data: Entry[];
  totals: Entry[];
}

/** Every bucket of the range (the API leaves out empty ones), with its entry if it has one. */
function buckets(stats: Stats | undefined): { times: number[]; entries: (Entry | undefined)[] } {
  if (!stats) return { times: [], entries: [] };
  const step = stats.interval === 'day' ? 86_400_000 : 3_600_000;
  const byStart = new Map(stats.data.map((e) => [Date.parse(e.start ?? ''), e]));
  const times: number[] = [];
  const entries: (Entry | undefined)[] = [];
  const end = Date.parse(stats.to);
  for (let t = Date.parse(stats.from), n = 0; t < end && n < 800; t += step, n++) {
    times.push(t / 1000);
    entries.push(byStart.get(t));
  }
  return { times, entries };
}
/** Colours of the per-stream and per-provider lines; the rest are summed as "other". */
const PALETTE = ['#1d4ed8', '#15803d', '#b45309', '#7c3aed', '#0e7490', '#be185d'];

/**
 * One line per stream or provider (the largest by delivered mail over the range, the rest as
 * "other") of delivered mail per bucket, on the same filled time axis as the volume chart.
 */
function groupedSeries(
  stats: Stats | undefined,
  dimension: 'stream' | 'provider',
): { times: number[]; series: Series[] } {
  if (!stats) return { times: [], series: [] };
  const step = stats.interval === 'day' ? 86_400_000 : 3_600_000;
  const from = Date.parse(stats.from);
  const { times } = buckets({ ...stats, data: [] });
  const ranked = [...stats.totals]
    .sort((a, b) => (b.counters.delivered ?? 0) - (a.counters.delivered ?? 0))
    .map((e) => e[dimension] ?? '');
  const shown = ranked.slice(0, PALETTE.length);
  const rest = ranked.length > shown.length;
  const values = [...shown, ...(rest ? ['\0other'] : [])].map(() => times.map(() => 0));
  for (const e of stats.data) {
    const index = Math.round((Date.parse(e.start ?? '') - from) / step);
    if (!(index >= 0 && index < times.length)) continue;
    const own = shown.indexOf(e[dimension] ?? '');
    const row = values[own >= 0 ? own : shown.length];
    if (row) row[index] = (row[index] ?? 0) + (e.counters.delivered ?? 0);
  }
  const series = shown.map((name, i) => ({
    label: name || '–',
    color: PALETTE[i] ?? '#4b5563',
    values: values[i] ?? [],
  }));
  if (rest) series.push({ label: 'other', color: '#4b5563', values: values[shown.length] ?? [] });
  return { times, series };
}

interface Domain {
  domain: string;
  verified: boolean;
  checked_at: string | null;
}

const RANGES = {
  '24h': { interval: 'hour', hours: 24 },
  '7d': { interval: 'hour', hours: 24 * 7 },
  '30d': { interval: 'day', hours: 24 * 30 },
} as const;
type Range = keyof typeof RANGES;

const VOLUME: [string, string, string][] = [
  ['accepted', 'Accepted', '#4b5563'],
  ['delivered', 'Delivered', '#15803d'],
  ['deferred', 'Deferred', '#b45309'],
  ['hard_bounced', 'Bounced', '#b91c1c'],
  ['complained', 'Complaints', '#7c3aed'],
];
const RATES: [keyof Rates, string, string][] = [
  ['delivery_rate', 'Delivery', '#15803d'],
  ['bounce_rate', 'Bounce', '#b91c1c'],
  ['complaint_rate', 'Complaint', '#7c3aed'],
  ['open_rate', 'Open', '#1d4ed8'],
  ['click_rate', 'Click', '#0e7490'],
];

function since(hours: number): string {
  return new Date(Date.now() - hours * 3600_000).toISOString();
}

interface GuardStatus {
  paused: boolean;
  streams: {
    stream: string;
    paused: boolean;
    paused_by: string | null;
    reason: string | null;
    warned_at: string | null;
  }[];
}

/**
 * Volume and rates over time (/v1/stats), by stream and provider (a chart of delivered mail per
 * stream and per provider over time beside each table), the queue depth (/v1/queue),
 * and what needs attention: pauses and warnings of the reputation guard, unverified domains.
 */
export function Overview(props: { accountId: string }) {
  const [range, setRange] = useState<Range>('24h');
  const r = RANGES[range];
  const stats = useLoad(
    () => get<Stats>(`/v1/stats${query({ interval: r.interval, from: since(r.hours) })}`),
    [range],
  );
  const byStream = useLoad(
    () => get<Stats>(`/v1/stats${query({ interval: r.interval, from: since(r.hours), group_by: 'stream' })}`),
    [range],
  );
  const byProvider = useLoad(
    () =>
      get<Stats>(`/v1/stats${query({ interval: r.interval, from: since(r.hours), group_by: 'provider' })}`),
    [range],
  );
  const domains = useLoad(() => get<{ data: Domain[] }>('/v1/domains'), []);
  const queue = useLoad(() => get<QueueView>('/v1/queue'), []);
  const guard = useLoad(
    () => get<GuardStatus>(`/v1/accounts/${encodeURIComponent(props.accountId)}/status`),
    [props.accountId],
  );

  const filled = useMemo(() => buckets(stats.data), [stats.data]);
  const times = filled.times;
  const volume: Series[] = useMemo(
    () =>
      VOLUME.map(([key, label, color]) => ({
        label,
        color,
        values: filled.entries.map((e) => e?.counters[key] ?? 0),
      })),
    [filled],
  );
  const rates: Series[] = useMemo(
    () =>
      RATES.map(([key, label, color]) => ({
        label,
        color,
        values: filled.entries.map((e) => e?.rates[key] ?? null),
      })),
    [filled],
  );
  const total = stats.data?.totals[0];
  const unverified = (domains.data?.data ?? []).filter((d) => !d.verified);
  const streamName = (s: string) => (s === '' ? 'The account' : `Stream ${s}`);
  const pauses = (guard.data?.streams ?? []).filter((s) => s.paused);
  const warnings = (guard.data?.streams ?? []).filter((s) => !s.paused && s.warned_at !== null);
  const q = queue.data?.totals;

  return (
    <>
      <div class="page-head">
        <h1>Overview</h1>
        <fieldset aria-label="Time range" class="toolbar group">
          {(Object.keys(RANGES) as Range[]).map((k) => (
            <button
              type="button"
              class="small"
              key={k}
              aria-pressed={range === k}
              onClick={() => setRange(k)}
            >
              {k}
            </button>
          ))}
          <button
            type="button"
            class="small"
            onClick={() => {
              stats.reload();
              byStream.reload();
              byProvider.reload();
            }}
          >
            Refresh
          </button>
        </fieldset>
      </div>
      <ErrorNote error={stats.error} />
      <Loading loading={stats.loading && !stats.data} />
      {total && (
        <dl class="figures" aria-label="Totals">
          {[
            ['Accepted', total.counters.accepted ?? 0],
            ['Delivered', total.counters.delivered ?? 0],
            ['Bounced', (total.counters.hard_bounced ?? 0) + (total.counters.soft_bounced ?? 0)],
            ['Complaints', total.counters.complained ?? 0],
            ['Delivery rate', percent(total.rates.delivery_rate)],
            ['Bounce rate', percent(total.rates.bounce_rate)],
            ['Complaint rate', percent(total.rates.complaint_rate)],
            ['Open rate', percent(total.rates.open_rate)],
            ['Click rate', percent(total.rates.click_rate)],
          ].map(([label, value]) => (
            <div key={String(label)} data-figure={String(label)}>
              <dt>{label}</dt>
              <dd>{value}</dd>
            </div>
          ))}
        </dl>
      )}
      {stats.data && (
        <div class="charts">
          <Chart title="Volume" times={times} series={volume} />
          <Chart title="Rates" times={times} series={rates} percent />
        </div>
      )}
      <div class="columns">
        <Breakdown title="By stream" dimension="stream" stats={byStream.data} error={byStream.error} />
        <Breakdown
          title="By mailbox provider"
          dimension="provider"
          stats={byProvider.data}
          error={byProvider.error}
        />
      </div>
      <div class="columns">
        <Section title="Queue" actions={<a href="#/queue">Open the queue</a>}>
          <ErrorNote error={queue.error} />
          {q && (
            <dl class="figures" aria-label="Queue depth">
              {(
                [
                  ['Waiting', q.queued + q.deferred],
                  ['Deferred', q.deferred],
                  ['Delivering', q.delivering],
                  ['Held', q.held],
                ] as const
              ).map(([label, value]) => (
                <div key={label} data-figure={`queue ${label}`}>
                  <dt>{label}</dt>
                  <dd>{value}</dd>
                </div>
              ))}
            </dl>
          )}
          {queue.data && queue.data.in_force.length > 0 && (
            <p>{queue.data.in_force.length} throttle(s) or suspension(s) in force at your destinations.</p>
          )}
        </Section>
        <Section title="Attention">
          <ErrorNote error={domains.error ?? guard.error} />
          {pauses.length + warnings.length + unverified.length === 0 && (
            <p class="muted">
              Nothing needs attention{domains.data && guard.data ? '' : ' as far as known yet'}.
            </p>
          )}
          <ul>
            {pauses.map((s) => (
              <li key={`p${s.stream}`} class="error">
                {streamName(s.stream)} is paused by {s.paused_by}: {s.reason}. New mail is accepted and held.
              </li>
            ))}
            {warnings.map((s) => (
              <li key={`w${s.stream}`}>
                {streamName(s.stream)}: the reputation guard warned at{' '}
                {new Date(s.warned_at ?? '').toLocaleString()} (
                {s.reason ?? 'bounce or complaint rate near its limit'}).
              </li>
            ))}
            {unverified.map((d) => (
              <li key={d.domain}>
                <a href={`#/domains?domain=${encodeURIComponent(d.domain)}`}>{d.domain}</a> is not verified:
                mail from it is refused until its DNS records are published.
              </li>
            ))}
          </ul>
        </Section>
      </div>
    </>
  );
}

function Breakdown(props: {
  title: string;
  dimension: 'stream' | 'provider';
  stats?: Stats;
  error?: string;
}) {
  const rows = props.stats?.totals ?? [];
  const chart = useMemo(() => groupedSeries(props.stats, props.dimension), [props.stats, props.dimension]);
  return (
    <Section title={props.title}>
      <ErrorNote error={props.error} />
      {rows.length > 0 && (
        <div class="chart-by" data-testid={`chart-by-${props.dimension}`}>
          <Chart title={`Delivered by ${props.dimension}`} times={chart.times} series={chart.series} />
        </div>
      )}
      {rows.length === 0 ? (
        <p class="muted">No mail in this range.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">{props.dimension}</th>
                <th scope="col">Delivered</th>
                <th scope="col">Bounced</th>
                <th scope="col">Delivery</th>
                <th scope="col">Complaints</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((e) => (
                <tr key={e[props.dimension]}>
                  <th scope="row">{e[props.dimension] || '–'}</th>
                  <td>{e.counters.delivered ?? 0}</td>
                  <td>{(e.counters.hard_bounced ?? 0) + (e.counters.soft_bounced ?? 0)}</td>
                  <td>{percent(e.rates.delivery_rate)}</td>
                  <td>{percent(e.rates.complaint_rate)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}
