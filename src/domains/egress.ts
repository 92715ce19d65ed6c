import type { Config } from '../config/schema.ts';
import type { Stream } from '../store/types.ts';

/** An address a domain's mail may leave from, with the EHLO name it greets with. */
export interface EgressAddress {
  source: string;
  ip: string;
  ehlo: string;
}

/**
 * Every address an account's mail may leave from: the sources of the pools its streams use
 * (a stream's own pool, else the account's pool, else the default pool of the stream's kind).
 * A source that lets the OS choose its address stands for `domains.public_ips`.
 */
export function egressAddresses(config: Config, accountName: string, streams: Stream[]): EgressAddress[] {
  const pools = new Set<string>();
  for (const stream of streams) {
    const fallback =
      config.egress.account_pools[accountName] ??
      (stream.kind === 'broadcast' ? config.egress.broadcast_pool : config.egress.transactional_pool);
    pools.add(stream.pool || fallback);
  }
  const names = new Set<string>();
  for (const pool of pools) for (const member of config.egress.pools[pool] ?? []) names.add(member.source);
  const globalEhlo = config.delivery.ehlo_name || config.hostname;
  const out = new Map<string, EgressAddress>();
  for (const source of config.egress.sources) {
    if (!names.has(source.name)) continue;
    const ehlo = source.ehlo || globalEhlo;
    const ips = source.address ? [source.address] : config.domains.public_ips;
    for (const ip of ips) out.set(`${ip}\0${ehlo}`, { source: source.name, ip, ehlo });
  }
  return [...out.values()];
}
