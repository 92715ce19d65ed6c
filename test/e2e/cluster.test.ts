/**
 * Two nodes on one PostgreSQL schema (issue 3's "must show", at test size): load split across
 * both submission ports, every acknowledged message delivered, the work spread over both nodes;
 * then node B is killed with SIGKILL mid-run and node A takes over its leases when they expire.
 * Skips where PostgreSQL is not reachable, fails in CI.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { escapeIdentifier } from 'pg';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { logRecords, stopPostbote } from '../support/e2e-harness.ts';
import { type LoadRun, startLoad } from '../support/load-generator.ts';
import { type PostboteProcess, startPostboteProcess, waitFor } from '../support/postbote-process.ts';
import { freshSchemaName, postgresOrSkip, testDatabaseUrl } from '../support/postgres.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

const PER_NODE = 1500;
const LEASE_S = 5;

/** `node:id` of a delivered message, from its recipient (which node took it) and X-Load-Id. */
function keyOf(rcpt: string, data: Buffer | undefined): string {
  const m = /^X-Load-Id: *(\d+)\r?$/im.exec(data?.toString('latin1') ?? '');
  return `${rcpt.split('@')[0]}:${m?.[1] ?? '?'}`;
}

const admin = await postgresOrSkip('the cluster tests');

if (admin) {
  describe('two nodes on one PostgreSQL', { timeout: 120_000 }, () => {
    const dirA = tempDir('postbote-node-a-');
    const dirB = tempDir('postbote-node-b-');
    const schema = freshSchemaName('postbote_cluster');
    let dns: TestDnsServer;
    let sink: ScriptedSink;
    let a: PostboteProcess | undefined;
    let b: PostboteProcess | undefined;

    const envFor = (node: string): Record<string, string> => ({
      POSTBOTE_DATABASE__URL: testDatabaseUrl,
      POSTBOTE_DATABASE__SCHEMA: schema,
      POSTBOTE_NODE_ID: node,
      POSTBOTE_DNS__SERVERS: dns.address,
      POSTBOTE_DELIVERY__PORT: String(sink.port),
      POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
      POSTBOTE_DELIVERY__LEASE: `${LEASE_S}s`,
    });

    before(async () => {
      sink = await startScriptedSink({ host: '127.0.0.2', hostname: 'mx.cluster.test' });
      dns = await startDnsServer({
        zones: {
          'cluster.test': { MX: [{ preference: 10, exchange: 'mx.cluster.test' }] },
          'mx.cluster.test': { A: ['127.0.0.2'] },
        },
      });
      // B first: it wins the leader election, so its kill below also tests the takeover.
      b = await startPostboteProcess({ dataDir: dirB.path, env: envFor('node-b') });
      a = await startPostboteProcess({ dataDir: dirA.path, env: envFor('node-a') });
      await a.cli(['accounts', 'create', 'load', '--sender-policy', 'any']);
      await a.cli(['credentials', 'create', '--account', 'load', '--ip', '127.0.0.0/8']);
    });

    after(async () => {
      await stopPostbote(a);
      await b?.kill();
      await sink?.close();
      await dns?.close();
      await admin.query(`DROP SCHEMA IF EXISTS ${escapeIdentifier(schema)} CASCADE`);
      await admin.end();
      dirA.cleanup();
      dirB.cleanup();
    });

    it('splits the load over both nodes, survives kill -9 of one, and loses nothing', async () => {
      assert.ok(a && b);
      // Both nodes must see the IP credential (re-read every 5 s) before the load starts.
      await new Promise((r) => setTimeout(r, 5500));
      const before = JSON.parse(await a.cli(['cluster', 'status', '--json'])) as {
        node: string;
        leader: boolean;
      }[];
      assert.deepEqual(
        before.map((n) => [n.node, n.leader]),
        [
          ['node-a', false],
          ['node-b', true],
        ],
        'one leader: the node that started first',
      );
      const stopB = new AbortController();
      const load = (node: PostboteProcess, rcpt: string, signal?: AbortSignal): LoadRun =>
        startLoad({
          host: '127.0.0.1',
          port: node.submissionPort,
          sessions: 4,
          total: PER_NODE,
          rcptTo: rcpt,
          bodySize: 512,
          replyTimeoutMs: 3000,
          maxConsecutiveFailures: 5,
          ...(signal ? { signal } : {}),
        });
      const loadA = load(a, 'a@cluster.test');
      const loadB = load(b, 'b@cluster.test', stopB.signal);
      await waitFor(() => loadB.progress.acknowledged.size >= PER_NODE * 0.4 || undefined, {
        what: 'node B under load',
        timeoutMs: 30_000,
      });
      const bLogs = logRecords(b).filter((r) => r.msg === 'delivery attempt').length;
      await b.kill();
      const killedAt = Date.now();
      stopB.abort();
      const [resultA, resultB] = await Promise.all([loadA.done, loadB.done]);
      const acknowledged = new Set([
        ...[...resultA.acknowledged].map((id) => `a:${id}`),
        ...[...resultB.acknowledged].map((id) => `b:${id}`),
      ]);
      const delivered = new Map<string, number>();
      const count = (): void => {
        delivered.clear();
        for (const tx of sink.transactions) {
          if (!tx.dataReply?.startsWith('250')) continue;
          for (const r of tx.recipients) {
            const key = keyOf(r.address, tx.data);
            delivered.set(key, (delivered.get(key) ?? 0) + 1);
          }
        }
      };
      await waitFor(
        () => {
          count();
          return [...acknowledged].every((k) => delivered.has(k)) || undefined;
        },
        { what: 'every acknowledged message at the sink', timeoutMs: 60_000, intervalMs: 250 },
      );
      const takeoverMs = Date.now() - killedAt;
      const lost = [...acknowledged].filter((k) => !delivered.has(k));
      const duplicates = [...delivered].filter(([, n]) => n > 1);
      const aLogs = logRecords(a).filter((r) => r.msg === 'delivery attempt').length;
      console.log(
        `# acknowledged ${acknowledged.size} (A ${resultA.acknowledged.size}, B ${resultB.acknowledged.size} before the kill); ` +
          `delivery attempts logged: A ${aLogs}, B ${bLogs}+ before the kill; ` +
          `lost ${lost.length}, duplicates ${duplicates.length}; B's work delivered ${takeoverMs} ms after the kill (lease ${LEASE_S} s)`,
      );
      assert.deepEqual(lost, [], 'acknowledged messages lost');
      assert.ok(
        duplicates.length <= 20,
        `duplicates ${duplicates.length}: more than one per delivery connection`,
      );
      assert.ok(bLogs > 0 && aLogs > 0, 'both nodes delivered some of the work');
      assert.ok(resultA.acknowledged.size === PER_NODE, 'node A took all of its load');

      // postbote cluster status: both nodes known; A alive and delivering; B's leases taken over.
      await new Promise((r) => setTimeout(r, 10_500)); // one more heartbeat of A
      const status = JSON.parse(await a.cli(['cluster', 'status', '--json'])) as {
        node: string;
        alive: boolean;
        leases: number;
        delivered: number;
        leader: boolean;
      }[];
      const nodeA = status.find((n) => n.node === 'node-a');
      const nodeB = status.find((n) => n.node === 'node-b');
      assert.ok(nodeA?.alive, 'node A reports heartbeats');
      assert.ok((nodeA?.delivered ?? 0) > 0, 'node A counts its deliveries');
      assert.equal(nodeB?.leases, 0, "node B's leases were taken over");
      assert.ok(nodeA?.leader, 'node A took over the periodic tasks from the killed leader');
    });
  });
}
