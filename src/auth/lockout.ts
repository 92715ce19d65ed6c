/**
 * Counts failed authentications per key (client IP, username) in a sliding window and locks a
 * key out once it reaches the limit. In memory, per node: a restart clears it (documented).
 */
export interface LockoutOptions {
  maxFailures: number;
  windowMs: number;
  lockoutMs: number;
  clock: () => number;
  /** Bound on tracked keys so a spray of addresses cannot grow memory without limit. */
  maxKeys?: number;
}

export class Lockout {
  readonly #opts: Required<LockoutOptions>;
  readonly #failures = new Map<string, number[]>();
  readonly #lockedUntil = new Map<string, number>();

  constructor(options: LockoutOptions) {
    this.#opts = { maxKeys: 100_000, ...options };
  }

  /** Whether the key is locked out now. */
  isLocked(key: string): boolean {
    const until = this.#lockedUntil.get(key);
    if (until === undefined) return false;
    if (until > this.#opts.clock()) return true;
    this.#lockedUntil.delete(key);
    return false;
  }

  /** Records a failure; returns true when this failure locks the key out. */
  fail(key: string): boolean {
    const now = this.#opts.clock();
    const since = now - this.#opts.windowMs;
    const list = (this.#failures.get(key) ?? []).filter((t) => t > since);
    list.push(now);
    if (!this.#failures.has(key) && this.#failures.size >= this.#opts.maxKeys) {
      const oldest = this.#failures.keys().next().value;
      if (oldest !== undefined) this.#failures.delete(oldest);
    }
    this.#failures.set(key, list);
    if (list.length >= this.#opts.maxFailures) {
      this.#failures.delete(key);
      this.#lockedUntil.set(key, now + this.#opts.lockoutMs);
      return true;
    }
    return false;
  }

  /** A success clears the key's failures (not an active lockout). */
  succeed(key: string): void {
    this.#failures.delete(key);
  }
}
