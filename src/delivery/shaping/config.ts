/**
 * The `shaping.*` config keys: their parsers (used by config/schema.ts `dataLeaf`s) and the
 * checks between them (used by its `relations`). Problems start with the place below the key,
 * as config/load.ts expects: `.google.max_connections: …`, `[2] (rule "x").match.text: …`.
 *
 *   shaping:
 *     providers:                         # add providers or override shipped ones (providers.yaml)
 *       google: { max_connections: 5, sources: { ip-b: { max_connections: 2 } } }
 *       mailbox-org: { mx: [mailbox.org], max_connections: 5, max_message_rate: 10/s }
 *     sites:                             # MX host suffix, exact MX host set or smarthost → limits
 *       example.net: { max_messages_per_connection: 10 }
 *       'mx1.a.test,mx2.a.test': { max_connections: 2 }
 *       'host:relay.example:587': { max_connections: 50, tls: required }
 *     rules:                             # added to the shipped rules; same name replaces one
 *       - { name: busy, match: { code: 421, text: 'too busy' }, action: throttle, rate: 10/min, duration: 30m }
 *       - { name: generic-421-try-again-later, enabled: false }
 *     circuit: { failures: 5, backoff: 5m, jitter: 20% }
 *
 * The providers and rules parsers consult the shipped data file, so that overriding a shipped
 * provider need not repeat its MX suffixes, a new provider cannot claim a shipped one's suffix,
 * and only shipped rules can be switched off.
 */

import { shippedProviderData } from './provider-data.ts';
import { type DisabledRule, parseRules, type RuleSpec } from './rule-spec.ts';
import { hostHasSuffix } from './site.ts';
import {
  describe,
  isMapping,
  mergeProviders,
  type Parsed,
  type ProviderSpec,
  parseProviders,
  parseSites,
  type SiteSpec,
  suffixConflicts,
} from './spec.ts';

/** The `shaping` section of the frozen Config. */
export interface ShapingConfig {
  readonly providers: Readonly<Record<string, ProviderSpec>>;
  readonly sites: readonly SiteSpec[];
  readonly rules: readonly (RuleSpec | DisabledRule)[];
  readonly circuit: { readonly failures: number; readonly backoff: number; readonly jitter: number };
}

/**
 * Overrides are checked against the shipped data. None (the default) needs no check, so a CLI
 * command does not read and parse the shipped file for nothing.
 */
export function parseProvidersKey(raw: unknown): Parsed<Record<string, ProviderSpec>> {
  if (raw === undefined || raw === null || (isMapping(raw) && Object.keys(raw).length === 0)) {
    return { value: {} };
  }
  const shipped = shippedProviderData().providers;
  const parsed = parseProviders(raw, { path: '', requireMx: false, known: Object.keys(shipped) });
  if ('problems' in parsed) return parsed;
  const conflicts = suffixConflicts(mergeProviders(shipped, parsed.value), '');
  return conflicts.length > 0 ? { problems: conflicts } : parsed;
}

export function parseSitesKey(raw: unknown): Parsed<SiteSpec[]> {
  return parseSites(raw, '');
}

/** Like the providers: no rules added (the default) need no check against the shipped ones. */
export function parseRulesKey(raw: unknown): Parsed<(RuleSpec | DisabledRule)[]> {
  if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) return { value: [] };
  return parseRules(raw, { path: '', shipped: shippedProviderData().rules.map((rule) => rule.name) });
}

/** `0.2`, `20%` or `0` → a fraction in [0, 1). */
export function parseJitterKey(raw: unknown): Parsed<number> {
  let value: number | undefined;
  if (typeof raw === 'number') value = raw;
  else if (typeof raw === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/.exec(raw);
    if (match) value = Number(match[1]) / (match[2] === '%' ? 100 : 1);
  }
  if (value === undefined || !Number.isFinite(value) || value < 0 || value >= 1) {
    return {
      problems: [`: must be a fraction below 1 like 0.2 or a percentage like 20%, got ${describe(raw)}`],
    };
  }
  return { value };
}

/**
 * Checks across the shaping keys once each is valid: a `sites` suffix that a provider claims
 * (it would never apply: provider sites take provider limits), rules naming unknown providers.
 */
export function shapingProblems(shaping: ShapingConfig): string[] {
  // Nothing to check against the providers (and no reason to load their data file).
  if (shaping.sites.length === 0 && shaping.rules.length === 0) return [];
  const providers = mergeProviders(shippedProviderData().providers, shaping.providers);
  const problems: string[] = [];
  for (const entry of shaping.sites) {
    if (entry.match !== 'suffix') continue;
    const owner = providers.find((provider) =>
      provider.mx.some((suffix) => hostHasSuffix(entry.site, suffix)),
    );
    if (owner) {
      problems.push(
        `shaping.sites.${entry.written}: MX hosts under ${entry.site} belong to provider ${owner.name}; set its limits under shaping.providers.${owner.name}`,
      );
    }
  }
  const names = providers.map((provider) => provider.name);
  shaping.rules.forEach((rule, i) => {
    for (const name of 'providers' in rule ? (rule.providers ?? []) : []) {
      if (!names.includes(name)) {
        problems.push(`shaping.rules[${i}].provider: no provider named ${name} (known: ${names.join(', ')})`);
      }
    }
  });
  return problems;
}
