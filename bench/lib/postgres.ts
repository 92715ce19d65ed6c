/**
 * The PostgreSQL side of the relay benchmark: a connection for the bench's own reads, a fresh
 * schema per run (dropped at the end), the figures of a run read from its schema, and the CPU
 * the database server used (it runs on the same machine and competes with Postbote for it).
 */
import { existsSync, readFileSync } from 'node:fs';
import { Client, escapeIdentifier } from 'pg';
import { freshSchemaName } from '../../test/support/postgres.ts';
import { figuresFromEvents, type StoreFigures } from './postbote-node.ts';
import { cpuSeconds, descendants, storageWriteBytes } from './processes.ts';

export { freshSchemaName };

/** A connected client, or why there is none (the bench then says so and stops). */
export async function connectPostgres(url: string): Promise<{ client: Client } | { reason: string }> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => {}); // a server going away later must not crash the bench
  try {
    await client.connect();
    return { client };
  } catch (err) {
    await client.end().catch(() => {});
    return {
      reason: `PostgreSQL not reachable at ${url.replace(/\/\/[^@]*@/, '//…@')}: ${(err as Error).message}`,
    };
  }
}

export interface ServerInfo {
  /** `PostgreSQL 15.x` */
  version: string;
  /** The settings that decide what a commit costs, for the report header. */
  settings: string;
  /** The postmaster, when the server runs on this machine (its CPU is then measured). */
  postmasterPid?: number;
}

export async function describeServer(client: Client): Promise<ServerInfo> {
  const r = await client.query<Record<string, string | number>>(
    `SELECT current_setting('server_version') AS version,
       current_setting('synchronous_commit') AS synchronous_commit, current_setting('fsync') AS fsync,
       current_setting('wal_sync_method') AS wal_sync_method, current_setting('shared_buffers') AS shared_buffers,
       current_setting('max_connections') AS max_connections, pg_backend_pid() AS pid`,
  );
  const row = r.rows[0] ?? {};
  const settings = ['synchronous_commit', 'fsync', 'wal_sync_method', 'shared_buffers', 'max_connections']
    .map((k) => `${k}=${row[k]}`)
    .join(', ');
  // Our backend's parent is the postmaster, if /proc shows it (a local server).
  let postmasterPid: number | undefined;
  const backendStat = `/proc/${row.pid}/stat`;
  if (existsSync(backendStat)) {
    const text = readFileSync(backendStat, 'utf8');
    const ppid = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]);
    if (Number.isInteger(ppid) && ppid > 1) postmasterPid = ppid;
  }
  return {
    version: `PostgreSQL ${row.version}`,
    settings,
    ...(postmasterPid !== undefined ? { postmasterPid } : {}),
  };
}

/**
 * CPU seconds used so far by the server: the postmaster, its live processes (backends, WAL
 * writer, checkpointer, …) and the backends that already exited (counted in the postmaster's
 * children time once it reaped them).
 */
export function serverCpuSeconds(postmasterPid: number): number {
  let total = cpuSeconds(postmasterPid, true);
  for (const pid of descendants(postmasterPid)) total += cpuSeconds(pid);
  return total;
}

const q = (schema: string, table: string): string => `${escapeIdentifier(schema)}.${table}`;

export async function countStatesPg(client: Client, schema: string): Promise<Record<string, number>> {
  const r = await client.query<{ state: string; n: string }>(
    `SELECT state, count(*) AS n FROM ${q(schema, 'recipients')} GROUP BY state`,
  );
  return Object.fromEntries(r.rows.map((row) => [row.state, Number(row.n)]));
}

/** The same figures readStoreFigures takes from a SQLite file, from a PostgreSQL schema. */
export async function readStoreFiguresPg(client: Client, schema: string): Promise<StoreFigures> {
  const states = await countStatesPg(client, schema);
  const messages = Number(
    (await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${q(schema, 'messages')}`)).rows[0]?.n ?? 0,
  );
  const events = await client.query<{ type: string; at: string; recipient_id: string }>(
    `SELECT type, at, recipient_id FROM ${q(schema, 'events')}
     WHERE type IN ('accepted', 'delivered', 'deferred')`,
  );
  const size = await client.query<{ bytes: string | null }>(
    `SELECT sum(pg_total_relation_size(c.oid)) AS bytes FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`,
    [schema],
  );
  return figuresFromEvents(
    events.rows.map((r) => ({ type: r.type, at: Number(r.at), recipientId: Number(r.recipient_id) })),
    { messages, states, diskBytes: Number(size.rows[0]?.bytes ?? 0) },
  );
}

export async function dropSchema(client: Client, schema: string): Promise<void> {
  await client.query(`DROP SCHEMA IF EXISTS ${escapeIdentifier(schema)} CASCADE`);
}

/** Recipients a node holds a lease on right now (state `delivering`). */
export async function leasesHeldBy(
  client: Client,
  schema: string,
  owner: string,
): Promise<{ id: number; leaseUntil: number }[]> {
  const r = await client.query<{ id: string; lease_until: string }>(
    `SELECT id, lease_until FROM ${q(schema, 'recipients')} WHERE state = 'delivering' AND lease_owner = $1`,
    [owner],
  );
  return r.rows.map((row) => ({ id: Number(row.id), leaseUntil: Number(row.lease_until) }));
}

/** Of the given recipients: how many `owner` still holds, and how many are delivered. */
export async function leaseProgress(
  client: Client,
  schema: string,
  owner: string,
  ids: number[],
): Promise<{ held: number; delivered: number }> {
  const r = await client.query<{ held: string; delivered: string }>(
    `SELECT count(*) FILTER (WHERE state = 'delivering' AND lease_owner = $1) AS held,
       count(*) FILTER (WHERE state = 'delivered') AS delivered
     FROM ${q(schema, 'recipients')} WHERE id = ANY($2::bigint[])`,
    [owner, ids],
  );
  return { held: Number(r.rows[0]?.held ?? 0), delivered: Number(r.rows[0]?.delivered ?? 0) };
}

/** The first `delivered` event of each of the given recipients (ms epoch). */
export async function deliveredAt(
  client: Client,
  schema: string,
  ids: number[],
): Promise<Map<number, number>> {
  const r = await client.query<{ id: string; at: string }>(
    `SELECT recipient_id AS id, min(at) AS at FROM ${q(schema, 'events')}
     WHERE type = 'delivered' AND recipient_id = ANY($1::bigint[]) GROUP BY recipient_id`,
    [ids],
  );
  return new Map(r.rows.map((row) => [Number(row.id), Number(row.at)]));
}

/** Bytes written to storage so far by the server's live processes (`write_bytes`, /proc/PID/io). */
export function serverWriteBytes(postmasterPid: number): number {
  let total = storageWriteBytes(postmasterPid) ?? 0;
  for (const pid of descendants(postmasterPid)) total += storageWriteBytes(pid) ?? 0;
  return total;
}

export interface ActivitySummary {
  /** Sessions seen, summed over the samples. */
  sessionSamples: number;
  samples: number;
  /** `state` → session samples. */
  states: Map<string, number>;
  /** Non-idle sessions by `[wait event] query head` → session samples. */
  busy: Map<string, number>;
}

/**
 * Samples pg_stat_activity for the sessions whose application_name starts with `prefix` (each
 * node sets PGAPPNAME): what they wait on and which statement, so a report can say where the
 * time goes inside the database. Uses its own connection, so the bench's queries never wait
 * behind a sample.
 */
export async function sampleActivity(
  url: string,
  prefix: string,
  intervalMs = 100,
): Promise<{ stop(): Promise<ActivitySummary> }> {
  const summary: ActivitySummary = { sessionSamples: 0, samples: 0, states: new Map(), busy: new Map() };
  const connected = await connectPostgres(url);
  if ('reason' in connected) return { stop: async () => summary };
  const { client } = connected;
  let stopped = false;
  const add = (m: Map<string, number>, k: string): void => {
    m.set(k, (m.get(k) ?? 0) + 1);
  };
  const loop = (async () => {
    while (!stopped) {
      const r = await client
        .query<{
          state: string | null;
          wait_event_type: string | null;
          wait_event: string | null;
          query: string;
        }>(
          `SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity
           WHERE application_name LIKE $1 AND pid <> pg_backend_pid()`,
          [`${prefix}%`],
        )
        .catch(() => undefined);
      if (r) {
        summary.samples++;
        for (const s of r.rows) {
          const state = s.state ?? 'unknown';
          summary.sessionSamples++;
          add(summary.states, state);
          if (state === 'idle') continue;
          const wait = s.wait_event_type ? `${s.wait_event_type}:${s.wait_event}` : 'running';
          const head = s.query.replace(/\s+/g, ' ').trim().slice(0, 48);
          add(summary.busy, `${state === 'active' ? '' : `${state}: `}${head} [${wait}]`);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await client.end().catch(() => {});
      return summary;
    },
  };
}

/** One line: the states of the sampled sessions, then the busiest statements with their waits. */
export function formatActivity(a: ActivitySummary, top = 6): string {
  if (a.sessionSamples === 0) return 'no sessions sampled';
  const idle = a.states.get('idle') ?? 0;
  const busyTotal = a.sessionSamples - idle;
  const avg = (n: number): string => (n / Math.max(1, a.samples)).toFixed(1);
  const busy = [...a.busy]
    .sort((x, y) => y[1] - x[1])
    .slice(0, top)
    .map(([k, n]) => `${((100 * n) / Math.max(1, busyTotal)).toFixed(0)}% ${k}`);
  return (
    `${a.samples} samples; ${avg(a.sessionSamples)} sessions open, ${avg(busyTotal)} not idle on average` +
    (busyTotal > 0 ? `; of the not-idle ones: ${busy.join('; ')}` : '')
  );
}

export interface DatabaseCounters {
  commits: number;
  rollbacks: number;
  inserted: number;
  updated: number;
  deleted: number;
  /** Bytes of WAL written since the cluster was created (a position: subtract two readings). */
  walBytes: number;
}

/**
 * The database's cumulative counters (pg_stat_database, database-wide: other clients of the same
 * database count too) and the WAL position. Backends report their counts when they go idle or
 * exit: read the final value after the nodes stopped.
 */
export async function databaseCounters(client: Client): Promise<DatabaseCounters> {
  const r = await client.query<Record<string, string>>(
    `SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted,
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') AS wal
     FROM pg_stat_database WHERE datname = current_database()`,
  );
  const row = r.rows[0] ?? {};
  return {
    commits: Number(row.xact_commit ?? 0),
    rollbacks: Number(row.xact_rollback ?? 0),
    inserted: Number(row.tup_inserted ?? 0),
    updated: Number(row.tup_updated ?? 0),
    deleted: Number(row.tup_deleted ?? 0),
    walBytes: Number(row.wal ?? 0),
  };
}

/** "per message: 3.0 commits, 4.0 rows inserted, …; WAL 12.3 KB" from two readings. */
export function formatCounters(before: DatabaseCounters, after: DatabaseCounters, messages: number): string {
  const per = (k: keyof DatabaseCounters): string => ((after[k] - before[k]) / messages).toFixed(1);
  return (
    `per message ${per('commits')} commits, ${per('rollbacks')} rollbacks, rows ${per('inserted')} inserted, ` +
    `${per('updated')} updated, ${per('deleted')} deleted; WAL ${((after.walBytes - before.walBytes) / messages / 1024).toFixed(1)} KB`
  );
}

/**
 * Starts counting statements with pg_stat_statements, when the server loads it
 * (`shared_preload_libraries`; bench/README.md says how): creates the extension in this database
 * if needed and resets it. False when it is not loaded: the phase then reports no statements.
 */
export async function resetStatementStats(client: Client): Promise<boolean> {
  try {
    const loaded = await client.query<{ libs: string }>(
      `SELECT current_setting('shared_preload_libraries') AS libs`,
    );
    if (!/\bpg_stat_statements\b/.test(loaded.rows[0]?.libs ?? '')) return false;
    await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await client.query('SELECT pg_stat_statements_reset()');
    return true;
  } catch {
    return false;
  }
}

/**
 * What the database's statements cost per message since resetStatementStats (database-wide, the
 * bench's own sampling of pg_stat_activity left out): calls, plans, planning and execution time,
 * and the `top` statements by planning + execution time. Planning is counted only with
 * `pg_stat_statements.track_planning = on`.
 */
export async function formatStatementStats(client: Client, messages: number, top = 5): Promise<string> {
  const { rows } = await client.query<Record<string, string>>(
    `SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 48) AS head, sum(calls) AS calls, sum(plans) AS plans,
       sum(total_plan_time) AS plan_ms, sum(total_exec_time) AS exec_ms
     FROM pg_stat_statements
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND query NOT LIKE '%pg_stat_activity%' AND query NOT LIKE '%pg_stat_statements%'
     GROUP BY 1 ORDER BY sum(total_plan_time) + sum(total_exec_time) DESC`,
  );
  const per = (n: number): string => (n / messages).toFixed(2);
  const ms = (n: number): string => `${((n / messages) * 1000).toFixed(0)} µs`;
  const sum = (k: string): number => rows.reduce((s, r) => s + Number(r[k] ?? 0), 0);
  const planning = sum('plans') > 0 ? `planning ${ms(sum('plan_ms'))}, ` : '(planning not tracked), ';
  const heads = rows
    .slice(0, top)
    .map(
      (r) =>
        `"${r.head}…" ${per(Number(r.calls))} calls, ${per(Number(r.plans))} plans, ` +
        `${ms(Number(r.plan_ms) + Number(r.exec_ms))}`,
    );
  return (
    `per message ${per(sum('calls'))} statements, ${per(sum('plans'))} plans, ${planning}` +
    `execution ${ms(sum('exec_ms'))}; by time: ${heads.join('; ')}`
  );
}
