/**
 * Adaptive shaping through the real delivery path (MX destination → session pool → a scripted
 * sink), on a fake clock: a "421 4.7.0 Try again later" triggers the shipped throttle, a rule
 * that suspends the site defers mail without connecting until the suspension expires.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { createMxDestination } from '../../src/delivery/destination.ts';
import { createSessionPool } from '../../src/delivery/session-pool.ts';
import { createAdaptiveShaper, type ShapingActionEvent } from '../../src/delivery/shaping/adaptive.ts';
import { createShapingPolicy } from '../../src/delivery/shaping/policy.ts';
import { createRateLimiter } from '../../src/delivery/shaping/rate-limiter.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startScriptedSink } from '../support/scripted-sink.ts';

const body = Buffer.from('Subject: shaping\r\n\r\nhello\r\n');

async function setup(t: TestContext, answer: (n: number) => string | undefined, rules: unknown[] = []) {
  let n = 0;
  const sink = await startScriptedSink({
    host: '127.0.0.7',
    respond: (cmd) => {
      if (cmd.verb !== 'DATA_END') return undefined;
      n++;
      const reply = answer(n);
      return reply ? { reply } : undefined;
    },
  });
  let now = Date.parse('2026-11-28T12:00:00Z');
  const config = loadConfig({ env: {}, cwd: '/nonexistent', overrides: { shaping: { rules } } });
  const policy = createShapingPolicy(config);
  const events: ShapingActionEvent[] = [];
  const adaptive = createAdaptiveShaper({ rules: policy.rules, onEvent: (e) => events.push(e) });
  const pool = createSessionPool({
    maxConnectionsPerKey: 2,
    ehloName: 'relay.postbote.test',
    limiter: createRateLimiter(),
    clock: () => now,
  });
  t.after(async () => {
    await pool.close();
    await sink.close();
  });
  const destination = createMxDestination({
    resolver: {
      mx: async () => [{ exchange: 'mx.shaped.test', priority: 10 }],
      a: async () => ['127.0.0.7'],
      aaaa: async () => [],
    },
    pool,
    port: sink.port,
    allowPrivate: true,
    starttls: 'none',
    shaping: policy,
    adaptive,
    clock: () => now,
    logger: createLogger({ level: 'silent' }),
  });
  const send = (to: string) =>
    destination.deliver({
      domain: 'shaped.test',
      mailFrom: 'a@sender.test',
      recipients: [to],
      dsn: {},
      body,
    });
  return { sink, adaptive, events, send, advance: (ms: number) => (now += ms), now: () => now };
}

describe('adaptive shaping on the delivery path', () => {
  it('a 421 "Try again later" triggers the shipped throttle on that site', async (t) => {
    const { adaptive, events, send, now } = await setup(t, (n) =>
      n === 1 ? '421 4.7.0 Try again later' : undefined,
    );
    const first = await send('a@shaped.test');
    assert.equal(first.recipients[0]?.outcome, 'temporary');
    assert.deepEqual(
      events.map((e) => [e.type, e.action.rule, e.action.kind, e.action.scopeKey]),
      [['triggered', 'generic-421-try-again-later', 'throttle', 'site:*|mx.shaped.test']],
    );
    const throttle = adaptive.throttleFor('*', 'mx.shaped.test', now());
    assert.ok(throttle, 'a throttle is in force');
    assert.equal(throttle.until, now() + 30 * 60_000);
  });

  it('a suspend rule defers the site without connecting until it expires, then mail flows again', async (t) => {
    const rule = {
      name: 'busy-site',
      match: { code: 421, text: 'too busy' },
      action: 'suspend_site',
      duration: '10m',
    };
    const { sink, events, send, advance } = await setup(
      t,
      (n) => (n === 1 ? '421 4.3.2 System too busy' : undefined),
      [rule],
    );
    await send('a@shaped.test');
    assert.equal(sink.transactions.length, 1);
    const suspended = await send('b@shaped.test');
    assert.equal(sink.transactions.length, 1, 'no connection while suspended');
    assert.equal(suspended.recipients[0]?.outcome, 'temporary');
    assert.match(suspended.recipients[0]!.reply.text, /^sending suspended until .* by rule busy-site/);
    assert.ok(suspended.retryAt !== undefined);
    advance(10 * 60_000 - 1);
    await send('c@shaped.test');
    assert.equal(sink.transactions.length, 1, 'still suspended a millisecond before the end');
    advance(1);
    const after = await send('d@shaped.test');
    assert.equal(after.recipients[0]?.outcome, 'delivered');
    assert.equal(sink.transactions.length, 2);
    assert.ok(events.some((e) => e.type === 'triggered' && e.action.rule === 'busy-site'));
  });
});
