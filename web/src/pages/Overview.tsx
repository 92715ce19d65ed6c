import { useMemo, useState } from 'preact/hooks';
import { get, percent, query } from '../api.ts';
import { Chart, type Series } from '../components/Chart.tsx';
import { ErrorNote, Loading, Section } from '../components/ui.tsx';
import { useLoad } from '../hooks.ts';

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

/** Volume and rates over time (/v1/stats), by stream and provider, and domains needing attention. */
export function Overview() {
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
    () => get<Stats>(`/v1/stats${query({ interval: r.interval, from: since(r.hours), group_by: 'provider' })}`),
    [range],
  );
  const domains = useLoad(() => get<{ data: Domain[] }>('/v1/domains'), []);

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

  return (
    <>
      <div class="page-head">
        <h1>Overview</h1>
        <div role="group" aria-label="Time range" class="toolbar">
          {(Object.keys(RANGES) as Range[]).map((k) => (
            <button type="button" class="small" key={k} aria-pressed={range === k} onClick={() => setRange(k)}>
              {k}
            </button>
          ))}
          <button type="button" class="small" onClick={() => stats.reload()}>
            Refresh
          </button>
        </div>
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
        <Breakdown title="By mailbox provider" dimension="provider" stats={byProvider.data} error={byProvider.error} />
      </div>
      <Section title="Attention">
        <ErrorNote error={domains.error} />
        {unverified.length === 0 ? (
          <p class="muted">No domain problems{domains.data ? '' : ' known yet'}.</p>
        ) : (
          <ul>
            {unverified.map((d) => (
              <li key={d.domain}>
                <a href={`#/domains?domain=${encodeURIComponent(d.domain)}`}>{d.domain}</a> is not verified: mail from it
                is refused until its DNS records are published.
              </li>
            ))}
          </ul>
        )}
        <p class="muted small-print">
          Queue depth and guard state are not in the /v1 API yet; operators see the queue with{' '}
          <code>postbote queue</code> and Prometheus <code>/metrics</code>.
        </p>
      </Section>
    </>
  );
}

function Breakdown(props: { title: string; dimension: 'stream' | 'provider'; stats?: Stats; error?: string }) {
  const rows = props.stats?.totals ?? [];
  return (
    <Section title={props.title}>
      <ErrorNote error={props.error} />
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
