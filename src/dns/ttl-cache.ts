/**
 * A bounded map whose entries expire by an injected clock. Bounded because the delivery engine
 * resolves names taken from recipient addresses: an unbounded cache is a memory leak a sender
 * can drive. Eviction is least-recently-used (a Map keeps insertion order; a hit re-inserts).
 */
export interface TtlCache<V> {
  get(key: string): V | undefined;
  /** Stores `value` for `ttlMs`; a TTL of zero or less stores nothing. */
  set(key: string, value: V, ttlMs: number): void;
  delete(key: string): void;
  clear(): void;
  readonly size: number;
}

export function createTtlCache<V>(options: { maxEntries: number; clock: () => number }): TtlCache<V> {
  const entries = new Map<string, { value: V; expiresAt: number }>();
  return {
    get(key) {
      const entry = entries.get(key);
      if (!entry) return undefined;
      entries.delete(key);
      if (entry.expiresAt <= options.clock()) return undefined;
      entries.set(key, entry);
      return entry.value;
    },
    set(key, value, ttlMs) {
      entries.delete(key);
      if (ttlMs <= 0 || options.maxEntries <= 0) return;
      entries.set(key, { value, expiresAt: options.clock() + ttlMs });
      while (entries.size > options.maxEntries) {
        const oldest = entries.keys().next();
        if (oldest.done) break;
        entries.delete(oldest.value);
      }
    },
    delete(key) {
      entries.delete(key);
    },
    clear() {
      entries.clear();
    },
    get size() {
      return entries.size;
    },
  };
}
