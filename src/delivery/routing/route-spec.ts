/**
 * The written form of `routes` and its validation: an ordered list, the first route whose match
 * fits a recipient's mail wins; mail no route matches is delivered by MX.
 *
 *   routes:
 *     - name: eu-relay
 *       match: { domains: [example.de, '*.example.de'], streams: [outbound], accounts: [acme] }
 *       via: smarthost
 *       smarthost: { host: relay.example.net, port: 587, tls: starttls, user: postbote, password: '…' }
 *       fallback: [backup-relay]      # when eu-relay is down, try these in order
 *       failover_after: 2m            # down = only failures (connection, 421) for this long
 *       probe_every: 30s              # while down, one delivery every 30s tries eu-relay again
 *     - name: backup-relay            # no match: reachable only as a fallback
 *       via: smarthost
 *       smarthost: { host: 192.0.2.25, tls: tls }
 *     - { name: quarantine, match: { accounts: [suspended-co] }, via: hold }
 *     - { name: everything-else, match: { domains: ['*'] }, via: mx }
 *
 * match: every list given must contain the mail's value (domains: exact, `*.example.com` for
 * any subdomain, `*` for all; see domain-pattern.ts), values within a list are alternatives;
 * `match: {}` is refused (write `domains: ['*']` for all mail). A route without `match` is only
 * reachable as another route's fallback, and must be one.
 * via: `mx` (default delivery), `smarthost` (requires `smarthost`), `hold` (the mail is held
 * until released; a hold route cannot fail, so it has no fallback).
 * smarthost: see smarthost-spec.ts (and how its password is kept out of problem lines).
 * failover_after (2m), probe_every (30s): see failover.ts.
 * Checked across routes: names unique, fallbacks exist and form no cycle, every route reachable
 * (no match after a catch-all; a route without match is some route's fallback).
 */

import { parseDuration } from '../../config/duration.ts';
import { describe, isMapping, type Parsed } from '../shaping/spec.ts';
import { parseDomainPattern } from './domain-pattern.ts';
import { ACCOUNT_NAME, known, POOL_NAME } from './egress-spec.ts';
import { fallbackCycle } from './failover.ts';
import { checkKeysQuietly, parseSmarthost, type Smarthost } from './smarthost-spec.ts';

export type Via = 'mx' | 'smarthost' | 'hold';
export type { Smarthost, SmarthostTls } from './smarthost-spec.ts';

export interface RouteMatch {
  /** Normalised patterns: `example.com`, `*.example.com`, `*`. */
  readonly domains?: readonly string[];
  /** Lower case. */
  readonly streams?: readonly string[];
  /** Lower case (account names are compared without case). */
  readonly accounts?: readonly string[];
}

export interface RouteSpec {
  readonly name: string;
  /** Absent: only reachable as a fallback. */
  readonly match?: RouteMatch;
  readonly via: Via;
  readonly smarthost?: Smarthost;
  /** Route names, in the order they are tried. */
  readonly fallback: readonly string[];
  /** ms of failures only (none succeeding) after which the route is down. */
  readonly failoverAfter: number;
  /** ms between trial deliveries through the route while it is down. */
  readonly probeEvery: number;
}

export const MAX_ROUTES = 10_000;
export const MAX_MATCH_DOMAINS = 100_000;
export const MAX_MATCH_NAMES = 10_000;
export const MAX_FALLBACKS = 16;
export const DEFAULT_FAILOVER_AFTER = 120_000;
export const DEFAULT_PROBE_EVERY = 30_000;

const ROUTE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const ROUTE_KEYS = ['name', 'match', 'via', 'smarthost', 'fallback', 'failover_after', 'probe_every'];
const MATCH_KEYS = ['domains', 'streams', 'accounts'];

export function parseRoutes(raw: unknown): Parsed<RouteSpec[]> {
  if (raw === undefined || raw === null) return { value: [] };
  if (!Array.isArray(raw)) return { problems: [': must be a list of routes [{ name, match, via, … }]'] };
  if (raw.length > MAX_ROUTES) return { problems: [`: at most ${MAX_ROUTES} routes, got ${raw.length}`] };
  const problems: string[] = [];
  const routes: RouteSpec[] = [];
  const places = new Map<string, string>();
  raw.forEach((entry, i) => {
    const name = isMapping(entry) && typeof entry.name === 'string' ? entry.name : undefined;
    const place = name !== undefined && ROUTE_NAME.test(name) ? `[${i}] (route ${name})` : `[${i}]`;
    if (!isMapping(entry)) {
      problems.push(`${place}: must be a mapping { name, match, via, … }`);
      return;
    }
    const before = problems.length;
    const route = parseRoute(entry, place, problems);
    if (route && places.has(route.name)) {
      problems.push(`${place}.name: "${route.name}" is already the name of ${places.get(route.name)}`);
      return;
    }
    if (route) places.set(route.name, `[${i}]`);
    if (route && problems.length === before) routes.push(route);
  });
  if (problems.length > 0) return { problems };
  problems.push(...acrossRoutes(routes));
  return problems.length > 0 ? { problems } : { value: routes };
}

function parseRoute(
  entry: Record<string, unknown>,
  place: string,
  problems: string[],
): RouteSpec | undefined {
  checkKeysQuietly(entry, ROUTE_KEYS, place, problems);
  const name = entry.name;
  if (typeof name !== 'string' || !ROUTE_NAME.test(name)) {
    problems.push(
      `${place}.name: required: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit, got ${describe(name)}`,
    );
  }
  const match = entry.match === undefined ? undefined : parseMatch(entry.match, `${place}.match`, problems);
  let via: Via | undefined;
  if (entry.via === 'mx' || entry.via === 'smarthost' || entry.via === 'hold') via = entry.via;
  else if (entry.via === undefined) problems.push(`${place}.via: required: mx, smarthost or hold`);
  else problems.push(`${place}.via: must be mx, smarthost or hold, got ${describe(entry.via)}`);
  let smarthost: Smarthost | undefined;
  if (via === 'smarthost') {
    if (entry.smarthost === undefined) {
      problems.push(`${place}.smarthost: required with via: smarthost ({ host, port, tls, user, password })`);
    } else smarthost = parseSmarthost(entry.smarthost, `${place}.smarthost`, problems);
  } else if (via !== undefined && entry.smarthost !== undefined) {
    problems.push(`${place}.smarthost: only for via: smarthost (this route is via: ${via})`);
  }
  const fallback = parseFallback(entry.fallback, `${place}.fallback`, problems);
  if (via === 'hold' && fallback && fallback.length > 0) {
    problems.push(`${place}.fallback: a hold route never fails, so it never falls back`);
  }
  const failoverAfter = parseSpan(
    entry.failover_after,
    DEFAULT_FAILOVER_AFTER,
    86_400_000,
    `${place}.failover_after`,
    problems,
  );
  const probeEvery = parseSpan(
    entry.probe_every,
    DEFAULT_PROBE_EVERY,
    3_600_000,
    `${place}.probe_every`,
    problems,
  );
  if (
    typeof name !== 'string' ||
    via === undefined ||
    fallback === undefined ||
    failoverAfter === undefined ||
    probeEvery === undefined ||
    (via === 'smarthost' && smarthost === undefined) ||
    (entry.match !== undefined && match === undefined)
  ) {
    return undefined;
  }
  return {
    name,
    ...(match ? { match } : {}),
    via,
    ...(smarthost ? { smarthost } : {}),
    fallback,
    failoverAfter,
    probeEvery,
  };
}

function parseMatch(raw: unknown, path: string, problems: string[]): RouteMatch | undefined {
  if (!isMapping(raw)) {
    problems.push(`${path}: must be a mapping { domains?, streams?, accounts? }`);
    return undefined;
  }
  const before = problems.length;
  checkKeysQuietly(raw, MATCH_KEYS, path, problems);
  if (!MATCH_KEYS.some((key) => raw[key] !== undefined)) {
    problems.push(
      `${path}: name at least one of domains, streams, accounts (domains: ['*'] matches all mail)`,
    );
    return undefined;
  }
  const domains = list(raw.domains, MAX_MATCH_DOMAINS, `${path}.domains`, problems, (item, at) => {
    const parsed =
      typeof item === 'string' ? parseDomainPattern(item) : { problem: 'must be a domain pattern' };
    if ('problem' in parsed) problems.push(`${at}: ${parsed.problem}, got ${describe(item)}`);
    return 'pattern' in parsed ? parsed.pattern : undefined;
  });
  const streams = list(raw.streams, MAX_MATCH_NAMES, `${path}.streams`, problems, (item, at) => {
    const stream = typeof item === 'string' ? item.trim().toLowerCase() : undefined;
    if (stream !== undefined && POOL_NAME.test(stream)) return stream;
    problems.push(`${at}: must be a stream name (letters, digits, '.', '_', '-'), got ${describe(item)}`);
    return undefined;
  });
  const accounts = list(raw.accounts, MAX_MATCH_NAMES, `${path}.accounts`, problems, (item, at) => {
    if (typeof item === 'string' && ACCOUNT_NAME.test(item.trim())) return item.trim().toLowerCase();
    problems.push(`${at}: must be an account name (letters, digits, '.', '_', '-'), got ${describe(item)}`);
    return undefined;
  });
  if (problems.length > before) return undefined;
  return {
    ...(domains ? { domains } : {}),
    ...(streams ? { streams } : {}),
    ...(accounts ? { accounts } : {}),
  };
}

/** A non-empty list (a single string counts as a list of one), deduplicated. */
function list(
  raw: unknown,
  max: number,
  path: string,
  problems: string[],
  item: (value: unknown, at: string) => string | undefined,
): string[] | undefined {
  if (raw === undefined) return undefined;
  const items = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(items) || items.length === 0) {
    problems.push(`${path}: must be a non-empty list`);
    return undefined;
  }
  if (items.length > max) {
    problems.push(`${path}: at most ${max} entries, got ${items.length}`);
    return undefined;
  }
  const out = new Set<string>();
  items.forEach((value, i) => {
    const parsed = item(value, Array.isArray(raw) ? `${path}[${i}]` : path);
    if (parsed !== undefined) out.add(parsed);
  });
  return [...out];
}

function parseFallback(raw: unknown, path: string, problems: string[]): string[] | undefined {
  if (raw === undefined) return [];
  const items = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(items)) {
    problems.push(`${path}: must be a list of route names`);
    return undefined;
  }
  if (items.length > MAX_FALLBACKS) {
    problems.push(`${path}: at most ${MAX_FALLBACKS} fallbacks, got ${items.length}`);
    return undefined;
  }
  const names: string[] = [];
  let ok = true;
  items.forEach((item, i) => {
    const at = Array.isArray(raw) ? `${path}[${i}]` : path;
    if (typeof item !== 'string' || !ROUTE_NAME.test(item)) {
      problems.push(`${at}: must be a route name, got ${describe(item)}`);
      ok = false;
    } else if (names.includes(item)) {
      problems.push(`${at}: ${item} is listed twice`);
      ok = false;
    } else names.push(item);
  });
  return ok ? names : undefined;
}

function parseSpan(
  raw: unknown,
  def: number,
  max: number,
  path: string,
  problems: string[],
): number | undefined {
  if (raw === undefined) return def;
  const ms = parseDuration(raw);
  if (ms === undefined || ms < 1000 || ms > max) {
    problems.push(
      `${path}: must be a duration from 1s to ${max / 3_600_000}h like 30s, 2m, 1h (bare number = seconds), got ${describe(raw)}`,
    );
    return undefined;
  }
  return ms;
}

/** Fallbacks that exist and form no cycle, routes that can be reached. */
function acrossRoutes(routes: readonly RouteSpec[]): string[] {
  const problems: string[] = [];
  const index = new Map(routes.map((route, i) => [route.name, i]));
  const place = (name: string) => `[${index.get(name)}] (route ${name})`;
  const names = [...index.keys()];
  const isFallback = new Set<string>();
  for (const route of routes) {
    route.fallback.forEach((target, i) => {
      if (target === route.name)
        problems.push(`${place(route.name)}.fallback[${i}]: a route cannot fall back to itself`);
      else if (!index.has(target)) {
        problems.push(
          `${place(route.name)}.fallback[${i}]: no route named "${target}" (routes: ${known(names)})`,
        );
      } else isFallback.add(target);
    });
  }
  if (problems.length > 0) return problems;
  const cycle = fallbackCycle(routes);
  if (cycle) {
    problems.push(
      `${place(cycle[0]!)}.fallback: fallbacks form a cycle ${cycle.join(' → ')}; a route down would never settle on one`,
    );
  }
  let catchAll: string | undefined;
  for (const route of routes) {
    if (route.match === undefined) {
      if (!isFallback.has(route.name)) {
        problems.push(
          `${place(route.name)}.match: a route without match is only used as a fallback, and no route names it in fallback`,
        );
      }
      continue;
    }
    if (catchAll !== undefined) {
      problems.push(
        `${place(route.name)}.match: never matched: ${place(catchAll)} before it takes all mail (drop match if it is only a fallback)`,
      );
    } else if (matchesAll(route.match)) catchAll = route.name;
  }
  return problems;
}

function matchesAll(match: RouteMatch): boolean {
  return (
    match.streams === undefined && match.accounts === undefined && (match.domains?.includes('*') ?? false)
  );
}
