/**
 * The shaping blocks composed the way the session pool will use them, against a simulated sink on
 * a fake clock (time jumps to the next moment anything can change): what the sink sees must respect every limit. The real pool and a real
 * sink are the integration's end-to-end test; this one shows the blocks are sufficient and exact.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAdaptiveShaper, type ShapingActionEvent } from '../../../src/delivery/shaping/adaptive.ts';
import { createCircuitBreaker } from '../../../src/delivery/shaping/circuit.ts';
import type { ShapingLimits } from '../../../src/delivery/shaping/limits.ts';
import { shippedProviderData } from '../../../src/delivery/shaping/provider-data.ts';
import { createRateLimiter } from '../../../src/delivery/shaping/rate-limiter.ts';
import { parseReply } from '../../../src/delivery/smtp-reply.ts';
import { fakeClock } from '../../support/fake-clock.ts';

const SOURCE = 'ip-a';
const SITE = 'mx1.sink.test';
const KEY = `${SOURCE}|${SITE}`;
const CONNECT_MS = 15;
const TRANSACTION_MS = 40;

/** Records what a receiving MX would see. */
class Sink {
  open = 0;
  mostOpen = 0;
  mostPerSession = 0;
  accepted: number[] = [];
  connectionAttempts = 0;
  down = false;
  /** Called per transaction; returns the reply. */
  answer: (n: number) => string = () => '250 2.0.0 OK';
  connect(): boolean {
    this.connectionAttempts++;
    if (this.down) return false;
    this.open++;
    this.mostOpen = Math.max(this.mostOpen, this.open);
    return true;
  }
  close(delivered: number): void {
    this.open--;
    this.mostPerSession = Math.max(this.mostPerSession, delivered);
  }
}

interface Connection {
  readyAt: number;
  busyUntil: number;
  delivered: number;
}

function busiestWindow(times: readonly number[], windowMs: number): number {
  let most = 0;
  let j = 0;
  for (let i = 0; i < times.length; i++) {
    while (j < times.length && times[j]! < times[i]! + windowMs) j++;
    most = Math.max(most, j - i);
  }
  return most;
}

/** A minimal ready queue for one (source, site) driven the way the session pool will drive it. */
function run(options: {
  limits: ShapingLimits;
  sink: Sink;
  queued: number;
  durationMs: number;
  clock: ReturnType<typeof fakeClock>;
}) {
  const { limits, sink, clock } = options;
  const limiter = createRateLimiter();
  const events: ShapingActionEvent[] = [];
  const adaptive = createAdaptiveShaper({
    rules: shippedProviderData().rules,
    onEvent: (e) => events.push(e),
  });
  const circuit = createCircuitBreaker({ failures: 5, backoffMs: 5 * 60_000, jitter: 0.2 }, () => 0.5);
  const connections: Connection[] = [];
  let queued = options.queued;
  let sent = 0;
  const end = clock.now() + options.durationMs;
  while (clock.now() < end) {
    const now = clock.now();
    // The next moment anything can change: time jumps there (1 ms at least).
    let wake = end;
    const at = (t: number) => {
      wake = Math.min(wake, t);
    };
    const step = (): void => {
      const suspended = adaptive.suspendedUntil({ source: SOURCE, site: SITE }, now);
      if (suspended !== undefined) {
        at(suspended);
        return;
      }
      for (const conn of [...connections]) {
        if (conn.busyUntil > now || conn.readyAt > now) {
          at(Math.max(conn.busyUntil, conn.readyAt));
          continue;
        }
        if (conn.delivered >= limits.maxMessagesPerConnection || queued === 0) {
          connections.splice(connections.indexOf(conn), 1);
          sink.close(conn.delivered);
          continue;
        }
        const throttle = adaptive.throttleFor(SOURCE, SITE, now);
        const wait = limiter.reserve(KEY, { rates: limits.rates, ...(throttle ? { throttle } : {}) }, now);
        if (wait !== 0) {
          at(now + wait);
          continue;
        }
        const reply = parseReply(sink.answer(++sent));
        conn.busyUntil = now + TRANSACTION_MS;
        at(conn.busyUntil);
        if (reply.code >= 200 && reply.code < 300) {
          conn.delivered++;
          queued--;
          sink.accepted.push(now + TRANSACTION_MS);
        } else {
          adaptive.observe(reply, { source: SOURCE, site: SITE }, now);
          at(now + 1);
          if (reply.code === 421) {
            connections.splice(connections.indexOf(conn), 1);
            sink.close(conn.delivered);
          }
        }
      }
      const idle = connections.some((c) => c.readyAt <= now && c.busyUntil <= now);
      if (queued > connections.length && !idle && connections.length < limits.maxConnections) {
        const closed = circuit.check(KEY, now);
        if (closed !== 0) {
          at(now + closed);
          return;
        }
        const wait = limiter.reserveConnection(KEY, limits.maxNewConnectionsPerMinute, now);
        if (wait !== 0) {
          at(now + wait);
          return;
        }
        if (sink.connect()) {
          circuit.success(KEY, now);
          connections.push({ readyAt: now + CONNECT_MS, busyUntil: 0, delivered: 0 });
          at(now + CONNECT_MS);
        } else circuit.failure(KEY, now);
        at(now + 1);
      }
    };
    step();
    clock.set(Math.max(now + 1, wake));
  }
  for (const conn of connections) sink.close(conn.delivered);
  return { events, adaptive, circuit, queued };
}

describe('shaping at the sink (simulated, fake clock)', () => {
  const limits: ShapingLimits = {
    maxConnections: 3,
    maxMessagesPerConnection: 5,
    rates: { perSecond: 20 },
    maxNewConnectionsPerMinute: 600,
  };

  it('never exceeds max sessions, deliveries per connection or the message rate, and delivers within 10 % of it', () => {
    const clock = fakeClock();
    const sink = new Sink();
    run({ limits, sink, queued: 10_000, durationMs: 60_000, clock });
    assert.ok(sink.mostOpen <= 3, `sessions at once: ${sink.mostOpen}`);
    assert.equal(sink.mostPerSession, 5);
    assert.ok(
      busiestWindow(sink.accepted, 1000) <= 20,
      `busiest second: ${busiestWindow(sink.accepted, 1000)}`,
    );
    const rate = sink.accepted.length / 60;
    assert.ok(rate >= 18 && rate <= 20, `measured ${rate}/s for 20/s`);
  });

  it('throttles when the sink answers "421 4.7.0 Try again later", and lifts it on time', () => {
    const clock = fakeClock();
    const t0 = clock.now();
    const sink = new Sink();
    sink.answer = (n) => (n === 100 ? '421 4.7.0 Try again later' : '250 2.0.0 OK');
    const { events } = run({ limits, sink, queued: 100_000, durationMs: 32 * 60_000, clock });
    const triggered = events.find((e) => e.type === 'triggered');
    assert.equal(triggered?.action.rule, 'generic-421-try-again-later');
    const since = triggered!.at;
    const until = since + 30 * 60_000;
    assert.deepEqual(
      events.map((e) => [e.type, e.at - t0]),
      [
        ['triggered', since - t0],
        ['expired', until - t0],
      ],
    );
    // While throttled: 60/min, one message a second, at the sink.
    const during = sink.accepted.filter((t) => t > since && t <= until);
    assert.ok(busiestWindow(during, 60_000) <= 60);
    assert.ok(during.length >= 29 * 60 && during.length <= 30 * 60, `${during.length} in 30 minutes`);
    // After the expiry the configured 20/s again.
    const after = sink.accepted.filter((t) => t > until + 1000 && t <= until + 61_000);
    assert.ok(after.length >= 18 * 60, `${after.length} in the minute after`);
  });

  it('stops connecting to a site that is down after 5 failures and waits the backoff (mail stays queued)', () => {
    const clock = fakeClock();
    const sink = new Sink();
    sink.down = true;
    const { circuit, queued } = run({ limits, sink, queued: 50, durationMs: 12 * 60_000, clock });
    // 5 failures, then one trial after 5 minutes, then one after another 5 minutes.
    assert.equal(sink.connectionAttempts, 7);
    assert.equal(queued, 50);
    assert.equal(circuit.status(KEY).state, 'open');
    // The site comes back: the next trial succeeds and the queue drains.
    sink.down = false;
    const sinkUp = sink;
    const rest = run({ limits, sink: sinkUp, queued: 50, durationMs: 10_000, clock });
    assert.equal(rest.queued, 0);
  });
});
