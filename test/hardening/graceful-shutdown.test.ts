/**
 * Graceful shutdown under load (issue 11): SIGTERM while SMTP sessions and API clients are
 * sending and deliveries are in flight at a slow remote. What must hold:
 *
 * - it stops accepting: a new SMTP connection gets `421 4.3.2` or is refused, an HTTP request
 *   `503` or a refused connection; nothing gets a permanent (5xx SMTP, 500 HTTP) answer;
 * - deliveries in flight finish within the grace (delivery.shutdown_grace, 3 s here) or are
 *   cut and their leases released; the process exits with 0 after the grace and well before the
 *   hard stop 20 s past it (cli/start.ts);
 * - with the process gone, `postbote queue summary --json` shows nothing in `delivering`;
 * - after a restart every message that got 250/202 is delivered; the only second deliveries are
 *   of the messages whose transaction was cut before the remote's answer.
 *
 * Run on SQLite, and on PostgreSQL where one is reachable.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it, type TestContext } from 'node:test';
import { queueLeft } from '../support/e2e-harness.ts';
import { type LoadRun, postLoadMessage, startLoad } from '../support/load-generator.ts';
import { createLoadAccount, type LoadTarget, startLoadTarget } from '../support/load-target.ts';
import { type PostboteProcess, runCli, startPostboteProcess, waitFor } from '../support/postbote-process.ts';
import { connectAdmin, freshSchemaName, testDatabaseUrl } from '../support/postgres.ts';
import { tempDir } from '../support/temp-dir.ts';

/** delivery.shutdown_grace of the runs (the default is 10 s). */
const GRACE_MS = 3_000;
/** The remote answers a final dot after this long: deliveries are in flight at the SIGTERM. */
const SLOW_MS = 1_500;
/** ... and the `slow-*` messages after this long: longer than the grace, so they are cut. */
const STUCK_MS = 25_000;
const STUCK = 2;
/** cli/start.ts exits with 1 after this long, whatever is still running. */
const HARD_STOP_MS = GRACE_MS + 20_000;

interface Probe {
  smtp: string[];
  http: string[];
}

/** Every 50 ms until stopped: a new SMTP connection's greeting and a new HTTP request's status. */
function startProbes(smtpPort: number, httpPort: number, key: string, signal: AbortSignal) {
  const seen: Probe = { smtp: [], http: [] };
  const greeting = () =>
    new Promise<string>((resolve) => {
      const socket = net.connect(smtpPort, '127.0.0.1');
      let buffer = '';
      const done = (what: string) => {
        socket.destroy();
        resolve(what);
      };
      socket.setTimeout(5_000, () => done('timeout'));
      socket.on('data', (d) => {
        buffer += d.toString('latin1');
        if (buffer.includes('\r\n')) done(buffer.slice(0, 9).trim());
      });
      socket.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? 'error'));
      socket.on('close', () => done(buffer === '' ? 'closed' : buffer.slice(0, 9).trim()));
    });
  const request = async (n: number) => {
    try {
      const res = await fetch(`http://127.0.0.1:${httpPort}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', connection: 'close' },
        body: JSON.stringify({
          from: 'load@sender.test',
          to: ['user@sink.test'],
          subject: `probe ${n}`,
          text: 'probe',
          headers: { 'X-Load-Id': `probe-${n}` },
        }),
        signal: AbortSignal.timeout(5_000),
      });
      await res.arrayBuffer();
      return String(res.status);
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      return cause?.code ?? (err as Error).name;
    }
  };
  const acknowledged = new Set<string>();
  const done = (async () => {
    for (let n = 0; !signal.aborted; n++) {
      const [s, h] = await Promise.all([greeting(), request(n)]);
      seen.smtp.push(s);
      seen.http.push(h);
      if (h === '202') acknowledged.add(`probe-${n}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return { seen, acknowledged, done };
}

/** API clients sending until stopped, each message once (a failed one is not retried here). */
function startApiLoad(port: number, key: string, clients: number, signal: AbortSignal) {
  const acknowledged = new Set<string>();
  const statuses = new Map<string, number>();
  let next = 0;
  const worker = async () => {
    while (!signal.aborted) {
      const id = `api-${next++}`;
      const result = await postLoadMessage(port, key, id);
      const status = result.status === 0 ? 'refused' : String(result.status);
      if (result.status === 202) acknowledged.add(id);
      else if (result.status === 0) await new Promise((r) => setTimeout(r, 50));
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  return { acknowledged, statuses, done: Promise.all(Array.from({ length: clients }, worker)) };
}

async function delivering(cli: (args: string[]) => Promise<string>): Promise<number> {
  return (await queueLeft(cli)).delivering;
}

async function shutdownRun(t: TestContext, dbEnv: Record<string, string>): Promise<void> {
  const dir = tempDir('postbote-sigterm-');
  let target: LoadTarget | undefined;
  let postbote: PostboteProcess | undefined;
  let smtp: LoadRun | undefined;
  const stopLoad = new AbortController();
  const stopProbes = new AbortController();
  let slow = true;
  try {
    target = await startLoadTarget((id) => {
      if (!slow) return undefined;
      return { delayMs: id.startsWith('slow-') ? STUCK_MS : SLOW_MS };
    });
    const arrivals = target.arrivals;
    const env: Record<string, string> = {
      ...target.env(dir.path),
      ...dbEnv,
      POSTBOTE_DELIVERY__SHUTDOWN_GRACE: `${GRACE_MS}ms`,
    };
    const key = await createLoadAccount(env);
    postbote = await startPostboteProcess({ dataDir: dir.path, env, timeoutMs: 30_000 });
    const { submissionPort, httpPort } = postbote;

    // Two messages the remote sits on for longer than the grace.
    for (let i = 0; i < STUCK; i++) {
      const res = await fetch(`http://127.0.0.1:${httpPort}/v1/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          from: 'load@sender.test',
          to: ['user@sink.test'],
          subject: `slow ${i}`,
          text: 'slow',
          headers: { 'X-Load-Id': `slow-${i}` },
        }),
      });
      assert.equal(res.status, 202);
    }
    smtp = startLoad({
      host: '127.0.0.1',
      port: submissionPort,
      sessions: 6,
      total: 100_000,
      messagesPerConnection: 20,
      bodySize: 1024,
      rcptTo: 'user@sink.test',
      signal: stopLoad.signal,
      replyTimeoutMs: 10_000,
      maxAttemptsPerMessage: 1,
      maxConsecutiveFailures: 1_000_000,
    });
    const api = startApiLoad(httpPort, key, 3, stopLoad.signal);
    await waitFor(() => STUCK <= [...arrivals.keys()].filter((id) => id.startsWith('slow-')).length, {
      timeoutMs: 20_000,
      what: 'the slow messages in flight',
    });
    await waitFor(() => (smtp?.progress.acknowledged.size ?? 0) > 200 && api.acknowledged.size > 50, {
      timeoutMs: 60_000,
      what: 'load flowing',
    });

    // SIGTERM with everything running.
    const running = postbote;
    const probes = startProbes(submissionPort, httpPort, key, stopProbes.signal);
    const sentAt = Date.now();
    const exitCode = await running.stop();
    const tookMs = Date.now() - sentAt;
    stopProbes.abort();
    stopLoad.abort();
    const smtpResult = await smtp.done;
    await Promise.all([api.done, probes.done]);
    const released = running.logs.find((l) => l.includes('released leases of unfinished deliveries'));
    t.diagnostic(
      `SIGTERM → exit ${exitCode} in ${tookMs} ms; ${released ? `released: ${/"released":(\d+)/.exec(released)?.[1]}` : 'no lease released'}`,
    );
    t.diagnostic(
      `load: ${smtpResult.acknowledged.size} SMTP acknowledged, ${smtpResult.unknown.size} unknown, ${smtpResult.failed} not sent or refused; ` +
        `API ${JSON.stringify(Object.fromEntries(api.statuses))}`,
    );
    const count = (xs: string[]) =>
      JSON.stringify(Object.fromEntries([...new Set(xs)].map((x) => [x, xs.filter((y) => y === x).length])));
    t.diagnostic(`probes during shutdown: SMTP ${count(probes.seen.smtp)}, HTTP ${count(probes.seen.http)}`);

    assert.equal(exitCode, 0, `a clean exit (not the ${HARD_STOP_MS} ms hard stop)`);
    assert.ok(tookMs < HARD_STOP_MS, `exited in ${tookMs} ms`);
    // The stuck deliveries were given the whole grace before they were cut.
    assert.ok(tookMs >= GRACE_MS, `exited in ${tookMs} ms, before the ${GRACE_MS} ms grace`);
    // New connections during the shutdown: served normally until the listener closes, then 421
    // or refused; never a permanent refusal.
    for (const s of probes.seen.smtp) {
      assert.ok(
        /^(220|421)\b/.test(s) || ['ECONNREFUSED', 'ECONNRESET', 'closed'].includes(s),
        `SMTP probe during shutdown: ${s}`,
      );
    }
    for (const h of probes.seen.http) {
      assert.ok(
        ['202', '503', 'ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET'].includes(h),
        `HTTP probe: ${h}`,
      );
    }
    assert.ok(
      probes.seen.smtp.some((s) => s.startsWith('421') || s === 'ECONNREFUSED'),
      'SMTP stopped accepting before the exit',
    );
    for (const status of api.statuses.keys())
      assert.ok(['202', '503', 'refused'].includes(status), `API load answer during shutdown: ${status}`);
    assert.deepEqual(
      smtpResult.refusals.filter((r) => / 5\.\d+\.\d+ /.test(` ${r.split(': ').slice(1).join(': ')} `)),
      [],
      'no permanent SMTP refusal',
    );

    // Nothing stuck: with the process gone, nothing is in `delivering`.
    assert.equal(await delivering((args) => runCli(args, env)), 0, 'nothing in delivering after the exit');

    // Restart: everything acknowledged reaches the remote.
    slow = false;
    postbote = await startPostboteProcess({
      dataDir: dir.path,
      env,
      submissionPort,
      httpPort,
      timeoutMs: 30_000,
    });
    const acknowledged = [
      ...smtpResult.acknowledged,
      ...api.acknowledged,
      ...probes.acknowledged,
      ...Array.from({ length: STUCK }, (_, i) => `slow-${i}`),
    ];
    await waitFor(() => acknowledged.every((id) => arrivals.has(id)) || undefined, {
      timeoutMs: 120_000,
      intervalMs: 250,
      what: 'every acknowledged message at the sink',
    }).catch(() => undefined);
    const lost = acknowledged.filter((id) => !arrivals.has(id));
    const twice = [...arrivals].filter(([, n]) => n > 1).map(([id]) => id);
    t.diagnostic(
      `${acknowledged.length} acknowledged, lost ${lost.length}, delivered twice: ${twice.join(', ') || 'none'}`,
    );
    assert.deepEqual(lost, [], 'nothing acknowledged is lost');
    // Only transactions cut before the remote's answer are sent again (the remote never said 250).
    assert.deepEqual(
      twice.filter((id) => !id.startsWith('slow-')),
      [],
      'no second delivery of a message whose delivery finished',
    );
    const restarted = postbote;
    await waitFor(async () => (await delivering((args) => restarted.cli(args))) === 0 || undefined, {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: 'nothing in delivering after the restart',
    });
  } finally {
    stopLoad.abort();
    stopProbes.abort();
    await postbote?.stop().catch(() => undefined);
    await target?.close();
    dir.cleanup();
  }
}

describe('graceful shutdown: SIGTERM under SMTP and API load with deliveries in flight', () => {
  it('SQLite: stops accepting, finishes or releases deliveries, exits in time, nothing stuck', {
    timeout: 300_000,
  }, async (t) => {
    await shutdownRun(t, {});
  });

  const schema = freshSchemaName('postbote_sigterm');
  let dropSchema: (() => Promise<void>) | undefined;
  after(async () => {
    await dropSchema?.();
  });
  it('PostgreSQL: the same', { timeout: 300_000 }, async (t) => {
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
    await shutdownRun(t, {
      POSTBOTE_DATABASE__URL: testDatabaseUrl,
      POSTBOTE_DATABASE__SCHEMA: schema,
      POSTBOTE_NODE_ID: 'sigterm-node',
    });
  });
});
