/**
 * Per-key rate limiting: messages per second/minute/hour (several windows at once), new
 * connections per minute, and an adaptive throttle on top. Keys are the caller's, normally
 * `<source>|<site key>`. Nothing here reads a clock: every call takes `now` (epoch ms).
 *
 *   const limiter = createRateLimiter();
 *   limiter.reserve(key, { rates: { perSecond: 10, perHour: 5000 } }, now)  → 0: send now (counted)
 *                                                                           → 37: wait 37 ms (not counted)
 *   limiter.reserve(key, { rates, throttle: { rate, since, until } }, now)   // an adaptive throttle as well
 *   limiter.reserveConnection(key, 30, now)                                  // ≤ 30 new connections a minute
 *   limiter.sweep(now)                                                       // forget idle keys
 *
 * The algorithm: one GCRA (a token bucket kept as a "theoretical arrival time") per key and window.
 * For a limit of N per window W:
 *
 *   burst b    = 1 + ⌊N / 20⌋                  (at most ~5 % of N at once)
 *   interval T = W / (N − b + 1)               (one more message allowed every T)
 *
 * A request at t conforms when t ≥ TAT − (b − 1)·T, and then TAT := max(TAT, t) + T. With this T,
 * n requests admitted in any half-open interval of length W satisfy (n − b)·T < W, i.e. n ≤ N:
 * the configured limit holds in EVERY window of length W, not just on average, and a burst never
 * exceeds b. The long-run rate is (N − b + 1)/W ≥ 95 % of N/W, so a sustained run delivers within
 * 5 % below the configured rate and never above it.
 *
 * Why not the alternatives: a plain token bucket of capacity N refilled at N/W admits up to 2N in
 * one window (a full bucket plus a window's refill); a sliding-window log is exact but keeps up to
 * N timestamps per key (5000/h → 5000 numbers) and allows the whole N in one burst; a fixed window
 * counter allows 2N across a window boundary. GCRA keeps one number per key and window.
 *
 * A throttle (an adaptive rule's "throttle to R until T") is one more bucket with no burst (b = 1,
 * strictly paced at R), started as if a message had been sent when it triggered. It applies in
 * addition to the configured rates: a throttle can only slow a key down, never lift its limits.
 * A new throttle (different rate or start) replaces the previous one's bucket; an extended one
 * (same rate and start, later end) keeps its pace.
 */

import type { Rate } from './rate.ts';
import { HOUR, MINUTE, SECOND } from './rate.ts';
import type { MessageRates } from './spec.ts';

export interface Throttle {
  readonly rate: Rate;
  /** When it triggered: the reply that triggered it counts as the last message sent. */
  readonly since: number;
  /** When it ends; from then on reserve ignores it. */
  readonly until: number;
}

export interface MessageLimits {
  readonly rates: MessageRates;
  readonly throttle?: Throttle;
}

export interface RateLimiter {
  /** 0 = allowed now and counted in every window; > 0 = ms until it would be allowed (nothing counted). */
  reserve(key: string, limits: MessageLimits, now: number): number;
  /** The same for opening a connection under a per-minute limit (undefined = unlimited). */
  reserveConnection(key: string, perMinute: number | undefined, now: number): number;
  /** Drops state that no longer affects any answer (idle keys, ended throttles); returns how many. */
  sweep(now: number): number;
  /** Buckets held, for metrics and tests. */
  size(): number;
}

/**
 * TAT = anchor + emitted × windowMs / divisor, recomputed from integers rather than accumulated, so
 * rounding never drifts (epoch milliseconds are ~1.8e12, where repeated float addition of a
 * fractional interval would be off by a few ulps per step).
 */
interface Bucket {
  count: number;
  windowMs: number;
  /** N − b + 1: intervals per window. */
  divisor: number;
  burst: number;
  anchor: number;
  emitted: number;
  /** Throttle buckets only: which throttle they pace. */
  throttle?: { since: number; until: number };
}

/** Below a microsecond a wait is rounding, not a limit (times are whole milliseconds). */
const EPSILON_MS = 0.001;
/** Re-anchor after this many emissions in one busy stretch, keeping emitted × windowMs exact. */
const REANCHOR_AFTER = 1_000_000;

const tatOf = (b: Bucket): number => b.anchor + (b.emitted * b.windowMs) / b.divisor;
/** Earliest time the next request conforms: TAT − (b − 1)·T. */
const nextAt = (b: Bucket): number => b.anchor + ((b.emitted - b.burst + 1) * b.windowMs) / b.divisor;

export function createRateLimiter(): RateLimiter {
  const buckets = new Map<string, Bucket>();

  function shaped(id: string, count: number, windowMs: number): Bucket {
    let bucket = buckets.get(id);
    if (bucket === undefined || bucket.count !== count || bucket.windowMs !== windowMs) {
      const burst = 1 + Math.floor(count / 20);
      // A changed limit keeps the bucket's position (its TAT), so changing it never grants a fresh burst.
      bucket = {
        count,
        windowMs,
        divisor: count - burst + 1,
        burst,
        anchor: bucket ? tatOf(bucket) : Number.NEGATIVE_INFINITY,
        emitted: 0,
      };
      buckets.set(id, bucket);
    }
    return bucket;
  }

  function throttleBucket(id: string, throttle: Throttle): Bucket {
    const existing = buckets.get(id);
    if (
      existing?.throttle?.since === throttle.since &&
      existing.count === throttle.rate.count &&
      existing.windowMs === throttle.rate.perMs
    ) {
      existing.throttle.until = throttle.until; // extended: same pace, no fresh start
      return existing;
    }
    const bucket: Bucket = {
      count: throttle.rate.count,
      windowMs: throttle.rate.perMs,
      divisor: throttle.rate.count,
      burst: 1,
      // As if one message had gone at `since`: the reply that triggered the throttle.
      anchor: throttle.since,
      emitted: 1,
      throttle: { since: throttle.since, until: throttle.until },
    };
    buckets.set(id, bucket);
    return bucket;
  }

  /** All-or-nothing over the buckets: the wait is the longest; only a full yes counts. */
  function take(list: Bucket[], now: number): number {
    let wait = 0;
    for (const bucket of list) wait = Math.max(wait, nextAt(bucket) - now);
    if (wait > EPSILON_MS) return Math.ceil(wait);
    for (const bucket of list) {
      if (tatOf(bucket) <= now) {
        bucket.anchor = now;
        bucket.emitted = 1;
      } else if (bucket.emitted >= REANCHOR_AFTER) {
        bucket.anchor = tatOf(bucket);
        bucket.emitted = 1;
      } else bucket.emitted++;
    }
    return 0;
  }

  return {
    reserve(key, limits, now) {
      const list: Bucket[] = [];
      const { perSecond, perMinute, perHour } = limits.rates;
      if (perSecond !== undefined) list.push(shaped(`${key}\0s`, perSecond, SECOND));
      if (perMinute !== undefined) list.push(shaped(`${key}\0m`, perMinute, MINUTE));
      if (perHour !== undefined) list.push(shaped(`${key}\0h`, perHour, HOUR));
      const { throttle } = limits;
      if (throttle !== undefined && throttle.until > now)
        list.push(throttleBucket(`${key}\0throttle`, throttle));
      return take(list, now);
    },

    reserveConnection(key, perMinute, now) {
      if (perMinute === undefined) return 0;
      return take([shaped(`${key}\0connect`, perMinute, MINUTE)], now);
    },

    sweep(now) {
      let dropped = 0;
      for (const [id, bucket] of buckets) {
        // A bucket whose TAT has passed answers exactly like a fresh one.
        const idle = tatOf(bucket) <= now;
        const ended = bucket.throttle !== undefined && bucket.throttle.until <= now;
        if (idle || ended) {
          buckets.delete(id);
          dropped++;
        }
      }
      return dropped;
    },

    size: () => buckets.size,
  };
}
