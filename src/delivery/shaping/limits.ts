/**
 * The effective limits of one (egress source, site): what the session pool and the rate limiter
 * enforce for the ready queue of that pair.
 *
 *   const resolver = createLimitsResolver({ defaults, providers, sites });
 *   resolver.limitsFor(siteOf(mxHosts, providers), 'ip-203-0-113-7')
 *     → { maxConnections: 10, maxMessagesPerConnection: 20, rates: { perHour: 5000 } }
 *
 * Layers, each overriding the fields it sets (the last one wins):
 *
 *   1. built-in defaults: delivery.max_connections_per_host, delivery.max_messages_per_connection,
 *      no rates, no new-connection limit, tls unset (= delivery.starttls)
 *   2. a provider site (`provider:google`): the provider's limits (shipped data ← shaping.providers),
 *      then its `sources.<source>` layer
 *   3. any other MX site: every `shaping.sites` suffix entry claiming one of its MX hosts, shortest
 *      suffix first (`example.net` before `eu.example.net`), then the entry naming the exact host
 *      set; each followed by its `sources.<source>` layer
 *   4. a smarthost site (`host:relay.example:587`): only the entry with that exact key
 *
 * `sites` entries never apply to provider sites: every domain of a provider shares one ready queue,
 * so its limits must not depend on which of the provider's hosts one domain happens to list.
 *
 * `rates` replaces as a whole: a layer that sets max_message_rate drops the rates below it.
 */

import type { Site } from './site.ts';
import { hostHasSuffix } from './site.ts';
import type { LimitsLayer, LimitsSpec, MergedProvider, MessageRates, SiteSpec, TlsPolicy } from './spec.ts';

export interface ShapingLimits {
  /** Concurrent connections per (source, site). */
  readonly maxConnections: number;
  /** Transactions on one connection before it is closed and a new one opened. */
  readonly maxMessagesPerConnection: number;
  /** Messages per second/minute/hour per (source, site); any subset, `{}` = unlimited. */
  readonly rates: MessageRates;
  /** Connections opened per minute per (source, site); undefined = unlimited. */
  readonly maxNewConnectionsPerMinute?: number;
  /** undefined = the global delivery.starttls. */
  readonly tls?: TlsPolicy;
}

export interface LimitsDefaults {
  readonly maxConnections: number;
  readonly maxMessagesPerConnection: number;
}

export interface LimitsResolverOptions {
  readonly defaults: LimitsDefaults;
  /** Shipped providers merged with shaping.providers (spec.ts mergeProviders). */
  readonly providers: readonly MergedProvider[];
  /** shaping.sites (spec.ts parseSites). */
  readonly sites: readonly SiteSpec[];
}

export interface LimitsResolver {
  limitsFor(site: Site, source?: string): ShapingLimits;
}

/** Layer 1 from the existing delivery settings. */
export function defaultsFromDelivery(delivery: {
  readonly max_connections_per_host: number;
  readonly max_messages_per_connection: number;
}): LimitsDefaults {
  return {
    maxConnections: delivery.max_connections_per_host,
    maxMessagesPerConnection: delivery.max_messages_per_connection,
  };
}

export function createLimitsResolver(options: LimitsResolverOptions): LimitsResolver {
  const providers = new Map(options.providers.map((provider) => [provider.name, provider]));
  const exact = new Map<string, SiteSpec>();
  const suffixes: SiteSpec[] = [];
  for (const entry of options.sites) {
    if (entry.match === 'key') exact.set(entry.site, entry);
    else suffixes.push(entry);
  }
  // Shortest first, so that the more specific suffix is applied later and wins.
  suffixes.sort((a, b) => a.site.length - b.site.length);

  return {
    limitsFor(site: Site, source?: string): ShapingLimits {
      const specs: LimitsSpec[] = [];
      if (site.provider !== undefined) {
        const provider = providers.get(site.provider);
        if (provider) specs.push(provider.limits);
      } else if (site.key.startsWith('host:')) {
        const entry = exact.get(site.key);
        if (entry) specs.push(entry.limits);
      } else {
        for (const entry of suffixes) {
          if (site.hosts.some((host) => hostHasSuffix(host, entry.site))) specs.push(entry.limits);
        }
        const entry = exact.get(site.key);
        if (entry) specs.push(entry.limits);
      }
      let limits: ShapingLimits = { ...options.defaults, rates: {} };
      for (const spec of specs) {
        limits = applyLayer(limits, spec);
        const forSource = source === undefined ? undefined : spec.sources?.[source];
        if (forSource) limits = applyLayer(limits, forSource);
      }
      return limits;
    },
  };
}

function applyLayer(limits: ShapingLimits, layer: LimitsLayer): ShapingLimits {
  const next: { -readonly [K in keyof ShapingLimits]: ShapingLimits[K] } = { ...limits };
  if (layer.maxConnections !== undefined) next.maxConnections = layer.maxConnections;
  if (layer.maxMessagesPerConnection !== undefined)
    next.maxMessagesPerConnection = layer.maxMessagesPerConnection;
  if (layer.rates !== undefined) next.rates = layer.rates;
  if (layer.maxNewConnectionsPerMinute !== undefined) {
    next.maxNewConnectionsPerMinute = layer.maxNewConnectionsPerMinute;
  }
  if (layer.tls !== undefined) next.tls = layer.tls;
  return next;
}

/**
 * One node's share of message rates that `nodes` nodes keep together (each paces alone): the
 * count of each window divided by the nodes and rounded down; a share under one per window moves
 * to the next longer window (2/s on 3 nodes: 40/min each), and never below 1 per hour.
 */
export function shareOfRates(rates: MessageRates, nodes: number): MessageRates {
  const n = Math.max(1, Math.floor(nodes));
  if (n === 1) return rates;
  const out: { perSecond?: number; perMinute?: number; perHour?: number } = {};
  const put = (window: 'perSecond' | 'perMinute' | 'perHour', count: number): void => {
    out[window] = Math.min(out[window] ?? Number.POSITIVE_INFINITY, count);
  };
  const share = (count: number, window: 'perSecond' | 'perMinute' | 'perHour'): void => {
    const each = count / n;
    if (each >= 1 || window === 'perHour') put(window, Math.max(1, Math.floor(each)));
    else if (window === 'perSecond') share(count * 60, 'perMinute');
    else share(count * 60, 'perHour');
  };
  if (rates.perSecond !== undefined) share(rates.perSecond, 'perSecond');
  if (rates.perMinute !== undefined) share(rates.perMinute, 'perMinute');
  if (rates.perHour !== undefined) share(rates.perHour, 'perHour');
  return out;
}
