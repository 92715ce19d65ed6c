/**
 * Loads the shipped shaping data (providers.yaml beside this file, or another file of the same
 * format) and validates it.
 *
 *   loadProviderData(path?)  → ProviderData; throws ProviderDataError listing every problem as
 *                              `<file>: providers.google.max_connections: must be …`
 *   shippedProviderData()    → the shipped file, read and validated once per process (it is
 *                              part of the release and never changes while we run)
 */

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseYaml } from '../../config/yaml.ts';
import { parseRules, type RuleSpec } from './rule-spec.ts';
import {
  checkKeys,
  isMapping,
  mergeProviders,
  type ProviderSpec,
  parseProviders,
  suffixConflicts,
} from './spec.ts';

export interface ProviderData {
  /** Every provider has its MX suffixes (the file must name them). */
  readonly providers: Readonly<Record<string, ProviderSpec & { readonly mx: readonly string[] }>>;
  readonly rules: readonly RuleSpec[];
}

export class ProviderDataError extends Error {
  readonly problems: readonly string[];
  constructor(file: string, problems: string[], options?: { cause?: unknown }) {
    super(`invalid shaping data in ${file}:\n${problems.map((p) => `  ${p}`).join('\n')}`, options);
    this.name = 'ProviderDataError';
    this.problems = problems;
  }
}

export const SHIPPED_PROVIDERS_FILE = fileURLToPath(new URL('./providers.yaml', import.meta.url));

/** Reads and validates a shaping data file. */
export function loadProviderData(file: string = SHIPPED_PROVIDERS_FILE): ProviderData {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ProviderDataError(file, [`cannot read the file (${(err as Error).message})`], { cause: err });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ProviderDataError(file, [`not valid YAML: ${(err as Error).message.split('\n')[0]}`], {
      cause: err,
    });
  }
  return parseProviderData(raw, file);
}

/** Validates the parsed YAML of a data file; `file` names it in the error. */
export function parseProviderData(raw: unknown, file: string): ProviderData {
  if (!isMapping(raw)) throw new ProviderDataError(file, ['must be a mapping with providers and rules']);
  const problems: string[] = [];
  checkKeys(raw, ['providers', 'rules'], '', problems);
  const providers = parseProviders(raw.providers, { path: 'providers', requireMx: true });
  const rules = parseRules(raw.rules, { path: 'rules' });
  if ('problems' in providers) problems.push(...providers.problems);
  if ('problems' in rules) problems.push(...rules.problems);
  if ('value' in providers)
    problems.push(...suffixConflicts(mergeProviders(providers.value, {}), 'providers'));
  if ('value' in rules) {
    const names = Object.keys('value' in providers ? providers.value : {});
    rules.value.forEach((rule, i) => {
      for (const name of 'providers' in rule ? (rule.providers ?? []) : []) {
        if (!names.includes(name)) problems.push(`rules[${i}].provider: no provider named ${name}`);
      }
    });
  }
  if (problems.length > 0 || !('value' in providers) || !('value' in rules)) {
    throw new ProviderDataError(
      file,
      problems.map((p) => p.replace(/^\./, '')),
    );
  }
  return {
    providers: providers.value as ProviderData['providers'],
    rules: rules.value as RuleSpec[],
  };
}

let shipped: ProviderData | undefined;

/** The shipped data, loaded on first use. */
export function shippedProviderData(): ProviderData {
  shipped ??= loadProviderData(SHIPPED_PROVIDERS_FILE);
  return shipped;
}
