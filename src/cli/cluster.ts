import type { Command } from 'commander';
import { HEARTBEAT_MS } from '../delivery/heartbeat.ts';
import { type GlobalOptions, iso, output, withStore } from './context.ts';

export function registerCluster(program: Command, globals: () => GlobalOptions): void {
  const cluster = program.command('cluster').description('the nodes sharing this store');
  cluster
    .command('status')
    .description('nodes, their heartbeats, the leases they hold and their work since start')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const now = Date.now();
        const nodes = (await store.clusterStatus()).map((n) => ({
          node: n.id,
          // Three missed heartbeats: the node is gone (its leases expire and others take them).
          alive: now - n.heartbeatAt < 3 * HEARTBEAT_MS,
          // Runs the periodic tasks (retention, …); one node at a time.
          leader: n.info.leader === true,
          heartbeatAgeSeconds: Math.round((now - n.heartbeatAt) / 1000),
          startedAt: iso(n.startedAt),
          leases: n.leases,
          inflight: n.info.inflight ?? 0,
          connections: n.info.connections ?? 0,
          delivered: n.info.delivered ?? 0,
          deferred: n.info.deferred ?? 0,
          bounced: n.info.bounced ?? 0,
        }));
        output(nodes, opts.json);
      });
    });
}
