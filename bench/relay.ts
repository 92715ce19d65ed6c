/**
 * The relay benchmark (issue: "Load: `smtp-source -s 20 -m 20000 -l 2000` into Postbote (IP
 * credential), delivering to `smtp-sink` through the MX path …"). In one run, on loopback:
 *
 *   1. the loopback ceiling: the same load straight into smtp-sink;
 *   2. Postbote: smtp-source → Postbote (IP credential, durable queue) → MX lookup on an
 *      in-process DNS server → smtp-sink;
 *   3. a stock Postfix relay configured here in a temp dir (queue on disk, relayhost = sink);
 *   4. the memory phase: 100,000 messages submitted to a Postbote whose MX answers 451 to
 *      every RCPT, so everything stays queued; peak RSS is read at the end.
 *
 *   npm run bench -- [--messages 20000] [--sessions 20] [--size 2000] [--queue-messages 100000]
 *                    [--no-postfix] [--no-queue-test] [--queue-test] [--log-level warn]
 *                    [--profile DIR] [--timeout 900] [--keep]
 *
 * With `--store postgres` (relay-postgres.ts) it is the PostgreSQL benchmark instead: the same
 * load through SQLite with 1 node and PostgreSQL with each node count of --nodes, duplicates
 * counted at the sink, per-node shares; or, with --kill-after N, the kill demo (relay-kill.ts):
 * two nodes, node-b killed with SIGKILL once the sink has N messages. No Postfix or memory phase.
 *
 *   npm run bench -- --store postgres [--nodes 1,2] [--no-sqlite] [--database-url URL]
 *                    [--messages 20000] [--sessions 20] [--size 2000] [--log-level warn]
 *                    [--timeout 900] [--keep]
 *   npm run bench -- --store postgres --kill-after 5000 [--lease 10s] [--messages 20000] …
 *
 * See bench/README.md for what each figure means. Not part of `npm test`.
 */
import { readdirSync, rmSync } from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatProfileSummary, summariseCpuProfile } from './cpuprofile-summary.ts';
import {
  countStates,
  createBenchAccount,
  readStoreFigures,
  startPostboteNode,
  startSinkDns,
} from './lib/postbote-node.ts';
import { postfixAvailable, postfixVersion, startPostfixRelay } from './lib/postfix-relay.ts';
import {
  Cleanup,
  procStatusKb,
  rssBreakdownKb,
  sampleMemory,
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
  percentile,
  rate,
  table,
  verdict,
} from './lib/report.ts';
import { runSource, type SourceRun, smtpToolsInstalled, startSink } from './lib/smtp-tools.ts';
import { runPostgresBench } from './relay-postgres.ts';

const { values: args } = parseArgs({
  allowNegative: true,
  options: {
    messages: { type: 'string', default: '20000' },
    sessions: { type: 'string', default: '20' },
    size: { type: 'string', default: '2000' },
    'queue-messages': { type: 'string', default: '100000' },
    postfix: { type: 'boolean', default: true },
    'queue-test': { type: 'boolean' },
    'log-level': { type: 'string', default: 'warn' },
    profile: { type: 'string' },
    timeout: { type: 'string', default: '900' },
    keep: { type: 'boolean', default: false },
    store: { type: 'string', default: 'sqlite' },
    nodes: { type: 'string' },
    sqlite: { type: 'boolean', default: true },
    'database-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/test' },
    'kill-after': { type: 'string' },
    lease: { type: 'string', default: '10s' },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  process.stdout.write(
    'npm run bench -- [--messages 20000] [--sessions 20] [--size 2000] [--queue-messages 100000]\n' +
      '                 [--no-postfix] [--no-queue-test | --queue-test] [--log-level warn]\n' +
      '                 [--profile DIR] [--timeout 900] [--keep]\n' +
      'npm run bench -- --store postgres [--nodes 1,2] [--no-sqlite] [--database-url URL]\n' +
      '                 [--messages 20000] [--sessions 20] [--size 2000] [--log-level warn] [--timeout 900] [--keep]\n' +
      'npm run bench -- --store postgres --kill-after N [--lease 10s] [--messages 20000] …\n' +
      'See bench/README.md.\n',
  );
  process.exit(0);
}

const N = Number(args.messages);
const SESSIONS = Number(args.sessions);
const SIZE = Number(args.size);
const QUEUE_N = Number(args['queue-messages']);
const PHASE_TIMEOUT_MS = Number(args.timeout) * 1000;
const LOG_LEVEL = args['log-level'];
// --queue-test: only the memory phase; --no-queue-test: skip it; default: all phases.
const mainPhases = args['queue-test'] !== true;
const queuePhase = args['queue-test'] !== false;
const FROM = 'from@bench.test';
const TO = 'user@sink.test';
const STALL_MS = 60_000;

for (const [name, v] of Object.entries({
  messages: N,
  sessions: SESSIONS,
  size: SIZE,
  'queue-messages': QUEUE_N,
  timeout: PHASE_TIMEOUT_MS,
})) {
  if (!Number.isInteger(v) || v <= 0) {
    process.stderr.write(`--${name} must be a positive integer\n`);
    process.exit(2);
  }
}
const POSTGRES = args.store === 'postgres';
const fail = (message: string): never => {
  process.stderr.write(`${message}\n`);
  process.exit(2);
};
if (args.store !== 'sqlite' && !POSTGRES) fail('--store must be sqlite or postgres');
const given = (o: string): boolean =>
  process.argv.some((a) => a === `--${o}` || a.startsWith(`--${o}=`) || a === `--no-${o}`);
const postgresOnly = ['nodes', 'sqlite', 'kill-after', 'lease', 'database-url'] as const;
const sqliteOnly = ['postfix', 'queue-test', 'profile'] as const;
if (!POSTGRES) {
  for (const o of postgresOnly) if (given(o)) fail(`--${o} needs --store postgres`);
} else {
  for (const o of sqliteOnly)
    if (given(o))
      fail(
        `--${o}: the Postfix, memory and profile phases run only without --store postgres (npm run bench)`,
      );
}
const NODES = (args.nodes ?? '1,2').split(',').map(Number);
if (NODES.some((n) => !Number.isInteger(n) || n < 1 || n > 26))
  fail('--nodes must be a list like 1,2 (1 to 26 nodes)');
const KILL_AFTER = args['kill-after'] === undefined ? undefined : Number(args['kill-after']);
if (KILL_AFTER !== undefined && (!Number.isInteger(KILL_AFTER) || KILL_AFTER <= 0 || KILL_AFTER >= N)) {
  fail('--kill-after must be a positive integer below --messages');
}
if (!/^\d+(ms|s|m)$/.test(args.lease)) fail('--lease must be a duration like 10s');

if (!smtpToolsInstalled()) {
  process.stderr.write('bench/relay.ts needs smtp-source and smtp-sink (apt-get install postfix)\n');
  process.exit(2);
}

interface Row {
  scenario: string;
  messages: number;
  /** Durable accepts per second (the figure in the table). */
  acceptedPerS?: number;
  endToEndPerS?: number;
  p50Ms?: number;
  p99Ms?: number;
  peakRssKb?: number;
  rssNote?: string;
  /** The same clocks for every scenario: smtp-source wall time, and source start → sink has all. */
  clientAcceptPerS?: number;
  sinkEndToEndPerS?: number;
  complete: boolean;
  notes: string[];
}

function backgroundNoteFor(meter: ReturnType<typeof cpuMeter>, row: Row): void {
  const note = backgroundNote(meter());
  if (note) row.notes.push(note);
}

// ---------------------------------------------------------------------------------------------
// Phases

interface Context {
  cleanup: Cleanup;
  tmp: string;
  dns: string;
  deadline(): number;
}

function breakdownText(kb: Record<string, number> | undefined): string {
  if (!kb) return 'unavailable';
  return Object.entries(kb)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${mb(v)}`)
    .join(', ');
}

function sourceNotes(src: SourceRun, row: Row): void {
  if (!src.ok) row.notes.push(`smtp-source failed: ${src.output.trim().split('\n').slice(-3).join(' | ')}`);
}

/** The load (`smtp-source -s 20 -m N -l 2000`, one message per connection) at a port. */
function standardLoad(ctx: Context, port: number, deadline: number): ReturnType<typeof runSource> {
  return runSource({
    cleanup: ctx.cleanup,
    port,
    messages: N,
    sessions: SESSIONS,
    size: SIZE,
    from: FROM,
    to: TO,
    timeoutMs: deadline - Date.now(),
  });
}

async function phaseDirect(ctx: Context): Promise<Row> {
  const row: Row = { scenario: 'smtp-source → smtp-sink (ceiling)', messages: N, complete: false, notes: [] };
  const meter = cpuMeter();
  const sink = await startSink({ cleanup: ctx.cleanup, name: 'smtp-sink (direct)' });
  const deadline = ctx.deadline();
  const src = await standardLoad(ctx, sink.port, deadline);
  sourceNotes(src, row);
  const arrived = await sink.waitFor(N, { stallMs: 10_000, deadline });
  await sink.stop();
  row.complete = src.ok && arrived.at !== undefined && sink.messages === N;
  row.clientAcceptPerS = (N * 1000) / (src.endedAt - src.startedAt);
  row.acceptedPerS = row.clientAcceptPerS;
  if (arrived.at) row.sinkEndToEndPerS = (N * 1000) / (arrived.at - src.startedAt);
  row.endToEndPerS = row.sinkEndToEndPerS;
  if (sink.messages !== N) row.notes.push(`the sink counted ${sink.messages} messages, expected ${N}`);
  backgroundNoteFor(meter, row);
  return row;
}

async function phasePostbote(ctx: Context): Promise<Row> {
  const profiled = args.profile !== undefined;
  const row: Row = {
    scenario: `Postbote (IP credential, MX path)${profiled ? ' [profiled]' : ''}`,
    messages: N,
    complete: false,
    notes: [],
  };
  const meter = cpuMeter();
  const dataDir = join(ctx.tmp, 'postbote-main');
  await createBenchAccount(dataDir);
  const sink = await startSink({ cleanup: ctx.cleanup, name: 'smtp-sink (Postbote)' });
  const node = await startPostboteNode({
    dataDir,
    dnsServer: ctx.dns,
    deliveryPort: sink.port,
    logLevel: LOG_LEVEL,
    cleanup: ctx.cleanup,
    name: 'postbote',
    ...(profiled ? { cpuProfileDir: args.profile } : {}),
  });
  const deadline = ctx.deadline();
  const cpu0 = node.cpuSeconds();
  const threads0 = threadCpuSeconds(node.child.pid);
  const written0 = storageWriteBytes(node.child.pid) ?? 0;
  const src = await standardLoad(ctx, node.submissionPort, deadline);
  sourceNotes(src, row);
  out(`  submission done in ${dur(src.endedAt - src.startedAt)}; waiting for the sink to receive ${int(N)}`);
  const arrived = await sink.waitFor(N, { stallMs: STALL_MS, deadline });
  // The outcome is committed just after the sink's 250: wait for the store to say so too.
  const settle = Date.now() + 30_000;
  let states = countStates(node.dbPath);
  while ((states.delivered ?? 0) < N && Date.now() < Math.min(settle, deadline)) {
    await sleep(250);
    states = countStates(node.dbPath);
  }
  const peak = node.peakRssKb();
  const cpu = node.cpuSeconds() - cpu0;
  const threads = threadCpuText(threads0, threadCpuSeconds(node.child.pid), N);
  const written = (storageWriteBytes(node.child.pid) ?? 0) - written0;
  const breakdown = rssBreakdownKb(node.child.pid);
  const busyS = ((arrived.at ?? Date.now()) - src.startedAt) / 1000;
  await node.stop();
  await sink.stop();
  const f = readStoreFigures(node.dbPath);

  row.peakRssKb = peak;
  row.rssNote = 'VmHWM of the Postbote process';
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
  row.clientAcceptPerS = (N * 1000) / (src.endedAt - src.startedAt);
  if (arrived.at) row.sinkEndToEndPerS = (N * 1000) / (arrived.at - src.startedAt);
  row.complete = src.ok && f.deliveredCount === N && sink.messages === N;
  row.notes.push(
    `store: ${f.messages} messages, recipients ${JSON.stringify(f.states)}, ${f.deferredEvents} deferrals, ` +
      `${(f.diskBytes / 1048576).toFixed(0)} MB on disk; sink counted ${sink.messages}`,
  );
  if (sink.messages > N)
    row.notes.push(`the sink received ${sink.messages - N} more messages than were sent`);
  row.notes.push(
    `Postbote CPU from first submission to last delivery: ${cpu.toFixed(1)} s in ${busyS.toFixed(1)} s ` +
      `(${(cpu / busyS).toFixed(2)} cores, all threads; ${((cpu * 1000) / N).toFixed(2)} ms per message); ` +
      `log level ${LOG_LEVEL}: ${JSON.stringify(node.logLevels)} lines`,
  );
  row.notes.push(`CPU by thread (per message, kernel share): ${threads}`);
  row.notes.push(
    `storage writes by Postbote (write_bytes of /proc/PID/io): ${(written / N / 1024).toFixed(0)} KB per message ` +
      `of ${SIZE} body bytes; RSS at the end: ${breakdownText(breakdown)}`,
  );
  if (f.latenciesMs.length > 0) {
    row.notes.push(
      `accept→delivered: p90 ${dur(percentile(f.latenciesMs, 90))}, max ${dur(f.latenciesMs.at(-1))}`,
    );
  }
  backgroundNoteFor(meter, row);
  if (profiled && args.profile) printProfile(args.profile, node.child.pid);
  return row;
}

/** Summarises the profiles one Postbote process wrote: its main thread and any worker threads. */
function printProfile(dir: string, pid: number): void {
  // node names them CPU.<date>.<time>.<pid>.<thread id>.<sequence>.cpuprofile
  const files = readdirSync(dir)
    .map((f) => ({ f, parts: f.split('.') }))
    .filter(({ f, parts }) => f.endsWith('.cpuprofile') && Number(parts[3]) === pid)
    .sort((a, b) => Number(a.parts[4]) - Number(b.parts[4]));
  if (files.length === 0) {
    out(`  (no .cpuprofile of pid ${pid} in ${dir})`);
    return;
  }
  for (const { f, parts } of files) {
    const thread = Number(parts[4]) === 0 ? 'main thread' : `worker thread ${parts[4]}`;
    out();
    out(
      formatProfileSummary(
        summariseCpuProfile(join(dir, f), 30),
        `CPU profile of Postbote, ${thread} (${join(dir, f)})`,
      ),
    );
  }
  out();
}

async function phasePostfix(ctx: Context): Promise<Row> {
  const row: Row = { scenario: 'Postfix relay (queue on disk)', messages: N, complete: false, notes: [] };
  const meter = cpuMeter();
  const sink = await startSink({ cleanup: ctx.cleanup, name: 'smtp-sink (Postfix)' });
  const relay = await startPostfixRelay({
    dir: join(ctx.tmp, 'postfix'),
    sinkPort: sink.port,
    cleanup: ctx.cleanup,
  });
  const memory = sampleMemory(relay.processes);
  const deadline = ctx.deadline();
  const src = await standardLoad(ctx, relay.port, deadline);
  sourceNotes(src, row);
  out(`  submission done in ${dur(src.endedAt - src.startedAt)}; waiting for the sink to receive ${int(N)}`);
  const arrived = await sink.waitFor(N, { stallMs: STALL_MS, deadline });
  const peak = memory.peakPssKb();
  const peakRssSum = memory.peakRssKb();
  const processes = relay.processes().length;
  memory.stop();
  // postlogd writes the log asynchronously: give it a moment to catch up.
  let log = relay.deliveryDelays();
  for (let i = 0; i < 50 && log.sent < sink.messages; i++) {
    await sleep(100);
    log = relay.deliveryDelays();
  }
  await relay.stop();
  await sink.stop();

  const delays = log.delays.map((s) => s * 1000).sort((a, b) => a - b);
  row.clientAcceptPerS = (N * 1000) / (src.endedAt - src.startedAt);
  row.acceptedPerS = row.clientAcceptPerS;
  if (arrived.at) row.sinkEndToEndPerS = (N * 1000) / (arrived.at - src.startedAt);
  row.endToEndPerS = row.sinkEndToEndPerS;
  row.p50Ms = percentile(delays, 50);
  row.p99Ms = percentile(delays, 99);
  row.peakRssKb = peak;
  row.rssNote =
    `sum of Pss (shared pages divided among sharers) over the master and its ${processes - 1} daemons, ` +
    `peak of samples every 250 ms; the plain sum of VmRSS peaked at ${mb(peakRssSum)}`;
  row.complete = src.ok && arrived.at !== undefined && sink.messages === N;
  row.notes.push(
    `maillog: ${log.sent} sent, ${log.deferred} deferred, ${log.bounced} bounced; sink counted ${sink.messages}; ` +
      'p50/p99 are Postfix’s own delay= (arrival → sent, 10 ms resolution)',
  );
  backgroundNoteFor(meter, row);
  return row;
}

async function phaseQueue(ctx: Context): Promise<Row> {
  const row: Row = {
    scenario: `Postbote, ${int(QUEUE_N)} queued (MX answers 451)`,
    messages: QUEUE_N,
    complete: false,
    notes: [],
  };
  const meter = cpuMeter();
  const dataDir = join(ctx.tmp, 'postbote-queue');
  await createBenchAccount(dataDir);
  const sink = await startSink({
    cleanup: ctx.cleanup,
    name: 'smtp-sink (451 to every RCPT)',
    flags: ['-r', 'RCPT', '-b', '451 4.3.0 bench: every recipient is deferred'],
  });
  const node = await startPostboteNode({
    dataDir,
    dnsServer: ctx.dns,
    deliveryPort: sink.port,
    logLevel: LOG_LEVEL,
    cleanup: ctx.cleanup,
    name: 'postbote (queue test)',
  });
  const deadline = ctx.deadline();
  const cpu0 = node.cpuSeconds();
  const src = await runSource({
    cleanup: ctx.cleanup,
    port: node.submissionPort,
    messages: QUEUE_N,
    sessions: SESSIONS,
    size: SIZE,
    from: FROM,
    to: TO,
    timeoutMs: deadline - Date.now(),
  });
  sourceNotes(src, row);
  out(
    `  submission done in ${dur(src.endedAt - src.startedAt)}; waiting until every recipient was tried once`,
  );
  // Memory is read once every recipient has had its first attempt (all deferred, none leased).
  const settle = Math.min(deadline, Date.now() + 180_000);
  let states = countStates(node.dbPath);
  while (((states.queued ?? 0) > 0 || (states.delivering ?? 0) > 0) && Date.now() < settle) {
    await sleep(500);
    states = countStates(node.dbPath);
  }
  const peak = node.peakRssKb();
  const rssNow = procStatusKb(node.child.pid, 'VmRSS');
  const breakdown = rssBreakdownKb(node.child.pid);
  const cpu = node.cpuSeconds() - cpu0;
  await node.stop();
  await sink.stop();
  const f = readStoreFigures(node.dbPath);
  if (
    f.firstAcceptedAt !== undefined &&
    f.lastAcceptedAt !== undefined &&
    f.lastAcceptedAt > f.firstAcceptedAt
  ) {
    row.acceptedPerS = (f.acceptedCount * 1000) / (f.lastAcceptedAt - f.firstAcceptedAt);
  }
  row.clientAcceptPerS = (QUEUE_N * 1000) / (src.endedAt - src.startedAt);
  row.peakRssKb = peak;
  row.rssNote = 'VmHWM of the Postbote process';
  const waiting = (f.states.queued ?? 0) + (f.states.deferred ?? 0) + (f.states.delivering ?? 0);
  row.complete = src.ok && f.acceptedCount === QUEUE_N && waiting === QUEUE_N;
  row.notes.push(
    `store: ${f.messages} messages, recipients ${JSON.stringify(f.states)} at the end, ${f.deferredEvents} deferrals, ` +
      `${(f.diskBytes / 1048576).toFixed(0)} MB on disk; Postbote CPU ${cpu.toFixed(1)} s; ` +
      `RSS at the end ${mb(rssNow)}: ${breakdownText(breakdown)}`,
  );
  backgroundNoteFor(meter, row);
  return row;
}

// ---------------------------------------------------------------------------------------------
// Report

function machine(): string[] {
  return [
    ...machineLines(`node ${process.version}, postfix ${postfixVersionText}`),
    `workload  smtp-source -s ${SESSIONS} -m ${N} -l ${SIZE} (one message per connection), from ${FROM} to ${TO}`,
    `postbote  log level ${LOG_LEVEL} (POSTBOTE_LOG__LEVEL), other settings default; SQLite WAL, every 250 after the WAL is flushed to disk`,
  ];
}

function report(rows: Row[]): void {
  out();
  out('Results');
  const lines = table(
    ['scenario', 'msgs', 'accepted msgs/s', 'end-to-end msgs/s', 'p50', 'p99', 'peak RSS'],
    rows.map((r) => [
      `${r.scenario}${r.complete ? '' : ' (INCOMPLETE)'}`,
      int(r.messages),
      rate(r.acceptedPerS),
      rate(r.endToEndPerS),
      dur(r.p50Ms),
      dur(r.p99Ms),
      mb(r.peakRssKb),
    ]),
    new Set([1, 2, 3, 4, 5, 6]),
  );
  for (const l of lines) out(`  ${l}`);
  out();
  out('Same clocks for every scenario (smtp-source wall time; source start → the sink has every message):');
  const same = table(
    ['scenario', 'client-side accepted msgs/s', 'sink-clock end-to-end msgs/s'],
    rows
      .filter((r) => r.clientAcceptPerS !== undefined)
      .map((r) => [r.scenario, rate(r.clientAcceptPerS), rate(r.sinkEndToEndPerS)]),
    new Set([1, 2]),
  );
  for (const l of same) out(`  ${l}`);
  out();
  for (const r of rows) {
    if (r.notes.length === 0 && !r.rssNote) continue;
    out(`${r.scenario}:`);
    if (r.rssNote) out(`  - peak RSS: ${r.rssNote}`);
    for (const n of r.notes) out(`  - ${n}`);
  }

  const postbote = rows.find((r) => r.scenario.startsWith('Postbote (IP'));
  const postfix = rows.find((r) => r.scenario.startsWith('Postfix'));
  const queued = rows.find((r) => r.scenario.includes('queued'));
  out();
  out('Targets (2-core dev machine)');
  const ratio =
    postbote?.sinkEndToEndPerS && postfix?.sinkEndToEndPerS
      ? postbote.sinkEndToEndPerS / postfix.sinkEndToEndPerS
      : undefined;
  const targetRows = [
    [
      'end-to-end ≥ 3× Postfix (same run)',
      ratio === undefined
        ? '-'
        : `${ratio.toFixed(2)}× (Postbote ${rate(postbote?.sinkEndToEndPerS)} / Postfix ${rate(postfix?.sinkEndToEndPerS)} msgs/s, sink clock)`,
      verdict(ratio === undefined ? undefined : ratio >= 3),
    ],
    [
      'accepted ≥ 2,000 msgs/s (durable)',
      postbote?.acceptedPerS === undefined ? '-' : `${rate(postbote.acceptedPerS)} msgs/s`,
      verdict(postbote?.acceptedPerS === undefined ? undefined : postbote.acceptedPerS >= 2000),
    ],
    [
      `peak RSS < 300 MB with ${int(QUEUE_N)} queued`,
      queued?.peakRssKb === undefined ? '-' : mb(queued.peakRssKb),
      verdict(
        queued?.peakRssKb === undefined || !queued.complete ? undefined : queued.peakRssKb < 300 * 1024,
      ),
    ],
  ];
  for (const l of table(['target', 'measured', 'result'], targetRows, new Set())) out(`  ${l}`);
  if (postbote && postfix?.endToEndPerS && postbote.endToEndPerS) {
    out(
      `  (with each system's own clock — Postbote's store events, Postfix's sink clock — the ratio is ` +
        `${(postbote.endToEndPerS / postfix.endToEndPerS).toFixed(2)}×)`,
    );
  }
  if (queued && QUEUE_N !== 100_000)
    out(`  note: the RSS target is defined for 100,000 queued; this run queued ${int(QUEUE_N)}`);
  if (args.profile)
    out('  note: Postbote ran under --cpu-prof in this run; its throughput is lower than unprofiled');
}

// ---------------------------------------------------------------------------------------------
// Main

let postfixVersionText = 'not installed';

async function main(): Promise<void> {
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

  const tmp = await mkdtemp(join(os.tmpdir(), 'postbote-bench-'));
  // The Postfix daemons run as the postfix user and must traverse into their queue.
  await chmod(tmp, 0o755);
  cleanup.add('temp dir', () => {
    if (args.keep) process.stderr.write(`kept ${tmp}\n`);
    else rmSync(tmp, { recursive: true, force: true });
  });
  const rows: Row[] = [];
  try {
    const pf = postfixAvailable();
    if (pf.ok) postfixVersionText = await postfixVersion();
    for (const line of machine()) out(line);
    if (!process.version.startsWith('v24.')) out(`warning: expected Node 24, running ${process.version}`);
    out();

    const dns = await startSinkDns(cleanup);
    const ctx: Context = {
      cleanup,
      tmp,
      dns,
      deadline: () => Date.now() + PHASE_TIMEOUT_MS,
    };
    const phase = async (title: string, fn: () => Promise<Row>): Promise<void> => {
      out(`${title}…`);
      const t0 = Date.now();
      try {
        const row = await fn();
        rows.push(row);
        out(`  done in ${dur(Date.now() - t0)}${row.complete ? '' : ' (incomplete: see notes)'}`);
      } catch (err) {
        out(`  FAILED: ${(err as Error).stack ?? err}`);
      }
      await sleep(1000); // let sockets in TIME_WAIT and page cache settle between phases
    };

    if (mainPhases) {
      await phase(`1/4 loopback ceiling: ${int(N)} messages straight into smtp-sink`, () => phaseDirect(ctx));
      await phase(`2/4 Postbote: ${int(N)} messages → Postbote → MX → smtp-sink`, () => phasePostbote(ctx));
      if (!args.postfix) out('3/4 Postfix relay: skipped (--no-postfix)');
      else if (!pf.ok) out(`3/4 Postfix relay: skipped (${pf.reason})`);
      else
        await phase(`3/4 Postfix relay: ${int(N)} messages → Postfix → smtp-sink`, () => phasePostfix(ctx));
    }
    if (queuePhase) {
      await phase(`4/4 memory: ${int(QUEUE_N)} messages queued in Postbote (every RCPT answered 451)`, () =>
        phaseQueue(ctx),
      );
    } else out('4/4 memory phase: skipped (--no-queue-test)');
    report(rows);
  } finally {
    await cleanup.runAll();
  }
}

if (POSTGRES) {
  await runPostgresBench({
    messages: N,
    sessions: SESSIONS,
    size: SIZE,
    logLevel: LOG_LEVEL,
    timeoutMs: PHASE_TIMEOUT_MS,
    keep: args.keep,
    databaseUrl: args['database-url'],
    nodes: NODES,
    sqlite: args.sqlite,
    ...(KILL_AFTER !== undefined ? { killAfter: KILL_AFTER } : {}),
    lease: args.lease,
  });
} else await main();
