/**
 * The operator's side end to end: the queue commands against a running Postbote, start-up
 * with a bad configuration, and stopping with SIGTERM.
 *
 * Retries are an hour apart here (delivery.retry.first = 1h), so a deferred recipient stays
 * deferred until the operator acts. Fake MX hosts share one port:
 *   127.0.0.3  nothing listening        (down.test: every attempt is deferred)
 *   127.0.0.6  scripted sink: RCPT answered 451 after a pause (slow.test)
 *   127.0.0.7  scripted sink: RCPT never answered (tarpit.test, for the SIGTERM test)
 *   127.0.0.8  scripted sink: every message answered "421 4.7.0 Try again later" (busy.test,
 *              which shaping.sites limits to 3 connections and 100/min)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { QueueSummaryReport } from '../../src/cli/queue-summary.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import {
  listMessages,
  logRecords,
  SmtpSession,
  sharedPort,
  showMessage,
  simpleMessage,
  stopPostbote,
  submit,
  waitForEvent,
  waitForLog,
} from '../support/e2e-harness.ts';
import {
  createIpAccount,
  type PostboteProcess,
  startPostboteProcess,
  waitFor,
} from '../support/postbote-process.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

const main = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');
/** How long the slow MX waits before its RCPT reply: time for an operator command meanwhile. */
// Long enough for a `queue delete` (a CLI process: 1-3 s to start on a busy 2-core machine).
const SLOW_RCPT_MS = 8000;

interface QueueRow {
  domain: string;
  queued: number;
  deferred: number;
  delivering: number;
}

describe('CLI and process lifecycle', { timeout: 240_000 }, () => {
  const dir = tempDir('postbote-e2e-cli-');
  let port: number;
  let dns: TestDnsServer;
  let slow: ScriptedSink;
  let tarpit: ScriptedSink;
  let busy: ScriptedSink;
  let postbote: PostboteProcess;
  let env: Record<string, string>;

  before(async () => {
    port = await sharedPort(['127.0.0.3', '127.0.0.6', '127.0.0.7', '127.0.0.8']);
    slow = await startScriptedSink({
      host: '127.0.0.6',
      port,
      hostname: 'mx.slow.test',
      respond: (cmd) =>
        cmd.verb === 'RCPT' ? { delayMs: SLOW_RCPT_MS, reply: '451 4.3.2 Try again later' } : undefined,
    });
    tarpit = await startScriptedSink({
      host: '127.0.0.7',
      port,
      hostname: 'mx.tarpit.test',
      respond: (cmd) => (cmd.verb === 'RCPT' ? { silent: true } : undefined),
    });
    busy = await startScriptedSink({
      host: '127.0.0.8',
      port,
      hostname: 'mx.busy.test',
      respond: (cmd) => (cmd.verb === 'DATA_END' ? { reply: '421 4.7.0 Try again later' } : undefined),
    });
    dns = await startDnsServer({
      zones: {
        'down.test': { MX: [{ preference: 10, exchange: 'mx.down.test' }] },
        'mx.down.test': { A: ['127.0.0.3'] },
        'slow.test': { MX: [{ preference: 10, exchange: 'mx.slow.test' }] },
        'mx.slow.test': { A: ['127.0.0.6'] },
        'tarpit.test': { MX: [{ preference: 10, exchange: 'mx.tarpit.test' }] },
        'mx.tarpit.test': { A: ['127.0.0.7'] },
        'busy.test': { MX: [{ preference: 10, exchange: 'mx.busy.test' }] },
        'mx.busy.test': { A: ['127.0.0.8'] },
        'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
      },
    });
    env = {
      POSTBOTE_DATA_DIR: dir.path,
      POSTBOTE_DNS__SERVERS: dns.address,
      POSTBOTE_DNS__TIMEOUT: '2s',
      POSTBOTE_DELIVERY__PORT: String(port),
      POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
      POSTBOTE_DELIVERY__RETRY__FIRST: '1h',
      POSTBOTE_DELIVERY__CONNECT_TIMEOUT: '2s',
      POSTBOTE_DELIVERY__GREETING_TIMEOUT: '2s',
      // No DSNs: they would only add noise to the listings checked here.
      POSTBOTE_DELIVERY__DSN: 'false',
      POSTBOTE_SHAPING__SITES: '{ mx.busy.test: { max_connections: 3, max_message_rate: 100/min } }',
    };
    await createIpAccount(env);
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
  });

  after(async () => {
    await stopPostbote(postbote);
    await Promise.all([slow?.close(), tarpit?.close(), busy?.close(), dns?.close()]);
    dir.cleanup();
  });

  const send = (to: string, subject: string): Promise<string> =>
    submit(postbote.submissionPort, {
      from: 'shop@sender.test',
      to: [to],
      message: simpleMessage({ from: 'shop@sender.test', to, subject }),
    });

  /** A CLI command's exit code and output, failing or not. */
  const cliResult = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        [main, ...args],
        { env: { ...withoutPostbote(process.env), ...postbote.env }, timeout: 15_000 },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
      );
    });

  const queueReport = async (): Promise<QueueSummaryReport> =>
    JSON.parse(await postbote.cli(['queue', 'summary', '--json'])) as QueueSummaryReport;
  const queueSummary = async (): Promise<QueueRow[]> => (await queueReport()).domains;

  it('queue retry ID attempts a deferred recipient now instead of in an hour', async () => {
    const id = await send('retry-me@down.test', 'retry me');
    await waitForEvent(postbote, id, 'deferred');
    const out = await postbote.cli(['queue', 'retry', id]);
    assert.match(out, /^1 recipient\(s\) scheduled for immediate delivery$/m);
    const shown = await waitFor(
      async () => {
        const s = await showMessage(postbote, id);
        return s.events.filter((e) => e.type === 'deferred').length === 2 ? s : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: 'a second attempt after queue retry' },
    );
    assert.deepEqual(
      shown.events.map((e) => e.type),
      ['accepted', 'deferred', 'retried', 'deferred'],
    );
    assert.equal(shown.events[3]?.data.attempt, 2);
    assert.match(
      shown.events[3]?.data.reply?.text ?? '',
      /connection refused by mx\.down\.test\[127\.0\.0\.3\]/,
    );
  });

  it('queue delete ID cancels a deferred recipient; messages list --status finds it and the bounced one', async () => {
    const deferredId = await send('stuck@down.test', 'stuck');
    const bouncedId = await send('nobody@nullmx.test', 'null MX');
    await Promise.all([
      waitForEvent(postbote, deferredId, 'deferred'),
      waitForEvent(postbote, bouncedId, 'bounced'),
    ]);
    const waitingBefore = (await queueSummary()).find((r) => r.domain === 'down.test')?.deferred ?? 0;
    assert.ok(waitingBefore >= 1, 'the deferred recipient is in the queue summary');

    const out = await postbote.cli(['queue', 'delete', deferredId]);
    assert.match(out, /^1 recipient\(s\) cancelled$/m);
    const shown = await showMessage(postbote, deferredId);
    assert.deepEqual(
      shown.recipients.map((r) => [r.address, r.state]),
      [['stuck@down.test', 'cancelled']],
    );
    const cancelled = shown.events.find((e) => e.type === 'cancelled');
    assert.equal(cancelled?.recipient, 'stuck@down.test');
    assert.match(cancelled?.data.reason ?? '', /operator/);

    const [bounced, cancelledList, summary] = await Promise.all([
      listMessages(postbote, ['--status', 'bounced']),
      listMessages(postbote, ['--status', 'cancelled']),
      queueSummary(),
    ]);
    assert.deepEqual(
      bounced.map((m) => m.id),
      [bouncedId],
    );
    assert.deepEqual(bounced[0]?.recipients, [{ address: 'nobody@nullmx.test', state: 'bounced' }]);
    assert.ok(cancelledList.some((m) => m.id === deferredId));
    assert.ok(!cancelledList.some((m) => m.id === bouncedId));
    const waitingAfter = summary.find((r) => r.domain === 'down.test')?.deferred ?? 0;
    assert.equal(waitingAfter, waitingBefore - 1, 'the cancelled recipient left the queue summary');
  });

  it('queue delete during a delivery attempt: the recipient stays cancelled when the MX then answers 4xx', async () => {
    const id = await send('slow@slow.test', 'deleted while delivering');
    // The attempt is in progress once the MX has the RCPT (it answers after SLOW_RCPT_MS).
    await waitFor(
      () =>
        slow.connections.some((c) => c.commands.some((line) => line.startsWith('RCPT TO:<slow@slow.test>'))),
      { timeoutMs: 10_000, intervalMs: 20, what: 'the RCPT at the slow MX' },
    );
    const out = await postbote.cli(['queue', 'delete', id]);
    // The sink records a recipient once it has answered its RCPT.
    assert.ok(
      !slow.transactions.some((tx) => tx.recipients.some((r) => r.address === 'slow@slow.test')),
      'the MX answered the RCPT before the delete was done: raise SLOW_RCPT_MS',
    );
    assert.match(out, /^1 recipient\(s\) cancelled$/m, 'the recipient being delivered was cancelled');
    const during = await showMessage(postbote, id);
    assert.equal(during.recipients[0]?.state, 'cancelled');

    // The attempt ends with 451: a temporary failure of a recipient the operator cancelled.
    await waitForLog(
      postbote,
      (r) => r.msg === 'delivery attempt' && r.messageId === id,
      'the end of the delivery attempt in the log',
      SLOW_RCPT_MS + 10_000,
    );
    // The outcome is committed right after it is logged.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const shown = await showMessage(postbote, id);
    assert.deepEqual(
      shown.recipients.map((r) => [r.address, r.state]),
      [['slow@slow.test', 'cancelled']],
      `a cancelled recipient came back after its attempt; events: ${shown.events.map((e) => e.type).join(', ')}`,
    );
    const summary = await queueSummary();
    assert.ok(!summary.some((r) => r.domain === 'slow.test'), 'a cancelled recipient is not in the queue');
  });

  it('queue summary --json: a 421 "try again later" throttle in force, with its rule and expiry; the deferred recipient under its site', async () => {
    const id = await send('someone@busy.test', 'busy');
    const deferredAt = Date.now();
    await waitForEvent(postbote, id, 'deferred');
    const report = await waitFor(
      async () => {
        const r = await queueReport();
        return r.inForce.some((a) => a.site === 'mx.busy.test') ? r : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: 'the throttle of mx.busy.test in the queue summary' },
    );
    const throttle = report.inForce.find((a) => a.site === 'mx.busy.test');
    assert.deepEqual(throttle && { ...throttle, until: undefined, node: undefined }, {
      kind: 'throttle',
      rule: 'generic-421-try-again-later',
      state: 'triggered',
      // The egress source it was sent from (the one configured, or `*` before routing).
      scope: `site:${throttle?.source}|mx.busy.test`,
      source: throttle?.source,
      site: 'mx.busy.test',
      rate: '60/min',
      at: throttle?.at,
      until: undefined,
      reply: '421 4.7.0 Try again later',
      node: undefined,
    });
    // The shipped rule throttles for 30 minutes from the reply.
    const until = Date.parse(throttle?.until ?? '');
    assert.ok(
      until >= deferredAt + 30 * 60_000 && until <= Date.now() + 30 * 60_000,
      `until ${throttle?.until} is 30 minutes after the reply`,
    );
    assert.ok(throttle?.node, 'the node holding it');

    const site = report.sites.find((s) => s.site === 'mx.busy.test');
    assert.deepEqual(site && { ...site, connections: undefined }, {
      site: 'mx.busy.test',
      provider: null,
      ready: 0,
      scheduled: 1,
      delivering: 0,
      oldestAt: site?.oldestAt,
      domains: 1,
      reasons: [{ text: '421 4.7.0 Try again later', count: 1 }],
      connections: undefined,
      limits: [
        {
          source: 'default',
          maxConnections: 3,
          maxMessagesPerConnection: 100,
          rates: ['100/min'],
          maxNewConnectionsPerMinute: null,
          tls: null,
        },
      ],
      // It was tried from the default egress source.
      sources: [{ source: 'default', ready: 0, scheduled: 1, delivering: 0 }],
    });
    assert.equal(report.domains.find((d) => d.domain === 'busy.test')?.deferred, 1, 'the domain table stays');

    const text = await postbote.cli(['queue', 'summary']);
    assert.match(text, /^By site /m);
    assert.match(text, /^mx\.busy\.test\s+-\s+0\s+1\s+0\s+\d+\s+3 conn, 100 msg\/conn, 100\/min\s/m);
    assert.match(text, /^In force now /m);
    assert.match(
      text,
      /^throttle\s+generic-421-try-again-later\s+site:\S+\|mx\.busy\.test\s+60\/min\s+\S+Z\s+\S+\s+421 4\.7\.0 Try again later$/m,
    );
  });

  it('streams: a credential with --stream sends there, X-Postbote-Stream overrides it, messages show the stream', async () => {
    const created = await postbote.cli([
      'streams',
      'create',
      '--account',
      'shop',
      'News',
      '--kind',
      'broadcast',
    ]);
    assert.match(created, /^broadcast stream "news" created for account "shop"$/m);
    await postbote.cli([
      'streams',
      'create',
      '--account',
      'shop',
      'alerts',
      '--kind',
      'transactional',
      '--pool',
      'default',
    ]);
    await assert.rejects(
      postbote.cli(['streams', 'create', '--account', 'shop', 'lost', '--kind', 'broadcast', '--pool', 'p1']),
      (err: Error & { code?: number }) => {
        assert.equal(err.code, 2);
        assert.match(
          err.message,
          /--pool: no egress pool named "p1" in the configuration \(egress\.pools: default\)/,
        );
        return true;
      },
    );
    const streams = JSON.parse(await postbote.cli(['streams', 'list', '--account', 'shop', '--json'])) as {
      name: string;
      kind: string;
      pool: string;
      default: boolean;
    }[];
    assert.deepEqual(
      streams.map((x) => [x.name, x.kind, x.pool, x.default]),
      [
        ['alerts', 'transactional', 'default', false],
        ['broadcast', 'broadcast', '', true],
        ['news', 'broadcast', '', false],
        ['outbound', 'transactional', '', true],
      ],
    );
    const [login] = JSON.parse(
      await postbote.cli([
        'credentials',
        'create',
        '--account',
        'shop',
        '--smtp',
        'newsletter',
        '--stream',
        'news',
        '--json',
      ]),
    ) as { secret: string; stream: string }[];
    assert.equal(login?.stream, 'news');
    // nullmx.test bounces at once: nothing stays in the queue the other tests look at.
    const sendAs = (subject: string, headers = '') =>
      submit(postbote.submissionPort, {
        auth: { user: 'newsletter', password: login?.secret ?? '' },
        from: 'shop@sender.test',
        to: ['reader@nullmx.test'],
        message: headers + simpleMessage({ from: 'shop@sender.test', to: 'reader@nullmx.test', subject }),
      });
    const byDefault = await sendAs('by the credential default');
    const byHeader = await sendAs('by the header', 'X-Postbote-Stream: alerts\r\n');
    const shown = await showMessage(postbote, byDefault);
    assert.equal(shown.message.stream, 'news');
    assert.deepEqual(
      shown.recipients.map((r) => [r.stream, r.kind]),
      [['news', 'broadcast']],
    );
    assert.deepEqual(
      (await showMessage(postbote, byHeader)).recipients.map((r) => [r.stream, r.kind]),
      [['alerts', 'transactional']],
    );
    assert.match(
      await postbote.cli(['messages', 'show', byHeader]),
      /^ {2}stream: {5}alerts \(transactional\)$/m,
    );
    const listed = await listMessages(postbote, ['--account', 'shop']);
    assert.equal(listed.find((m) => m.id === byDefault)?.stream, 'news');
    assert.equal(listed.find((m) => m.id === byHeader)?.stream, 'alerts');
  });

  it('streams, weights and credential streams: bad input is refused with a clear message and exit code 2', async () => {
    const fails = async (args: string[], code: number, message: RegExp) => {
      const result = await cliResult(args);
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    };
    await fails(
      ['streams', 'create', '--account', 'shop', 'x', '--kind', 'bulk'],
      2,
      /--kind must be transactional or broadcast/,
    );
    await fails(
      ['streams', 'create', '--account', 'shop', 'a b', '--kind', 'broadcast'],
      2,
      /stream name "a b" is not valid/,
    );
    await fails(['streams', 'create', '--account', 'shop', 'y'], 2, /required option '--kind <kind>'/);
    await fails(
      ['accounts', 'set-weight', 'shop', '0'],
      2,
      /weight must be a whole number from 1 to 1000, not "0"/,
    );
    await fails(['accounts', 'set-weight', 'shop', 'two'], 2, /weight must be a whole number/);
    await fails(
      ['credentials', 'create', '--account', 'shop', '--api', '--stream', 'a b'],
      2,
      /stream name "a b" is not valid/,
    );
    // Names that are well formed but do not exist (or exist already): exit 1, like an unknown account.
    await fails(
      ['streams', 'create', '--account', 'shop', 'outbound', '--kind', 'broadcast'],
      1,
      /"outbound" is a default stream/,
    );
    await fails(
      ['credentials', 'create', '--account', 'shop', '--api', '--stream', 'nope'],
      1,
      /account "shop" has no stream "nope"/,
    );
    await fails(['accounts', 'set-weight', 'nobody', '2'], 1, /no account named "nobody"/);
    assert.match(
      await postbote.cli(['accounts', 'set-weight', 'shop', '3']),
      /^account "shop" now has weight 3$/m,
    );
    const accounts = JSON.parse(await postbote.cli(['accounts', 'list', '--json'])) as {
      name: string;
      weight: number;
    }[];
    assert.equal(accounts.find((a) => a.name === 'shop')?.weight, 3);
  });

  it('an invalid configuration stops `postbote start` with exit code 2 and a line naming the key', async () => {
    const result = await new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
      const envWithBadPort = { ...withoutPostbote(process.env), ...env, POSTBOTE_DELIVERY__PORT: 'abc' };
      execFile(
        process.execPath,
        [main, 'start'],
        { env: envWithBadPort, timeout: 15_000 },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
      );
    });
    assert.equal(result.code, 2, `exit code; stderr:\n${result.stderr}`);
    const lines = result.stderr.split('\n');
    assert.ok(
      lines.some((l) => /^\s*delivery\.port: .*abc/.test(l)),
      `no line naming delivery.port and the bad value in:\n${result.stderr}`,
    );
    assert.ok(!result.stdout.includes('Postbote started'));
  });

  it('SIGTERM: a connected client gets 421, and the process exits 0 within a few seconds', async () => {
    const own = tempDir('postbote-e2e-sigterm-');
    const ownEnv = { ...env, POSTBOTE_DATA_DIR: own.path };
    let proc: PostboteProcess | undefined;
    try {
      proc = await startPostboteProcess({ dataDir: own.path, env: ownEnv });
      const session = await SmtpSession.open(proc.submissionPort);
      assert.equal((await session.command('EHLO app.sender.test')).code, 250);
      const started = performance.now();
      const exit = proc.stop();
      const goodbye = await session.read(5000);
      assert.deepEqual([goodbye.code, goodbye.enhanced], [421, '4.3.2'], goodbye.text);
      await session.closed();
      const code = await Promise.race([
        exit,
        new Promise<string>((r) => setTimeout(() => r('still running'), 5000)),
      ]);
      const ms = Math.round(performance.now() - started);
      assert.equal(code, 0, `exit after ${ms} ms`);
      assert.ok(ms < 5000, `took ${ms} ms to stop`);
      assert.ok(logRecords(proc).some((r) => r.msg === 'stopped'));
      assert.ok(!existsSync(join(own.path, 'postbote.pid')), 'the pid file is removed');
    } finally {
      await proc?.kill();
      own.cleanup();
    }
  });

  it('SIGTERM during a delivery to an unresponsive MX: exits 0 after delivery.shutdown_grace, the recipient back in the queue', {
    timeout: 40_000,
  }, async () => {
    const own = tempDir('postbote-e2e-sigterm-');
    const graceMs = 2_000;
    const ownEnv = { ...env, POSTBOTE_DATA_DIR: own.path, POSTBOTE_DELIVERY__SHUTDOWN_GRACE: `${graceMs}ms` };
    // delivery.socket_timeout stays at its default (5 min): the MX never answers within the test.
    let proc: PostboteProcess | undefined;
    try {
      await createIpAccount(ownEnv);
      proc = await startPostboteProcess({ dataDir: own.path, env: ownEnv });
      const running = proc;
      const id = await submit(running.submissionPort, {
        from: 'shop@sender.test',
        to: ['sleepy@tarpit.test'],
        message: simpleMessage({ from: 'shop@sender.test', to: 'sleepy@tarpit.test', subject: 'tarpit' }),
      });
      await waitFor(
        () =>
          tarpit.connections.some((c) =>
            c.commands.some((l) => l.startsWith('RCPT TO:<sleepy@tarpit.test>')),
          ),
        { timeoutMs: 10_000, intervalMs: 20, what: 'the RCPT at the tarpit' },
      );
      const started = performance.now();
      // Scheduler.stop lets in-flight deliveries run for the grace, then releases their leases.
      const code = await Promise.race([
        running.stop(),
        new Promise<string>((r) => setTimeout(() => r('still running'), 15_000)),
      ]);
      const ms = Math.round(performance.now() - started);
      assert.equal(code, 0, `after SIGTERM: ${code} after ${ms} ms`);
      assert.ok(ms >= graceMs, `exited after ${ms} ms, before the ${graceMs} ms grace ran out`);
      const shown = await showMessage(running, id);
      assert.deepEqual(
        shown.recipients.map((r) => [r.address, r.state]),
        [['sleepy@tarpit.test', 'queued']],
      );
    } finally {
      await proc?.kill();
      own.cleanup();
    }
  });
});

function withoutPostbote(source: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(source)) if (!k.startsWith('POSTBOTE_') && v !== undefined) out[k] = v;
  return out;
}
