/**
 * Postbote as the user runs it: `node src/cli/main.ts start` in its own process, configured
 * through POSTBOTE_* variables, with an account and an IP credential created by the CLI; and
 * the figures read back from its SQLite store (read-only) after the run.
 */
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { promisify } from 'node:util';
import { startDnsServer } from '../../test/support/dns-server.ts';
import {
  type Child,
  type Cleanup,
  cpuSeconds,
  freePort,
  procStatusKb,
  sleep,
  startChild,
} from './processes.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const main = join(root, 'src', 'cli', 'main.ts');

function baseEnv(dataDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('POSTBOTE_')) env[k] = v;
  return { ...env, POSTBOTE_DATA_DIR: dataDir, POSTBOTE_HOSTNAME: 'postbote.bench.test' };
}

/** Runs `postbote ARGS` (the CLI) against the store the environment selects; resolves with stdout. */
export async function runCli(
  dataDir: string,
  args: string[],
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<string> {
  const env = { ...baseEnv(dataDir), ...extraEnv };
  const { stdout } = await run(process.execPath, [main, ...args], { env, timeout: 60_000 });
  return stdout;
}

/**
 * `postbote accounts create bench` and `credentials create --account bench --ip 127.0.0.0/8`;
 * `extraEnv` adds settings (the PostgreSQL URL and schema: the account then lives there).
 */
export async function createBenchAccount(dataDir: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<void> {
  await runCli(dataDir, ['accounts', 'create', 'bench', '--sender-policy', 'any'], extraEnv);
  await runCli(dataDir, ['credentials', 'create', '--account', 'bench', '--ip', '127.0.0.0/8'], extraEnv);
}

export interface PostboteNode {
  readonly child: Child;
  readonly submissionPort: number;
  readonly httpPort: number;
  /** The SQLite store (meaningless when the node runs on PostgreSQL). */
  readonly dbPath: string;
  /** Log lines written so far, by pino level name. */
  readonly logLevels: Record<string, number>;
  /** The last log lines (for error reports). */
  readonly recentLogs: string[];
  /** VmHWM (peak resident set) in kB, read now from /proc. */
  peakRssKb(): number | undefined;
  cpuSeconds(): number;
  stop(): Promise<void>;
}

const LEVELS: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

export async function startPostboteNode(options: {
  dataDir: string;
  dnsServer: string;
  deliveryPort: number;
  logLevel: string;
  /** Write a V8 CPU profile of the whole run into this directory. */
  cpuProfileDir?: string;
  /** More POSTBOTE_* settings (database URL and schema, node id, EHLO name, lease). */
  env?: NodeJS.ProcessEnv;
  cleanup: Cleanup;
  name: string;
}): Promise<PostboteNode> {
  const submissionPort = await freePort();
  const httpPort = await freePort();
  const env = {
    ...baseEnv(options.dataDir),
    POSTBOTE_SMTP__SUBMISSION__LISTEN: `127.0.0.1:${submissionPort}`,
    POSTBOTE_HTTP__LISTEN: `127.0.0.1:${httpPort}`,
    POSTBOTE_DNS__SERVERS: options.dnsServer,
    POSTBOTE_DELIVERY__PORT: String(options.deliveryPort),
    POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
    POSTBOTE_LOG__LEVEL: options.logLevel,
    ...options.env,
  };
  // The V8 flags `npm start` uses (it runs bin/postbote).
  const nodeArgs = [
    '--max-semi-space-size=8',
    '--max-old-space-size=192',
    ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean),
  ];
  if (options.cpuProfileDir) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`);
  const logLevels: Record<string, number> = {};
  const recentLogs: string[] = [];
  let pending = '';
  const onOutput = (chunk: Buffer): void => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const level = /"level":(\d+)/.exec(line);
      const name = level ? (LEVELS[Number(level[1])] ?? level[1] ?? 'other') : 'other';
      logLevels[name] = (logLevels[name] ?? 0) + 1;
      recentLogs.push(line);
      if (recentLogs.length > 30) recentLogs.shift();
    }
  };
  const child = startChild(process.execPath, [...nodeArgs, main, 'start'], {
    name: options.name,
    cleanup: options.cleanup,
    env,
    cwd: root,
    onStdout: onOutput,
    onStderr: onOutput,
  });
  // "Postbote started" is logged at info, which a warn-level run does not print: readiness is
  // the HTTP health check instead (HTTP listens last, after submission and delivery are up).
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (!child.running) {
      throw new Error(`${options.name} exited before it was ready:\n${recentLogs.join('\n')}`);
    }
    const ok = await fetch(`http://127.0.0.1:${httpPort}/healthz`, { signal: AbortSignal.timeout(2000) })
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await child.stop();
      throw new Error(`${options.name} did not become healthy in 30 s:\n${recentLogs.join('\n')}`);
    }
    await sleep(100);
  }
  return {
    child,
    submissionPort,
    httpPort,
    dbPath: join(options.dataDir, 'postbote.db'),
    logLevels,
    recentLogs,
    peakRssKb: () => procStatusKb(child.pid, 'VmHWM'),
    cpuSeconds: () => cpuSeconds(child.pid),
    async stop() {
      const exit = await child.stop('SIGTERM', 45_000);
      if (exit.code !== 0 && exit.code !== null) {
        process.stderr.write(
          `${options.name} exited with ${exit.code}:\n${recentLogs.slice(-10).join('\n')}\n`,
        );
      }
    },
  };
}

/** Reads one aggregate while Postbote runs (WAL allows a concurrent reader). */
export function countStates(dbPath: string): Record<string, number> {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    const out: Record<string, number> = {};
    for (const r of db.prepare('SELECT state, COUNT(*) AS n FROM recipients GROUP BY state').all()) {
      out[String(r.state)] = Number(r.n);
    }
    return out;
  } finally {
    db.close();
  }
}

export interface StoreFigures {
  messages: number;
  states: Record<string, number>;
  acceptedCount: number;
  firstAcceptedAt?: number;
  lastAcceptedAt?: number;
  deliveredCount: number;
  lastDeliveredAt?: number;
  /** accept → delivered per recipient, ms, sorted ascending. */
  latenciesMs: number[];
  deferredEvents: number;
  /** postbote.db plus its WAL, bytes (PostgreSQL: the schema's tables with indexes and TOAST). */
  diskBytes: number;
}

/** One row of the events table, as both store adapters keep it. */
export interface EventRow {
  type: string;
  at: number;
  recipientId: number;
}

/**
 * The report's figures from the `accepted`, `delivered` and `deferred` events (the events table
 * has no index on recipient_id in either store: the join is done here, in memory).
 */
export function figuresFromEvents(
  events: Iterable<EventRow>,
  rest: Pick<StoreFigures, 'messages' | 'states' | 'diskBytes'>,
): StoreFigures {
  const acceptedAt = new Map<number, number>();
  const delivered: { recipient: number; at: number }[] = [];
  let deferredEvents = 0;
  let firstAcceptedAt: number | undefined;
  let lastAcceptedAt: number | undefined;
  let lastDeliveredAt: number | undefined;
  for (const { type, at, recipientId } of events) {
    if (type === 'accepted') {
      acceptedAt.set(recipientId, at);
      firstAcceptedAt = firstAcceptedAt === undefined ? at : Math.min(firstAcceptedAt, at);
      lastAcceptedAt = lastAcceptedAt === undefined ? at : Math.max(lastAcceptedAt, at);
    } else if (type === 'delivered') {
      delivered.push({ recipient: recipientId, at });
      lastDeliveredAt = lastDeliveredAt === undefined ? at : Math.max(lastDeliveredAt, at);
    } else if (type === 'deferred') deferredEvents++;
  }
  const latenciesMs = delivered
    .map((d) => d.at - (acceptedAt.get(d.recipient) ?? d.at))
    .sort((a, b) => a - b);
  return {
    ...rest,
    acceptedCount: acceptedAt.size,
    ...(firstAcceptedAt !== undefined ? { firstAcceptedAt } : {}),
    ...(lastAcceptedAt !== undefined ? { lastAcceptedAt } : {}),
    deliveredCount: delivered.length,
    ...(lastDeliveredAt !== undefined ? { lastDeliveredAt } : {}),
    latenciesMs,
    deferredEvents,
  };
}

/** Everything the report needs from the store, read after the run. */
export function readStoreFigures(dbPath: string): StoreFigures {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    const states: Record<string, number> = {};
    for (const r of db.prepare('SELECT state, COUNT(*) AS n FROM recipients GROUP BY state').all()) {
      states[String(r.state)] = Number(r.n);
    }
    const messages = Number(db.prepare('SELECT COUNT(*) AS n FROM messages').get()?.n ?? 0);
    const rows = db
      .prepare(
        "SELECT type, at, recipient_id FROM events WHERE type IN ('accepted', 'delivered', 'deferred')",
      )
      .all();
    const size = (p: string): number => (existsSync(p) ? statSync(p).size : 0);
    return figuresFromEvents(
      rows.map((r) => ({ type: String(r.type), at: Number(r.at), recipientId: Number(r.recipient_id) })),
      { messages, states, diskBytes: size(dbPath) + size(`${dbPath}-wal`) },
    );
  } finally {
    db.close();
  }
}

/**
 * The DNS every bench gives Postbote (POSTBOTE_DNS__SERVERS): `sink.test MX 10 mx.sink.test`,
 * `mx.sink.test A 127.0.0.1`, stopped by `cleanup`. Resolves with its address.
 */
export async function startSinkDns(cleanup: Cleanup): Promise<string> {
  const dns = await startDnsServer({
    zones: {
      'sink.test': { MX: [{ preference: 10, exchange: 'mx.sink.test' }] },
      'mx.sink.test': { A: ['127.0.0.1'] },
    },
  });
  cleanup.add('dns server', () => dns.close());
  return dns.address;
}
