/**
 * The written form of shaping limits, providers and sites, shared by the shipped data file
 * (providers.yaml) and the operator's `shaping.*` config keys, and its validation.
 *
 * Every parser takes the raw YAML value and a path prefix and returns `{ value }` or
 * `{ problems }`, one line per problem starting with the place of the problem:
 * `.google.max_connections: must be a whole number ≥ 1, got 0`. The config loader prefixes the
 * key (`shaping.providers.google.max_connections: …`), the data-file loader the file name.
 *
 * A limits entry (the same keys wherever limits are written):
 *
 *   max_connections: 10                  # concurrent connections per (egress source, site)
 *   max_messages_per_connection: 50      # transactions on one connection, then a new one
 *   max_message_rate: [10/s, 5000/h]     # one rate or a list, at most one per window;
 *                                        # replaces inherited rates as a whole ([] = none)
 *   max_new_connections_per_minute: 30   # connections opened per minute per (source, site)
 *   tls: required                        # required | opportunistic; unset = delivery.starttls
 *   sources:                             # the same keys for one egress source only
 *     ip-203-0-113-7: { max_connections: 2 }
 *
 * Values are plain data (no RegExp, no class instances) so the frozen config can cross to the
 * delivery thread as it is.
 */

import { HOUR, MINUTE, parseRate, SECOND } from './rate.ts';
import { normalizeHosts, normalizeSuffix } from './site.ts';

export type TlsPolicy = 'required' | 'opportunistic';

/** Messages per window; any subset. */
export interface MessageRates {
  readonly perSecond?: number;
  readonly perMinute?: number;
  readonly perHour?: number;
}

/** One layer of limits: each field set overrides the same field of the layers below. */
export interface LimitsLayer {
  readonly maxConnections?: number;
  readonly maxMessagesPerConnection?: number;
  /** Replaces the inherited rates as a whole when set (`{}` = no rate limit). */
  readonly rates?: MessageRates;
  readonly maxNewConnectionsPerMinute?: number;
  readonly tls?: TlsPolicy;
}

export interface LimitsSpec extends LimitsLayer {
  /** Layers for single egress sources (by source name), applied after this entry's own. */
  readonly sources?: Readonly<Record<string, LimitsLayer>>;
}

export interface ProviderSpec {
  /** MX host suffixes; may be left out when overriding a shipped provider's limits only. */
  readonly mx?: readonly string[];
  readonly limits: LimitsSpec;
}

export type Parsed<T> = { value: T } | { problems: string[] };

/** Upper bounds: beyond them a value is a typo, and would only switch the limit off. */
export const LIMIT_MAX = {
  maxConnections: 10_000,
  maxMessagesPerConnection: 1_000_000,
  maxNewConnectionsPerMinute: 1_000_000,
} as const;

const LIMIT_KEYS = [
  'max_connections',
  'max_messages_per_connection',
  'max_message_rate',
  'max_new_connections_per_minute',
  'tls',
] as const;

const PROVIDER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const SOURCE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$/;

export function isMapping(raw: unknown): raw is Record<string, unknown> {
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw);
}

export function describe(raw: unknown): string {
  return JSON.stringify(raw) ?? String(raw);
}

/** Pushes `path: unknown key (known: …)` for every key not in `known`. */
export function checkKeys(
  raw: Record<string, unknown>,
  known: readonly string[],
  path: string,
  problems: string[],
): void {
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) problems.push(`${path}.${key}: unknown key (known: ${known.join(', ')})`);
  }
}

/** A whole number in [1, max]; digit strings are accepted (quoted YAML). */
export function wholeNumber(raw: unknown, max: number, path: string, problems: string[]): number | undefined {
  const n = typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    problems.push(`${path}: must be a whole number ≥ 1, got ${describe(raw)}`);
    return undefined;
  }
  if (n > max) {
    problems.push(`${path}: must be at most ${max}, got ${describe(raw)}`);
    return undefined;
  }
  return n;
}

function parseRates(raw: unknown, path: string, problems: string[]): MessageRates | undefined {
  const items = Array.isArray(raw) ? raw : [raw];
  const rates: { perSecond?: number; perMinute?: number; perHour?: number } = {};
  const field = { [SECOND]: 'perSecond', [MINUTE]: 'perMinute', [HOUR]: 'perHour' } as const;
  let ok = true;
  items.forEach((item, i) => {
    const place = Array.isArray(raw) ? `${path}[${i}]` : path;
    const parsed = parseRate(item);
    if ('problem' in parsed) {
      problems.push(`${place}: ${parsed.problem}`);
      ok = false;
      return;
    }
    const name = field[parsed.rate.perMs as keyof typeof field];
    if (rates[name] !== undefined) {
      problems.push(`${place}: a second rate for the same window (one per second, minute and hour)`);
      ok = false;
      return;
    }
    rates[name] = parsed.rate.count;
  });
  return ok ? rates : undefined;
}

function parseLayer(
  raw: Record<string, unknown>,
  path: string,
  problems: string[],
): { -readonly [K in keyof LimitsLayer]: LimitsLayer[K] } {
  const layer: { -readonly [K in keyof LimitsLayer]: LimitsLayer[K] } = {};
  const set = <K extends keyof LimitsLayer>(key: K, value: LimitsLayer[K] | undefined) => {
    if (value !== undefined) layer[key] = value;
  };
  if (raw.max_connections !== undefined) {
    set(
      'maxConnections',
      wholeNumber(raw.max_connections, LIMIT_MAX.maxConnections, `${path}.max_connections`, problems),
    );
  }
  if (raw.max_messages_per_connection !== undefined) {
    set(
      'maxMessagesPerConnection',
      wholeNumber(
        raw.max_messages_per_connection,
        LIMIT_MAX.maxMessagesPerConnection,
        `${path}.max_messages_per_connection`,
        problems,
      ),
    );
  }
  if (raw.max_message_rate !== undefined) {
    set('rates', parseRates(raw.max_message_rate, `${path}.max_message_rate`, problems));
  }
  if (raw.max_new_connections_per_minute !== undefined) {
    set(
      'maxNewConnectionsPerMinute',
      wholeNumber(
        raw.max_new_connections_per_minute,
        LIMIT_MAX.maxNewConnectionsPerMinute,
        `${path}.max_new_connections_per_minute`,
        problems,
      ),
    );
  }
  if (raw.tls !== undefined) {
    if (raw.tls === 'required' || raw.tls === 'opportunistic') layer.tls = raw.tls;
    else problems.push(`${path}.tls: must be required or opportunistic, got ${describe(raw.tls)}`);
  }
  return layer;
}

/**
 * A limits entry; `extraKeys` are the other keys the caller allows in the same mapping (`mx`
 * for providers), which this parser leaves alone.
 */
export function parseLimits(
  raw: Record<string, unknown>,
  path: string,
  problems: string[],
  extraKeys: readonly string[] = [],
): LimitsSpec {
  checkKeys(raw, [...LIMIT_KEYS, 'sources', ...extraKeys], path, problems);
  const layer = parseLayer(raw, path, problems);
  if (raw.sources === undefined) return layer;
  if (!isMapping(raw.sources)) {
    problems.push(`${path}.sources: must be a mapping of egress source name → limits`);
    return layer;
  }
  const sources: Record<string, LimitsLayer> = {};
  for (const [name, entry] of Object.entries(raw.sources)) {
    const place = `${path}.sources.${name}`;
    if (!SOURCE_NAME.test(name)) {
      problems.push(`${place}: not an egress source name (letters, digits, _ . : -)`);
      continue;
    }
    if (!isMapping(entry)) {
      problems.push(`${place}: must be a mapping of limits, got ${describe(entry)}`);
      continue;
    }
    checkKeys(entry, LIMIT_KEYS, place, problems);
    sources[name] = parseLayer(entry, place, problems);
  }
  return { ...layer, sources };
}

/** `mx: [google.com, .googlemail.com]` → normalised suffixes. */
function parseMx(raw: unknown, path: string, problems: string[]): string[] | undefined {
  const items = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(items) || items.length === 0) {
    problems.push(`${path}: must be a list of MX host suffixes like [google.com], got ${describe(raw)}`);
    return undefined;
  }
  const suffixes: string[] = [];
  items.forEach((item, i) => {
    const suffix = typeof item === 'string' ? normalizeSuffix(item) : undefined;
    if (suffix === undefined) {
      problems.push(
        `${path}[${i}]: must be a host name suffix with at least two labels (google.com), got ${describe(item)}`,
      );
    } else if (!suffixes.includes(suffix)) suffixes.push(suffix);
  });
  return suffixes;
}

/**
 * A map of providers: `name → { mx: [...], ...limits }`. With `requireMx`, every provider must
 * name its MX suffixes (the data file); otherwise only those not in `known` must (the config,
 * which may override a shipped provider's limits without repeating its MX suffixes).
 */
export function parseProviders(
  raw: unknown,
  options: { path: string; requireMx: boolean; known?: readonly string[] },
): Parsed<Record<string, ProviderSpec>> {
  const { path } = options;
  if (raw === undefined || raw === null) return { value: {} };
  if (!isMapping(raw)) return { problems: [`${path}: must be a mapping of provider name → settings`] };
  const problems: string[] = [];
  const providers: Record<string, ProviderSpec> = {};
  for (const [name, entry] of Object.entries(raw)) {
    const place = `${path}.${name}`;
    if (!PROVIDER_NAME.test(name)) {
      problems.push(`${place}: provider names are lower-case letters, digits, - and _`);
      continue;
    }
    if (!isMapping(entry)) {
      problems.push(`${place}: must be a mapping (mx and limits), got ${describe(entry)}`);
      continue;
    }
    const limits = parseLimits(entry, place, problems, ['mx']);
    let mx: string[] | undefined;
    if (entry.mx !== undefined) mx = parseMx(entry.mx, `${place}.mx`, problems);
    else if (options.requireMx || !options.known?.includes(name)) {
      const known = options.known?.length ? ` (shipped providers: ${options.known.join(', ')})` : '';
      problems.push(`${place}.mx: required for a new provider${known}`);
    }
    providers[name] = mx ? { mx, limits } : { limits };
  }
  return problems.length > 0 ? { problems } : { value: providers };
}

/** A provider with its MX suffixes and limits after shipped data and config are merged. */
export interface MergedProvider {
  readonly name: string;
  readonly mx: readonly string[];
  readonly limits: LimitsSpec;
}

/** Operator entries over shipped ones: MX suffixes replaced when given, limits field by field. */
export function mergeProviders(
  shipped: Readonly<Record<string, ProviderSpec>>,
  operator: Readonly<Record<string, ProviderSpec>>,
): MergedProvider[] {
  const names = [...new Set([...Object.keys(shipped), ...Object.keys(operator)])];
  return names.map((name) => {
    const base = shipped[name];
    const over = operator[name];
    return {
      name,
      mx: over?.mx ?? base?.mx ?? [],
      limits: overlayLimits(base?.limits ?? {}, over?.limits ?? {}),
    };
  });
}

/** Field-wise overlay, sources merged per source. */
export function overlayLimits(base: LimitsSpec, over: LimitsSpec): LimitsSpec {
  const { sources: baseSources, ...baseLayer } = base;
  const { sources: overSources, ...overLayer } = over;
  const merged: { -readonly [K in keyof LimitsSpec]: LimitsSpec[K] } = { ...baseLayer, ...overLayer };
  if (baseSources || overSources) {
    const sources: Record<string, LimitsLayer> = { ...baseSources };
    for (const [name, layer] of Object.entries(overSources ?? {})) {
      sources[name] = { ...sources[name], ...layer };
    }
    merged.sources = sources;
  }
  return merged;
}

/** Problems when two providers claim the same MX suffix (the rollup would be ambiguous). */
export function suffixConflicts(providers: readonly MergedProvider[], path: string): string[] {
  const owner = new Map<string, string>();
  const problems: string[] = [];
  for (const provider of providers) {
    for (const suffix of provider.mx) {
      const other = owner.get(suffix);
      if (other !== undefined && other !== provider.name) {
        problems.push(`${path}.${provider.name}.mx: ${suffix} is already claimed by provider ${other}`);
      } else owner.set(suffix, provider.name);
    }
  }
  return problems;
}

/** A `shaping.sites` entry: what it applies to, and its limits. */
export interface SiteSpec {
  /** `key`: the site key exactly (a host set or `host:name:port`); `suffix`: any MX host under it. */
  readonly match: 'key' | 'suffix';
  /** Normalised: `mx1.a.test,mx2.a.test`, `host:relay.example:587` or `example.net`. */
  readonly site: string;
  /** The key as the operator wrote it, for messages. */
  readonly written: string;
  readonly limits: LimitsSpec;
}

/**
 * `shaping.sites`: `site key or MX host suffix → limits`. Keys: `mx1.a.test,mx2.a.test` (that
 * exact host set, any order and case), `host:relay.example:587` (a smarthost route) or a single
 * host name (`example.net`: every site with an MX host equal to or under it). Provider sites
 * are configured under `shaping.providers`.
 */
export function parseSites(raw: unknown, path = ''): Parsed<SiteSpec[]> {
  if (raw === undefined || raw === null) return { value: [] };
  if (!isMapping(raw)) return { problems: [`${path}: must be a mapping of site → limits`] };
  const problems: string[] = [];
  const sites: SiteSpec[] = [];
  const seen = new Map<string, string>();
  for (const [key, entry] of Object.entries(raw)) {
    const place = `${path}.${key}`;
    const parsed = parseSiteKey(key);
    if ('problem' in parsed) {
      problems.push(`${place}: ${parsed.problem}`);
      continue;
    }
    const earlier = seen.get(`${parsed.match} ${parsed.site}`);
    if (earlier !== undefined) {
      problems.push(`${place}: the same site as ${earlier}`);
      continue;
    }
    seen.set(`${parsed.match} ${parsed.site}`, key);
    if (!isMapping(entry)) {
      problems.push(`${place}: must be a mapping of limits, got ${describe(entry)}`);
      continue;
    }
    sites.push({ ...parsed, written: key, limits: parseLimits(entry, place, problems) });
  }
  return problems.length > 0 ? { problems } : { value: sites };
}

function parseSiteKey(key: string): { match: 'key' | 'suffix'; site: string } | { problem: string } {
  if (key.startsWith('provider:')) {
    return { problem: `configure provider sites under shaping.providers.${key.slice('provider:'.length)}` };
  }
  const smarthost = /^host:(.+):(\d{1,5})$/.exec(key);
  if (smarthost) {
    const port = Number(smarthost[2]);
    const host = normalizeSuffix(smarthost[1]!) ?? undefined;
    if (host === undefined || port < 1 || port > 65535) {
      return { problem: 'a smarthost site is host:<host name>:<port>, e.g. host:relay.example:587' };
    }
    return { match: 'key', site: `host:${host}:${port}` };
  }
  if (key.includes(',')) {
    try {
      return { match: 'key', site: normalizeHosts(key.split(',')).join(',') };
    } catch (err) {
      return { problem: `a site key is a comma-separated list of MX hosts: ${(err as Error).message}` };
    }
  }
  const suffix = normalizeSuffix(key);
  if (suffix === undefined) {
    return { problem: 'must be an MX host name or suffix (example.net), a host list or host:<name>:<port>' };
  }
  return { match: 'suffix', site: suffix };
}
