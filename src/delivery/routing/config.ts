/**
 * The `egress.*` and `routes` config keys: their parsers (config/schema.ts `dataLeaf`s) and the
 * checks across keys (its `relations`). The written forms are in egress-spec.ts, warmup.ts and
 * route-spec.ts; a complete example:
 *
 *   egress:
 *     sources:
 *       - { name: ip-1, address: 192.0.2.10, ehlo: mta1.example.com }
 *       - name: ip-2
 *         address: '2001:db8::10'
 *         ehlo: mta2.example.com
 *         warmup: { start: 2026-12-01, daily: [50, 100, 200, 500], hourly: [10, 20, 40], overflow: spill }
 *     pools:
 *       default: [ip-1]
 *       bulk: [{ source: ip-1, weight: 3 }, { source: ip-2, weight: 1 }]
 *     transactional_pool: default
 *     broadcast_pool: bulk
 *     account_pools: { acme: bulk }
 *   routes:
 *     - { name: relay, match: { domains: [example.de, '*.example.de'] }, via: smarthost,
 *         smarthost: { host: relay.example.net, port: 587, tls: starttls, user: u, password: p },
 *         fallback: [direct], failover_after: 2m }
 *     - { name: direct, via: mx }
 *
 * A hostile value (a list of a million broken entries) yields at most MAX_PROBLEMS lines per key.
 */

import type { Parsed } from '../shaping/spec.ts';
import {
  type EgressConfig,
  egressProblems,
  type PoolMember,
  parseAccountPools,
  parsePools,
  parseSources,
  poolNameProblem,
} from './egress-spec.ts';
import { parseRoutes, type RouteSpec } from './route-spec.ts';

export const MAX_PROBLEMS = 20;

function capped<T>(parsed: Parsed<T>): Parsed<T> {
  if (!('problems' in parsed) || parsed.problems.length <= MAX_PROBLEMS) return parsed;
  const more = parsed.problems.length - MAX_PROBLEMS;
  return { problems: [...parsed.problems.slice(0, MAX_PROBLEMS), `: … and ${more} more problems`] };
}

export const parseSourcesKey = (raw: unknown) => capped(parseSources(raw));
export const parsePoolsKey = (raw: unknown): Parsed<Record<string, PoolMember[]>> => capped(parsePools(raw));
export const parseAccountPoolsKey = (raw: unknown) => capped(parseAccountPools(raw));
export const parseRoutesKey = (raw: unknown): Parsed<RouteSpec[]> => capped(parseRoutes(raw));
/** `egress.transactional_pool` / `broadcast_pool`: a pool name (existence: egressProblems). */
export const checkPoolName = (value: string): string | undefined => poolNameProblem(value);

/** The cross-key problems of the `egress` section, one string as config `relations` return. */
export function egressRelation(config: { readonly egress: EgressConfig }): string | undefined {
  const problems = egressProblems(config.egress);
  if (problems.length === 0) return undefined;
  const shown = problems.slice(0, MAX_PROBLEMS);
  if (problems.length > MAX_PROBLEMS)
    shown.push(`… and ${problems.length - MAX_PROBLEMS} more egress problems`);
  return shown.join('; ');
}
