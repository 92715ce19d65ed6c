/**
 * What both adapters share for the statistics rollups (Store.applyRollup, Store.queryStats):
 * merging increments of one row, and the query's SQL, which is the same text in both dialects
 * apart from the placeholders.
 */
import { type RollupIncrement, STATS_DIMENSIONS, type StatsQuery } from './types.ts';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

const keyOf = (i: RollupIncrement): string =>
  [i.accountId, i.bucket, i.stream, i.tag, i.domain, i.provider, i.counter].join('\0');

/**
 * Increments of the same row summed into one: an upsert statement may touch a row only once
 * (PostgreSQL refuses `ON CONFLICT DO UPDATE` on a row twice), and fewer rows are cheaper.
 * Zero increments are dropped.
 */
export function mergeIncrements(increments: readonly RollupIncrement[]): RollupIncrement[] {
  const merged = new Map<string, RollupIncrement>();
  for (const i of increments) {
    const key = keyOf(i);
    const seen = merged.get(key);
    if (seen) seen.n += i.n;
    else merged.set(key, { ...i });
  }
  return [...merged.values()].filter((i) => i.n !== 0);
}

/**
 * The rollup query: one row per (bucket, grouped dimensions, counter). Only dimension names
 * from STATS_DIMENSIONS reach the SQL text; values are parameters. `param(i)` writes the i-th
 * placeholder (`?` or `$i`).
 */
export function statsQuerySql(
  query: StatsQuery,
  param: (index: number) => string,
): { text: string; values: (string | number)[] } {
  const values: (string | number)[] = [];
  const p = (value: string | number): string => {
    values.push(value);
    return param(values.length);
  };
  const size = query.interval === 'day' ? DAY_MS : HOUR_MS;
  const bucket = `(bucket - bucket % ${p(size)})`;
  const where = [
    `account_id = ${p(query.accountId)}`,
    `bucket >= ${p(query.from)}`,
    `bucket < ${p(query.to)}`,
  ];
  for (const dim of STATS_DIMENSIONS) {
    const value = query.filter?.[dim];
    if (value !== undefined) where.push(`${dim} = ${p(value)}`);
  }
  // Every event counts once in the all-tags row ('') and once per tag: without a tag, only the
  // all-tags rows, so a message with two tags is not counted twice.
  if (query.filter?.tag === undefined) where.push(query.groupBy.includes('tag') ? `tag <> ''` : `tag = ''`);
  const dims = STATS_DIMENSIONS.map((d) => (query.groupBy.includes(d) ? d : `'' AS ${d}`));
  const grouped = STATS_DIMENSIONS.filter((d) => query.groupBy.includes(d));
  const groupCols = ['b', ...grouped, 'counter'].join(', ');
  return {
    text: `SELECT ${bucket} AS b, ${dims.join(', ')}, counter, SUM(n) AS n
      FROM stats_rollups WHERE ${where.join(' AND ')}
      GROUP BY ${groupCols} ORDER BY ${groupCols}`,
    values,
  };
}
