/**
 * One classifier for every failure we learn about: an SMTP reply during delivery
 * (synchronous) and a bounce that comes back later (asynchronous: a DSN's Status and
 * Diagnostic-Code, or the text of a non-standard bounce).
 *
 * The order of evidence:
 *
 *   1. the rules of `rules.yaml` (regex → category), first match wins: they exist because
 *      receivers reuse generic codes (`550 5.7.1` is a blocklist, a spam verdict, a DMARC
 *      failure or a closed relay depending on the words after it);
 *   2. the enhanced status code (RFC 3463, the IANA registry of RFC 5248), exact detail
 *      first, then its subject (X.7.* is policy);
 *   3. the basic reply code (RFC 5321 §4.2.3);
 *   4. `other`.
 *
 * `permanent` follows the class of the code when there is one (5 → hard, 4 → soft: RFC 3463
 * §3.1, the receiver's own word on whether retrying can help); a rule may pin it; without
 * any code the category's default from `rules.yaml` decides.
 */
import { readFileSync } from 'node:fs';
import { parseYaml } from '../config/yaml.ts';

export const CATEGORIES = [
  'unknown_user',
  'unknown_domain',
  'mailbox_full',
  'mailbox_disabled',
  'message_too_large',
  'content_rejected',
  'reputation_block',
  'auth_failure',
  'policy',
  'rate_limited',
  'network',
  'system',
  'protocol',
  'expired',
  'other',
] as const;

export type BounceCategory = (typeof CATEGORIES)[number];

export interface ClassifyInput {
  /** Basic SMTP reply code (550), when known. */
  code?: number;
  /** RFC 3463 status (5.1.1), when known. */
  enhanced?: string;
  /** The reply or diagnostic text; may still start with the codes. */
  text: string;
}

export interface Classification {
  category: BounceCategory;
  /** Hard bounce: retrying the same message to this recipient will not help. */
  permanent: boolean;
  /** The `id` of the rule that decided the category, when one did. */
  rule?: string;
}

export interface BounceRule {
  id: string;
  category: BounceCategory;
  /** Tested case-insensitively against the text (matches anything for a status-only rule). */
  pattern: RegExp;
  /** Only for these enhanced-code prefixes ('5.7', '4.2.2'); any when absent. */
  status?: readonly string[];
  /** Pins hard/soft whatever the code class says. */
  permanent?: boolean;
}

export interface RuleSet {
  /** Where the rules came from, for messages. */
  source: string;
  /** Hard (true) or soft (false) when there is no code class to go by. */
  defaults: Readonly<Record<BounceCategory, boolean>>;
  rules: readonly BounceRule[];
}

export type Classifier = (input: ClassifyInput) => Classification;

/** A rule file that cannot be used; the message names the file and the rule. */
export class BounceRulesError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BounceRulesError';
  }
}

export const DEFAULT_RULES_FILE = new URL('./rules.yaml', import.meta.url);

/** Longer diagnostics are cut before the rules see them: rule regexes are operator-written. */
const MAX_TEXT = 4096;
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})$/;
// A reply as it may reach us whole: `550 5.1.1 text`, `550-5.1.1 text`, `#550 5.1.1 text`.
const LEADING_REPLY = /^\s*#?([245]\d\d)(?:[ -]+#?([245]\.\d{1,3}\.\d{1,3})(?![\d.]))?(?=[\s-]|$)/;
const LEADING_ENHANCED = /^\s*#?([245]\.\d{1,3}\.\d{1,3})(?![\d.])/;

/**
 * Enhanced status details (RFC 3463 §3, RFC 5248 registry). Keys are `subject.detail`;
 * a `class.subject.detail` key wins where the class changes the meaning.
 */
const BY_ENHANCED: Readonly<Record<string, BounceCategory>> = {
  '1.1': 'unknown_user', // bad destination mailbox address
  '1.2': 'unknown_domain', // bad destination system address
  '1.3': 'unknown_user', // bad destination mailbox address syntax
  '1.4': 'unknown_user', // destination mailbox address ambiguous
  '1.6': 'mailbox_disabled', // destination mailbox has moved, no forwarding address
  '1.7': 'policy', // bad sender's mailbox address syntax: ours to fix, not the recipient's
  '1.8': 'policy', // bad sender's system address
  '1.10': 'unknown_domain', // recipient address has null MX (RFC 7505)
  '2.1': 'mailbox_disabled',
  '2.2': 'mailbox_full',
  '2.3': 'message_too_large', // message length exceeds administrative limit
  '2.4': 'system', // mailing list expansion problem
  '3.0': 'system',
  '3.1': 'system', // mail system full: the receiver's disks, not the mailbox
  '3.2': 'system',
  '3.3': 'protocol', // system not capable of selected features
  '3.4': 'message_too_large',
  '3.5': 'system',
  '4.4': 'network', // unable to route: 5.4.4 below is Postfix's "domain not found"
  '5.4.4': 'unknown_domain',
  '4.5': 'rate_limited', // mail system congestion
  '4.6': 'system', // routing loop
  '4.7': 'expired',
  '5.3': 'rate_limited', // too many recipients
  '6.4': 'other', // conversion with loss performed: informational
  '6.6': 'other',
  '6.7': 'protocol', // non-ASCII addresses not permitted (RFC 6531)
  '6.8': 'protocol',
  '6.9': 'protocol',
  '6.10': 'protocol',
  '7.8': 'auth_failure',
  '7.9': 'auth_failure',
  '7.12': 'auth_failure',
  '7.13': 'auth_failure',
  '7.14': 'auth_failure',
  '7.16': 'message_too_large',
  '7.17': 'mailbox_disabled', // mailbox owner has changed (RFC 7293)
  '7.18': 'mailbox_disabled', // domain owner has changed
  '7.20': 'auth_failure', // RFC 7372: DKIM, SPF, reverse DNS
  '7.21': 'auth_failure',
  '7.22': 'auth_failure',
  '7.23': 'auth_failure',
  '7.24': 'auth_failure',
  '7.25': 'auth_failure',
  '7.26': 'auth_failure',
  '7.27': 'policy', // sender address has null MX
  '7.28': 'rate_limited', // mail flood detected
  '7.29': 'auth_failure', // ARC validation failure (RFC 8617)
};

/** When the detail is not listed: what the subject alone says (RFC 3463 §3.1). */
const BY_SUBJECT: Readonly<Record<string, BounceCategory>> = {
  '3': 'system',
  '4': 'network',
  '5': 'protocol',
  '6': 'content_rejected',
  '7': 'policy',
};

/** RFC 5321 §4.2.3 reply codes, for replies without an enhanced code. */
const BY_CODE: Readonly<Record<number, BounceCategory>> = {
  421: 'system',
  451: 'system',
  452: 'system',
  500: 'protocol',
  501: 'protocol',
  502: 'protocol',
  503: 'protocol',
  504: 'protocol',
  530: 'auth_failure',
  534: 'auth_failure',
  535: 'auth_failure',
  551: 'unknown_user', // user not local
  552: 'mailbox_full', // exceeded storage allocation
  553: 'unknown_user', // mailbox name not allowed
  555: 'protocol',
};

/** The category an enhanced code alone implies, or undefined for X.0.0 and unknown subjects. */
export function categoryOfStatus(status: string): BounceCategory | undefined {
  const m = ENHANCED.exec(status);
  if (!m) return undefined;
  const [, klass, subject, detail] = m;
  return (
    BY_ENHANCED[`${klass}.${subject}.${detail}`] ??
    BY_ENHANCED[`${subject}.${detail}`] ??
    BY_SUBJECT[subject!]
  );
}

/** Builds a classifier over one rule set (pure: the rules are its only state). */
export function createClassifier(ruleSet: RuleSet): Classifier {
  return (input) => classifyWith(ruleSet, input);
}

function classifyWith(ruleSet: RuleSet, input: ClassifyInput): Classification {
  let text = typeof input.text === 'string' ? input.text : '';
  let code = validCode(input.code);
  let enhanced =
    typeof input.enhanced === 'string' && ENHANCED.test(input.enhanced) ? input.enhanced : undefined;
  if (code === undefined && enhanced === undefined) {
    // A whole reply handed over as text: take its codes, so `550 5.1.1 …` is not "no code".
    const reply = splitReply(text);
    ({ code, enhanced } = reply);
    text = reply.text;
  }
  text = text.slice(0, MAX_TEXT);

  let category: BounceCategory | undefined;
  let pinned: boolean | undefined;
  let rule: string | undefined;
  for (const r of ruleSet.rules) {
    if (r.status && !(enhanced && r.status.some((prefix) => statusHasPrefix(enhanced, prefix)))) continue;
    if (r.pattern.test(text)) {
      category = r.category;
      pinned = r.permanent;
      rule = r.id;
      break;
    }
  }
  category ??= (enhanced && categoryOfStatus(enhanced)) || (code !== undefined ? BY_CODE[code] : undefined);
  category ??= 'other';

  const klass = enhanced?.[0] ?? (code !== undefined ? String(code)[0] : undefined);
  const permanent =
    pinned ?? (klass === '5' ? true : klass === '4' || klass === '2' ? false : ruleSet.defaults[category]);
  return rule ? { category, permanent, rule } : { category, permanent };
}

/**
 * Splits a reply given as one line (`550 5.1.1 text`, a DSN's Diagnostic-Code) into its codes
 * and its text. Multiline replies glued into one line by the reporting MTA
 * (`550-5.1.1 The email … 550-5.1.1 double-checking …`) lose the repeated prefixes. An enhanced
 * code whose class disagrees with the reply code stays in the text (RFC 3463 §3).
 */
export function splitReply(raw: string): { code?: number; enhanced?: string; text: string } {
  const text = raw.replace(/\s+/g, ' ').trim();
  const reply = LEADING_REPLY.exec(text);
  if (!reply) {
    const status = LEADING_ENHANCED.exec(text);
    return status ? { enhanced: status[1]!, text: text.slice(status[0].length).trim() } : { text };
  }
  const codeText = reply[1]!;
  const agrees = reply[2] !== undefined && reply[2][0] === codeText[0];
  const enhanced = agrees ? reply[2] : undefined;
  let rest = text.slice(agrees ? reply[0].length : codeText.length + (text.startsWith('#') ? 1 : 0));
  const prefix = enhanced ? `${codeText}[ -]${enhanced.replaceAll('.', '\\.')}` : `${codeText}-`;
  rest = rest.replace(new RegExp(`(^|\\s)#?${prefix}(?=\\s|$)`, 'g'), '$1');
  const out: { code?: number; enhanced?: string; text: string } = {
    code: Number(codeText),
    text: collapse(rest),
  };
  if (enhanced) out.enhanced = enhanced;
  return out;
}

function collapse(text: string): string {
  return text
    .replace(/\s+/g, ' ')
    .replace(/^[\s-]+/, '')
    .trim();
}

function validCode(code: unknown): number | undefined {
  return typeof code === 'number' && Number.isInteger(code) && code >= 200 && code <= 599 ? code : undefined;
}

/** '5.7.1' has the prefixes '5', '5.7' and '5.7.1' (never '5.7.10'). */
function statusHasPrefix(status: string, prefix: string): boolean {
  return status === prefix || status.startsWith(`${prefix}.`);
}

/** Parses and checks a rule file's text (YAML); throws BounceRulesError naming what is wrong. */
export function parseRules(text: string, source = 'rules'): RuleSet {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new BounceRulesError(`${source}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  if (!isRecord(doc))
    throw new BounceRulesError(`${source}: expected a mapping with "categories" and "rules"`);

  const defaults = {} as Record<BounceCategory, boolean>;
  const cats = doc['categories'];
  if (!isRecord(cats))
    throw new BounceRulesError(`${source}: "categories" must map each category to hard or soft`);
  for (const [name, value] of Object.entries(cats)) {
    if (!isCategory(name)) throw new BounceRulesError(`${source}: unknown category "${name}"`);
    if (value !== 'hard' && value !== 'soft') {
      throw new BounceRulesError(
        `${source}: category ${name} must be hard or soft, not ${JSON.stringify(value)}`,
      );
    }
    defaults[name] = value === 'hard';
  }
  const missing = CATEGORIES.filter((c) => !(c in defaults));
  if (missing.length > 0)
    throw new BounceRulesError(`${source}: categories without hard/soft: ${missing.join(', ')}`);

  const list = doc['rules'] ?? [];
  if (!Array.isArray(list)) throw new BounceRulesError(`${source}: "rules" must be a list`);
  const ids = new Set<string>();
  const rules = list.map((entry: unknown, index): BounceRule => {
    const where = `${source}: rule ${index + 1}`;
    if (!isRecord(entry)) throw new BounceRulesError(`${where}: expected a mapping`);
    const id = entry['id'] ?? `rule-${index + 1}`;
    if (typeof id !== 'string' || id === '') throw new BounceRulesError(`${where}: "id" must be a string`);
    if (ids.has(id)) throw new BounceRulesError(`${where}: duplicate id "${id}"`);
    ids.add(id);
    const category = entry['category'];
    if (typeof category !== 'string' || !isCategory(category)) {
      throw new BounceRulesError(`${where} (${id}): unknown category ${JSON.stringify(category)}`);
    }
    // A rule with a status needs no words: `status: [4.4.7]` alone says "expired".
    const match = entry['match'] ?? (entry['status'] !== undefined ? '' : undefined);
    if (typeof match !== 'string' || (match === '' && entry['status'] === undefined)) {
      throw new BounceRulesError(`${where} (${id}): "match" must be a regular expression`);
    }
    let pattern: RegExp;
    try {
      pattern = new RegExp(match, 'i');
    } catch (err) {
      throw new BounceRulesError(`${where} (${id}): invalid regular expression: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const rule: BounceRule = { id, category, pattern };
    const status = entry['status'];
    if (status !== undefined) {
      const prefixes = Array.isArray(status) ? status : [status];
      if (!prefixes.every((p) => typeof p === 'string' && /^[245](\.\d{1,3}){0,2}$/.test(p))) {
        throw new BounceRulesError(`${where} (${id}): "status" must be enhanced-code prefixes such as "5.7"`);
      }
      rule.status = Object.freeze([...(prefixes as string[])]);
    }
    const permanent = entry['permanent'];
    if (permanent !== undefined) {
      if (typeof permanent !== 'boolean')
        throw new BounceRulesError(`${where} (${id}): "permanent" must be true or false`);
      rule.permanent = permanent;
    }
    return Object.freeze(rule);
  });
  return Object.freeze({ source, defaults: Object.freeze(defaults), rules: Object.freeze(rules) });
}

/** Reads a rule file (the bundled `rules.yaml` by default). */
export function loadRules(file: string | URL = DEFAULT_RULES_FILE): RuleSet {
  const name =
    file instanceof URL && file.protocol === 'file:' ? decodeURIComponent(file.pathname) : String(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BounceRulesError(`cannot read bounce rules ${name}: ${(err as Error).message}`, { cause: err });
  }
  return parseRules(text, name);
}

// The process-wide rule set behind `classify`, so a reload (SIGHUP, an admin command) reaches
// every caller at once. Code that wants its own rules uses createClassifier.
let current: RuleSet | undefined;

/** Replaces the rules `classify` uses; pass loadRules(file) to reload from disk. */
export function setRules(ruleSet: RuleSet): void {
  current = ruleSet;
}

/** The rules `classify` uses now (the bundled file until setRules is called). */
export function currentRules(): RuleSet {
  current ??= loadRules();
  return current;
}

/** Classifies with the current rules; see the top of this file for the order of evidence. */
export function classify(input: ClassifyInput): Classification {
  return classifyWith(currentRules(), input);
}

function isCategory(name: string): name is BounceCategory {
  return (CATEGORIES as readonly string[]).includes(name);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
