/**
 * Crash safety under sustained load (issue 11): 25,000 messages, over SMTP and the HTTP API at
 * once, while Postbote is killed with SIGKILL five times at random moments and restarted on the
 * same data. Afterwards every message that got a 250 or a 202 must have reached the sink (lost
 * must be 0); duplicates are counted against the issue's target of 0.1 % and must stay within
 * their structural bound. Run on SQLite, and on PostgreSQL where one is reachable.
 *
 * A duplicate is a delivery whose final dot the sink had when the process died but whose answer
 * Postbote never wrote to its outcome journal (delivery/outcome-journal.ts; the 250 was still on
 * its way): at most one per delivery connection (20) per kill, in practice 0-2, so the share
 * depends on the volume between kills, not on the total.
 *
 * API messages carry an Idempotency-Key, so one whose answer was lost in a crash is retried
 * without being stored twice; SMTP messages whose reply was lost are "unknown" (may or may not
 * be delivered; counted, not promised). Seeded: POSTBOTE_CRASH_SEED replays the kill times;
 * POSTBOTE_CRASH_MESSAGES and POSTBOTE_CRASH_KILLS change the size; POSTBOTE_CRASH_DEBUG prints
 * every duplicate with its arrival times.
 */
import assert from 'node:assert/strict';
import { after, describe, it, type TestContext } from 'node:test';
import { queueLeft } from '../support/e2e-harness.ts';
import { type LoadRun, postLoadMessage, startLoad } from '../support/load-generator.ts';
import { createLoadAccount, type LoadTarget, startLoadTarget } from '../support/load-target.ts';
import { type PostboteProcess, startPostboteProcess, waitFor } from '../support/postbote-process.ts';
import { connectAdmin, freshSchemaName, testDatabaseUrl } from '../support/postgres.ts';
import { tempDir } from '../support/temp-dir.ts';
import { seededRandom } from './harness.ts';

const TOTAL = Number(process.env.POSTBOTE_CRASH_MESSAGES ?? 25_000);
const KILLS = Number(process.env.POSTBOTE_CRASH_KILLS ?? 5);
const API_SHARE = 0.25;
const SMTP_SESSIONS = 12;
const API_CLIENTS = 4;
const KILL_EVERY_MS = { min: 800, max: 3000 };
const TARGET_DUPLICATE_SHARE = 0.001;
/** delivery.max_connections_per_host (default): transactions that can be answered but unrecorded at a kill. */
const CONNECTIONS = 20;

interface ApiLoad {
  acknowledged: Set<string>;
  done: Promise<void>;
}

/**
 * POSTs `total` messages from `clients` workers, each with an X-Load-Id and an Idempotency-Key;
 * a message is retried (same key) until answered 202, however often the server goes away.
 */
function startApiLoad(options: {
  port: () => number;
  key: string;
  total: number;
  clients: number;
  signal: AbortSignal;
}): ApiLoad {
  const acknowledged = new Set<string>();
  let next = 0;
  const worker = async () => {
    while (next < options.total && !options.signal.aborted) {
      const id = `api-${next++}`;
      for (let attempt = 0; !options.signal.aborted; attempt++) {
        const { status } = await postLoadMessage(options.port(), options.key, id, { idempotent: true });
        if (status === 202) {
          acknowledged.add(id);
          break;
        }
        // down, reset, timed out, in use: try again with the same key
        await new Promise((r) => setTimeout(r, Math.min(250, 20 * 2 ** attempt)));
      }
    }
  };
  return { acknowledged, done: Promise.all(Array.from({ length: options.clients }, worker)).then(() => {}) };
}

async function crashRun(
  t: TestContext,
  store: 'sqlite' | 'postgres',
  dbEnv: Record<string, string>,
): Promise<void> {
  const seed = Number(process.env.POSTBOTE_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 32));
  const random = seededRandom(seed);
  t.diagnostic(`${store}: seed ${seed} (POSTBOTE_CRASH_SEED replays it), ${TOTAL} messages, ${KILLS} kills`);
  const dir = tempDir('postbote-crash5-');
  let target: LoadTarget | undefined;
  let postbote: PostboteProcess | undefined;
  let smtp: LoadRun | undefined;
  const stop = new AbortController();
  t.signal.addEventListener('abort', () => {
    stop.abort();
    void postbote?.kill();
  });
  try {
    target = await startLoadTarget();
    const arrivals = target.arrivals;
    const env: Record<string, string> = {
      ...target.env(dir.path),
      POSTBOTE_DELIVERY__LEASE: '20s',
      // In a cluster an API request's claim left by a killed process blocks its retries this
      // long (the embedded store frees them at restart); shorter than the default 1 m here.
      POSTBOTE_API__IDEMPOTENCY_STALE: '15s',
      ...dbEnv,
    };
    const key = await createLoadAccount(env);

    postbote = await startPostboteProcess({ dataDir: dir.path, env, timeoutMs: 30_000 });
    const { submissionPort, httpPort } = postbote;
    const apiTotal = Math.round(TOTAL * API_SHARE);
    smtp = startLoad({
      host: '127.0.0.1',
      port: submissionPort,
      sessions: SMTP_SESSIONS,
      total: TOTAL - apiTotal,
      messagesPerConnection: 50,
      bodySize: 1024,
      rcptTo: 'user@sink.test',
      signal: stop.signal,
      replyTimeoutMs: 5_000,
      maxAttemptsPerMessage: 1000,
      maxConsecutiveFailures: 100_000,
    });
    const api = startApiLoad({
      port: () => httpPort,
      key,
      total: apiTotal,
      clients: API_CLIENTS,
      signal: stop.signal,
    });

    const killedAt: number[] = [];
    for (let kill = 1; kill <= KILLS; kill++) {
      const wait = Math.round(KILL_EVERY_MS.min + random() * (KILL_EVERY_MS.max - KILL_EVERY_MS.min));
      await new Promise((r) => setTimeout(r, wait));
      killedAt.push(performance.now());
      await postbote.kill();
      t.diagnostic(
        `kill ${kill} after ${wait} ms: ${smtp.progress.acknowledged.size + api.acknowledged.size} acknowledged, ${arrivals.size} at the sink`,
      );
      postbote = await startPostboteProcess({
        dataDir: dir.path,
        env,
        submissionPort,
        httpPort,
        timeoutMs: 30_000,
      });
    }
    const deadline = setTimeout(() => stop.abort(), 240_000);
    const [smtpResult] = await Promise.all([smtp.done, api.done]).finally(() => clearTimeout(deadline));
    assert.ok(!stop.signal.aborted, 'the load finished in time');
    const acknowledged = [...smtpResult.acknowledged, ...api.acknowledged];
    const running = postbote;
    await waitFor(async () => acknowledged.every((id) => arrivals.has(id)) || undefined, {
      timeoutMs: 120_000,
      intervalMs: 250,
      what: 'every acknowledged message at the sink',
    }).catch(() => undefined);
    const lost = acknowledged.filter((id) => !arrivals.has(id));
    const duplicates = [...arrivals.values()].reduce((n, c) => n + c - 1, 0);
    // How far each duplicate's first copy arrived from the nearest kill: the structural kind is
    // a final dot Postbote sent just before it died (the sink may read it a moment after the
    // kill), whose 250 it never read. Anything farther from a kill would be another cause.
    const nearKill = { '≤ 10 ms': 0, '≤ 100 ms': 0, '≤ 1 s': 0, farther: 0 };
    for (const [id, count] of arrivals) {
      if (count < 2) continue;
      const times = target.arrivalTimes.get(id) ?? [];
      const first = times[0] ?? 0;
      const gap = Math.min(...killedAt.map((k) => Math.abs(k - first)));
      const bucket = gap <= 10 ? '≤ 10 ms' : gap <= 100 ? '≤ 100 ms' : gap <= 1000 ? '≤ 1 s' : 'farther';
      nearKill[bucket] += count - 1;
      if (process.env.POSTBOTE_CRASH_DEBUG) {
        const kill = killedAt.findIndex((k) => Math.abs(k - first) === gap) + 1;
        t.diagnostic(
          `duplicate ${id}: first copy ${Math.round(first - (killedAt[kill - 1] ?? 0))} ms from kill ${kill}, ` +
            `copies at +${times.map((x) => Math.round(x - first)).join(', +')} ms`,
        );
      }
    }
    // The queue drains: nothing left queued, deferred or delivering.
    const left = await waitFor(
      async () => {
        const q = await queueLeft(running.cli);
        return q.queued + q.deferred + q.delivering === 0 ? 0 : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'an empty queue' },
    ).catch(() => -1);
    t.diagnostic(
      `${store}: ${acknowledged.length} acknowledged (${smtpResult.acknowledged.size} SMTP, ${api.acknowledged.size} API), ` +
        `${smtpResult.unknown.size} unknown, ${smtpResult.failed} refused; lost ${lost.length}, ` +
        `duplicated ${duplicates} (${((100 * duplicates) / Math.max(1, acknowledged.length)).toFixed(3)} %); ` +
        `first copy from the nearest kill: ${Object.entries(nearKill)
          .map(([when, n]) => `${when} ${n}`)
          .join(', ')}`,
    );
    assert.equal(lost.length, 0, `lost: ${lost.slice(0, 10).join(', ')}`);
    // The structural bound: one per delivery connection per kill. The issue's target share
    // (0.1 %) is reported; it is met or not depending on how much flowed between the kills.
    const share = duplicates / Math.max(1, acknowledged.length);
    t.diagnostic(
      `${store}: duplicate share ${(100 * share).toFixed(3)} % (target ${100 * TARGET_DUPLICATE_SHARE} %: ${share <= TARGET_DUPLICATE_SHARE ? 'met' : 'NOT met'})`,
    );
    assert.ok(
      duplicates <= KILLS * CONNECTIONS,
      `${duplicates} duplicates over ${KILLS} kills: more than one per delivery connection per kill`,
    );
    assert.equal(nearKill.farther, 0, 'every duplicate arrived first within a second of a kill');
    assert.equal(left, 0, 'the queue drained');
  } finally {
    stop.abort();
    await postbote?.stop().catch(() => undefined);
    await target?.close();
    dir.cleanup();
  }
}

describe(`crash safety: ${KILLS} SIGKILLs during ${TOTAL.toLocaleString('en')} messages over SMTP and the API`, () => {
  it('SQLite: nothing acknowledged is lost, at most one duplicate per connection per kill, each at a kill', {
    timeout: 600_000,
  }, async (t) => {
    await crashRun(t, 'sqlite', {});
  });

  const schema = freshSchemaName('postbote_crash');
  let dropSchema: (() => Promise<void>) | undefined;
  after(async () => {
    await dropSchema?.();
  });
  it('PostgreSQL: nothing acknowledged is lost, at most one duplicate per connection per kill, each at a kill', {
    timeout: 600_000,
  }, async (t) => {
    const connected = await connectAdmin();
    if ('reason' in connected) {
      if (process.env.CI) assert.fail(connected.reason);
      t.skip(connected.reason);
      return;
    }
    dropSchema = async () => {
      await connected.admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await connected.admin.end();
    };
    await crashRun(t, 'postgres', {
      POSTBOTE_DATABASE__URL: testDatabaseUrl,
      POSTBOTE_DATABASE__SCHEMA: schema,
      POSTBOTE_NODE_ID: 'crash-node',
    });
  });
});
