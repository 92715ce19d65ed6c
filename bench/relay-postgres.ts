/**
 * `npm run bench -- --store postgres`: the relay benchmark on PostgreSQL (issue: "end-to-end
 * msgs/s on PostgreSQL with 1 and 2 nodes, next to SQLite, in one run"). Started by relay.ts,
 * which owns the options; see bench/README.md for the figures.
 *
 * Every scenario runs the same load (smtp-source, split evenly over the nodes' submission
 * ports) into a fresh smtp-sink that dumps what it receives, so duplicates and losses are
 * counted per message, and the work of each node is told apart by its EHLO name:
 *
 *   - SQLite, 1 node (the reference, rerun here with the same sink);
 *   - PostgreSQL with each node count of --nodes (default 1,2), one fresh schema each.
 *
 * With --kill-after N the run is the kill demo instead (relay-kill.ts).
 */

import { rmSync } from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import {
  ehloName,
  FROM,
  type PostgresBenchContext,
  type PostgresBenchOptions,
  STALL_MS,
  type StoreKind,
  split,
  startCluster,
  startDumpSink,
  TO,
} from './lib/cluster.ts';
import { startSinkDns } from './lib/postbote-node.ts';
import {
  connectPostgres,
  databaseCounters,
  describeServer,
  formatActivity,
  formatCounters,
  formatStatementStats,
  resetStatementStats,
  sampleActivity,
  serverCpuSeconds,
  serverWriteBytes,
} from './lib/postgres.ts';
import {
  Cleanup,
  contextSwitches,
  sleep,
  storageWriteBytes,
  threadCpuSeconds,
  threadCpuText,
} from './lib/processes.ts';
import {
  backgroundNote,
  cpuMeter,
  dur,
  int,
  machineLines,
  mb,
  out,
  pct,
  percentile,
  rate,
  table,
  verdict,
} from './lib/report.ts';
import { duplicateCount } from './lib/sink-dump.ts';
import { runSource, type SourceRun } from './lib/smtp-tools.ts';
import { runKillDemo } from './relay-kill.ts';

interface ScenarioRow {
  scenario: string;
  store: StoreKind;
  nodes: number;
  acceptedPerS?: number;
  endToEndPerS?: number;
  sinkEndToEndPerS?: number;
  clientAcceptPerS?: number;
  p50Ms?: number;
  p99Ms?: number;
  /** Distinct messages at the sink, copies beyond the first, messages sent but never seen there. */
  distinct: number;
  duplicates: number;
  lost: number;
  /** Messages delivered by each node, by the EHLO name the sink saw. */
  byNode: { id: string; delivered: number }[];
  complete: boolean;
  notes: string[];
}

async function phaseScenario(ctx: PostgresBenchContext, store: StoreKind, k: number): Promise<ScenarioRow> {
  const { messages: N, sessions, size } = ctx.options;
  const scenario = `${store === 'sqlite' ? 'SQLite' : 'PostgreSQL'}, ${k} node${k > 1 ? 's' : ''}`;
  const row: ScenarioRow = {
    scenario,
    store,
    nodes: k,
    distinct: 0,
    duplicates: 0,
    lost: 0,
    byNode: [],
    complete: false,
    notes: [],
  };
  const { sink, dump } = await startDumpSink(ctx, `smtp-sink (${scenario})`);
  const cluster = await startCluster(ctx, { store, nodes: k, deliveryPort: sink.port });
  try {
    const pm = ctx.server.postmasterPid;
    const activity =
      cluster.schema === undefined ? undefined : await sampleActivity(ctx.databaseUrl, `${cluster.schema}.`);
    const meter = cpuMeter(ctx.serverCpu);
    const counters0 = cluster.schema === undefined ? undefined : await databaseCounters(ctx.admin);
    const statements = cluster.schema !== undefined && (await resetStatementStats(ctx.admin));
    const serverWritten0 = pm === undefined ? 0 : serverWriteBytes(pm);
    const deadline = ctx.deadline();
    const cpu0 = cluster.nodes.map((n) => n.cpuSeconds());
    const threads0 = cluster.nodes.map((n) => threadCpuSeconds(n.child.pid));
    const switches0 = cluster.nodes.map((n) => contextSwitches(n.child.pid));
    const written0 = cluster.nodes.map((n) => storageWriteBytes(n.child.pid) ?? 0);
    const shares = split(N, k);
    const sessionShares = split(sessions, k).map((s) => Math.max(1, s));
    const runs: SourceRun[] = await Promise.all(
      cluster.nodes.map((node, i) =>
        runSource({
          cleanup: ctx.cleanup,
          port: node.submissionPort,
          messages: shares[i] ?? 0,
          sessions: sessionShares[i] ?? 1,
          size,
          from: FROM,
          to: TO,
          timeoutMs: deadline - Date.now(),
        }),
      ),
    );
    const startedAt = Math.min(...runs.map((r) => r.startedAt));
    const endedAt = Math.max(...runs.map((r) => r.endedAt));
    const sourcesOk = runs.every((r) => r.ok);
    for (const [i, r] of runs.entries()) {
      if (!r.ok) {
        row.notes.push(
          `smtp-source to ${cluster.ids[i]} failed: ${r.output.trim().split('\n').slice(-3).join(' | ')}`,
        );
      }
    }
    out(`  submission done in ${dur(endedAt - startedAt)}; waiting for the sink to receive ${int(N)}`);
    const arrived = await sink.waitFor(N, { stallMs: STALL_MS, deadline });
    const sampled = await activity?.stop();
    // The outcome is committed just after the sink's 250: wait for the store to say so too.
    const settle = Math.min(deadline, Date.now() + 30_000);
    let states = await cluster.countStates();
    while ((states.delivered ?? 0) < N && Date.now() < settle) {
      await sleep(250);
      states = await cluster.countStates();
    }
    const cpu = cluster.nodes.map((n, i) => n.cpuSeconds() - (cpu0[i] ?? 0));
    const threads = threadCpuText(
      sumByName(threads0),
      sumByName(cluster.nodes.map((n) => threadCpuSeconds(n.child.pid))),
      N,
    );
    const switches = cluster.nodes.reduce(
      (sum, n, i) => {
        const now = contextSwitches(n.child.pid);
        sum.voluntary += now.voluntary - (switches0[i]?.voluntary ?? 0);
        sum.involuntary += now.involuntary - (switches0[i]?.involuntary ?? 0);
        return sum;
      },
      { voluntary: 0, involuntary: 0 },
    );
    const written = cluster.nodes.map((n, i) => (storageWriteBytes(n.child.pid) ?? 0) - (written0[i] ?? 0));
    const peaks = cluster.nodes.map((n) => n.peakRssKb());
    const serverWritten = pm === undefined ? undefined : serverWriteBytes(pm) - serverWritten0;
    const busyS = ((arrived.at ?? Date.now()) - startedAt) / 1000;
    const serverCpuS = meter().measuredS;
    // Whole-life CPU of the nodes: once they are reaped it is part of the bench's children time.
    const nodeLifeCpu = cluster.nodes.reduce((sum, n) => sum + n.cpuSeconds(), 0);
    for (const n of cluster.nodes) await n.stop();
    await sink.stop();
    const tally = dump.finish();
    const counters = counters0 && (await databaseCounters(ctx.admin));
    const f = await cluster.figures();
    const reading = meter();

    if (
      f.firstAcceptedAt !== undefined &&
      f.lastAcceptedAt !== undefined &&
      f.lastAcceptedAt > f.firstAcceptedAt
    ) {
      row.acceptedPerS = (f.acceptedCount * 1000) / (f.lastAcceptedAt - f.firstAcceptedAt);
    }
    if (f.firstAcceptedAt !== undefined && f.lastDeliveredAt !== undefined) {
      row.endToEndPerS = (f.deliveredCount * 1000) / (f.lastDeliveredAt - f.firstAcceptedAt);
    }
    row.p50Ms = percentile(f.latenciesMs, 50);
    row.p99Ms = percentile(f.latenciesMs, 99);
    row.clientAcceptPerS = (N * 1000) / (endedAt - startedAt);
    if (arrived.at) row.sinkEndToEndPerS = (N * 1000) / (arrived.at - startedAt);
    row.distinct = tally.copies.size;
    row.duplicates = duplicateCount(tally);
    // smtp-source exits non-zero on the first refusal: when all exited 0, all N were accepted.
    row.lost = sourcesOk ? Math.max(0, N - row.distinct) : Math.max(0, f.acceptedCount - row.distinct);
    row.byNode = cluster.ids.map((id) => ({ id, delivered: tally.byHelo.get(ehloName(id)) ?? 0 }));
    row.complete = sourcesOk && f.deliveredCount >= N && row.lost === 0;

    row.notes.push(
      `store: ${f.messages} messages, recipients ${JSON.stringify(f.states)}, ${f.deferredEvents} deferrals, ` +
        `${(f.diskBytes / 1048576).toFixed(0)} MB ${store === 'sqlite' ? 'on disk' : 'in the schema'}; ` +
        `sink: ${int(tally.messages)} received, ${int(row.distinct)} distinct Message-Ids` +
        (tally.anonymous > 0 ? `, ${tally.anonymous} without one` : ''),
    );
    if (row.duplicates > 0) {
      row.notes.push(
        `duplicates, first copy → next copy delivered by: ${[...tally.duplicatePaths].map(([path, n]) => `${path} ${n}`).join(', ')}`,
      );
    }
    const nodeCpu = cpu.reduce((a, b) => a + b, 0);
    const perNode =
      k > 1 ? ` (${cluster.ids.map((id, i) => `${id} ${(cpu[i] ?? 0).toFixed(1)} s`).join(', ')})` : '';
    const serverNote =
      ctx.server.postmasterPid === undefined
        ? ''
        : store === 'postgres'
          ? `; PostgreSQL server ${serverCpuS.toFixed(1)} s (${(serverCpuS / busyS).toFixed(2)} cores, ` +
            `${((serverCpuS * 1000) / N).toFixed(2)} ms per message)`
          : '';
    row.notes.push(
      `CPU from first submission to last delivery (${busyS.toFixed(1)} s): Postbote ${nodeCpu.toFixed(1)} s${perNode} ` +
        `(${(nodeCpu / busyS).toFixed(2)} cores, all threads; ${((nodeCpu * 1000) / N).toFixed(2)} ms per message)` +
        `${serverNote}; the bench, smtp-source and smtp-sink ${Math.max(0, reading.oursS - nodeLifeCpu).toFixed(1)} s`,
    );
    row.notes.push(
      `CPU by thread${k > 1 ? ', all nodes' : ''} (per message, kernel share): ${threads}; context switches per message ` +
        `${(switches.voluntary / N).toFixed(1)} voluntary, ${(switches.involuntary / N).toFixed(1)} involuntary`,
    );
    const logs = cluster.nodes.map((n) => JSON.stringify(n.logLevels)).join(', ');
    row.notes.push(
      `peak RSS (VmHWM) ${cluster.ids.map((id, i) => `${id} ${mb(peaks[i])}`).join(', ')}; storage writes by Postbote ` +
        `${(written.reduce((a, b) => a + b, 0) / N / 1024).toFixed(1)} KB per message; log lines ${logs}`,
    );
    if (serverWritten !== undefined && store === 'postgres') {
      row.notes.push(
        `PostgreSQL server storage writes (its live processes): ${(serverWritten / N / 1024).toFixed(1)} KB per message`,
      );
    }
    if (counters0 && counters) {
      row.notes.push(`PostgreSQL database-wide during the phase: ${formatCounters(counters0, counters, N)}`);
    }
    if (statements) {
      row.notes.push(
        `PostgreSQL statements (pg_stat_statements): ${await formatStatementStats(ctx.admin, N)}`,
      );
    }
    if (sampled) {
      row.notes.push(
        `the nodes' PostgreSQL sessions (pg_stat_activity every 100 ms): ${formatActivity(sampled)}`,
      );
    }
    if (f.latenciesMs.length > 0) {
      row.notes.push(
        `accept→delivered: p90 ${dur(percentile(f.latenciesMs, 90))}, max ${dur(f.latenciesMs.at(-1))}`,
      );
    }
    const busy = backgroundNote(reading);
    if (busy) row.notes.push(busy);
    return row;
  } finally {
    await cluster.dispose();
    await sink.stop();
  }
}

function report(ctx: PostgresBenchContext, rows: ScenarioRow[]): void {
  const N = ctx.options.messages;
  out();
  out('Results');
  const lines = table(
    [
      'scenario',
      'accepted msgs/s',
      'end-to-end msgs/s',
      'sink-clock msgs/s',
      'p50',
      'p99',
      'duplicates',
      'lost',
    ],
    rows.map((r) => [
      `${r.scenario}${r.complete ? '' : ' (INCOMPLETE)'}`,
      rate(r.acceptedPerS),
      rate(r.endToEndPerS),
      rate(r.sinkEndToEndPerS),
      dur(r.p50Ms),
      dur(r.p99Ms),
      `${int(r.duplicates)} (${pct(r.duplicates, N, 2)})`,
      int(r.lost),
    ]),
    new Set([1, 2, 3, 4, 5, 6, 7]),
  );
  for (const l of lines) out(`  ${l}`);
  out(
    `  (${int(N)} messages each; smtp-source's own wall time, client side: ${rows.map((r) => `${r.scenario} ${rate(r.clientAcceptPerS)}`).join(', ')} msgs/s)`,
  );
  const clustered = rows.filter((x) => x.nodes > 1);
  if (clustered.length > 0) {
    out();
    out('Deliveries per node (the EHLO name each message arrived with at the sink):');
  }
  for (const r of clustered) {
    const total = r.byNode.reduce((a, b) => a + b.delivered, 0);
    out(
      `  ${r.scenario}: ${r.byNode.map((b) => `${b.id} ${int(b.delivered)} (${pct(b.delivered, total)})`).join(', ')}`,
    );
  }
  out();
  for (const r of rows) {
    out(`${r.scenario}:`);
    for (const n of r.notes) out(`  - ${n}`);
  }

  const find = (store: StoreKind, nodes: number): ScenarioRow | undefined =>
    rows.find((r) => r.store === store && r.nodes === nodes && r.complete);
  const sqlite = find('sqlite', 1);
  const pg1 = find('postgres', 1);
  const pg2 = find('postgres', 2);
  // Losses and duplicates are judged on the run whatever happened to it; throughput only when complete.
  const pg2Any = rows.find((r) => r.store === 'postgres' && r.nodes === 2);
  const ratio = (a?: number, b?: number): number | undefined => (a && b ? a / b : undefined);
  const sqliteOverPg1 = ratio(sqlite?.sinkEndToEndPerS, pg1?.sinkEndToEndPerS);
  const pg2OverPg1 = ratio(pg2?.sinkEndToEndPerS, pg1?.sinkEndToEndPerS);
  const dupShare = pg2Any ? pg2Any.duplicates / N : undefined;
  const pg2Total = pg2Any?.byNode.reduce((a, b) => a + b.delivered, 0) ?? 0;
  const minShare =
    pg2Any && pg2Total > 0 ? Math.min(...pg2Any.byNode.map((b) => b.delivered / pg2Total)) : undefined;
  const storeClock = (a?: ScenarioRow, b?: ScenarioRow): string => {
    const r = ratio(a?.endToEndPerS, b?.endToEndPerS);
    return r === undefined ? '' : `; store clock ${r.toFixed(2)}×`;
  };
  out();
  out(
    'Targets (2-core dev machine; throughput on the sink clock: smtp-source start → the sink has every message)',
  );
  const targets = [
    [
      'PostgreSQL 1 node within 2× of SQLite',
      sqliteOverPg1 === undefined
        ? '-'
        : `SQLite ${rate(sqlite?.sinkEndToEndPerS)} / PostgreSQL ${rate(pg1?.sinkEndToEndPerS)} msgs/s = ${sqliteOverPg1.toFixed(2)}× slower${storeClock(sqlite, pg1)}`,
      verdict(sqliteOverPg1 === undefined ? undefined : sqliteOverPg1 <= 2),
    ],
    [
      'PostgreSQL 2 nodes not slower than 1 node',
      pg2OverPg1 === undefined
        ? '-'
        : `${rate(pg2?.sinkEndToEndPerS)} / ${rate(pg1?.sinkEndToEndPerS)} msgs/s = ${pg2OverPg1.toFixed(2)}×${storeClock(pg2, pg1)}`,
      verdict(pg2OverPg1 === undefined ? undefined : pg2OverPg1 >= 1),
    ],
    [
      '2 nodes: every message delivered, duplicates ≤ 0.1%',
      pg2Any
        ? `lost ${int(pg2Any.lost)}, duplicates ${int(pg2Any.duplicates)} (${pct(pg2Any.duplicates, N, 2)})`
        : '-',
      verdict(pg2Any && dupShare !== undefined ? pg2Any.lost === 0 && dupShare <= 0.001 : undefined),
    ],
    [
      '2 nodes: the work spread over both (each ≥ 25%)',
      minShare === undefined ? '-' : `smallest share ${(minShare * 100).toFixed(1)}%`,
      verdict(minShare === undefined ? undefined : minShare >= 0.25),
    ],
  ];
  for (const l of table(['target', 'measured', 'result'], targets, new Set())) out(`  ${l}`);
  if (rows.some((r) => !r.complete))
    out('  note: an INCOMPLETE scenario is not used for the verdicts (see its notes)');
}

/** Runs the PostgreSQL comparison (or the kill demo) and prints the report. */
export async function runPostgresBench(options: PostgresBenchOptions): Promise<void> {
  const cleanup = new Cleanup();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping everything the benchmark started…\n`);
    void cleanup.runAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const connected = await connectPostgres(options.databaseUrl);
  if ('reason' in connected) {
    process.stderr.write(`${connected.reason}\n`);
    process.exitCode = 2;
    return;
  }
  const admin = connected.client;
  cleanup.add('postgres client', () => admin.end());
  const tmp = await mkdtemp(join(os.tmpdir(), 'postbote-bench-'));
  await chmod(tmp, 0o755); // smtp-sink runs as postfix and writes its dump below
  cleanup.add('temp dir', () => {
    if (options.keep) process.stderr.write(`kept ${tmp}\n`);
    else rmSync(tmp, { recursive: true, force: true });
  });
  try {
    const server = await describeServer(admin);
    const pm = server.postmasterPid;
    const N = options.messages;
    for (const line of machineLines(`node ${process.version}, ${server.version}`)) out(line);
    out(
      `postgres  ${options.databaseUrl.replace(/\/\/[^@]*@/, '//…@')}: ${server.settings}` +
        (pm === undefined
          ? ' (not on this machine: its CPU is not measured)'
          : ` (on this machine, postmaster pid ${pm})`),
    );
    if (options.killAfter === undefined) {
      out(
        `workload  smtp-source -s ${options.sessions} -m ${N} -l ${options.size} (one message per connection), ` +
          `from ${FROM} to ${TO}; with k nodes, k smtp-source processes each send ${N}/k over ${options.sessions}/k sessions to one node`,
      );
      out(
        `postbote  log level ${options.logLevel}, other settings default; each scenario with a fresh store ` +
          '(SQLite file / PostgreSQL schema) and a fresh smtp-sink -c -D (dumps every message)',
      );
    }
    if (!process.version.startsWith('v24.')) out(`warning: expected Node 24, running ${process.version}`);
    out();

    const dns = await startSinkDns(cleanup);
    const ctx: PostgresBenchContext = {
      cleanup,
      tmp,
      dns,
      databaseUrl: options.databaseUrl,
      admin,
      logLevel: options.logLevel,
      keep: options.keep,
      options,
      server,
      deadline: () => Date.now() + options.timeoutMs,
      serverCpu: () => (pm === undefined ? 0 : serverCpuSeconds(pm)),
    };

    if (options.killAfter !== undefined) {
      await runKillDemo(ctx, options.killAfter);
      return;
    }
    const scenarios: [StoreKind, number][] = [
      ...(options.sqlite ? [['sqlite', 1] as [StoreKind, number]] : []),
      ...options.nodes.map((k) => ['postgres', k] as [StoreKind, number]),
    ];
    const rows: ScenarioRow[] = [];
    for (const [i, [store, k]] of scenarios.entries()) {
      const name = `${store === 'sqlite' ? 'SQLite' : 'PostgreSQL'}, ${k} node${k > 1 ? 's' : ''}`;
      out(`${i + 1}/${scenarios.length} ${name}: ${int(N)} messages → Postbote → MX → smtp-sink`);
      const t0 = Date.now();
      try {
        const row = await phaseScenario(ctx, store, k);
        rows.push(row);
        out(`  done in ${dur(Date.now() - t0)}${row.complete ? '' : ' (incomplete: see notes)'}`);
      } catch (err) {
        out(`  FAILED: ${(err as Error).stack ?? err}`);
      }
      await sleep(1000); // let sockets in TIME_WAIT and page cache settle between phases
    }
    report(ctx, rows);
  } finally {
    await cleanup.runAll();
  }
}

/** Thread CPU of several processes summed by thread name. */
function sumByName(samples: Map<string, number>[]): Map<string, number> {
  const sum = new Map<string, number>();
  for (const sample of samples) for (const [name, s] of sample) sum.set(name, (sum.get(name) ?? 0) + s);
  return sum;
}
