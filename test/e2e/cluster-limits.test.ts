/**
 * Issue 3's "must show": a per-destination connection limit of N is never exceeded at the sink
 * with two nodes running (the sink counts concurrent sessions). Skips where PostgreSQL is not
 * reachable, fails in CI.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { escapeIdentifier } from 'pg';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { logRecords, stopPostbote } from '../support/e2e-harness.ts';
import { startLoad } from '../support/load-generator.ts';
import {
  createIpAccount,
  type PostboteProcess,
  startPostboteProcess,
  waitFor,
} from '../support/postbote-process.ts';
import { freshSchemaName, postgresOrSkip, testDatabaseUrl } from '../support/postgres.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

const LIMIT = 3;
/** Messages per second to the site, for the two nodes together. */
const RATE = 60;
/** Arrival times of messages at the sink (performance.now()). */
const arrivals: number[] = [];
const PER_NODE = 300;

const admin = await postgresOrSkip('the cluster limit tests');

if (admin) {
  describe('a connection limit across two nodes', { timeout: 120_000 }, () => {
    const dirA = tempDir('postbote-limit-a-');
    const dirB = tempDir('postbote-limit-b-');
    const schema = freshSchemaName('postbote_limits');
    let dns: TestDnsServer;
    let sink: ScriptedSink;
    const nodes: PostboteProcess[] = [];

    const envFor = (node: string, dataDir: string): Record<string, string> => ({
      POSTBOTE_DATA_DIR: dataDir,
      POSTBOTE_DATABASE__URL: testDatabaseUrl,
      POSTBOTE_DATABASE__SCHEMA: schema,
      POSTBOTE_NODE_ID: node,
      POSTBOTE_DNS__SERVERS: dns.address,
      POSTBOTE_DELIVERY__PORT: String(sink.port),
      POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
      POSTBOTE_DELIVERY__MAX_CONNECTIONS_PER_HOST: String(LIMIT),
      POSTBOTE_SHAPING__SITES: `{mx.limit.test: {max_message_rate: [${RATE}/s]}}`,
    });

    before(async () => {
      // Slow answers after the dot, so each node alone would open every connection it may.
      sink = await startScriptedSink({
        host: '127.0.0.2',
        hostname: 'mx.limit.test',
        respond: (cmd) => {
          if (cmd.verb !== 'DATA_END') return undefined;
          arrivals.push(performance.now());
          return { delayMs: 10 };
        },
      });
      dns = await startDnsServer({
        zones: {
          'limit.test': { MX: [{ preference: 10, exchange: 'mx.limit.test' }] },
          'mx.limit.test': { A: ['127.0.0.2'] },
        },
      });
      // The credential exists before the nodes start, so neither waits for its credential reload.
      const env = envFor('setup', dirA.path);
      await createIpAccount(env, 'load', '127.0.0.0/8');
      for (const [id, dir] of [
        ['node-a', dirA.path],
        ['node-b', dirB.path],
      ] as const) {
        nodes.push(await startPostboteProcess({ dataDir: dir, env: envFor(id, dir) }));
      }
    });

    after(async () => {
      for (const node of nodes) await stopPostbote(node);
      await sink?.close();
      await dns?.close();
      await admin.query(`DROP SCHEMA IF EXISTS ${escapeIdentifier(schema)} CASCADE`);
      await admin.end();
      dirA.cleanup();
      dirB.cleanup();
    });

    it(`never has more than ${LIMIT} sessions open and ${RATE} messages a second at the sink, and both nodes deliver`, async () => {
      // Each node counts the live nodes every 5 s (its share of the rate): let both see both.
      await new Promise((r) => setTimeout(r, 6000));
      const runs = nodes.map((node, i) =>
        startLoad({
          host: '127.0.0.1',
          port: node.submissionPort,
          sessions: 4,
          total: PER_NODE,
          rcptTo: `n${i}@limit.test`,
          bodySize: 300,
          replyTimeoutMs: 5000,
        }),
      );
      const results = await Promise.all(runs.map((r) => r.done));
      const acknowledged = results.reduce((n, r) => n + r.acknowledged.size, 0);
      assert.equal(acknowledged, 2 * PER_NODE);
      await waitFor(
        () =>
          sink.transactions.filter((tx) => tx.dataReply?.startsWith('250')).length >= acknowledged ||
          undefined,
        { what: 'every message at the sink', timeoutMs: 60_000, intervalMs: 200 },
      );
      const attempts = nodes.map((n) => logRecords(n).filter((r) => r.msg === 'delivery attempt').length);
      console.log(
        `# limit ${LIMIT}: sink saw at most ${sink.maxConcurrent} concurrent sessions over ${sink.connections.length} connections; delivery attempts per node ${attempts.join(', ')}`,
      );
      assert.ok(sink.maxConcurrent <= LIMIT, `${sink.maxConcurrent} concurrent sessions > ${LIMIT}`);
      // Busiest second, and the rate over the run: each node paces at half the site's rate.
      let busiest = 0;
      for (const t of arrivals)
        busiest = Math.max(busiest, arrivals.filter((x) => x >= t && x < t + 1000).length);
      const overall = ((arrivals.length - 1) * 1000) / (arrivals.at(-1)! - arrivals[0]!);
      console.log(
        `# rate ${RATE}/s for the cluster: busiest second ${busiest}, over the run ${overall.toFixed(1)}/s`,
      );
      assert.ok(busiest <= RATE * 1.1, `${busiest} messages in one second > ${RATE}`);
      assert.ok(overall <= RATE * 1.05, `${overall.toFixed(1)}/s over the run > ${RATE}/s`);
      assert.equal(sink.maxConcurrent, LIMIT, 'the limit is used, not undershot');
      assert.ok(
        attempts.every((n) => n > 0),
        'both nodes delivered',
      );
    });
  });
}
