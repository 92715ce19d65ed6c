import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOUR, MINUTE, SECOND } from '../../../src/delivery/shaping/rate.ts';
import {
  createRateLimiter,
  type MessageLimits,
  type RateLimiter,
} from '../../../src/delivery/shaping/rate-limiter.ts';
import { fakeClock } from '../../support/fake-clock.ts';

/** Sends as fast as the limiter allows for `durationMs`; returns the send times. */
function saturate(
  limiter: RateLimiter,
  limits: MessageLimits,
  clock: ReturnType<typeof fakeClock>,
  durationMs: number,
) {
  const end = clock.now() + durationMs;
  const sent: number[] = [];
  while (clock.now() < end) {
    const wait = limiter.reserve('k', limits, clock.now());
    if (wait === 0) sent.push(clock.now());
    else clock.advance(wait);
  }
  return sent;
}

/** The most events in any half-open window of length `windowMs`. */
function busiestWindow(times: readonly number[], windowMs: number): number {
  let most = 0;
  let j = 0;
  for (let i = 0; i < times.length; i++) {
    while (j < times.length && times[j]! < times[i]! + windowMs) j++;
    most = Math.max(most, j - i);
  }
  return most;
}

describe('createRateLimiter', () => {
  it('holds 10/s in every one-second window and delivers within 10 % of it over a minute', () => {
    const clock = fakeClock();
    const sent = saturate(createRateLimiter(), { rates: { perSecond: 10 } }, clock, MINUTE);
    assert.ok(busiestWindow(sent, SECOND) <= 10, `busiest second: ${busiestWindow(sent, SECOND)}`);
    assert.ok(sent.length <= 601 && sent.length >= 540, `sent ${sent.length} in a minute`);
  });

  it('holds every window at once (100/s and 600/min): the stricter one sets the pace', () => {
    const clock = fakeClock();
    const sent = saturate(
      createRateLimiter(),
      { rates: { perSecond: 100, perMinute: 600 } },
      clock,
      5 * MINUTE,
    );
    assert.ok(busiestWindow(sent, SECOND) <= 100);
    assert.ok(busiestWindow(sent, MINUTE) <= 600, `busiest minute: ${busiestWindow(sent, MINUTE)}`);
    assert.ok(sent.length >= 0.9 * 3000 && sent.length <= 3000, `sent ${sent.length} in 5 minutes`);
  });

  it('never exceeds N in any window for arbitrary arrivals, and bounds the burst to ~5 % of N', () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (const [count, windowMs] of [
      [1, SECOND],
      [2, SECOND],
      [19, SECOND],
      [20, SECOND],
      [21, SECOND],
      [100, SECOND],
      [600, MINUTE],
      [5000, HOUR],
    ] as const) {
      const limiter = createRateLimiter();
      const rates =
        windowMs === SECOND
          ? { perSecond: count }
          : windowMs === MINUTE
            ? { perMinute: count }
            : { perHour: count };
      const t0 = Date.UTC(2026, 0, 1);
      const burst = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].flatMap(() => Array.from({ length: count }, () => t0));
      const sent = burst.filter((t) => limiter.reserve('k', { rates }, t) === 0);
      assert.equal(sent.length, 1 + Math.floor(count / 20), `burst for ${count}`);
      // Then random arrivals over three windows, with pauses and crowds.
      let t = t0;
      const times = [...sent];
      while (t < t0 + 3 * windowMs) {
        t += Math.floor(random() * random() * (windowMs / count) * 3);
        if (limiter.reserve('k', { rates }, t) === 0) times.push(t);
      }
      assert.ok(
        busiestWindow(times, windowMs) <= count,
        `${count} per ${windowMs} ms: ${busiestWindow(times, windowMs)}`,
      );
    }
  });

  it('counts nothing when it says wait, and the wait is exact', () => {
    const clock = fakeClock();
    const limiter = createRateLimiter();
    const limits = { rates: { perSecond: 4 } };
    assert.equal(limiter.reserve('k', limits, clock.now()), 0);
    const wait = limiter.reserve('k', limits, clock.now());
    assert.equal(wait, 250);
    assert.equal(limiter.reserve('k', limits, clock.now()), 250);
    clock.advance(249);
    assert.equal(limiter.reserve('k', limits, clock.now()), 1);
    clock.advance(1);
    assert.equal(limiter.reserve('k', limits, clock.now()), 0);
  });

  it('keeps keys apart and lets unlimited keys through', () => {
    const limiter = createRateLimiter();
    const now = Date.UTC(2026, 0, 1);
    assert.equal(limiter.reserve('a', { rates: { perMinute: 1 } }, now), 0);
    assert.equal(limiter.reserve('b', { rates: { perMinute: 1 } }, now), 0);
    assert.ok(limiter.reserve('a', { rates: { perMinute: 1 } }, now) > 0);
    for (let i = 0; i < 1000; i++) assert.equal(limiter.reserve('free', { rates: {} }, now), 0);
    assert.equal(limiter.size(), 2);
  });

  it('does not hand out a fresh burst when the limit changes', () => {
    const limiter = createRateLimiter();
    const now = Date.UTC(2026, 0, 1);
    let sent = 0;
    for (let i = 0; i < 100; i++) if (limiter.reserve('k', { rates: { perSecond: 100 } }, now) === 0) sent++;
    for (let i = 0; i < 100; i++) if (limiter.reserve('k', { rates: { perSecond: 200 } }, now) === 0) sent++;
    assert.ok(sent <= 1 + Math.floor(200 / 20), `sent ${sent}`);
  });

  it('paces new connections per minute', () => {
    const clock = fakeClock();
    const limiter = createRateLimiter();
    const opened: number[] = [];
    const end = clock.now() + 10 * MINUTE;
    while (clock.now() < end) {
      const wait = limiter.reserveConnection('k', 30, clock.now());
      if (wait === 0) opened.push(clock.now());
      else clock.advance(wait);
    }
    assert.ok(busiestWindow(opened, MINUTE) <= 30);
    assert.ok(opened.length >= 270 && opened.length <= 300, `opened ${opened.length}`);
    assert.equal(limiter.reserveConnection('k', undefined, clock.now()), 0);
  });

  it('applies a throttle on top while it holds, starting one interval after it triggered', () => {
    const clock = fakeClock();
    const limiter = createRateLimiter();
    const since = clock.now();
    const throttle = { rate: { count: 1, perMs: MINUTE }, since, until: since + 10 * MINUTE };
    const limits = { rates: { perSecond: 100 }, throttle };
    assert.equal(limiter.reserve('k', limits, clock.now()), MINUTE);
    const sent = saturate(limiter, limits, clock, 10 * MINUTE);
    assert.deepEqual(
      sent.slice(0, 9).map((t) => t - since),
      [1, 2, 3, 4, 5, 6, 7, 8, 9].map((m) => m * MINUTE),
    );
    // After `until` the configured 100/s applies again.
    const after = saturate(limiter, limits, clock, SECOND);
    assert.ok(after.length >= 90 && after.length <= 100, `after the throttle: ${after.length}`);
  });

  it('never lets a throttle raise the configured rate', () => {
    const clock = fakeClock();
    const throttle = { rate: { count: 100, perMs: SECOND }, since: clock.now(), until: clock.now() + HOUR };
    const sent = saturate(createRateLimiter(), { rates: { perSecond: 2 }, throttle }, clock, 10 * SECOND);
    assert.ok(busiestWindow(sent, SECOND) <= 2);
  });

  it('keeps the pace when a throttle is extended, and restarts it for a new throttle', () => {
    const limiter = createRateLimiter();
    const since = Date.UTC(2026, 0, 1);
    const rate = { count: 1, perMs: MINUTE };
    const at = since + MINUTE;
    assert.equal(limiter.reserve('k', { rates: {}, throttle: { rate, since, until: since + HOUR } }, at), 0);
    // Extended (same start, later end): the next message still waits a full interval.
    assert.equal(
      limiter.reserve('k', { rates: {}, throttle: { rate, since, until: since + 2 * HOUR } }, at),
      MINUTE,
    );
    // A new throttle triggered now: one interval from its own start.
    assert.equal(
      limiter.reserve('k', { rates: {}, throttle: { rate, since: at, until: at + HOUR } }, at),
      MINUTE,
    );
  });

  it('forgets idle keys and ended throttles without changing any answer', () => {
    const limiter = createRateLimiter();
    const now = Date.UTC(2026, 0, 1);
    const throttle = { rate: { count: 1, perMs: MINUTE }, since: now, until: now + 5 * MINUTE };
    limiter.reserve('a', { rates: { perSecond: 1 } }, now);
    limiter.reserve('b', { rates: { perHour: 1 } }, now);
    limiter.reserve('c', { rates: {}, throttle }, now);
    assert.equal(limiter.size(), 3);
    assert.equal(limiter.sweep(now + 2 * SECOND), 1); // a: its second is over
    assert.equal(limiter.sweep(now + 5 * MINUTE), 1); // c: the throttle ended
    assert.equal(limiter.size(), 1);
    assert.ok(limiter.reserve('b', { rates: { perHour: 1 } }, now + 5 * MINUTE) > 0);
  });
});
