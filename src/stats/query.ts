/**
 * Reading the rollups: the parameters of /v1/stats and `postbote stats` (one parser, so both
 * refuse the same things with the same words) and the answer's shape: one entry per bucket and
 * group with its counters, bounces by category and derived rates, plus totals per group.
 */
import { DAY_MS, HOUR_MS } from '../store/stats-sql.ts';
import type { Store } from '../store/store.ts';
import { STATS_DIMENSIONS, type StatsDimension, type StatsQuery, type StatsRow } from '../store/types.ts';
import { COUNTERS, type Rates, ratesOf } from './counters.ts';
import { MAILBOX_PROVIDERS } from './providers.ts';

/** Bad parameters: `field` names the parameter (`group_by`, `from`, …). */
export class StatsQueryError extends Error {
  readonly field: string;
  constructor(message: string, field: string) {
    super(message);
    this.name = 'StatsQueryError';
    this.field = field;
  }
}

/** How many buckets one query may span (an hourly month, a daily year and a bit). */
export const MAX_BUCKETS = { hour: 24 * 31, day: 400 } as const;
/** Without `from`: the last day by hour, the last 30 days by day. */
const DEFAULT_SPAN = { hour: 24, day: 30 } as const;

export interface StatsParams {
  group_by?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  interval?: string | undefined;
  stream?: string | undefined;
  tag?: string | undefined;
  domain?: string | undefined;
  provider?: string | undefined;
}

function parseTime(value: string, field: string): number {
  // RFC 3339 date-time or a plain date (UTC midnight); Date.parse alone accepts too much.
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.test(value)) {
    throw new StatsQueryError(`${field} must be an RFC 3339 date-time or a date (2026-11-28)`, field);
  }
  const dateOnly = value.length === 10;
  const ms = Date.parse(dateOnly ? `${value}T00:00:00Z` : value);
  if (!Number.isFinite(ms)) throw new StatsQueryError(`${field} is not a valid time`, field);
  return ms;
}

/** Validated query for one account from the raw parameters; `now` is the default end. */
export function parseStatsQuery(accountId: string, params: StatsParams, now: number): StatsQuery {
  const interval = params.interval ?? 'hour';
  if (interval !== 'hour' && interval !== 'day') {
    throw new StatsQueryError('interval must be hour or day', 'interval');
  }
  const size = interval === 'day' ? DAY_MS : HOUR_MS;
  const groupBy: StatsDimension[] = [];
  for (const part of (params.group_by ?? '').split(',')) {
    const dim = part.trim().toLowerCase();
    if (dim === '') continue;
    if (!(STATS_DIMENSIONS as readonly string[]).includes(dim)) {
      throw new StatsQueryError(
        `group_by takes ${STATS_DIMENSIONS.join(', ')} (comma-separated); not ${JSON.stringify(part.trim().slice(0, 40))}`,
        'group_by',
      );
    }
    if (!groupBy.includes(dim as StatsDimension)) groupBy.push(dim as StatsDimension);
  }
  // Buckets are whole UTC hours or days: from rounds down, to rounds up.
  const toRaw = params.to === undefined || params.to === '' ? now : parseTime(params.to, 'to');
  const to = Math.ceil(toRaw / size) * size;
  const from =
    params.from === undefined || params.from === ''
      ? to - DEFAULT_SPAN[interval] * size
      : Math.floor(parseTime(params.from, 'from') / size) * size;
  if (from >= to) throw new StatsQueryError('from must be before to', 'from');
  if ((to - from) / size > MAX_BUCKETS[interval]) {
    throw new StatsQueryError(
      `at most ${MAX_BUCKETS[interval]} ${interval}s per query; narrow from/to or use interval=day`,
      'from',
    );
  }
  const filter: Partial<Record<StatsDimension, string>> = {};
  for (const dim of STATS_DIMENSIONS) {
    const value = params[dim];
    if (value === undefined) continue;
    if (value.length > 255) throw new StatsQueryError(`${dim} is longer than 255 characters`, dim);
    filter[dim] = dim === 'tag' ? value : value.toLowerCase();
    if (dim === 'provider' && !(MAILBOX_PROVIDERS as readonly string[]).includes(filter[dim] ?? '')) {
      throw new StatsQueryError(`provider must be one of ${MAILBOX_PROVIDERS.join(', ')}`, 'provider');
    }
  }
  return { accountId, from, to, interval, groupBy, ...(Object.keys(filter).length > 0 ? { filter } : {}) };
}

export interface StatsEntry {
  /** Start of the bucket (ISO); absent in totals. */
  start?: string;
  stream?: string;
  tag?: string;
  domain?: string;
  provider?: string;
  counters: Record<string, number>;
  hard_bounces_by_category: Record<string, number>;
  soft_bounces_by_category: Record<string, number>;
  rates: Rates;
}

export interface StatsAnswer {
  from: string;
  to: string;
  interval: 'hour' | 'day';
  group_by: StatsDimension[];
  /** One entry per bucket and group that has any count, in time order. */
  data: StatsEntry[];
  /** One entry per group over the whole range. */
  totals: StatsEntry[];
}

function emptyEntry(): Omit<StatsEntry, 'rates'> {
  return {
    counters: Object.fromEntries(COUNTERS.map((c) => [c, 0])),
    hard_bounces_by_category: {},
    soft_bounces_by_category: {},
  };
}

function add(entry: Omit<StatsEntry, 'rates'>, counter: string, n: number): void {
  const [name, category] = counter.split(':', 2);
  if (category !== undefined) {
    const byCategory =
      name === 'hard_bounced'
        ? entry.hard_bounces_by_category
        : name === 'soft_bounced'
          ? entry.soft_bounces_by_category
          : undefined;
    if (byCategory) byCategory[category] = (byCategory[category] ?? 0) + n;
    return;
  }
  entry.counters[counter] = (entry.counters[counter] ?? 0) + n;
}

/** The answer's shape from the store's rows (pure). */
export function shapeStats(query: StatsQuery, rows: readonly StatsRow[]): StatsAnswer {
  const labels = (r: StatsRow): Partial<Record<StatsDimension, string>> =>
    Object.fromEntries(query.groupBy.map((d) => [d, r[d]]));
  const groupKey = (r: StatsRow): string => query.groupBy.map((d) => r[d]).join('\0');
  const series = new Map<string, Omit<StatsEntry, 'rates'>>();
  const totals = new Map<string, Omit<StatsEntry, 'rates'>>();
  for (const r of rows) {
    const key = `${r.bucket}\0${groupKey(r)}`;
    let entry = series.get(key);
    if (!entry) {
      entry = { start: new Date(r.bucket).toISOString(), ...labels(r), ...emptyEntry() };
      series.set(key, entry);
    }
    add(entry, r.counter, r.n);
    let total = totals.get(groupKey(r));
    if (!total) {
      total = { ...labels(r), ...emptyEntry() };
      totals.set(groupKey(r), total);
    }
    add(total, r.counter, r.n);
  }
  const finish = (e: Omit<StatsEntry, 'rates'>): StatsEntry => ({ ...e, rates: ratesOf(e.counters) });
  return {
    from: new Date(query.from).toISOString(),
    to: new Date(query.to).toISOString(),
    interval: query.interval,
    group_by: query.groupBy,
    data: [...series.values()].map(finish),
    totals: [...totals.values()].map(finish),
  };
}

/** Runs a query against the store and shapes the answer. */
export async function readStats(store: Store, query: StatsQuery): Promise<StatsAnswer> {
  return shapeStats(query, await store.queryStats(query));
}
