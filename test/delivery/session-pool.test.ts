import assert from 'node:assert/strict';
import { before, describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ConnectionPermits, createClusterPermits } from '../../src/delivery/connection-permits.ts';
import {
  createSessionPool,
  type DeliveryTarget,
  SessionPoolError,
  type SessionPoolOptions,
} from '../../src/delivery/session-pool.ts';
import { createCircuitBreaker } from '../../src/delivery/shaping/circuit.ts';
import { createRateLimiter } from '../../src/delivery/shaping/rate-limiter.ts';
import { MemorySlots } from '../support/memory-slots.ts';
import {
  generateSelfSignedCert,
  type ScriptedSinkOptions,
  startScriptedSink,
  unusedPort,
} from '../support/scripted-sink.ts';

const body = Buffer.from(
  'From: Sender <sender@example.org>\r\n' +
    'To: rcpt@example.net\r\n' +
    'Subject: pool test\r\n' +
    '\r\n' +
    'first line\r\n' +
    '.a line starting with a dot\r\n' +
    '..two dots\r\n' +
    'umlaut: ä\r\n',
);
const envelope = (to: string[] = ['rcpt@example.net']) => ({
  from: 'sender@example.org',
  to,
  size: body.length,
});

/** Polls until `condition` holds; fails after `timeoutMs`. */
async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail('condition not reached in time');
    await sleep(10);
  }
}

async function setup(
  t: TestContext,
  sinkOptions: ScriptedSinkOptions = {},
  poolOptions: Partial<SessionPoolOptions> = {},
) {
  const sink = await startScriptedSink(sinkOptions);
  const pool = createSessionPool({
    maxConnectionsPerKey: 2,
    ehloName: 'relay.postbote.test',
    connectTimeoutMs: 2000,
    greetingTimeoutMs: 2000,
    socketTimeoutMs: 5000,
    ...poolOptions,
  });
  t.after(async () => {
    await pool.close();
    await sink.close();
  });
  const target: DeliveryTarget = {
    site: 'mx.example.net',
    hosts: [{ host: 'mx.example.net', ip: sink.host }],
    port: sink.port,
    starttls: 'none',
  };
  return { sink, pool, target };
}

describe('session pool', () => {
  let cert: { key: string; cert: string };
  before(async () => {
    cert = await generateSelfSignedCert();
  });

  it('delivers the body byte for byte and reuses one connection, without RSET after clean transactions', async (t) => {
    const { sink, pool, target } = await setup(t);
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await pool.deliver(target, envelope(), body));

    assert.equal(sink.connections.length, 1);
    assert.equal(sink.transactions.length, 4);
    for (const tx of sink.transactions) assert.deepEqual(tx.data, body);
    assert.deepEqual(
      results.map((r) => r.connection.reused),
      [false, true, true, true],
    );
    for (const result of results) {
      assert.equal(result.connectionFailed, false);
      assert.equal(result.recipients[0]?.outcome, 'delivered');
      assert.equal(result.recipients[0]?.reply.code, 250);
      assert.equal(result.recipients[0]?.reply.enhanced, '2.0.0');
    }
    const commands = sink.connections[0]!.commands.map((c) => c.split(' ')[0]);
    assert.equal(commands.filter((c) => c === 'RSET').length, 0);
    assert.equal(sink.connections[0]!.ehloName, 'relay.postbote.test');
    // 8-bit body: BODY=8BITMIME and SIZE are declared.
    assert.match(sink.transactions[0]!.mailParams, /BODY=8BITMIME/);
    assert.match(sink.transactions[0]!.mailParams, new RegExp(`SIZE=${body.length}`));
  });

  it('holds a connection until its answer is recorded (beforeRelease) before the next transaction', async (t) => {
    const { sink, pool, target } = await setup(t, {}, { maxConnectionsPerKey: 1 });
    let recorded: () => void = () => {};
    const recording = new Promise<void>((resolve) => (recorded = resolve));
    const seen: string[] = [];
    const first = pool.deliver(target, envelope(['a@example.net']), body, async (result) => {
      seen.push(result.recipients[0]?.outcome ?? '');
      await recording;
    });
    const second = pool.deliver(target, envelope(['b@example.net']), body);
    await waitFor(() => seen.length === 1);
    await sleep(50);
    assert.equal(sink.transactions.length, 1, 'the second transaction waits for the first to be recorded');
    recorded();
    await Promise.all([first, second]);
    assert.equal(sink.transactions.length, 2);
    assert.deepEqual(seen, ['delivered']);
    assert.equal(sink.connections.length, 1);
  });

  it('sends RSET before reusing a session whose last transaction had a failure', async (t) => {
    const { sink, pool, target } = await setup(t, {
      respond: (cmd) =>
        cmd.verb === 'RCPT' && cmd.arg.includes('gone@') ? '550 5.1.1 No such user' : undefined,
    });
    await pool.deliver(target, envelope(['gone@example.net', 'a@example.net']), body);
    const second = await pool.deliver(target, envelope(['b@example.net']), body);
    assert.equal(second.recipients[0]?.outcome, 'delivered');
    assert.equal(sink.connections.length, 1);
    const verbs = sink.connections[0]!.commands.map((c) => c.split(' ')[0]);
    const secondMail = verbs.lastIndexOf('MAIL');
    assert.equal(verbs[secondMail - 1], 'RSET');
  });

  it('applies an RCPT rejection to that recipient only', async (t) => {
    const gmail550 = [
      '550-5.1.1 The email account that you tried to reach does not exist. Please try',
      '550 5.1.1 double-checking the recipient address. - gsmtp',
    ].join('\n');
    const { sink, pool, target } = await setup(t, {
      respond: (cmd) => (cmd.verb === 'RCPT' && cmd.arg.includes('nobody@') ? gmail550 : undefined),
    });
    const result = await pool.deliver(
      target,
      envelope(['a@example.net', 'nobody@example.net', 'b@example.net']),
      body,
    );

    assert.deepEqual(
      result.recipients.map((r) => [r.address, r.outcome, r.reply.code, r.reply.enhanced]),
      [
        ['a@example.net', 'delivered', 250, '2.0.0'],
        ['nobody@example.net', 'permanent', 550, '5.1.1'],
        ['b@example.net', 'delivered', 250, '2.0.0'],
      ],
    );
    assert.match(result.recipients[1]!.reply.text, /does not exist\. Please try double-checking/);
    assert.deepEqual(sink.transactions[0]!.data, body);
  });

  it('applies a 4xx DATA reply to every accepted recipient and keeps the connection', async (t) => {
    let failData = true;
    const { sink, pool, target } = await setup(t, {
      respond: (cmd) => {
        if (cmd.verb === 'RCPT' && cmd.arg.includes('full@')) return '452 4.2.2 Mailbox full';
        if (cmd.verb === 'RCPT' && cmd.arg.includes('gone@')) return '550 5.1.1 No such user';
        if (cmd.verb === 'DATA' && failData) return '451 4.3.0 Temporary local problem, try later';
        return undefined;
      },
    });
    const first = await pool.deliver(
      target,
      envelope(['a@example.net', 'full@example.net', 'gone@example.net', 'b@example.net']),
      body,
    );
    assert.deepEqual(
      first.recipients.map((r) => [r.outcome, r.reply.code]),
      [
        ['temporary', 451],
        ['temporary', 452],
        ['permanent', 550],
        ['temporary', 451],
      ],
    );
    assert.equal(first.recipients[0]!.reply.text, 'Temporary local problem, try later');

    failData = false;
    const second = await pool.deliver(target, envelope(), body);
    assert.equal(second.recipients[0]!.outcome, 'delivered');
    assert.equal(second.connection.reused, true);
    assert.equal(sink.connections.length, 1);
  });

  it('applies a 5xx end-of-data reply to every accepted recipient', async (t) => {
    const { pool, target } = await setup(t, {
      respond: (cmd) => (cmd.verb === 'DATA_END' ? '554 5.7.1 Message rejected as spam' : undefined),
    });
    const result = await pool.deliver(target, envelope(['a@example.net', 'b@example.net']), body);
    assert.deepEqual(
      result.recipients.map((r) => [r.outcome, r.reply.enhanced]),
      [
        ['permanent', '5.7.1'],
        ['permanent', '5.7.1'],
      ],
    );
  });

  it('applies a refused MAIL FROM to every recipient', async (t) => {
    const { pool, target } = await setup(t, {
      respond: (cmd) => (cmd.verb === 'MAIL' ? '553 5.7.1 Sender address rejected' : undefined),
    });
    const result = await pool.deliver(target, envelope(['a@example.net', 'b@example.net']), body);
    assert.deepEqual(
      result.recipients.map((r) => [r.outcome, r.reply.code]),
      [
        ['permanent', 553],
        ['permanent', 553],
      ],
    );
    assert.equal(result.connectionFailed, false);
  });

  it('discards a connection after a 421 mid-transaction', async (t) => {
    let closeOnce = true;
    const { sink, pool, target } = await setup(t, {
      respond: (cmd) => {
        if (cmd.verb !== 'DATA_END' || !closeOnce) return undefined;
        closeOnce = false;
        return { reply: '421 4.7.0 Try again later, closing connection.', close: true };
      },
    });
    const first = await pool.deliver(target, envelope(), body);
    assert.equal(first.recipients[0]!.outcome, 'temporary');
    assert.deepEqual([first.recipients[0]!.reply.code, first.recipients[0]!.reply.enhanced], [421, '4.7.0']);
    assert.equal(first.connectionFailed, false);

    const second = await pool.deliver(target, envelope(), body);
    assert.equal(second.recipients[0]!.outcome, 'delivered');
    assert.equal(second.connection.reused, false);
    assert.equal(sink.connections.length, 2);
  });

  it('discards a connection that times out mid-DATA', async (t) => {
    const { sink, pool, target } = await setup(
      t,
      {
        respond: (cmd) => (cmd.verb === 'DATA_END' && cmd.connection.id === 1 ? { silent: true } : undefined),
      },
      { socketTimeoutMs: 300 },
    );
    const first = await pool.deliver(target, envelope(), body);
    assert.deepEqual(
      [first.recipients[0]!.outcome, first.recipients[0]!.reply.code, first.recipients[0]!.reply.enhanced],
      ['temporary', 421, '4.4.2'],
    );
    assert.equal(first.connectionFailed, false, 'the message may have arrived: not a connection failure');
    const second = await pool.deliver(target, envelope(), body);
    assert.equal(second.recipients[0]!.outcome, 'delivered');
    assert.equal(second.connection.reused, false);
    assert.equal(sink.connections.length, 2);
  });

  it('reports a refused connection as connectionFailed with 4.4.1', async () => {
    const pool = createSessionPool({
      maxConnectionsPerKey: 1,
      ehloName: 'relay.postbote.test',
      connectTimeoutMs: 2000,
    });
    try {
      const port = await unusedPort();
      const result = await pool.deliver(
        {
          site: 'mx1.example.com',
          hosts: [{ host: 'mx1.example.com', ip: '127.0.0.1' }],
          port,
          starttls: 'opportunistic',
        },
        envelope(['a@example.net', 'b@example.net']),
        body,
      );
      assert.equal(result.connectionFailed, true);
      for (const r of result.recipients) {
        assert.equal(r.outcome, 'temporary');
        assert.deepEqual([r.reply.code, r.reply.enhanced], [421, '4.4.1']);
        assert.match(
          r.reply.text,
          new RegExp(`^connection refused by mx1\\.example\\.com\\[127\\.0\\.0\\.1\\]:${port} `),
        );
        assert.match(r.reply.text, /ECONNREFUSED/);
      }
      assert.deepEqual(pool.stats(), []);
    } finally {
      await pool.close();
    }
  });

  it('gives up on a server that never greets', async (t) => {
    const { pool, target } = await setup(
      t,
      { respond: (cmd) => (cmd.verb === 'CONNECT' ? { silent: true } : undefined) },
      { greetingTimeoutMs: 300 },
    );
    const started = Date.now();
    const result = await pool.deliver(target, envelope(), body);
    assert.ok(Date.now() - started < 2000, 'bounded by greetingTimeoutMs');
    assert.equal(result.connectionFailed, true);
    assert.deepEqual(
      [result.recipients[0]!.outcome, result.recipients[0]!.reply.code, result.recipients[0]!.reply.enhanced],
      ['temporary', 421, '4.4.2'],
    );
  });

  it('treats a 421 or 554 greeting as a connection failure', async (t) => {
    for (const greeting of ['421 4.3.2 Service shutting down', '554 5.7.1 No SMTP service here']) {
      const { pool, target } = await setup(t, {
        respond: (cmd) => (cmd.verb === 'CONNECT' ? { reply: greeting, close: true } : undefined),
      });
      const result = await pool.deliver(target, envelope(), body);
      assert.equal(result.connectionFailed, true, greeting);
      assert.equal(result.recipients[0]!.outcome, 'temporary', greeting);
      assert.equal(result.recipients[0]!.reply.code, Number(greeting.slice(0, 3)));
    }
  });

  it('uses STARTTLS when offered and records protocol and cipher', async (t) => {
    const { sink, pool, target } = await setup(t, { tls: cert });
    const result = await pool.deliver({ ...target, starttls: 'opportunistic' }, envelope(), body);
    assert.equal(result.recipients[0]!.outcome, 'delivered');
    assert.ok(result.connection.tls, 'TLS recorded');
    assert.match(result.connection.tls.protocol, /^TLSv1\.[23]$/);
    assert.ok(result.connection.tls.cipher.length > 0);
    assert.equal(sink.connections[0]!.tls?.protocol, result.connection.tls.protocol);
    assert.deepEqual(sink.transactions[0]!.data, body);
    // EHLO is repeated after the handshake (RFC 3207 §4.2).
    assert.equal(sink.connections[0]!.commands.filter((c) => c.startsWith('EHLO')).length, 2);
  });

  it('falls back to plaintext once when the TLS handshake fails (opportunistic)', async (t) => {
    const { sink, pool, target } = await setup(t, { brokenTls: true });
    const result = await pool.deliver({ ...target, starttls: 'opportunistic' }, envelope(), body);
    assert.equal(result.recipients[0]!.outcome, 'delivered');
    assert.equal(result.connection.tls, undefined);
    assert.equal(result.connection.tlsFallback, true);
    assert.equal(sink.connections.length, 2);
    assert.equal(sink.connections[1]!.commands.includes('STARTTLS'), false);
    assert.deepEqual(sink.transactions[0]!.data, body);
  });

  it('does not fall back to plaintext when TLS is required', async (t) => {
    const { sink, pool, target } = await setup(t, { brokenTls: true });
    const result = await pool.deliver({ ...target, starttls: 'required' }, envelope(), body);
    assert.equal(result.connectionFailed, true);
    assert.deepEqual(
      [result.recipients[0]!.outcome, result.recipients[0]!.reply.enhanced],
      ['temporary', '4.7.5'],
    );
    assert.equal(sink.connections.length, 1);
    assert.equal(sink.transactions.length, 0);
  });

  it('fails the connection when TLS is required but not offered', async (t) => {
    const { sink, pool, target } = await setup(t);
    const result = await pool.deliver({ ...target, starttls: 'required' }, envelope(), body);
    assert.equal(result.connectionFailed, true);
    assert.deepEqual(
      [result.recipients[0]!.outcome, result.recipients[0]!.reply.enhanced],
      ['temporary', '4.7.4'],
    );
    assert.equal(sink.transactions.length, 0);
  });

  it('binds the source address (127.0.0.3 seen by the sink)', async (t) => {
    const { sink, pool, target } = await setup(t);
    const result = await pool.deliver({ ...target, localAddress: '127.0.0.3' }, envelope(), body);
    assert.equal(result.recipients[0]!.outcome, 'delivered');
    assert.equal(sink.connections[0]!.remoteAddress, '127.0.0.3');
    assert.equal(result.connection.localAddress, '127.0.0.3');
  });

  it('never exceeds maxConnectionsPerKey and queues the rest', async (t) => {
    const { sink, pool, target } = await setup(
      t,
      { respond: (cmd) => (cmd.verb === 'DATA_END' ? { delayMs: 20 } : undefined) },
      { maxConnectionsPerKey: 3 },
    );
    const deliveries = Array.from({ length: 20 }, (_, i) =>
      pool.deliver(target, envelope([`r${i}@example.net`]), body),
    );
    await sleep(5);
    const busy = pool.stats();
    assert.equal(busy.length, 1);
    assert.equal(busy[0]!.open, 3);
    assert.equal(busy[0]!.waiting, 17);

    const results = await Promise.all(deliveries);
    assert.ok(results.every((r) => r.recipients[0]?.outcome === 'delivered'));
    assert.equal(sink.maxConcurrent, 3);
    assert.equal(sink.connections.length, 3);
    assert.equal(sink.transactions.length, 20);
    assert.deepEqual(
      pool.stats().map((s) => [s.open, s.busy, s.idle, s.waiting]),
      [[3, 0, 3, 0]],
    );
  });

  it('cluster permits: a node above its fair share (limit ÷ live nodes) leaves a freed slot to a node refused below its share', async () => {
    const slots = new MemorySlots();
    slots.liveNodes = 2;
    let now = 1_000;
    const clock = () => now;
    const a = createClusterPermits({ slots, holder: 'a', leaseMs: 60_000, clock });
    const b = createClusterPermits({ slots, holder: 'b', leaseMs: 60_000, clock });
    try {
      // Alone with work, a takes every slot: more than its share of two.
      const held = await Promise.all(Array.from({ length: 4 }, () => a.tryAcquire('mx', 4)));
      assert.ok(held.every((p) => p !== undefined));
      assert.equal(await b.tryAcquire('mx', 4), undefined, 'b is refused, below its share');
      held[0]?.release();
      await sleep(1); // the release is fire and forget
      now += 10;
      assert.equal(await a.tryAcquire('mx', 4), undefined, 'a, above its share, leaves it');
      now += 250;
      assert.ok(await b.tryAcquire('mx', 4), 'b takes it at its retry');
      // With one live node the share is the whole limit: nothing is left to anyone.
      const solo = createClusterPermits({ slots: new MemorySlots(), holder: 's', leaseMs: 60_000, clock });
      const all = await Promise.all(Array.from({ length: 4 }, () => solo.tryAcquire('mx', 4)));
      assert.ok(all.every((p) => p !== undefined));
      await solo.stop();
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('with cluster permits, two nodes together never exceed the limit, and waiting ones get slots as they free', async (t) => {
    const slow = {
      respond: (cmd: { verb: string }) => (cmd.verb === 'DATA_END' ? { delayMs: 15 } : undefined),
    };
    const slots = new MemorySlots();
    const permitsA = createClusterPermits({ slots, holder: 'a', leaseMs: 60_000 });
    const permitsB = createClusterPermits({ slots, holder: 'b', leaseMs: 60_000 });
    const {
      sink,
      pool: a,
      target,
    } = await setup(t, slow, {
      maxConnectionsPerKey: 3,
      permits: permitsA,
      permitRetryMs: 20,
      idleTimeoutMs: 50,
    });
    const b = createSessionPool({
      maxConnectionsPerKey: 3,
      ehloName: 'relay.postbote.test',
      permits: permitsB,
      permitRetryMs: 20,
      idleTimeoutMs: 50,
    });
    t.after(async () => {
      await b.close();
      await permitsA.stop();
      await permitsB.stop();
    });
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a : b).deliver(target, envelope([`r${i}@example.net`]), body),
      ),
    );
    assert.ok(results.every((r) => r.recipients[0]?.outcome === 'delivered'));
    assert.equal(sink.transactions.length, 40);
    assert.equal(sink.maxConcurrent, 3);
    // Idle sessions close and give their slots back.
    await waitFor(() => slots.heldBy('a') === 0 && slots.heldBy('b') === 0);
  });

  it('while every cluster slot is held elsewhere, waiting deliveries ask one at a time, not each', async (t) => {
    let asked = 0;
    let free = false;
    const slots = new MemorySlots();
    const real = createClusterPermits({ slots, holder: 'a', leaseMs: 60_000 });
    const permits: ConnectionPermits = {
      tryAcquire: (key, limit) => {
        asked++;
        return free ? real.tryAcquire(key, limit) : Promise.resolve(undefined);
      },
      stop: () => real.stop(),
    };
    t.after(() => permits.stop());
    const { sink, pool, target } = await setup(
      t,
      {},
      { permits, maxConnectionsPerKey: 5, permitRetryMs: 40 },
    );
    const deliveries = Array.from({ length: 5 }, (_, i) =>
      pool.deliver(target, envelope([`r${i}@example.net`]), body),
    );
    await sleep(150);
    // Five waiting, about four retry rounds: one request each, where every waiter asked before.
    assert.ok(asked >= 2 && asked <= 6, `asked ${asked} times`);
    free = true;
    const results = await Promise.all(deliveries);
    assert.ok(results.every((r) => r.recipients[0]?.outcome === 'delivered'));
    assert.equal(sink.transactions.length, 5);
  });

  it('closes a connection after its transaction when its cluster slot was lost', async (t) => {
    const slots = new MemorySlots();
    const permits = createClusterPermits({ slots, holder: 'a', leaseMs: 30 });
    t.after(() => permits.stop());
    const { sink, pool, target } = await setup(t, {}, { permits, maxConnectionsPerKey: 1 });
    await pool.deliver(target, envelope(), body);
    // Another node takes the slot (as if ours had expired while this node stalled).
    for (const row of slots.rows.values()) row.holder = 'b';
    await sleep(40);
    await pool.deliver(target, envelope(), body);
    await waitFor(() => !sink.connections[0]!.open);
    assert.equal(pool.stats().length, 0);
  });

  it('serves a higher priority first: a transactional delivery overtakes waiting broadcast ones', async (t) => {
    const { sink, pool, target } = await setup(
      t,
      { respond: (cmd) => (cmd.verb === 'DATA_END' ? { delayMs: 20 } : undefined) },
      { maxConnectionsPerKey: 1 },
    );
    const broadcast = Array.from({ length: 3 }, (_, i) =>
      pool.deliver(target, envelope([`bulk${i}@example.net`]), body, undefined, { priority: 1 }),
    );
    await sleep(5);
    const urgent = pool.deliver(target, envelope(['reset@example.net']), body, undefined, { priority: 0 });
    await Promise.all([...broadcast, urgent]);
    assert.deepEqual(
      sink.transactions.map((tx) => tx.recipients[0]!.address),
      ['bulk0@example.net', 'reset@example.net', 'bulk1@example.net', 'bulk2@example.net'],
    );
  });

  it('takes the per-site limits of the target over the pool defaults', async (t) => {
    const { sink, pool, target } = await setup(
      t,
      { respond: (cmd) => (cmd.verb === 'DATA_END' ? { delayMs: 10 } : undefined) },
      { maxConnectionsPerKey: 5 },
    );
    const limited = { ...target, limits: { maxConnections: 1, maxMessagesPerConnection: 2 } };
    await Promise.all(
      Array.from({ length: 6 }, (_, i) => pool.deliver(limited, envelope([`r${i}@example.net`]), body)),
    );
    assert.equal(sink.maxConcurrent, 1);
    assert.deepEqual(
      sink.connections.map((c) => c.transactions.length),
      [2, 2, 2],
    );
  });

  it('connects to the next host of the site when one refuses, and tries that one last for a while', async (t) => {
    const sink = await startScriptedSink({ host: '127.0.0.6' });
    const failures: object[] = [];
    const pool = createSessionPool({
      maxConnectionsPerKey: 1,
      maxMessagesPerConnection: 1,
      ehloName: 'relay.postbote.test',
      connectTimeoutMs: 2000,
      logger: {
        debug: () => {},
        warn: () => {},
        info: (obj, msg) => msg === 'smtp session failed' && failures.push(obj),
      },
    });
    t.after(async () => {
      await pool.close();
      await sink.close();
    });
    const site: DeliveryTarget = {
      site: 'mx1.example.com,mx2.example.com',
      hosts: [
        { host: 'mx1.example.com', ip: '127.0.0.5' },
        { host: 'mx2.example.com', ip: '127.0.0.6' },
      ],
      port: sink.port,
      starttls: 'none',
    };
    const first = await pool.deliver(site, envelope(), body);
    const second = await pool.deliver(site, envelope(), body);
    for (const result of [first, second]) {
      assert.equal(result.recipients[0]!.outcome, 'delivered');
      assert.deepEqual([result.connection.mxHost, result.connection.ip], ['mx2.example.com', '127.0.0.6']);
    }
    assert.equal(sink.connections.length, 2);
    assert.equal(failures.length, 1, 'the refusing host is not tried again first');
  });

  it('paces transactions to the site rate: never more than the limit in any second, priority first', async (t) => {
    const { sink, pool, target } = await setup(
      t,
      {},
      { maxConnectionsPerKey: 3, limiter: createRateLimiter() },
    );
    const paced = { ...target, limits: { rates: { perSecond: 20 } } };
    const sentAt: number[] = [];
    const order: string[] = [];
    const send = (to: string, priority: number) =>
      pool.deliver(paced, envelope([to]), body, undefined, { priority }).then(() => {
        sentAt.push(performance.now());
        order.push(to);
      });
    const bulk = Array.from({ length: 30 }, (_, i) => send(`bulk${i}@example.net`, 1));
    await sleep(50);
    const urgent = send('urgent@example.net', 0);
    await Promise.all([...bulk, urgent]);
    assert.equal(sink.transactions.length, 31);
    sentAt.sort((a, b) => a - b);
    for (let i = 0; i < sentAt.length; i++) {
      const inWindow = sentAt.filter((x) => x >= sentAt[i]! && x < sentAt[i]! + 1000).length;
      assert.ok(inWindow <= 20 + 1, `${inWindow} transactions within one second`);
    }
    assert.ok(order.indexOf('urgent@example.net') < 5, `urgent was #${order.indexOf('urgent@example.net')}`);
  });

  it('opens the circuit after consecutive connection failures: no more tries until the backoff ends', async (t) => {
    const port = await unusedPort();
    let now = 1_000_000;
    const failures: object[] = [];
    const pool = createSessionPool({
      maxConnectionsPerKey: 1,
      ehloName: 'relay.postbote.test',
      connectTimeoutMs: 2000,
      circuit: createCircuitBreaker({ failures: 2, backoffMs: 60_000, jitter: 0 }, () => 0.5),
      clock: () => now,
      logger: {
        debug: () => {},
        warn: () => {},
        info: (obj, msg) => msg === 'smtp session failed' && failures.push(obj),
      },
    });
    t.after(() => pool.close());
    const dead: DeliveryTarget = {
      site: 'mx.down.test',
      hosts: [{ host: 'mx.down.test', ip: '127.0.0.1' }],
      port,
      starttls: 'none',
    };
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await pool.deliver(dead, envelope(), body));
    assert.equal(failures.length, 2, 'the third delivery does not connect');
    assert.ok(results.every((r) => r.connectionFailed && r.recipients[0]?.outcome === 'temporary'));
    assert.equal(results[2]!.retryAt, now + 60_000);
    assert.match(
      results[2]!.recipients[0]!.reply.text,
      /not connecting to mx\.down\.test for 60 s: 2 connection failures/,
    );
    now += 60_000;
    await pool.deliver(dead, envelope(), body);
    assert.equal(failures.length, 3, 'after the backoff one trial connects');
  });

  it('serves waiting deliveries first in, first out', async (t) => {
    const { sink, pool, target } = await setup(
      t,
      { respond: (cmd) => (cmd.verb === 'DATA_END' ? { delayMs: 5 } : undefined) },
      { maxConnectionsPerKey: 1 },
    );
    await Promise.all(
      Array.from({ length: 6 }, (_, i) => pool.deliver(target, envelope([`r${i}@example.net`]), body)),
    );
    assert.deepEqual(
      sink.transactions.map((tx) => tx.recipients[0]!.address),
      Array.from({ length: 6 }, (_, i) => `r${i}@example.net`),
    );
  });

  it('opens a new connection after maxMessagesPerConnection', async (t) => {
    const { sink, pool, target } = await setup(
      t,
      {},
      { maxMessagesPerConnection: 2, maxConnectionsPerKey: 1 },
    );
    for (let i = 0; i < 5; i++) await pool.deliver(target, envelope(), body);
    assert.equal(sink.connections.length, 3);
    assert.deepEqual(
      sink.connections.map((c) => c.transactions.length),
      [2, 2, 1],
    );
    await waitFor(() => !sink.connections[0]!.open);
    assert.ok(sink.connections[0]!.commands.includes('QUIT'));
  });

  it('closes idle connections with QUIT after idleTimeoutMs', async (t) => {
    const { sink, pool, target } = await setup(t, {}, { idleTimeoutMs: 100 });
    await pool.deliver(target, envelope(), body);
    assert.equal(pool.stats()[0]?.idle, 1);
    await waitFor(() => !sink.connections[0]!.open);
    // The slot is free once the connection has closed (and a moment for the peer to see it).
    await waitFor(() => pool.stats().length === 0);
    assert.ok(sink.connections[0]!.commands.includes('QUIT'));
  });

  it('replaces an idle connection the server closed', async (t) => {
    const { sink, pool, target } = await setup(t, {
      respond: (cmd) =>
        cmd.verb === 'DATA_END' && cmd.connection.id === 1
          ? { reply: '250 2.0.0 Ok', close: true }
          : undefined,
    });
    await pool.deliver(target, envelope(), body);
    await sleep(50);
    const second = await pool.deliver(target, envelope(), body);
    assert.equal(second.recipients[0]!.outcome, 'delivered');
    assert.equal(second.connection.reused, false);
    assert.equal(sink.connections.length, 2);
  });

  it('sends the null sender and passes DSN parameters through', async (t) => {
    const { sink, pool, target } = await setup(t);
    const result = await pool.deliver(
      target,
      {
        from: '',
        to: ['a@example.net'],
        size: body.length,
        dsn: { ret: 'HDRS', envid: 'env-1', notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;orig@example.net' },
      },
      body,
    );
    assert.equal(result.recipients[0]!.outcome, 'delivered');
    const tx = sink.transactions[0]!;
    assert.equal(tx.mailFrom, '');
    assert.match(tx.mailParams, /RET=HDRS/);
    assert.match(tx.mailParams, /ENVID=env-1/);
    assert.match(tx.recipients[0]!.params, /NOTIFY=FAILURE,DELAY/);
    assert.match(tx.recipients[0]!.params, /ORCPT=rfc822;orig@example\.net/);
  });

  it('refuses addresses that cannot be sent without touching the others', async (t) => {
    const { sink, pool, target } = await setup(t);
    const result = await pool.deliver(target, envelope(['ok@example.net', 'bad>@example.net']), body);
    assert.deepEqual(
      result.recipients.map((r) => [r.outcome, r.reply.enhanced]),
      [
        ['delivered', '2.0.0'],
        ['permanent', '5.1.3'],
      ],
    );
    assert.deepEqual(
      sink.transactions[0]!.recipients.map((r) => r.address),
      ['ok@example.net'],
    );
  });

  it('close() rejects waiting deliveries, lets running ones finish and QUITs', async (t) => {
    const { sink, pool, target } = await setup(
      t,
      { respond: (cmd) => (cmd.verb === 'DATA_END' ? { delayMs: 100 } : undefined) },
      { maxConnectionsPerKey: 1 },
    );
    const running = pool.deliver(target, envelope(), body);
    const waiting = pool.deliver(target, envelope(), body);
    await sleep(20);
    await pool.close();
    assert.equal((await running).recipients[0]!.outcome, 'delivered');
    await assert.rejects(
      waiting,
      (err: unknown) => err instanceof SessionPoolError && err.code === 'POOL_CLOSED',
    );
    await assert.rejects(pool.deliver(target, envelope(), body), SessionPoolError);
    assert.ok(sink.connections[0]!.commands.includes('QUIT'));
    await waitFor(() => sink.concurrent === 0);
  });

  it('refuses deliveries beyond the queue bound', async (t) => {
    const { pool, target } = await setup(
      t,
      { respond: (cmd) => (cmd.verb === 'DATA_END' ? { delayMs: 50 } : undefined) },
      { maxConnectionsPerKey: 1, maxQueuePerKey: 1 },
    );
    const first = pool.deliver(target, envelope(), body);
    const second = pool.deliver(target, envelope(), body);
    await assert.rejects(
      pool.deliver(target, envelope(), body),
      (err: unknown) => err instanceof SessionPoolError && err.code === 'QUEUE_FULL',
    );
    assert.equal((await first).recipients[0]!.outcome, 'delivered');
    assert.equal((await second).recipients[0]!.outcome, 'delivered');
  });
});
