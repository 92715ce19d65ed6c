import { isIP } from 'node:net';

/**
 * The key a client address counts under. IPv4 (and IPv4-mapped IPv6) per address; IPv6 per
 * /64, the smallest network a site is given: one host can use every address in its /64, so
 * counting per address would let it try 2^64 times as often as the limit says.
 */
export function clientKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1]) return mapped[1];
  const address = ip.split('%')[0] ?? ip; // a zone index (fe80::1%eth0) names no other network
  if (isIP(address) !== 6) return ip;
  const [head = '', tail] = address.toLowerCase().split('::');
  const groups = (text: string): string[] => {
    if (text === '') return [];
    return text.split(':').flatMap((g) => {
      if (!g.includes('.')) return [g];
      // An embedded IPv4 tail (::ffff:0:1.2.3.4, 64:ff9b::1.2.3.4): two groups.
      const [a = 0, b = 0, c = 0, d = 0] = g.split('.').map(Number);
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
    });
  };
  const front = groups(head);
  const back = tail === undefined ? [] : groups(tail);
  const all = [...front, ...Array(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back];
  return `${all
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

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

  /** Keys locked out now (bounded like the failure lists: see #lock). */
  get lockedCount(): number {
    return this.#lockedUntil.size;
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
      this.#lock(key, now);
      return true;
    }
    return false;
  }

  /**
   * Locks a key out. The lockouts are bounded too (a spray from many networks must not grow
   * memory without limit): at the bound, expired ones go first, then the oldest.
   */
  #lock(key: string, now: number): void {
    if (!this.#lockedUntil.has(key) && this.#lockedUntil.size >= this.#opts.maxKeys) {
      for (const [k, until] of this.#lockedUntil) if (until <= now) this.#lockedUntil.delete(k);
      if (this.#lockedUntil.size >= this.#opts.maxKeys) {
        const oldest = this.#lockedUntil.keys().next().value;
        if (oldest !== undefined) this.#lockedUntil.delete(oldest);
      }
    }
    this.#lockedUntil.set(key, now + this.#opts.lockoutMs);
  }

  /** A success clears the key's failures (not an active lockout). */
  succeed(key: string): void {
    this.#failures.delete(key);
  }
}
