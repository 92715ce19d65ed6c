/**
 * Traffic shaping and stream priority end to end: `shaping.sites` limits on a running
 * `postbote start`, observed where a receiver would see them, at the sink.
 *
 * Fake MX hosts share one port (`delivery.port`) on their own loopback addresses:
 *   127.0.0.2  smtp-sink (Postfix), dumps every message       rate.test    20/s, 2 connections
 *   127.0.0.3  scripted sink, 20 ms per message, records      limits.test  3 connections, 5 per connection
 *              every connection and transaction
 *   127.0.0.4  scripted sink, 100 ms per message              slow.test    1 connection
 *   127.0.0.5  scripted sink, answers its 10th message 1.5 s  stall.test   20/s, 1 connection
 *              late (a receiver that stalls for a moment)
 *
 * Senders relay through one IP credential (127.0.0.0/8, default stream outbound); broadcast
 * messages name their stream with `X-Postbote-Stream: broadcast`.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import {
  havePeers,
  peerMissing,
  sharedPort,
  showMessage,
  simpleMessage,
  stopPostbote,
  submit,
} from '../support/e2e-harness.ts';
import {
  createIpAccount,
  type PostboteProcess,
  startPostboteProcess,
  waitFor,
} from '../support/postbote-process.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { type SmtpSink, startSmtpSink } from '../support/smtp-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

const RATE_PER_S = 20;
const RATE_MESSAGES = 120;
const LIMIT_CONNECTIONS = 3;
const LIMIT_PER_CONNECTION = 5;
const LIMIT_MESSAGES = 60;
const SLOW_BROADCAST = 30;
const SLOW_DELAY_MS = 100;
const STALL_MESSAGES = 60;
const STALL_MS = 1500;

const SITES = `{
  mx.rate.test: { max_connections: 2, max_message_rate: ${RATE_PER_S}/s },
  mx.limits.test: { max_connections: ${LIMIT_CONNECTIONS}, max_messages_per_connection: ${LIMIT_PER_CONNECTION} },
  mx.slow.test: { max_connections: 1 },
  mx.stall.test: { max_connections: 1, max_message_rate: ${RATE_PER_S}/s }
}`;

type Stream = 'outbound' | 'broadcast';

/** One message to `to`, naming its stream; resolves with Postbote's queue id. */
function send(port: number, to: string, stream: Stream): Promise<string> {
  const message = `X-Postbote-Stream: ${stream}\r\n${simpleMessage({ from: 'app@sender.test', to, subject: `${stream} to ${to}` })}`;
  return submit(port, { from: 'app@sender.test', to: [to], message });
}

/** Submits every address over `parallel` connections at a time; ids in the order given. */
async function sendAll(port: number, addresses: string[], stream: Stream, parallel = 4): Promise<string[]> {
  const ids: string[] = new Array(addresses.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < addresses.length; i = next++) ids[i] = await send(port, addresses[i]!, stream);
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return ids;
}

/** The most arrivals in any window [t, t + windowMs) of the ascending times. */
function busiestWindow(times: readonly number[], windowMs: number): { count: number; from: number } {
  let best = { count: 0, from: times[0] ?? 0 };
  let end = 0;
  for (let start = 0; start < times.length; start++) {
    while (end < times.length && times[end]! < times[start]! + windowMs) end++;
    if (end - start > best.count) best = { count: end - start, from: times[start]! };
  }
  return best;
}

describe('traffic shaping and stream priority at the sink', { timeout: 90_000 }, () => {
  const dir = tempDir('postbote-e2e-shaping-');
  let dns: TestDnsServer;
  let postbote: PostboteProcess;
  let rateSink: SmtpSink | undefined;
  let limitsSink: ScriptedSink;
  let slowSink: ScriptedSink;
  let stallSink: ScriptedSink;
  /** When stallSink received each final dot (ms epoch). */
  const stallArrivals: number[] = [];

  before(async () => {
    const port = await sharedPort(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']);
    if (!peerMissing('smtp-sink')) {
      rateSink = await startSmtpSink({ host: '127.0.0.2', port, hostname: 'mx.rate.test' });
    }
    limitsSink = await startScriptedSink({
      host: '127.0.0.3',
      port,
      hostname: 'mx.limits.test',
      // Slow enough that Postbote wants every connection it may open.
      respond: (cmd) => (cmd.verb === 'DATA_END' ? { delayMs: 20 } : undefined),
    });
    slowSink = await startScriptedSink({
      host: '127.0.0.4',
      port,
      hostname: 'mx.slow.test',
      respond: (cmd) => (cmd.verb === 'DATA_END' ? { delayMs: SLOW_DELAY_MS } : undefined),
    });
    stallSink = await startScriptedSink({
      host: '127.0.0.5',
      port,
      hostname: 'mx.stall.test',
      // A receiver that stops answering for a moment (a busy MX, a slow content scan).
      respond: (cmd) => {
        if (cmd.verb !== 'DATA_END') return undefined;
        stallArrivals.push(Date.now());
        return stallArrivals.length === 10 ? { delayMs: STALL_MS } : undefined;
      },
    });
    const zone = (name: string, ip: string) => ({
      [`${name}.test`]: { MX: [{ preference: 10, exchange: `mx.${name}.test` }] },
      [`mx.${name}.test`]: { A: [ip] },
    });
    dns = await startDnsServer({
      zones: {
        ...zone('rate', '127.0.0.2'),
        ...zone('limits', '127.0.0.3'),
        ...zone('slow', '127.0.0.4'),
        ...zone('stall', '127.0.0.5'),
        // The senders' domain: null MX, so a DSN (there should be none) would go nowhere.
        'sender.test': { MX: [{ preference: 0, exchange: '.' }] },
      },
    });
    const env = {
      POSTBOTE_DATA_DIR: dir.path,
      POSTBOTE_DNS__SERVERS: dns.address,
      POSTBOTE_DELIVERY__PORT: String(port),
      POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
      POSTBOTE_SHAPING__SITES: SITES,
    };
    await createIpAccount(env, 'shop', '127.0.0.0/8');
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
  });

  after(async () => {
    await stopPostbote(postbote);
    await Promise.all([
      rateSink?.stop(),
      limitsSink?.close(),
      slowSink?.close(),
      stallSink?.close(),
      dns?.close(),
    ]);
    dir.cleanup();
  });

  it(`max_connections ${LIMIT_CONNECTIONS} and max_messages_per_connection ${LIMIT_PER_CONNECTION}: never more sessions at once, never more messages on one`, async () => {
    const addresses = Array.from({ length: LIMIT_MESSAGES }, (_, i) => `user${i}@limits.test`);
    await sendAll(postbote.submissionPort, addresses, 'outbound');
    const delivered = () => limitsSink.transactions.filter((tx) => tx.dataReply?.startsWith('250'));
    await waitFor(() => delivered().length >= LIMIT_MESSAGES || undefined, {
      what: `${LIMIT_MESSAGES} messages at mx.limits.test`,
      timeoutMs: 30_000,
      intervalMs: 50,
    });
    const perConnection = limitsSink.connections.map(
      (c) => c.transactions.filter((tx) => tx.dataReply?.startsWith('250')).length,
    );
    console.log(
      `# limits.test: ${delivered().length} messages over ${limitsSink.connections.length} connections, ` +
        `at most ${limitsSink.maxConcurrent} at once; per connection ${perConnection.join(' ')}`,
    );
    assert.equal(delivered().length, LIMIT_MESSAGES, 'every message once');
    assert.ok(
      limitsSink.maxConcurrent <= LIMIT_CONNECTIONS,
      `${limitsSink.maxConcurrent} concurrent sessions > ${LIMIT_CONNECTIONS}`,
    );
    // The limits are used, not undershot: the load wants more connections than allowed.
    assert.equal(limitsSink.maxConcurrent, LIMIT_CONNECTIONS);
    assert.ok(
      perConnection.every((n) => n <= LIMIT_PER_CONNECTION),
      `a connection carried more than ${LIMIT_PER_CONNECTION}: ${perConnection.join(' ')}`,
    );
    assert.equal(Math.max(...perConnection), LIMIT_PER_CONNECTION);
    assert.ok(limitsSink.connections.length >= LIMIT_MESSAGES / LIMIT_PER_CONNECTION);
  });

  it(`max_message_rate ${RATE_PER_S}/s at smtp-sink: about ${RATE_PER_S}/s over the run, never more in any second; a transactional message overtakes the paced broadcast backlog`, async (t) => {
    if (!havePeers(t, 'smtp-sink') || !rateSink) return;
    const sink = rateSink;
    /** Finished dumps with the time smtp-sink wrote them (at the final dot), oldest first. */
    const arrivals = () =>
      sink
        .transactions()
        .map((tx) => ({ to: tx.rcptTo[0] ?? '', at: statSync(tx.file).mtimeMs }))
        .sort((a, b) => a.at - b.at);
    // One message first, so that the run starts on an open connection: opening the first
    // connection delays the first arrival alone, which squeezes one more message into the second
    // that begins with it (measured: 21 in that second, every time). It is left out of the
    // figures below: it opened the connection for exactly that reason.
    await send(postbote.submissionPort, 'warm-up@rate.test', 'outbound');
    await waitFor(() => arrivals().length >= 1 || undefined, { what: 'the warm-up message', intervalMs: 20 });
    const addresses = Array.from({ length: RATE_MESSAGES }, (_, i) => `bulk${i}@rate.test`);
    await sendAll(postbote.submissionPort, addresses, 'broadcast');
    // Mid-run, with most of the backlog still waiting for the rate: one transactional message.
    await waitFor(() => arrivals().length >= 30 || undefined, {
      what: '30 messages at smtp-sink',
      timeoutMs: 20_000,
      intervalMs: 20,
    });
    await send(postbote.submissionPort, 'tx@rate.test', 'outbound');
    const arrivedBefore = arrivals().length;
    const expected = RATE_MESSAGES + 2;
    await waitFor(() => arrivals().length >= expected || undefined, {
      what: `${expected} messages at smtp-sink`,
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    const all = arrivals();
    const run = all.filter((a) => a.to !== 'warm-up@rate.test').map((a) => a.at);
    const seconds = ((run.at(-1) ?? 0) - (run[0] ?? 0)) / 1000;
    const observed = (run.length - 1) / seconds;
    const busiest = busiestWindow(run, 1000);
    const txAt = all.findIndex((a) => a.to === 'tx@rate.test');
    console.log(
      `# rate.test: ${run.length} messages in ${seconds.toFixed(2)} s = ${observed.toFixed(2)}/s; ` +
        `busiest second ${busiest.count} (from +${Math.round(busiest.from - (run[0] ?? 0))} ms); ` +
        `the transactional message arrived ${txAt + 1}th, ${arrivedBefore} had arrived when it was accepted`,
    );
    assert.equal(all.length, expected, 'every message once');
    // The limiter's design keeps ≥ 95 % of the rate; 10 % either way leaves room for scheduling.
    assert.ok(
      observed >= RATE_PER_S * 0.9 && observed <= RATE_PER_S * 1.1,
      `${observed.toFixed(2)}/s is not within 10 % of ${RATE_PER_S}/s`,
    );
    // +1: a message released at the very end of one window may land just inside the next.
    assert.ok(
      busiest.count <= RATE_PER_S + 1,
      `${busiest.count} messages within one second from +${Math.round(busiest.from - (run[0] ?? 0))} ms`,
    );
    // Paced messages wait in priority order: the transactional one is the next sent, or nearly.
    assert.ok(txAt >= 0, 'the transactional message arrived');
    assert.ok(
      txAt - arrivedBefore <= 3,
      `${txAt - arrivedBefore} broadcast messages arrived between the transactional one's acceptance and its arrival`,
    );
  });

  it(`streams: with 1 connection to a slow sink and ${SLOW_BROADCAST} broadcast messages queued, a transactional message arrives among the first few`, async () => {
    const addresses = Array.from({ length: SLOW_BROADCAST }, (_, i) => `bulk${i}@slow.test`);
    const bulkIds = await sendAll(postbote.submissionPort, addresses, 'broadcast');
    await waitFor(() => slowSink.transactions.length >= 1 || undefined, {
      what: 'the first broadcast message at mx.slow.test',
      timeoutMs: 10_000,
      intervalMs: 10,
    });
    const txId = await send(postbote.submissionPort, 'tx@slow.test', 'outbound');
    const arrivedBefore = slowSink.transactions.filter((tx) => tx.dataReply?.startsWith('250')).length;
    const order = () =>
      slowSink.transactions
        .filter((tx) => tx.dataReply?.startsWith('250'))
        .map((tx) => tx.recipients[0]?.address ?? '');
    await waitFor(() => order().length >= SLOW_BROADCAST + 1 || undefined, {
      what: `${SLOW_BROADCAST + 1} messages at mx.slow.test`,
      timeoutMs: 20_000,
      intervalMs: 50,
    });
    const arrived = order();
    const txAt = arrived.indexOf('tx@slow.test');
    console.log(
      `# slow.test: the transactional message arrived ${txAt + 1}th of ${arrived.length}; ` +
        `${arrivedBefore} broadcast had arrived when it was accepted; at most ${slowSink.maxConcurrent} session at once`,
    );
    assert.equal(arrived.length, SLOW_BROADCAST + 1, 'every message once');
    assert.equal(slowSink.maxConcurrent, 1);
    assert.ok(txAt >= 0, 'the transactional message arrived');
    // At most the one in flight and one leased at the same moment go before it.
    assert.ok(
      txAt - arrivedBefore <= 2,
      `${txAt - arrivedBefore} broadcast messages overtook the transactional one (arrival order: ${arrived.join(' ')})`,
    );
    assert.ok(arrived.length - 1 - txAt >= SLOW_BROADCAST - 10, 'most of the backlog arrived after it');
    // The stream travelled with the message: stored, and the header taken out before delivery.
    const tx = await showMessage(postbote, txId);
    assert.equal(tx.message.stream, 'outbound');
    assert.deepEqual(
      tx.recipients.map((r) => [r.kind, r.state]),
      [['transactional', 'delivered']],
    );
    const bulk = await showMessage(postbote, bulkIds[0]!);
    assert.equal(bulk.message.stream, 'broadcast');
    assert.equal(bulk.recipients[0]?.kind, 'broadcast');
    for (const t of slowSink.transactions) {
      assert.doesNotMatch(t.data?.toString('latin1') ?? '', /^X-Postbote-Stream:/im);
    }
  });

  // The pool takes the rate with a connection in hand: what was admitted while every connection
  // was busy must not go out back to back once one frees.
  it(`max_message_rate ${RATE_PER_S}/s holds in every second when the receiver stalls for ${STALL_MS} ms`, async () => {
    const addresses = Array.from({ length: STALL_MESSAGES }, (_, i) => `bulk${i}@stall.test`);
    await sendAll(postbote.submissionPort, addresses, 'broadcast');
    await waitFor(
      () =>
        stallSink.transactions.filter((tx) => tx.dataReply?.startsWith('250')).length >= STALL_MESSAGES ||
        undefined,
      { what: `${STALL_MESSAGES} messages at mx.stall.test`, timeoutMs: 30_000, intervalMs: 50 },
    );
    const times = [...stallArrivals].sort((a, b) => a - b);
    const busiest = busiestWindow(times, 1000);
    console.log(
      `# stall.test: ${times.length} messages in ${(((times.at(-1) ?? 0) - (times[0] ?? 0)) / 1000).toFixed(2)} s; ` +
        `busiest second ${busiest.count} (from +${Math.round(busiest.from - (times[0] ?? 0))} ms)`,
    );
    assert.equal(times.length, STALL_MESSAGES, 'every message once');
    assert.ok(
      busiest.count <= RATE_PER_S + 1,
      `${busiest.count} messages within one second from +${Math.round(busiest.from - (times[0] ?? 0))} ms`,
    );
  });
});
