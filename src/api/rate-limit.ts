/**
 * Token buckets per key: `rate` requests per second sustained, `burst` at once. In memory, per
 * node (a cluster of n nodes allows up to n times the rate; documented).
 */
export class RateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: () => number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: { rate: number; burst: number; clock: () => number }) {
    this.#rate = options.rate;
    this.#burst = Math.max(1, options.burst);
    this.#clock = options.clock;
  }

  /** Takes one token; when none is left, how many seconds until one is. */
  take(key: string): { ok: true } | { ok: false; retryAfterSeconds: number } {
    const now = this.#clock();
    const bucket = this.#buckets.get(key) ?? { tokens: this.#burst, at: now };
    bucket.tokens = Math.min(this.#burst, bucket.tokens + ((now - bucket.at) / 1000) * this.#rate);
    bucket.at = now;
    if (!this.#buckets.has(key)) {
      // Full buckets carry no information: forget them when the map grows.
      if (this.#buckets.size > 100_000) this.#buckets.clear();
      this.#buckets.set(key, bucket);
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / this.#rate)) };
  }
}
