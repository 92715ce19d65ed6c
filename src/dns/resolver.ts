/**
 * A caching DNS resolver on top of node:dns (c-ares), with configurable servers.
 *
 * Caching, and why it looks the way it does:
 * - A/AAAA answers are cached for their own TTL (node reports it with `{ ttl: true }`).
 * - node reports no TTL for MX, TXT, PTR, CNAME or NS answers, so those are cached for a fixed
 *   `defaultTtlSeconds` (300 s by default). A zone that changes its MX is seen within that time.
 * - Every TTL is capped at `maxTtlSeconds` (1 h) so a record published with a week-long TTL
 *   cannot pin a stale answer for the life of the process.
 * - Negative answers (NXDOMAIN, NODATA) are cached for `negativeTtlSeconds` (60 s). RFC 2308 §5
 *   would take this from the zone's SOA, which node does not expose; a short fixed value keeps a
 *   burst of mail to a mistyped domain from costing one query per recipient.
 * - Temporary failures (SERVFAIL, REFUSED, timeouts) are never cached: the next attempt asks again.
 * - Concurrent lookups of the same name and type share one query.
 *
 * `resolve(name, rrtype)` returns what `dns.promises.resolve` returns and rejects with errors
 * carrying the same `code` (ENOTFOUND, ENODATA, ESERVFAIL, ...), so it can be handed to mailauth.
 */

import type { MxRecord } from 'node:dns';
import { promises as dnsPromises } from 'node:dns';
import { reverseName } from './ip-address.ts';
import { createTtlCache } from './ttl-cache.ts';

export type { MxRecord };

export interface RecordsByType {
  A: string[];
  AAAA: string[];
  CNAME: string[];
  MX: MxRecord[];
  NS: string[];
  PTR: string[];
  TXT: string[][];
}
export type RRType = keyof RecordsByType;
const RRTYPES: ReadonlySet<string> = new Set<RRType>(['A', 'AAAA', 'CNAME', 'MX', 'NS', 'PTR', 'TXT']);

export type DnsErrorKind = 'nxdomain' | 'nodata' | 'temporary';

/** A failed lookup. `code` is node's (ENOTFOUND, ENODATA, ESERVFAIL, ETIMEOUT, ...). */
export class DnsError extends Error {
  override readonly name = 'DnsError';
  readonly kind: DnsErrorKind;
  readonly code: string;
  readonly hostname: string;
  readonly rrtype: string;

  constructor(init: { kind: DnsErrorKind; code: string; hostname: string; rrtype: string; cause?: unknown }) {
    super(describe(init), { cause: init.cause });
    this.kind = init.kind;
    this.code = init.code;
    this.hostname = init.hostname;
    this.rrtype = init.rrtype;
  }
}

function describe(e: { kind: DnsErrorKind; code: string; hostname: string; rrtype: string }): string {
  if (e.kind === 'nxdomain') return `${e.hostname} does not exist (${e.rrtype} lookup: ${e.code})`;
  if (e.kind === 'nodata') return `${e.hostname} has no ${e.rrtype} record (${e.code})`;
  return `${e.rrtype} lookup for ${e.hostname} failed temporarily (${e.code})`;
}

/** node's error codes mapped to what a mail system must do about them. */
function kindOf(code: string): DnsErrorKind {
  if (code === 'ENOTFOUND') return 'nxdomain';
  if (code === 'ENODATA') return 'nodata';
  // A name c-ares refuses to send (empty label, label over 63 bytes) can never exist.
  if (code === 'EBADNAME') return 'nxdomain';
  return 'temporary';
}

export interface ResolverOptions {
  /** `ip`, `ip:port` or `[ipv6]:port`; empty means the system's resolver configuration. */
  servers: readonly string[];
  /** Time to wait for one answer from one server (default 5000). */
  timeoutMs?: number;
  /** Tries per server before giving up (default 2). */
  tries?: number;
  /** Milliseconds since the epoch; injected so tests expire entries without sleeping. */
  clock?: () => number;
  maxCacheEntries?: number;
  defaultTtlSeconds?: number;
  negativeTtlSeconds?: number;
  maxTtlSeconds?: number;
}

export interface DnsResolver {
  resolve<T extends RRType>(name: string, rrtype: T): Promise<RecordsByType[T]>;
  resolve(name: string, rrtype: string): Promise<RecordsByType[RRType]>;
  mx(domain: string): Promise<MxRecord[]>;
  a(name: string): Promise<string[]>;
  aaaa(name: string): Promise<string[]>;
  txt(name: string): Promise<string[][]>;
  /** PTR names of an IP address (the reverse name is built here). */
  ptr(ip: string): Promise<string[]>;
  clearCache(): void;
}

type Cached = { ok: true; records: unknown } | { ok: false; error: DnsError };

/**
 * A caller's own copy of cached records (arrays of strings, MX objects or TXT chunk arrays),
 * so nobody can change the cache. Cheaper than structuredClone on the delivery hot path.
 */
function copyRecords(records: unknown): unknown {
  if (!Array.isArray(records)) return records;
  return records.map((r: unknown) =>
    Array.isArray(r) ? [...r] : typeof r === 'object' && r !== null ? { ...r } : r,
  );
}

export function createResolver(options: ResolverOptions): DnsResolver {
  const timeoutMs = options.timeoutMs ?? 5000;
  // maxTimeout = timeout: c-ares would otherwise grow the timeout on each retry.
  const resolver = new dnsPromises.Resolver({
    timeout: timeoutMs,
    tries: options.tries ?? 2,
    maxTimeout: timeoutMs,
  });
  if (options.servers.length > 0) {
    try {
      resolver.setServers([...options.servers]);
    } catch (cause) {
      throw new TypeError(`invalid DNS server list ${JSON.stringify(options.servers)}`, { cause });
    }
  }
  const clock = options.clock ?? Date.now;
  const cache = createTtlCache<Cached>({ maxEntries: options.maxCacheEntries ?? 10_000, clock });
  const inflight = new Map<string, Promise<unknown>>();
  const maxTtlMs = (options.maxTtlSeconds ?? 3600) * 1000;
  const defaultTtlMs = Math.min((options.defaultTtlSeconds ?? 300) * 1000, maxTtlMs);
  const negativeTtlMs = Math.min((options.negativeTtlSeconds ?? 60) * 1000, maxTtlMs);

  const query = async (hostname: string, rrtype: RRType): Promise<{ records: unknown; ttlMs: number }> => {
    if (rrtype === 'A' || rrtype === 'AAAA') {
      const answers =
        rrtype === 'A'
          ? await resolver.resolve4(hostname, { ttl: true })
          : await resolver.resolve6(hostname, { ttl: true });
      // node reports NODATA as ENODATA, never as an empty list; if it ever did, cache nothing.
      const ttl = answers.length > 0 ? Math.min(...answers.map((a) => a.ttl)) : 0;
      return { records: answers.map((a) => a.address), ttlMs: Math.min(ttl * 1000, maxTtlMs) };
    }
    return { records: await resolver.resolve(hostname, rrtype), ttlMs: defaultTtlMs };
  };

  const lookup = async (name: string, rrtype: string): Promise<unknown> => {
    if (!RRTYPES.has(rrtype)) throw new TypeError(`unsupported DNS record type ${JSON.stringify(rrtype)}`);
    const hostname = name.toLowerCase().replace(/\.$/, '');
    const key = `${rrtype} ${hostname}`;
    const cached = cache.get(key);
    if (cached?.ok) return copyRecords(cached.records);
    // The cached error itself: building a new Error (and its stack) per lookup showed in profiles.
    if (cached) throw cached.error;

    let pending = inflight.get(key);
    if (!pending) {
      pending = query(hostname, rrtype as RRType).then(
        ({ records, ttlMs }) => {
          cache.set(key, { ok: true, records }, ttlMs);
          return records;
        },
        (cause: unknown) => {
          const code = (cause as { code?: unknown } | null)?.code;
          if (typeof code !== 'string') throw cause; // not a DNS answer: a bug, not a lookup result
          const kind = kindOf(code);
          const error = new DnsError({ kind, code, hostname, rrtype, cause });
          if (kind !== 'temporary') cache.set(key, { ok: false, error }, negativeTtlMs);
          throw error;
        },
      );
      const settled = pending.finally(() => inflight.delete(key));
      settled.catch(() => {}); // the caller observes `pending`; this copy only cleans up
      inflight.set(key, pending);
    }
    return copyRecords(await pending);
  };

  return {
    resolve: lookup as DnsResolver['resolve'],
    mx: (domain) => lookup(domain, 'MX') as Promise<MxRecord[]>,
    a: (name) => lookup(name, 'A') as Promise<string[]>,
    aaaa: (name) => lookup(name, 'AAAA') as Promise<string[]>,
    txt: (name) => lookup(name, 'TXT') as Promise<string[][]>,
    ptr: async (ip) => lookup(reverseName(ip), 'PTR') as Promise<string[]>,
    clearCache: () => cache.clear(),
  };
}
