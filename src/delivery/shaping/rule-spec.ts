/**
 * The written form of adaptive rules (providers.yaml `rules:` and the `shaping.rules` key) and
 * its validation. adaptive.ts compiles the result and applies it.
 *
 *   - name: yahoo-tss04                 # unique; a config rule with a shipped rule's name replaces it
 *     provider: yahoo                   # optional: only replies from this provider's sites (or a list)
 *     match:                            # every matcher given must match (at least one)
 *       code: 421                       # a reply code, or a regex matched against all three digits
 *       enhanced: '4\.7\.0'             # regex matched against the whole enhanced code (4.7.0)
 *       text: '\[TSS?04\]'              # regex searched in the reply text, case-insensitive
 *     action: suspend_site              # throttle | suspend_site | suspend_stream | suspend_account
 *     rate: 1/min                       # throttle only: the rate while the throttle holds
 *     duration: 4h                      # how long the action holds after it triggered
 *     threshold: 3/h                    # optional: only the 3rd match within an hour triggers
 *
 *   - name: generic-421-try-again-later # switch a shipped rule off
 *     enabled: false
 *
 * Regexes are stored as their source text (the config stays plain data) and compiled once here
 * to report a broken one at start-up, naming the rule.
 */

import { formatDuration, parseDuration } from '../../config/duration.ts';
import { formatRate, parseRate, type Rate } from './rate.ts';
import { checkKeys, describe, isMapping, type Parsed } from './spec.ts';

export type RuleActionKind = 'throttle' | 'suspend_site' | 'suspend_stream' | 'suspend_account';

export const RULE_ACTIONS: readonly RuleActionKind[] = [
  'throttle',
  'suspend_site',
  'suspend_stream',
  'suspend_account',
];

export interface RuleMatchSpec {
  /** Regex source matched against the whole three-digit code (`421`, `4\d\d`). */
  readonly code?: string;
  /** Regex source matched against the whole enhanced status code (`4\.7\.28`). */
  readonly enhanced?: string;
  /** Regex source searched in the reply text, case-insensitive. */
  readonly text?: string;
}

export interface RuleSpec {
  readonly name: string;
  /** Only replies from sites of these providers; undefined = every site. */
  readonly providers?: readonly string[];
  readonly match: RuleMatchSpec;
  readonly action: RuleActionKind;
  /** The throttle's rate (action throttle only). */
  readonly rate?: Rate;
  readonly durationMs: number;
  /** Matches needed within the window before the action triggers; undefined = the first. */
  readonly threshold?: Rate;
}

/** A config entry that switches a shipped rule off by name. */
export interface DisabledRule {
  readonly name: string;
  readonly enabled: false;
}

/** Longest action: beyond this it is not shaping but a decision for a person (pause the account). */
export const MAX_RULE_DURATION_MS = 30 * 86_400_000;
/** Longest regex source; a rule is a pattern, not a program. */
export const MAX_REGEX_LENGTH = 1000;

const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const RULE_KEYS = ['name', 'enabled', 'provider', 'match', 'action', 'rate', 'duration', 'threshold'];
const MATCH_KEYS = ['code', 'enhanced', 'text'];

/** Compiles a rule regex the way adaptive.ts does; anchored for code and enhanced code. */
export function compileMatcher(field: keyof RuleMatchSpec, source: string): RegExp {
  return field === 'text' ? new RegExp(source, 'i') : new RegExp(`^(?:${source})$`);
}

/**
 * A list of rules. `shipped` names the rules of the data file: a config entry may switch one
 * off (`enabled: false`) or replace it by using its name; without `shipped` (the data file
 * itself) names must be unique and every rule complete.
 */
export function parseRules(
  raw: unknown,
  options: { path: string; shipped?: readonly string[] },
): Parsed<(RuleSpec | DisabledRule)[]> {
  const { path } = options;
  if (raw === undefined || raw === null) return { value: [] };
  if (!Array.isArray(raw)) return { problems: [`${path}: must be a list of rules`] };
  const problems: string[] = [];
  const rules: (RuleSpec | DisabledRule)[] = [];
  const names = new Set<string>();
  raw.forEach((entry, i) => {
    const place = `${path}[${i}]`;
    if (!isMapping(entry)) {
      problems.push(`${place}: must be a mapping (name, match, action, duration…), got ${describe(entry)}`);
      return;
    }
    const name = entry.name;
    if (typeof name !== 'string' || !RULE_NAME.test(name)) {
      problems.push(`${place}.name: required: letters, digits, _ . - (got ${describe(name)})`);
      return;
    }
    const label = `${place} (rule "${name}")`;
    if (names.has(name)) {
      problems.push(`${label}: a second rule with this name`);
      return;
    }
    names.add(name);
    checkKeys(entry, RULE_KEYS, label, problems);
    if (entry.enabled !== undefined && typeof entry.enabled !== 'boolean') {
      problems.push(`${label}.enabled: must be true or false, got ${describe(entry.enabled)}`);
      return;
    }
    if (entry.enabled === false) {
      if (options.shipped === undefined)
        problems.push(`${label}.enabled: false is for switching a shipped rule off in the config`);
      else if (!options.shipped.includes(name)) {
        problems.push(
          `${label}.enabled: no shipped rule has this name (shipped: ${options.shipped.join(', ')})`,
        );
      } else rules.push({ name, enabled: false });
      return;
    }
    const rule = parseRule(entry, name, label, problems);
    if (rule) rules.push(rule);
  });
  return problems.length > 0 ? { problems } : { value: rules };
}

function parseRule(
  entry: Record<string, unknown>,
  name: string,
  label: string,
  problems: string[],
): RuleSpec | undefined {
  const before = problems.length;
  const providers = parseProviderNames(entry.provider, `${label}.provider`, problems);
  const match = parseMatch(entry.match, `${label}.match`, problems);

  const action = entry.action;
  if (!RULE_ACTIONS.includes(action as RuleActionKind)) {
    problems.push(`${label}.action: must be one of ${RULE_ACTIONS.join(', ')}, got ${describe(action)}`);
  }
  let rate: Rate | undefined;
  if (action === 'throttle') {
    if (entry.rate === undefined) problems.push(`${label}.rate: required for action throttle (e.g. 10/min)`);
    else {
      const parsed = parseRate(entry.rate);
      if ('problem' in parsed) problems.push(`${label}.rate: ${parsed.problem}`);
      else rate = parsed.rate;
    }
  } else if (entry.rate !== undefined) {
    problems.push(`${label}.rate: only action throttle takes a rate`);
  }

  const durationMs = parseDuration(entry.duration);
  if (entry.duration === undefined) problems.push(`${label}.duration: required (e.g. 30m, 4h)`);
  else if (durationMs === undefined || durationMs <= 0) {
    problems.push(`${label}.duration: must be a duration like 30m, 4h, 1d, got ${describe(entry.duration)}`);
  } else if (durationMs > MAX_RULE_DURATION_MS) {
    problems.push(`${label}.duration: must be at most 30d, got ${describe(entry.duration)}`);
  }

  let threshold: Rate | undefined;
  if (entry.threshold !== undefined) {
    const parsed = parseRate(entry.threshold);
    if ('problem' in parsed) {
      problems.push(`${label}.threshold: matches per window, ${parsed.problem.replace(/^must be /, '')}`);
    } else threshold = parsed.rate;
  }

  if (problems.length > before || match === undefined || durationMs === undefined) return undefined;
  return {
    name,
    ...(providers ? { providers } : {}),
    match,
    action: action as RuleActionKind,
    ...(rate ? { rate } : {}),
    durationMs,
    ...(threshold ? { threshold } : {}),
  };
}

function parseProviderNames(raw: unknown, path: string, problems: string[]): string[] | undefined {
  if (raw === undefined) return undefined;
  const items = typeof raw === 'string' ? [raw] : raw;
  if (
    !Array.isArray(items) ||
    items.length === 0 ||
    !items.every((x) => typeof x === 'string' && /^[a-z0-9][a-z0-9_-]{0,62}$/.test(x))
  ) {
    problems.push(`${path}: must be a provider name or a list of them, got ${describe(raw)}`);
    return undefined;
  }
  return items as string[];
}

function parseMatch(raw: unknown, path: string, problems: string[]): RuleMatchSpec | undefined {
  if (!isMapping(raw) || !MATCH_KEYS.some((key) => raw[key] !== undefined)) {
    problems.push(`${path}: must give at least one of code, enhanced, text, got ${describe(raw)}`);
    return undefined;
  }
  checkKeys(raw, MATCH_KEYS, path, problems);
  const match: { -readonly [K in keyof RuleMatchSpec]: RuleMatchSpec[K] } = {};
  for (const field of MATCH_KEYS as (keyof RuleMatchSpec)[]) {
    const value = raw[field];
    if (value === undefined) continue;
    let source: string;
    if (field === 'code' && typeof value === 'number') {
      if (!Number.isInteger(value) || value < 200 || value > 599) {
        problems.push(`${path}.code: must be a reply code 200–599 or a regex, got ${describe(value)}`);
        continue;
      }
      source = String(value);
    } else if (typeof value === 'string' && value !== '') {
      source = value;
    } else {
      problems.push(`${path}.${field}: must be a regular expression (text), got ${describe(value)}`);
      continue;
    }
    if (source.length > MAX_REGEX_LENGTH) {
      problems.push(`${path}.${field}: longer than ${MAX_REGEX_LENGTH} characters`);
      continue;
    }
    try {
      compileMatcher(field, source);
    } catch (err) {
      problems.push(`${path}.${field}: not a valid regular expression: ${(err as Error).message}`);
      continue;
    }
    match[field] = source;
  }
  return match;
}

/** One line per rule, for logs and `queue summary`: `yahoo-tss04: suspend_site 4h`. */
export function describeRule(rule: RuleSpec): string {
  const action = rule.action === 'throttle' && rule.rate ? `throttle ${formatRate(rule.rate)}` : rule.action;
  return `${rule.name}: ${action} for ${formatDuration(rule.durationMs)}`;
}

/**
 * Shipped rules with the operator's on top: same name replaces, `enabled: false` removes, new
 * names are added after the shipped ones.
 */
export function mergeRules(
  shipped: readonly RuleSpec[],
  operator: readonly (RuleSpec | DisabledRule)[],
): RuleSpec[] {
  const byName = new Map(operator.map((rule) => [rule.name, rule]));
  const merged: RuleSpec[] = [];
  for (const rule of shipped) {
    const over = byName.get(rule.name);
    if (over === undefined) merged.push(rule);
    else if (!('enabled' in over)) merged.push(over);
  }
  const shippedNames = new Set(shipped.map((rule) => rule.name));
  for (const rule of operator) {
    if (!shippedNames.has(rule.name) && !('enabled' in rule)) merged.push(rule);
  }
  return merged;
}
