/**
 * The written form of egress sources and pools (`egress.*` config keys) and its validation.
 *
 *   egress:
 *     sources:
 *       - { name: ip-1, address: 192.0.2.10, ehlo: mta1.example.com }
 *       - { name: ip-2, address: '2001:db8::10', ehlo: mta2.example.com,
 *           warmup: { start: 2026-12-01, daily: [50, 100, 200], hourly: [10, 20, 40], overflow: spill } }
 *     pools:
 *       default: [ip-1]                                   # a plain list: weight 1 each
 *       bulk: [{ source: ip-1, weight: 3 }, { source: ip-2 }]
 *     transactional_pool: default    # pool of transactional streams that name none
 *     broadcast_pool: bulk           # pool of broadcast streams that name none
 *     account_pools: { acme: bulk }  # account → pool for its streams that name none
 *
 * A source: `name` (letters, digits, `_ . : -`, as shaping's per-source limits name it),
 * `address` (the local IPv4 or IPv6 address to bind; '' = let the OS choose), `ehlo` (the name
 * it greets with; '' = `delivery.ehlo_name`, else `hostname`), optional `warmup` (warmup.ts).
 * A pool: a list of sources with weights (whole numbers, 0 = in the pool but sent nothing, e.g.
 * while draining an address). Pool names are those streams carry (lower case).
 *
 * Each parser returns `{ value }` or `{ problems }`, one line per problem starting with the place
 * below the key (`[1].address: …`, `.bulk[0].source: …`). Checks across keys (a pool naming a
 * source that does not exist) are in egressProblems.
 */

import { isIP } from 'node:net';
import { normalizeHost } from '../shaping/site.ts';
import { checkKeys, describe, isMapping, type Parsed } from '../shaping/spec.ts';
import { parseWarmup, type WarmupSchedule } from './warmup.ts';

export interface EgressSource {
  readonly name: string;
  /** Normalised IP literal; '' = the OS chooses. */
  readonly address: string;
  /** '' = the global EHLO name (`delivery.ehlo_name`, else `hostname`). */
  readonly ehlo: string;
  readonly warmup?: WarmupSchedule;
}

export interface PoolMember {
  readonly source: string;
  readonly weight: number;
}

export type Pools = Readonly<Record<string, readonly PoolMember[]>>;

/** The `egress` section of the frozen Config. */
export interface EgressConfig {
  readonly sources: readonly EgressSource[];
  readonly pools: Pools;
  readonly transactional_pool: string;
  readonly broadcast_pool: string;
  readonly account_pools: Readonly<Record<string, string>>;
}

export const MAX_SOURCES = 10_000;
export const MAX_POOLS = 1_000;
export const MAX_WEIGHT = 1_000_000;
export const MAX_ACCOUNT_POOLS = 100_000;

/** As shaping's `sources:` layers name them (delivery/shaping/spec.ts). */
export const SOURCE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$/;
/** As stream pools are stored (auth/streams.ts): lower case. */
export const POOL_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** As accounts are named (auth/accounts.ts); compared without case. */
export const ACCOUNT_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/i;

const SOURCE_KEYS = ['name', 'address', 'ehlo', 'warmup'];

/** Why `name` cannot name a pool, or undefined. */
export function poolNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return `must be a pool name, got ${describe(name)}`;
  if (POOL_NAME.test(name)) return undefined;
  if (POOL_NAME.test(name.toLowerCase())) return `pool names are lower case (as streams store them): ${name}`;
  return `"${name}" is not a pool name: 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit`;
}

export function parseSources(raw: unknown): Parsed<EgressSource[]> {
  if (!Array.isArray(raw)) {
    return { problems: [`: must be a list of sources like [{ name: ip-1, address: 192.0.2.10 }]`] };
  }
  if (raw.length === 0) return { problems: [": at least one source (address '' lets the OS choose)"] };
  if (raw.length > MAX_SOURCES) return { problems: [`: at most ${MAX_SOURCES} sources, got ${raw.length}`] };
  const problems: string[] = [];
  const sources: EgressSource[] = [];
  const names = new Map<string, number>();
  const addresses = new Map<string, number>();
  raw.forEach((entry, i) => {
    const place = `[${i}]`;
    if (!isMapping(entry)) {
      problems.push(`${place}: must be a mapping { name, address, ehlo?, warmup? }, got ${describe(entry)}`);
      return;
    }
    const before = problems.length;
    checkKeys(entry, SOURCE_KEYS, place, problems);
    const name = entry.name;
    if (typeof name !== 'string' || !SOURCE_NAME.test(name)) {
      problems.push(`${place}.name: must be a source name (letters, digits, _ . : -), got ${describe(name)}`);
    } else {
      const earlier = names.get(name.toLowerCase());
      if (earlier !== undefined)
        problems.push(`${place}.name: "${name}" is already the name of [${earlier}]`);
      else names.set(name.toLowerCase(), i);
    }
    const address = parseAddress(entry.address, `${place}.address`, problems);
    if (address) {
      const earlier = addresses.get(address);
      if (earlier !== undefined)
        problems.push(`${place}.address: ${address} is already the address of [${earlier}]`);
      else addresses.set(address, i);
    }
    const ehlo = parseEhlo(entry.ehlo, `${place}.ehlo`, problems);
    const warmup =
      entry.warmup === undefined ? undefined : parseWarmup(entry.warmup, `${place}.warmup`, problems);
    if (problems.length > before || typeof name !== 'string' || address === undefined || ehlo === undefined)
      return;
    sources.push({ name, address, ehlo, ...(warmup ? { warmup } : {}) });
  });
  return problems.length > 0 ? { problems } : { value: sources };
}

function parseAddress(raw: unknown, path: string, problems: string[]): string | undefined {
  if (raw === undefined || raw === '') return '';
  if (typeof raw !== 'string') {
    problems.push(
      `${path}: must be an IPv4 or IPv6 address, or '' to let the OS choose, got ${describe(raw)}`,
    );
    return undefined;
  }
  const text = raw.trim().replace(/^\[(.*)\]$/, '$1');
  const family = isIP(text);
  if (family === 0) {
    problems.push(`${path}: "${raw}" is not an IPv4 or IPv6 address (a host name cannot be bound)`);
    return undefined;
  }
  // A zone (`fe80::1%eth0`) names an interface, whose case matters.
  const zone = text.indexOf('%');
  const address = zone === -1 ? text.toLowerCase() : text.slice(0, zone).toLowerCase() + text.slice(zone);
  const unusable = unbindable(address, family);
  if (unusable) {
    problems.push(`${path}: ${address} ${unusable}`);
    return undefined;
  }
  return address;
}

/** Addresses that parse but cannot be a connection's source. */
function unbindable(address: string, family: number): string | undefined {
  if (family === 4) {
    const first = Number(address.split('.')[0]);
    if (address === '0.0.0.0') return "is the unspecified address; write '' to let the OS choose";
    if (address === '255.255.255.255' || (first >= 224 && first <= 239)) {
      return 'is a broadcast or multicast address';
    }
    return undefined;
  }
  if (/^(0*:)*:?0*$/.test(address) || address === '::') {
    return "is the unspecified address; write '' to let the OS choose";
  }
  if (/^ff[0-9a-f]{2}:/.test(address)) return 'is a multicast address';
  return undefined;
}

function parseEhlo(raw: unknown, path: string, problems: string[]): string | undefined {
  if (raw === undefined || raw === '') return '';
  const host = typeof raw === 'string' ? normalizeHost(raw) : undefined;
  if (host === undefined || !host.includes('.')) {
    problems.push(`${path}: must be a fully qualified host name (mta1.example.com), got ${describe(raw)}`);
    return undefined;
  }
  return host;
}

export function parsePools(raw: unknown): Parsed<Record<string, PoolMember[]>> {
  if (!isMapping(raw)) {
    return {
      problems: [': must be a mapping of pool name → list of sources, e.g. { default: [ip-1, ip-2] }'],
    };
  }
  const entries = Object.entries(raw);
  if (entries.length === 0) return { problems: [': at least one pool'] };
  if (entries.length > MAX_POOLS)
    return { problems: [`: at most ${MAX_POOLS} pools, got ${entries.length}`] };
  const problems: string[] = [];
  const pools: Record<string, PoolMember[]> = {};
  for (const [name, list] of entries) {
    const place = `.${name}`;
    const nameProblem = poolNameProblem(name);
    if (nameProblem) {
      problems.push(`${place}: ${nameProblem}`);
      continue;
    }
    const members = parseMembers(list, place, problems);
    if (members) pools[name] = members;
  }
  return problems.length > 0 ? { problems } : { value: pools };
}

function parseMembers(raw: unknown, place: string, problems: string[]): PoolMember[] | undefined {
  if (!Array.isArray(raw) || raw.length === 0) {
    problems.push(`${place}: must be a non-empty list of source names or { source, weight }`);
    return undefined;
  }
  if (raw.length > MAX_SOURCES) {
    problems.push(`${place}: at most ${MAX_SOURCES} sources, got ${raw.length}`);
    return undefined;
  }
  const before = problems.length;
  const members: PoolMember[] = [];
  const seen = new Map<string, number>();
  raw.forEach((item, i) => {
    const at = `${place}[${i}]`;
    let source: unknown = item;
    let weight: unknown = 1;
    if (isMapping(item)) {
      checkKeys(item, ['source', 'weight'], at, problems);
      source = item.source;
      weight = item.weight ?? 1;
    }
    if (typeof source !== 'string' || !SOURCE_NAME.test(source)) {
      problems.push(
        `${at}${isMapping(item) ? '.source' : ''}: must be a source name, got ${describe(source)}`,
      );
      return;
    }
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) {
      problems.push(`${at}.weight: must be a whole number from 0 to ${MAX_WEIGHT}, got ${describe(weight)}`);
      return;
    }
    const earlier = seen.get(source);
    if (earlier !== undefined) {
      problems.push(`${at}: ${source} is already in the pool (${place}[${earlier}])`);
      return;
    }
    seen.set(source, i);
    members.push({ source, weight });
  });
  if (problems.length > before) return undefined;
  if (members.every((m) => m.weight === 0)) {
    problems.push(`${place}: every weight is 0; a pool needs a source with weight ≥ 1 to send anything`);
    return undefined;
  }
  return members;
}

/** `account_pools`: account name → pool. Account names are compared without case. */
export function parseAccountPools(raw: unknown): Parsed<Record<string, string>> {
  if (raw === undefined || raw === null) return { value: {} };
  if (!isMapping(raw)) return { problems: [': must be a mapping of account name → pool name'] };
  const entries = Object.entries(raw);
  if (entries.length > MAX_ACCOUNT_POOLS) {
    return { problems: [`: at most ${MAX_ACCOUNT_POOLS} accounts, got ${entries.length}`] };
  }
  const problems: string[] = [];
  const map: Record<string, string> = {};
  const seen = new Map<string, string>();
  for (const [account, pool] of entries) {
    const place = `.${account}`;
    if (!ACCOUNT_NAME.test(account)) {
      problems.push(`${place}: not an account name (letters, digits, '.', '_', '-')`);
      continue;
    }
    const key = account.toLowerCase();
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      problems.push(`${place}: the same account as ${earlier} (names are compared without case)`);
      continue;
    }
    seen.set(key, account);
    const poolProblem = poolNameProblem(pool);
    if (poolProblem) problems.push(`${place}: ${poolProblem}`);
    else map[key] = pool as string;
  }
  return problems.length > 0 ? { problems } : { value: map };
}

/** The pool keys' default (one OS-chosen source in one pool). */
export const DEFAULT_SOURCES = [{ name: 'default', address: '' }];
export const DEFAULT_POOLS = { default: ['default'] };

/**
 * Checks across the egress keys once each is valid: pools name existing sources, the default
 * and per-account pools exist. Each line starts with the full key path.
 */
export function egressProblems(egress: EgressConfig): string[] {
  const problems: string[] = [];
  const sources = new Set(egress.sources.map((s) => s.name));
  const pools = Object.keys(egress.pools);
  const defaultPoolsOnly =
    pools.length === 1 && egress.pools.default?.length === 1 && egress.pools.default[0]?.source === 'default';
  if (defaultPoolsOnly && !sources.has('default')) {
    problems.push(
      `egress.pools: the default pool lists source "default", which egress.sources does not define; define egress.pools for your sources (e.g. default: [${[...sources].slice(0, 2).join(', ')}])`,
    );
  } else {
    for (const [name, members] of Object.entries(egress.pools)) {
      members.forEach((member, i) => {
        if (!sources.has(member.source)) {
          problems.push(
            `egress.pools.${name}[${i}]: no egress source named "${member.source}" (egress.sources: ${known([...sources])})`,
          );
        }
      });
    }
  }
  const poolSet = new Set(pools);
  for (const key of ['transactional_pool', 'broadcast_pool'] as const) {
    if (!poolSet.has(egress[key])) {
      problems.push(`egress.${key}: no pool named "${egress[key]}" (egress.pools: ${known(pools)})`);
    }
  }
  for (const [account, pool] of Object.entries(egress.account_pools)) {
    if (!poolSet.has(pool)) {
      problems.push(
        `egress.account_pools.${account}: no pool named "${pool}" (egress.pools: ${known(pools)})`,
      );
    }
  }
  return problems;
}

/** A list of names for a message, cut short when long. */
export function known(names: readonly string[]): string {
  return names.length <= 10
    ? names.join(', ')
    : `${names.slice(0, 10).join(', ')}, … (${names.length} in all)`;
}
