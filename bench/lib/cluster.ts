/**
 * One or more Postbote nodes sharing a store, as the PostgreSQL benchmarks run them: on
 * PostgreSQL a fresh schema per run (dropped when the run is disposed of, unless kept), each
 * node with its own data dir (pid lock, TLS certificate), node id, submission and HTTP ports,
 * and its own EHLO name for outbound connections so that the sink can tell which node delivered
 * a message. On SQLite a single node with the same settings, for the reference figure.
 *
 * And the sink they deliver to: `smtp-sink -c -D FILE`, counting as usual and dumping every
 * message so that duplicates can be counted by message identity afterwards (sink-dump.ts);
 * plus the options and context the PostgreSQL benchmark's phases share.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  countStates,
  createBenchAccount,
  type PostboteNode,
  readStoreFigures,
  runCli,
  type StoreFigures,
  startPostboteNode,
} from './postbote-node.ts';
import {
  countStatesPg,
  dropSchema,
  freshSchemaName,
  readStoreFiguresPg,
  type ServerInfo,
} from './postgres.ts';
import type { Cleanup } from './processes.ts';
import { SinkDump } from './sink-dump.ts';
import { type Sink, startSink } from './smtp-tools.ts';

export interface ClusterContext {
  cleanup: Cleanup;
  tmp: string;
  /** host:port of the in-process DNS server (sink.test MX → 127.0.0.1). */
  dns: string;
  databaseUrl: string;
  admin: Client;
  logLevel: string;
  /** Keep the schemas (and the temp dir) for inspection. */
  keep: boolean;
}

export interface PostgresBenchOptions {
  messages: number;
  sessions: number;
  size: number;
  logLevel: string;
  /** Upper bound per phase, ms. */
  timeoutMs: number;
  keep: boolean;
  databaseUrl: string;
  /** Node counts to run on PostgreSQL, e.g. [1, 2]. */
  nodes: number[];
  /** Run the SQLite reference too. */
  sqlite: boolean;
  /** The kill demo instead of the comparison: kill -9 one node once this many were delivered. */
  killAfter?: number;
  /** delivery.lease of the kill demo's nodes. */
  lease: string;
}

export const FROM = 'from@bench.test';
export const TO = 'user@sink.test';
export const STALL_MS = 60_000;

/** What a phase shares with the next: processes, the temp dir, DNS, the database. */
export interface PostgresBenchContext extends ClusterContext {
  options: PostgresBenchOptions;
  server: ServerInfo;
  deadline(): number;
  /** CPU seconds of the PostgreSQL server so far (0 when it is not on this machine). */
  serverCpu(): number;
}

/** `total` split into `parts` near-equal shares (the first ones get the remainder). */
export function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

export type StoreKind = 'sqlite' | 'postgres';

export interface Cluster {
  readonly store: StoreKind;
  /** The PostgreSQL schema (undefined on SQLite). */
  readonly schema: string | undefined;
  readonly nodes: PostboteNode[];
  /** node-a, node-b, …: node id, and `<id>.bench.test` is its EHLO name. */
  readonly ids: string[];
  countStates(): Promise<Record<string, number>>;
  figures(): Promise<StoreFigures>;
  /** `postbote ARGS` against this cluster's store. */
  cli(args: string[]): Promise<string>;
  /** Stops every node still running (SIGTERM), then drops the schema unless kept. */
  dispose(): Promise<void>;
}

export const nodeId = (i: number): string => `node-${String.fromCharCode(97 + i)}`;
export const ehloName = (id: string): string => `${id}.bench.test`;

let runs = 0;

export async function startCluster(
  ctx: ClusterContext,
  options: { store: StoreKind; nodes: number; deliveryPort: number; lease?: string },
): Promise<Cluster> {
  const run = ++runs;
  const schema = options.store === 'postgres' ? freshSchemaName('postbote_bench') : undefined;
  const storeEnv: NodeJS.ProcessEnv = schema
    ? { POSTBOTE_DATABASE__URL: ctx.databaseUrl, POSTBOTE_DATABASE__SCHEMA: schema }
    : {};
  const ids = Array.from({ length: options.nodes }, (_, i) => nodeId(i));
  const dataDirs = ids.map((id) => join(ctx.tmp, `run${run}-${options.store}-${id}`));
  const nodes: PostboteNode[] = [];
  let disposed = false;
  const dispose = async (): Promise<void> => {
    if (disposed) return;
    disposed = true;
    await Promise.all(nodes.map((n) => n.stop()));
    if (schema && !ctx.keep) await dropSchema(ctx.admin, schema);
    else if (schema) process.stderr.write(`kept schema ${schema}\n`);
  };
  const unregister = ctx.cleanup.add(`cluster run ${run}`, dispose);
  try {
    // The account exists before the nodes start, so each loads the IP credential at start-up.
    await createBenchAccount(dataDirs[0] ?? ctx.tmp, storeEnv);
    for (const [i, id] of ids.entries()) {
      nodes.push(
        await startPostboteNode({
          dataDir: dataDirs[i] ?? ctx.tmp,
          dnsServer: ctx.dns,
          deliveryPort: options.deliveryPort,
          logLevel: ctx.logLevel,
          cleanup: ctx.cleanup,
          name: `postbote ${id} (${options.store})`,
          env: {
            ...storeEnv,
            POSTBOTE_NODE_ID: id,
            // node-postgres names its connections after PGAPPNAME: the bench samples them by it.
            ...(schema ? { PGAPPNAME: `${schema}.${id}` } : {}),
            POSTBOTE_DELIVERY__EHLO_NAME: ehloName(id),
            ...(options.lease ? { POSTBOTE_DELIVERY__LEASE: options.lease } : {}),
          },
        }),
      );
    }
  } catch (err) {
    await dispose();
    unregister();
    throw err;
  }
  const dbPath = join(dataDirs[0] ?? ctx.tmp, 'postbote.db');
  return {
    store: options.store,
    schema,
    nodes,
    ids,
    countStates: () => (schema ? countStatesPg(ctx.admin, schema) : Promise.resolve(countStates(dbPath))),
    figures: () =>
      schema ? readStoreFiguresPg(ctx.admin, schema) : Promise.resolve(readStoreFigures(dbPath)),
    cli: (args) => runCli(dataDirs[0] ?? ctx.tmp, args, storeEnv),
    async dispose() {
      await dispose();
      unregister();
    },
  };
}

/** `smtp-sink -c -D DIR/dump`, with a SinkDump reading that file. */
export async function startDumpSink(
  ctx: ClusterContext,
  name: string,
): Promise<{ sink: Sink; dump: SinkDump; path: string }> {
  const dir = join(ctx.tmp, `sink-${++runs}`);
  mkdirSync(dir);
  chmodSync(dir, 0o777); // smtp-sink creates the file after dropping to -u postfix
  const path = join(dir, 'dump');
  const sink = await startSink({ cleanup: ctx.cleanup, name, flags: ['-D', path] });
  return { sink, dump: new SinkDump(path), path };
}
