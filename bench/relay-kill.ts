/**
 * `npm run bench -- --store postgres --kill-after N`: the kill demo (issue: "Kill one node with
 * `kill -9` mid-run: every accepted message is still delivered; report how long the orphaned
 * leases took to be taken over"). Started by relay-postgres.ts.
 *
 * Two nodes on one fresh schema with a short delivery.lease, each fed half the messages by the
 * load generator of the tests (unique X-Load-Id per message, and it knows which messages were
 * acknowledged). Once the sink has N messages, node-b is killed with SIGKILL; what it had not
 * acknowledged is resubmitted to node-a. The sink's dump then says, per accepted message,
 * whether it arrived, how often, and from which node.
 */
import { startLoad } from '../test/support/load-generator.ts';
import {
  ehloName,
  FROM,
  type PostgresBenchContext,
  STALL_MS,
  split,
  startCluster,
  startDumpSink,
} from './lib/cluster.ts';
import { deliveredAt, leaseProgress, leasesHeldBy } from './lib/postgres.ts';
import { sleep } from './lib/processes.ts';
import { backgroundNote, cpuMeter, dur, int, out, pct, table, verdict } from './lib/report.ts';
import { duplicateCount } from './lib/sink-dump.ts';

const POLL_MS = 200;
const seconds = (ms: number): string => `${ms >= 0 ? '+' : ''}${(ms / 1000).toFixed(1)} s`;

interface ClusterStatusRow {
  node: string;
  alive: boolean;
  heartbeatAgeSeconds: number;
  leases: number;
  delivered: number;
}

export async function runKillDemo(ctx: PostgresBenchContext, killAfter: number): Promise<void> {
  const { messages: N, sessions, size, lease, logLevel } = ctx.options;
  const [shareA = 0, shareB = 0] = split(N, 2);
  const [sessionsA = 1, sessionsB = 1] = split(sessions, 2).map((s) => Math.max(1, s));
  out(
    `workload  test/support/load-generator.ts: ${int(N)} messages, each with a unique X-Load-Id, one per ` +
      `connection, ${size} body bytes, from ${FROM}: ${int(shareA)} to node-a (rcpt a@sink.test, ${sessionsA} sessions), ` +
      `${int(shareB)} to node-b (b@sink.test, ${sessionsB} sessions); what node-b did not acknowledge before ` +
      `its kill is resubmitted to node-a (r@sink.test, ${sessionsB} sessions)`,
  );
  out(
    `postbote  2 nodes on one fresh schema, delivery.lease=${lease}, log level ${logLevel}, other settings default`,
  );
  out(`kill      kill -9 (SIGKILL) of node-b once smtp-sink has counted ${int(killAfter)} messages`);
  out();
  out(
    `Kill demo: ${int(N)} messages → 2 Postbote nodes (PostgreSQL) → MX → smtp-sink; node-b killed mid-run`,
  );

  const meter = cpuMeter(ctx.serverCpu);
  const t0 = Date.now();
  const { sink, dump } = await startDumpSink(ctx, 'smtp-sink (kill demo)');
  const cluster = await startCluster(ctx, { store: 'postgres', nodes: 2, deliveryPort: sink.port, lease });
  const notes: string[] = [];
  try {
    const [a, b] = cluster.nodes;
    const [idA = 'node-a', idB = 'node-b'] = cluster.ids;
    const schema = cluster.schema;
    if (!a || !b || !schema) throw new Error('the kill demo needs two nodes on PostgreSQL');
    const deadline = ctx.deadline();
    const load = (port: number, total: number, rcpt: string, s: number, signal?: AbortSignal) =>
      startLoad({
        host: '127.0.0.1',
        port,
        sessions: s,
        total,
        rcptTo: `${rcpt}@sink.test`,
        mailFrom: FROM,
        bodySize: size,
        messagesPerConnection: 1,
        ...(signal ? { signal } : {}),
      });
    const stopB = new AbortController();
    const startedAt = Date.now();
    const loadA = load(a.submissionPort, shareA, 'a', sessionsA);
    const loadB = load(b.submissionPort, shareB, 'b', sessionsB, stopB.signal);

    const reached = await sink.waitFor(killAfter, { stallMs: STALL_MS, deadline });
    if (reached.at === undefined) {
      throw new Error(
        `the sink counted only ${reached.count} messages (stalled or timed out): node-b was not killed`,
      );
    }
    b.child.proc.kill('SIGKILL');
    const killedAt = Date.now();
    stopB.abort();
    const sinkAtKill = sink.messages;
    const orphans = await leasesHeldBy(ctx.admin, schema, idB);
    const resultB = await loadB.done;
    const resubmitted = shareB - resultB.acknowledged.size;
    out(
      `  node-b killed ${dur(killedAt - startedAt)} after the load started, with ${int(sinkAtKill)} messages at the sink; ` +
        `it held ${int(orphans.length)} leases; resubmitting ${int(resubmitted)} to node-a`,
    );
    const loadR = resubmitted > 0 ? load(a.submissionPort, resubmitted, 'r', sessionsB) : undefined;

    // Takeover: from the kill until no orphaned recipient is leased by node-b any more.
    const orphanIds = orphans.map((o) => o.id);
    let allMovedAt: number | undefined;
    while (orphanIds.length > 0 && Date.now() < deadline) {
      const progress = await leaseProgress(ctx.admin, schema, idB, orphanIds);
      if (progress.held === 0) {
        allMovedAt = Date.now();
        break;
      }
      await sleep(POLL_MS);
    }
    const [resultA, resultR] = await Promise.all([loadA.done, loadR?.done]);
    const submittedAt = Date.now();
    out(
      `  submission done in ${dur(submittedAt - startedAt)}; waiting for every accepted message at the sink`,
    );

    const accepted = new Set<string>();
    for (const id of resultA.acknowledged) accepted.add(`a:${id}`);
    for (const id of resultB.acknowledged) accepted.add(`b:${id}`);
    for (const id of resultR?.acknowledged ?? []) accepted.add(`r:${id}`);
    const inDoubt = new Set([...resultB.unknown].map((id) => `b:${id}`));
    for (const id of resultA.unknown) inDoubt.add(`a:${id}`);
    for (const id of resultR?.unknown ?? []) inDoubt.add(`r:${id}`);
    const missing = (): number => {
      const copies = dump.poll().copies;
      let n = 0;
      for (const k of accepted) if (!copies.has(k)) n++;
      return n;
    };
    // Done when every accepted message is at the sink and nothing is queued or leased any more
    // (messages in doubt that node-b did commit are delivered by node-a as ordinary queued work).
    let lastCount = -1;
    let lastChange = Date.now();
    let allAt: number | undefined;
    for (;;) {
      const left = missing();
      const states = await cluster.countStates();
      const pending = (states.queued ?? 0) + (states.delivering ?? 0);
      if (left === 0 && allAt === undefined) allAt = Date.now();
      if (left === 0 && pending === 0) break;
      if (sink.messages !== lastCount) {
        lastCount = sink.messages;
        lastChange = Date.now();
      }
      if (Date.now() - lastChange > STALL_MS || Date.now() > deadline) {
        notes.push(
          `gave up waiting: ${left} accepted messages not at the sink, recipients ${JSON.stringify(states)}`,
        );
        break;
      }
      await sleep(500);
    }

    let status: ClusterStatusRow[] = [];
    try {
      status = JSON.parse(await cluster.cli(['cluster', 'status', '--json'])) as ClusterStatusRow[];
    } catch (err) {
      notes.push(`postbote cluster status failed: ${(err as Error).message}`);
    }
    const cpuA = a.cpuSeconds();
    await a.stop();
    await sink.stop();
    const tally = dump.finish();
    const f = await cluster.figures();
    const orphanDelivered = [...(await deliveredAt(ctx.admin, schema, orphanIds)).values()].sort(
      (x, y) => x - y,
    );
    const reading = meter();

    // -----------------------------------------------------------------------------------------
    let deliveredAccepted = 0;
    for (const k of accepted) if (tally.copies.has(k)) deliveredAccepted++;
    let inDoubtDelivered = 0;
    for (const k of inDoubt) if (tally.copies.has(k)) inDoubtDelivered++;
    const stray = [...tally.copies.keys()].filter((k) => !accepted.has(k) && !inDoubt.has(k)).length;
    const lost = accepted.size - deliveredAccepted;
    const duplicates = duplicateCount(tally);
    const leaseEnds = orphans.map((o) => o.leaseUntil - killedAt).sort((x, y) => x - y);
    const helo = (id: string): number => tally.byHelo.get(ehloName(id)) ?? 0;
    const atSink = helo(idA) + helo(idB);

    out(`  done in ${dur(Date.now() - t0)}`);
    out();
    out('Kill demo results');
    const rows: string[][] = [
      ['delivery.lease', `${lease} (both nodes)`],
      [
        'kill -9 of node-b',
        `${dur(killedAt - startedAt)} after the load started, ${int(sinkAtKill)} messages at the sink`,
      ],
      [
        'submitted to node-a',
        `${int(shareA)} → ${int(resultA.acknowledged.size)} acknowledged` +
          (resultA.unknown.size > 0 ? `, ${resultA.unknown.size} in doubt` : '') +
          (resultA.failed > 0 ? `, ${resultA.failed} refused or given up` : ''),
      ],
      [
        'submitted to node-b',
        `${int(shareB)}: ${int(resultB.acknowledged.size)} acknowledged before the kill, ` +
          `${resultB.unknown.size} in doubt (dot sent, no reply: not counted as accepted)`,
      ],
      [
        'resubmitted to node-a',
        `${int(resubmitted)} (all node-b did not acknowledge) → ${int(resultR?.acknowledged.size ?? 0)} acknowledged` +
          ((resultR?.unknown.size ?? 0) > 0 ? `, ${resultR?.unknown.size} in doubt` : ''),
      ],
      ['accepted', int(accepted.size)],
      [
        'delivered',
        `${int(deliveredAccepted)} of the accepted at the sink` +
          (inDoubt.size > 0 ? `; ${inDoubtDelivered} of the ${inDoubt.size} in doubt too` : '') +
          (stray > 0 ? `; ${stray} that were never accepted (a bug)` : ''),
      ],
      ['lost (accepted, never delivered)', int(lost)],
      [
        'duplicates at the sink',
        `${int(duplicates)} (${pct(duplicates, accepted.size, 3)} of accepted; ${int(tally.messages)} received, ` +
          `${int(tally.copies.size)} distinct)` +
          (duplicates > 0
            ? `; first copy → next copy by: ${[...tally.duplicatePaths].map(([path, n]) => `${path} ${n}`).join(', ')}`
            : ''),
      ],
      [
        'orphaned leases',
        orphans.length === 0
          ? 'none: node-b held no lease when it was killed'
          : `${int(orphans.length)} recipients leased by node-b at the kill; those leases ran out ` +
            `${seconds(leaseEnds[0] ?? 0)} … ${seconds(leaseEnds.at(-1) ?? 0)} after it`,
      ],
      [
        'takeover',
        orphans.length === 0
          ? '-'
          : allMovedAt === undefined
            ? 'NOT taken over before the deadline'
            : `${seconds(allMovedAt - killedAt)} after the kill none was leased by node-b any more ` +
              `(re-leased by node-a; polled every ${POLL_MS} ms); delivered ${seconds((orphanDelivered[0] ?? killedAt) - killedAt)} … ` +
              `${seconds((orphanDelivered.at(-1) ?? killedAt) - killedAt)} (their delivered events: ${orphanDelivered.length} of ${orphans.length})`,
      ],
      [
        'deliveries per node',
        `${idA} ${int(helo(idA))} (${pct(helo(idA), atSink)}), ${idB} ${int(helo(idB))} (${pct(helo(idB), atSink)}) (EHLO name at the sink)`,
      ],
      [
        'every accepted message at the sink',
        allAt === undefined
          ? '-'
          : `${dur(allAt - startedAt)} after the load started (${dur(allAt - killedAt)} after the kill)`,
      ],
    ];
    const width = Math.max(...rows.map((r) => (r[0] ?? '').length));
    for (const [k, v] of rows) out(`  ${(k ?? '').padEnd(width)}  ${v}`);
    out();
    out('Notes:');
    if (status.length > 0) {
      out(
        `  - postbote cluster status --json at the end: ${status
          .map(
            (s) =>
              `${s.node} alive=${s.alive} (heartbeat ${s.heartbeatAgeSeconds} s ago), leases ${s.leases}, delivered ${s.delivered}`,
          )
          .join('; ')}`,
      );
    }
    out(
      `  - store: ${f.messages} messages, recipients ${JSON.stringify(f.states)}, ${f.deliveredCount} delivered events, ` +
        `${f.deferredEvents} deferrals`,
    );
    out(
      `  - CPU over the demo: node-a ${cpuA.toFixed(1)} s, PostgreSQL server ${reading.measuredS.toFixed(1)} s, ` +
        `the bench (load generator), sinks and node-b ${Math.max(0, reading.oursS - cpuA).toFixed(1)} s, in ${reading.wallS.toFixed(1)} s`,
    );
    const busy = backgroundNote(reading);
    if (busy) out(`  - ${busy}`);
    for (const n of notes) out(`  - ${n}`);
    out();
    out('Targets');
    for (const l of table(
      ['target', 'measured', 'result'],
      [
        ['every accepted message delivered', `lost ${lost} of ${int(accepted.size)}`, verdict(lost === 0)],
        [
          'duplicates at the sink ≤ 0.1% (the 2-node bound, kill included)',
          `${int(duplicates)} (${pct(duplicates, accepted.size, 3)})`,
          verdict(duplicates <= accepted.size * 0.001),
        ],
      ],
      new Set(),
    )) {
      out(`  ${l}`);
    }
  } finally {
    await cluster.dispose();
    await sink.stop();
  }
}
