import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRetryPolicy, type RetryDecision } from '../../src/delivery/retry-policy.ts';

const T0 = Date.UTC(2026, 10, 1, 12, 0, 0);
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

// random() = 0.5 means no jitter, 0 the low edge, just under 1 the high edge.
const middle = () => 0.5;

function retryAt(decision: RetryDecision): number {
  assert.ok('retryAt' in decision, `expected a retry, got ${JSON.stringify(decision)}`);
  return decision.retryAt;
}

describe('createRetryPolicy', () => {
  it('doubles the interval from 5 minutes by default', () => {
    const policy = createRetryPolicy({}, middle);
    const intervals = [1, 2, 3, 4, 5].map((attempts) => retryAt(policy.next(attempts, T0, T0)) - T0);
    assert.deepEqual(intervals, [5 * MIN, 10 * MIN, 20 * MIN, 40 * MIN, 80 * MIN]);
  });

  it('caps the interval at maxIntervalSeconds (4 hours by default)', () => {
    const policy = createRetryPolicy({}, middle);
    assert.equal(retryAt(policy.next(7, T0, T0)) - T0, 4 * HOUR); // 320 min would exceed the cap
    assert.equal(retryAt(policy.next(60, T0, T0)) - T0, 4 * HOUR);
    assert.equal(retryAt(policy.next(5000, T0, T0)) - T0, 4 * HOUR); // 2^4999 overflows to Infinity
  });

  it('spreads the interval by ±jitter around the base', () => {
    const low = createRetryPolicy({ jitter: 0.2 }, () => 0);
    const high = createRetryPolicy({ jitter: 0.2 }, () => 0.999_999);
    assert.equal(retryAt(low.next(1, T0, T0)) - T0, 4 * MIN); // 300 s × 0.8
    assert.ok(Math.abs(retryAt(high.next(1, T0, T0)) - T0 - 6 * MIN) < 5); // 300 s × 1.2
    const none = createRetryPolicy({ jitter: 0 }, () => 0);
    assert.equal(retryAt(none.next(1, T0, T0)) - T0, 5 * MIN);
  });

  it('calls random exactly once per decision, so a seeded source stays reproducible', () => {
    let calls = 0;
    const policy = createRetryPolicy({}, () => {
      calls++;
      return 0.5;
    });
    policy.next(1, T0, T0);
    policy.next(3, T0, T0 + HOUR);
    policy.next(50, T0, T0 + 6 * DAY); // expired, still one call
    assert.equal(calls, 3);
  });

  it('schedules from now, not from the first attempt', () => {
    const policy = createRetryPolicy({}, middle);
    assert.equal(retryAt(policy.next(2, T0, T0 + HOUR)), T0 + HOUR + 10 * MIN);
  });

  it('expires when the next retry would land after maxAge (5 days by default)', () => {
    const policy = createRetryPolicy({}, middle);
    // 4 h interval: retrying at T0 + 5 d exactly is still allowed ...
    assert.equal(retryAt(policy.next(30, T0, T0 + 5 * DAY - 4 * HOUR)), T0 + 5 * DAY);
    // ... one millisecond later it would pass the deadline.
    assert.deepEqual(policy.next(30, T0, T0 + 5 * DAY - 4 * HOUR + 1), { expired: true });
    assert.deepEqual(policy.next(30, T0, T0 + 6 * DAY), { expired: true });
  });

  it('lets jitter decide at the expiry edge', () => {
    const now = T0 + 5 * DAY - 4 * HOUR; // base interval lands exactly on the deadline
    assert.ok('retryAt' in createRetryPolicy({}, () => 0.4).next(30, T0, now));
    assert.deepEqual(createRetryPolicy({}, () => 0.6).next(30, T0, now), { expired: true });
  });

  it('honours custom settings', () => {
    const policy = createRetryPolicy(
      { firstRetrySeconds: 60, multiplier: 3, maxIntervalSeconds: 600, maxAgeSeconds: 3600, jitter: 0 },
      middle,
    );
    const intervals = [1, 2, 3, 4].map((attempts) => retryAt(policy.next(attempts, T0, T0)) - T0);
    assert.deepEqual(intervals, [1 * MIN, 3 * MIN, 9 * MIN, 10 * MIN]);
    assert.deepEqual(policy.next(5, T0, T0 + 55 * MIN), { expired: true });
  });

  it('treats attempts below 1 as the first attempt', () => {
    const policy = createRetryPolicy({}, middle);
    assert.equal(retryAt(policy.next(0, T0, T0)) - T0, 5 * MIN);
  });

  it('rejects settings that would not back off', () => {
    assert.throws(() => createRetryPolicy({ jitter: 1 }, middle), RangeError);
    assert.throws(() => createRetryPolicy({ jitter: -0.1 }, middle), RangeError);
    assert.throws(() => createRetryPolicy({ multiplier: 0.5 }, middle), RangeError);
    assert.throws(() => createRetryPolicy({ firstRetrySeconds: 0 }, middle), RangeError);
    assert.throws(() => createRetryPolicy({ maxAgeSeconds: Number.NaN }, middle), RangeError);
  });
});
