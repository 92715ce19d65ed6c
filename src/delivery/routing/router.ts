/**
 * The router: for one SMTP transaction (recipients of one message at one domain), which route
 * carries it, and from which egress source it leaves.
 *
 *   const router = createRouter(routerInput(config), { clock, random: Math.random, onEvent });
 *   router.route({ domain: 'example.de', stream: 'outbound', kind: 'transactional',
 *                  streamPool: '', account: 'acme', recipients: 20 })
 *     → { action: 'deliver', route: { name: 'eu-relay', via: 'smarthost', smarthost }, matched: 'eu-relay',
 *         probe: false, pool: 'default', source: { name: 'ip-1', address: '192.0.2.10', ehlo: 'mta1.example.com' },
 *         recipients: 20, reserved: 0 }
 *     → { action: 'hold', route, matched }                       a hold route: keep the mail until released
 *     → { action: 'defer', reason: 'warmup', until, route, … }   every way out of the pool is capped
 *     → { action: 'defer', reason: 'unknown_pool', pool, … }     the stream names a pool the config lacks
 *   router.recordSent('ip-1', 18, now); router.release('ip-1', 2, now)   // after a `reserved` decision
 *   router.failover.recordFailure('eu-relay', 'connection', now)          // see failover.ts
 *   router.capsStatus(now), router.failover.status(now)                   // for `postbote queue summary`
 *
 * The steps:
 * 1. Route: the first route whose match fits (domain, stream, account) wins; none → MX (the
 *    route named `(default)`). Then failover: if that route is down, its fallback (failover.ts).
 * 2. Pool: the stream's own pool; else the account's (`egress.account_pools`); else the default
 *    pool of the stream's kind (`egress.transactional_pool` / `broadcast_pool`). A stream's pool
 *    is the most specific choice, so it wins; account_pools moves an account's other mail.
 * 3. Source: weighted random among the pool's sources (source-choice.ts). Warm-up caps apply to
 *    MX deliveries only: through a smarthost the receiving sites see the smarthost's address,
 *    not ours. A `deliver` decision may carry fewer `recipients` than asked (the room left
 *    under the source's caps): deliver those and route the rest again. Its `reserved` count
 *    holds that room until the caller reports, per source: recordSent(n sent), release(rest).
 *
 * `defer` is a deferral, never a bounce: the caller reschedules the recipients for `until`
 * (warm-up) or by its retry policy (unknown pool, after the operator fixed the config). The
 * decision holds the smarthost password for the session pool: log decisionSummary(decision),
 * never the decision. Warm-up counters and route health are in memory per node
 * (warmup-counters.ts, failover.ts).
 */

import type { Config } from '../../config/schema.ts';
import type { StreamKind } from '../../store/types.ts';
import { compileDomainSet, type DomainSet, normalizeDomain } from './domain-pattern.ts';
import type { EgressConfig, PoolMember } from './egress-spec.ts';
import { createFailover, type Failover, type FailoverEvent } from './failover.ts';
import type { RouteSpec, Smarthost, Via } from './route-spec.ts';
import { chooseSource } from './source-choice.ts';
import { type CapsStatus, createWarmupCounters, type WarmupCounters } from './warmup-counters.ts';

export interface RouterInput {
  readonly egress: EgressConfig;
  readonly routes: readonly RouteSpec[];
  /** EHLO name of sources that name none. */
  readonly defaultEhlo: string;
}

/** The router's input from the frozen config. */
export function routerInput(config: Config): RouterInput {
  return {
    egress: config.egress,
    routes: config.routes,
    defaultEhlo: config.delivery.ehlo_name || config.hostname,
  };
}

export interface RouterOptions {
  readonly clock: { now(): number };
  /** [0, 1), like Math.random. */
  readonly random: () => number;
  /** Route down / recovered. */
  readonly onEvent?: (event: FailoverEvent) => void;
  /** Passed to the warm-up counters (warmup-counters.ts). */
  readonly reservationTtlMs?: number;
  /** Nodes sharing the warm-up caps (warmup-counters.ts `share`). */
  readonly share?: () => number;
}

export interface RouteRequest {
  /** The recipients' domain, ASCII (IDN as punycode, as intake stores it); any case. */
  readonly domain: string;
  readonly stream: string;
  readonly kind: StreamKind;
  /** The stream's pool; '' = none named. */
  readonly streamPool: string;
  /** The account's name. */
  readonly account: string;
  /** Recipients in the transaction; default 1. */
  readonly recipients?: number;
}

export interface RouteRef {
  readonly name: string;
  readonly via: Via;
  readonly smarthost?: Smarthost;
}

export interface EgressChoice {
  readonly name: string;
  /** The address to bind; '' = let the OS choose. */
  readonly address: string;
  readonly ehlo: string;
}

interface Routed {
  readonly route: RouteRef;
  /** The route the mail matched (differs from route.name after a failover). */
  readonly matched: string;
}

export type RouteDecision =
  | (Routed & {
      readonly action: 'deliver';
      /** This delivery is a down route's trial (failover.ts): report its outcome. */
      readonly probe: boolean;
      readonly pool: string;
      readonly source: EgressChoice;
      /** How many of the transaction's recipients to deliver now (≤ asked). */
      readonly recipients: number;
      /** Held under the source's warm-up caps until recordSent/release (0: nothing to report). */
      readonly reserved: number;
    })
  | (Routed & { readonly action: 'hold' })
  | (Routed & {
      readonly action: 'defer';
      readonly reason: 'warmup';
      readonly pool: string;
      readonly until: number;
    })
  | (Routed & { readonly action: 'defer'; readonly reason: 'unknown_pool'; readonly pool: string });

export interface Router {
  route(request: RouteRequest): RouteDecision;
  /** n recipients were sent from the source by MX (consumes its reservations first). */
  recordSent(source: string, n: number, now: number): void;
  /** n reserved recipients were not sent after all. */
  release(source: string, n: number, now: number): void;
  capsStatus(now: number): CapsStatus[];
  readonly failover: Failover;
  hasPool(name: string): boolean;
}

/** The name of the implicit route of mail no route matches: MX. */
export const DEFAULT_ROUTE = '(default)';

interface CompiledRoute {
  readonly ref: RouteRef;
  readonly domains?: DomainSet;
  readonly streams?: ReadonlySet<string>;
  readonly accounts?: ReadonlySet<string>;
}

export function createRouter(input: RouterInput, options: RouterOptions): Router {
  const { clock, random } = options;
  const { egress } = input;
  const sources = new Map(egress.sources.map((s) => [s.name, s]));
  const pools = new Map<string, readonly PoolMember[]>(Object.entries(egress.pools));
  for (const [name, members] of pools) {
    for (const m of members) {
      if (!sources.has(m.source)) throw new RangeError(`pool ${name}: no egress source named ${m.source}`);
    }
  }
  const accountPools = new Map(Object.entries(egress.account_pools));
  const refs = new Map<string, RouteRef>();
  const matchers: CompiledRoute[] = [];
  for (const spec of input.routes) {
    const ref: RouteRef = {
      name: spec.name,
      via: spec.via,
      ...(spec.smarthost ? { smarthost: spec.smarthost } : {}),
    };
    refs.set(spec.name, ref);
    if (!spec.match) continue;
    matchers.push({
      ref,
      ...(spec.match.domains ? { domains: compileDomainSet(spec.match.domains) } : {}),
      ...(spec.match.streams ? { streams: new Set(spec.match.streams) } : {}),
      ...(spec.match.accounts ? { accounts: new Set(spec.match.accounts) } : {}),
    });
  }
  const defaultRef: RouteRef = { name: DEFAULT_ROUTE, via: 'mx' };
  const failover = createFailover(input.routes, options.onEvent);
  const counters: WarmupCounters = createWarmupCounters(egress.sources, {
    ...(options.reservationTtlMs !== undefined ? { reservationTtlMs: options.reservationTtlMs } : {}),
    ...(options.share ? { share: options.share } : {}),
  });

  function matchRoute(request: RouteRequest): RouteRef {
    const domain = normalizeDomain(request.domain) ?? request.domain.trim().toLowerCase();
    const stream = request.stream.trim().toLowerCase();
    const account = request.account.trim().toLowerCase();
    for (const route of matchers) {
      if (route.domains && !route.domains.matches(domain)) continue;
      if (route.streams && !route.streams.has(stream)) continue;
      if (route.accounts && !route.accounts.has(account)) continue;
      return route.ref;
    }
    return defaultRef;
  }

  function poolOf(request: RouteRequest): string {
    const own = request.streamPool.trim().toLowerCase();
    if (own !== '') return own;
    const account = accountPools.get(request.account.trim().toLowerCase());
    if (account !== undefined) return account;
    return request.kind === 'broadcast' ? egress.broadcast_pool : egress.transactional_pool;
  }

  function egressOf(name: string): EgressChoice {
    const source = sources.get(name)!;
    return { name, address: source.address, ehlo: source.ehlo || input.defaultEhlo };
  }

  return {
    route(request) {
      const now = clock.now();
      const asked = Math.max(1, Math.floor(request.recipients ?? 1));
      const matched = matchRoute(request);
      const selection = failover.select(matched.name, now);
      const route = refs.get(selection.route) ?? matched;
      const routed: Routed = { route, matched: matched.name };
      if (route.via === 'hold') return { ...routed, action: 'hold' };
      const pool = poolOf(request);
      const members = pools.get(pool);
      if (members === undefined) return { ...routed, action: 'defer', reason: 'unknown_pool', pool };
      const capped = route.via === 'mx';
      const choice = chooseSource(
        members,
        {
          room: (source) => (capped ? counters.room(source, now) : Number.POSITIVE_INFINITY),
          availableAt: (source) => counters.availableAt(source, now),
          overflow: (source) => sources.get(source)?.warmup?.overflow,
        },
        random,
      );
      if ('until' in choice)
        return { ...routed, action: 'defer', reason: 'warmup', pool, until: choice.until };
      const recipients = Math.min(asked, choice.room);
      const reserved = Number.isFinite(choice.room) ? recipients : 0;
      if (reserved > 0) counters.reserve(choice.source, reserved, now);
      return {
        ...routed,
        action: 'deliver',
        probe: selection.probe,
        pool,
        source: egressOf(choice.source),
        recipients,
        reserved,
      };
    },
    recordSent: (source, n, now) => counters.recordSent(source, n, now),
    release: (source, n, now) => counters.release(source, n, now),
    capsStatus: (now) => counters.status(now),
    failover,
    hasPool: (name) => pools.has(name),
  };
}

/** A decision for logs and events: names and addresses, never the smarthost's credentials. */
export function decisionSummary(decision: RouteDecision): Record<string, string | number | boolean> {
  const { route } = decision;
  const summary: Record<string, string | number | boolean> = {
    action: decision.action,
    route: route.name,
    via: route.via,
  };
  if (decision.matched !== route.name) summary.matched = decision.matched;
  if (route.smarthost) summary.smarthost = `${route.smarthost.host}:${route.smarthost.port}`;
  if (decision.action === 'deliver') {
    summary.pool = decision.pool;
    summary.source = decision.source.name;
    if (decision.source.address !== '') summary.address = decision.source.address;
    if (decision.probe) summary.probe = true;
  } else if (decision.action === 'defer') {
    summary.pool = decision.pool;
    summary.reason = decision.reason;
    if (decision.reason === 'warmup') summary.until = decision.until;
  }
  return summary;
}
