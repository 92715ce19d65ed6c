/**
 * The reputation guard end to end: a running `postbote start` delivering to a scripted sink that
 * refuses most of one account's recipients with `550 5.1.1`. The elected node's guard task (every
 * 300 ms here, minimum volume 20) pauses the stream; new mail is accepted (202) and held; the
 * account's own key may not resume it; the operator's `postbote accounts resume` releases the held
 * mail, which is then delivered. Everything is recorded: events, the audit trail.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { fakeMxEnv, stopPostbote } from '../support/e2e-harness.ts';
import { type PostboteProcess, runCli, startPostboteProcess, waitFor } from '../support/postbote-process.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

type Shown = {
  recipients: { email: string; status: string }[];
  events: { type: string; data: Record<string, unknown> }[];
};

describe('reputation guard end to end: pause on bounces, held mail, operator resume', {
  timeout: 120_000,
}, () => {
  const dir = tempDir('postbote-e2e-guard-');
  let dns: TestDnsServer;
  let sink: ScriptedSink;
  let postbote: PostboteProcess;
  let key = '';
  let env: Record<string, string> = {};

  before(async () => {
    // Every mailbox at bounce.test is unknown; ok.test accepts.
    sink = await startScriptedSink({
      host: '127.0.0.2',
      hostname: 'mx.example.test',
      respond: ({ verb, arg }) =>
        verb === 'RCPT' && arg.toLowerCase().includes('@bounce.test>')
          ? '550 5.1.1 Recipient address rejected: User unknown'
          : undefined,
    });
    dns = await startDnsServer({
      zones: {
        'bounce.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }] },
        'ok.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }] },
        'mx.example.test': { A: ['127.0.0.2'] },
      },
    });
    env = {
      ...fakeMxEnv({ dataDir: dir.path, dns: dns.address, mxPort: sink.port }),
      POSTBOTE_GUARD__INTERVAL: '300ms',
      POSTBOTE_GUARD__MIN_VOLUME: '20',
    };
    await runCli(['accounts', 'create', 'shop', '--sender-policy', 'any'], env);
    const [row] = JSON.parse(
      await runCli(
        ['credentials', 'create', '--account', 'shop', '--api', '--scopes', 'send,read,admin', '--json'],
        env,
      ),
    ) as { secret?: string }[];
    key = row?.secret ?? '';
    assert.ok(key);
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
  });

  after(async () => {
    await stopPostbote(postbote);
    await Promise.all([sink?.close(), dns?.close()]);
    dir.cleanup();
  });

  async function api<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const response = await fetch(`http://127.0.0.1:${postbote.httpPort}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: response.status, body: (await response.json()) as T };
  }

  async function send(to: string): Promise<string> {
    const res = await api<{ id: string }>('POST', '/v1/messages', {
      from: 'orders@shop.test',
      to,
      subject: 'your order',
      text: 'Thank you.',
    });
    assert.equal(res.status, 202);
    return res.body.id;
  }

  const statusOf = async (id: string) =>
    (await api<Shown>('GET', `/v1/messages/${id}`)).body.recipients[0]?.status;

  it('pauses the stream once bounces pass 10 % of 20+ sends, holds new mail, and resumes by the operator', async () => {
    // 15 delivered and 10 bounced: 40 % of 25 sends.
    const ids: string[] = [];
    for (let i = 0; i < 15; i++) ids.push(await send(`ok${i}@ok.test`));
    for (let i = 0; i < 10; i++) ids.push(await send(`gone${i}@bounce.test`));
    await waitFor(
      async () => {
        const states = await Promise.all(ids.map(statusOf));
        return states.every((s) => s === 'delivered' || s === 'bounced') ? states : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'every first message delivered or bounced' },
    );
    const accountId = JSON.parse(await runCli(['accounts', 'list', '--json'], env))[0].id as string;
    const status = await waitFor(
      async () => {
        const s = await api<{
          paused: boolean;
          streams: { stream: string; paused: boolean; paused_by: string; reason: string }[];
        }>('GET', `/v1/accounts/${accountId}/status`);
        return s.body.streams.find((x) => x.stream === 'outbound' && x.paused) ? s.body : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 200, what: 'the guard to pause the outbound stream' },
    );
    const paused = status.streams.find((x) => x.stream === 'outbound');
    assert.equal(paused?.paused_by, 'system:guard');
    // A guard pass (every 300 ms) may land while the last outcomes are still being recorded: it
    // pauses on what it counts then (20+ sends, over 10 % bounced), at most 10 of 25.
    const counted = /bounce rate (\d+\.\d) % \((\d+) of (\d+) sends\) in 24h/.exec(paused?.reason ?? '');
    assert.ok(counted, `the reason names the rate and the counts: ${paused?.reason}`);
    const [rate, bounced, sends] = [Number(counted[1]), Number(counted[2]), Number(counted[3])];
    assert.ok(sends >= 20 && sends <= 25 && bounced <= 10, paused?.reason);
    assert.ok(Math.abs(rate - (100 * bounced) / sends) <= 0.051, paused?.reason);
    assert.ok(rate >= 10, paused?.reason);

    // Paused: accepted and held; the sink never sees it. Intake reads the pauses from a copy
    // refreshed every second (guard cacheMs): a message sent within that second may still go.
    await new Promise((r) => setTimeout(r, 1100));
    const before = sink.transactions.length;
    const held = await send('later@ok.test');
    const shown = await waitFor(
      async () => {
        const s = (await api<Shown>('GET', `/v1/messages/${held}`)).body;
        return s.recipients[0]?.status === 'held' ? s : undefined;
      },
      { timeoutMs: 5000, intervalMs: 100, what: 'the new message held' },
    );
    assert.deepEqual(
      shown.events.map((e) => e.type),
      ['held'],
    );
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await statusOf(held), 'held');
    assert.equal(sink.transactions.length, before);

    // The account's key may not lift the guard's pause.
    const refused = await api<{ error: { code: string } }>('POST', `/v1/accounts/${accountId}/resume`, {});
    assert.equal(refused.status, 403);

    // The operator resumes: the held message goes out.
    const out = await runCli(['accounts', 'resume', 'shop'], env);
    assert.match(out, /resumed stream outbound; 1 held recipient\(s\) released/);
    await waitFor(async () => ((await statusOf(held)) === 'delivered' ? true : undefined), {
      timeoutMs: 15_000,
      intervalMs: 200,
      what: 'the released message delivered',
    });
    // Not paused again by the same window: traffic after the resume is what counts now.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(
      (await api<{ paused: boolean }>('GET', `/v1/accounts/${accountId}/status`)).body.paused,
      false,
    );
    assert.equal((await statusOf(await send('after@ok.test'))) === 'held', false);

    // Events and the audit trail name what happened and who did it.
    const audit = JSON.parse(await runCli(['audit', '--account', 'shop', '--json'], env)) as {
      action: string;
      actor: string;
    }[];
    assert.deepEqual(
      audit.filter((e) => e.action.startsWith('account.')).map((e) => [e.action, e.actor.split(':')[0]]),
      [
        ['account.resume', 'cli'],
        ['account.pause', 'system'],
      ],
    );
    const events = await api<{ data: { type: string }[] }>('GET', '/v1/events?type=account_paused');
    assert.equal(events.status, 200);
    assert.equal(events.body.data.length, 1);
  });
});
