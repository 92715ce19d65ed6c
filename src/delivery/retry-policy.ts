/**
 * When to try a deferred recipient again, and when to give up on it.
 *
 * The rule, exactly (all times in milliseconds, `attempts` = delivery attempts made so far):
 *
 *   base     = min(firstRetrySeconds × multiplier^(attempts − 1), maxIntervalSeconds) × 1000
 *   interval = base × (1 + jitter × (2 × random() − 1))          // uniform in base × [1 − jitter, 1 + jitter]
 *   retryAt  = now + round(interval)
 *   expired  ⇔ retryAt > firstAttemptAt + maxAgeSeconds × 1000
 *
 * So a recipient expires at the failure whose next retry would land after its maximum age,
 * rather than lingering for one attempt past the deadline (Postfix's maximal_queue_lifetime
 * checks only at the next attempt). The jittered time decides, so the random source decides
 * at the edge too; that is what spreading retries out means.
 *
 * Jitter keeps a burst of recipients deferred by the same outage from coming back in the
 * same second and tripping the receiver's rate limits again. `random` is injected (house
 * rule: time and randomness are passed in) and is called exactly once per `next()`.
 */

export interface RetryPolicyOptions {
  /** Interval after the first failed attempt. */
  firstRetrySeconds?: number;
  /** Growth factor per further attempt. */
  multiplier?: number;
  /** Cap on the un-jittered interval. */
  maxIntervalSeconds?: number;
  /** How long after the first attempt a recipient may stay queued. */
  maxAgeSeconds?: number;
  /** Relative spread of the interval, in [0, 1). 0.2 means ±20 %. */
  jitter?: number;
}

export type RetryDecision = { retryAt: number } | { expired: true };

export interface RetryPolicy {
  /**
   * @param attempts attempts made so far, including the one that just failed (≥ 1)
   * @param firstAttemptAt epoch ms of the first attempt (or of acceptance)
   * @param now epoch ms of the failure being scheduled
   */
  next(attempts: number, firstAttemptAt: number, now: number): RetryDecision;
}

export function createRetryPolicy(options: RetryPolicyOptions, random: () => number): RetryPolicy {
  const firstRetrySeconds = options.firstRetrySeconds ?? 300;
  const multiplier = options.multiplier ?? 2;
  const maxIntervalSeconds = options.maxIntervalSeconds ?? 4 * 3600;
  const maxAgeSeconds = options.maxAgeSeconds ?? 5 * 86400;
  const jitter = options.jitter ?? 0.2;

  requirePositive('firstRetrySeconds', firstRetrySeconds);
  requirePositive('maxIntervalSeconds', maxIntervalSeconds);
  requirePositive('maxAgeSeconds', maxAgeSeconds);
  if (!Number.isFinite(multiplier) || multiplier < 1) {
    throw new RangeError(`multiplier must be a number ≥ 1, got ${multiplier}`);
  }
  // jitter ≥ 1 could produce a zero or negative interval: a retry storm instead of a backoff.
  if (!Number.isFinite(jitter) || jitter < 0 || jitter >= 1) {
    throw new RangeError(`jitter must be in [0, 1), got ${jitter}`);
  }

  const maxIntervalMs = maxIntervalSeconds * 1000;
  const maxAgeMs = maxAgeSeconds * 1000;

  return {
    next(attempts, firstAttemptAt, now) {
      const exponent = Math.max(0, Math.floor(attempts) - 1);
      // min() before multiplying by 1000 keeps huge exponents (Infinity) harmless.
      const baseMs = Math.min(firstRetrySeconds * multiplier ** exponent * 1000, maxIntervalMs);
      const spread = 1 + jitter * (2 * random() - 1);
      const retryAt = now + Math.round(baseMs * spread);
      if (retryAt > firstAttemptAt + maxAgeMs) return { expired: true };
      return { retryAt };
    },
  };
}

function requirePositive(name: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number, got ${value}`);
  }
}
