/**
 * The resolver for setup checks: Postbote's resolver (src/dns/resolver.ts) with its cache
 * turned off. A customer who has just published a record and presses "check again" must see
 * the live answer, not one cached for the 300 s the delivery path may keep it (or the 60 s it
 * keeps a "no such record"). Concurrent identical questions still share one query.
 */
import type { DnsResolver } from '../../dns/resolver.ts';
import { createResolver } from '../../dns/resolver.ts';
import type { Resolve } from './types.ts';

export interface CheckResolverOptions {
  /** `ip`, `ip:port` or `[ipv6]:port`; empty means the system's resolver configuration. */
  servers: readonly string[];
  /** Time to wait for one answer (default 3000): a check is interactive. */
  timeoutMs?: number;
  /** Tries per server (default 2). */
  tries?: number;
}

export function createCheckResolver(options: CheckResolverOptions): Resolve {
  return resolveWith(
    createResolver({
      servers: options.servers,
      timeoutMs: options.timeoutMs ?? 3000,
      tries: options.tries ?? 2,
      maxTtlSeconds: 0,
    }),
  );
}

/** Adapts a Postbote resolver; its errors already carry node's codes (ENOTFOUND, ENODATA, ...). */
export function resolveWith(dns: DnsResolver): Resolve {
  return (name, rrtype) => dns.resolve(name, rrtype);
}
