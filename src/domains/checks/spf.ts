/**
 * SPF: may every egress address send mail for the return-path domain?
 *
 * Which domain: SPF authenticates the envelope sender (MAIL FROM, RFC 7208 §2.4), and Postbote
 * sends this domain's mail with MAIL FROM at `returnPath`, so that is the domain checked. DMARC
 * uses the same identity for SPF alignment. The From domain's own SPF record is not checked: it
 * is never evaluated for mail Postbote sends, and asking customers to add Postbote to it would
 * spend their 10-lookup budget (which their own mail servers need) for nothing.
 *
 * Two views of the live policy:
 * - `evaluateSpf` runs mailauth's `spf()` for each egress address, as a receiver would;
 * - `walkSpf` (spf-walk.ts) walks the whole include tree to count lookups and void lookups for
 *   the worst case, and finds loops, `+all` and `ptr` anywhere in the tree.
 *
 * Evaluation is strict RFC 7208 (mailauth's `strict`): a record that only lenient receivers
 * accept is a record some receivers reject, which is worth telling the customer. The same path
 * runs the RFC 7208 conformance suite (test/domains/spf-conformance.test.ts).
 */
import { lookupNames, lookupTxt, normalizeName, unknownResult } from './lookup.ts';
import { amendRecord, ipTerm, isSpfRecord, mergeRecords } from './spf-record.ts';
import { SPF_LOOKUP_LIMIT, SPF_VOID_LIMIT, type SpfWalk, walkSpf } from './spf-walk.ts';
import type { CheckResult, CheckStatus, DomainSetup, Resolve, RRType } from './types.ts';

type Spf = typeof import('mailauth/lib/spf/index.js').spf;
let spfModule: Promise<Spf> | undefined;

/**
 * mailauth's evaluator, loaded at first use: it takes ~150 ms to load, which the CLI need not
 * pay. Loading blocks the event loop: checkDomain loads it before its queries are in flight.
 */
export function loadSpf(): Promise<Spf> {
  spfModule ??= import('mailauth/lib/spf/index.js').then((m) => m.spf);
  return spfModule;
}

export type SpfResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'permerror' | 'temperror';

export interface EvaluateSpfOptions {
  ip: string;
  /** The MAIL FROM address; '' is the null reverse-path, for which the HELO name is checked (RFC 7208 §2.4). */
  sender: string;
  helo: string;
  resolve: Resolve;
  /** Follow RFC 7208 to the letter (default true); false is mailauth's lenient default. */
  strict?: boolean;
  /** Limit for the whole evaluation, temperror past it (default 20 s, RFC 7208 §4.6.4). */
  timeLimitMs?: number;
}

export interface SpfEvaluation {
  result: SpfResult;
  /** The SPF record of the checked domain, if one was found. */
  record?: string;
  /** Why the result is what it is (mailauth's comment), e.g. "Too many DNS requests". */
  reason?: string;
  /** The domain owner's `exp=` text, for a `fail` only (RFC 7208 §6.2). Third-party text. */
  explanation?: string;
  /** DNS lookups this evaluation made, as mailauth counted them. */
  lookups?: { count: number; void: number };
}

const RESULTS: ReadonlySet<string> = new Set<SpfResult>([
  'pass',
  'fail',
  'softfail',
  'neutral',
  'none',
  'permerror',
  'temperror',
]);

/** RFC 7208 §4.6.4: "at least 20 seconds" before giving up on the whole evaluation. */
const DEFAULT_TIME_LIMIT_MS = 20_000;
/** The name mailauth puts in its comments and in the `%{r}` macro. */
const CHECKER = 'postbote';

/** check_host() for one client address, as a receiver runs it. Never rejects. */
export async function evaluateSpf(options: EvaluateSpfOptions): Promise<SpfEvaluation> {
  const { resolve } = options;
  try {
    const spf = await loadSpf();
    const response = await spf({
      ip: options.ip,
      sender: options.sender,
      helo: options.helo,
      mta: CHECKER,
      strict: options.strict ?? true,
      maxElapsedTime: options.timeLimitMs ?? DEFAULT_TIME_LIMIT_MS,
      // mailauth asks only for the types in RRType (TXT, A, AAAA, MX, PTR).
      resolver: (name, rrtype) => resolve(name, rrtype as RRType) as Promise<string[][]>,
    });
    const result = RESULTS.has(response.status.result) ? (response.status.result as SpfResult) : 'temperror';
    const evaluation: SpfEvaluation = { result };
    if (response.rr) evaluation.record = response.rr;
    // "<mta>: permanent error in processing during lookup of <sender>: <text>" → "<text>"
    const reason = response.status.comment
      ?.replace(`${CHECKER}: `, '')
      .replace(/^(?:permanent )?error in processing during lookup of .*?: /, '');
    if (reason) evaluation.reason = reason;
    if (response.explanation) evaluation.explanation = response.explanation;
    if (response.lookups) evaluation.lookups = { count: response.lookups.count, void: response.lookups.void };
    return evaluation;
  } catch (cause) {
    return { result: 'temperror', reason: cause instanceof Error ? cause.message : String(cause) };
  }
}

export interface SpfCheckOptions {
  timeLimitMs?: number;
}

/**
 * A record and the answer at its name are meant to fit a 512-byte UDP answer (RFC 7208 §3.4);
 * past that some receivers never see it. Headers and the question take the rest.
 */
const LONG_ANSWER_BYTES = 450;

interface Problem {
  status: CheckStatus;
  text: string;
}

const SEVERITY: Record<CheckStatus, number> = { ok: 0, warning: 1, error: 2, missing: 3, wrong: 4 };

export async function checkSpf(
  setup: DomainSetup,
  resolve: Resolve,
  options: SpfCheckOptions = {},
): Promise<CheckResult> {
  const name = normalizeName(setup.returnPath);
  const base = { record: 'spf', name } as const;
  const txt = await lookupTxt(resolve, name);
  if (txt.kind === 'error') {
    return unknownResult(base, 'TXT', txt);
  }
  // A TXT lookup follows a CNAME: the record then lives, and must be changed, at the target.
  const alias = await lookupNames(resolve, name, 'CNAME');
  const publishAt = alias.kind === 'found' ? alias.records[0]! : name;
  const where = publishAt === name ? name : `${publishAt} (${name} is an alias of it)`;
  const ipTerms = unique(setup.egress.map((e) => ipTerm(e.ip)));
  const ips = setup.egress.map((e) => e.ip);
  const found = txt.kind === 'found' ? txt.records.filter(isSpfRecord) : [];

  if (found.length === 0) {
    const value = ['v=spf1', ...ipTerms, '~all'].join(' ');
    return {
      ...base,
      status: 'missing',
      explanation:
        `${name} has no SPF record, so receivers cannot tell that ${listOf(ips) || "Postbote's servers"} may send mail for it. ` +
        `Add a TXT record at ${where} with the value shown.`,
      fix: value,
      details: { publish: { name: publishAt, type: 'TXT', value } },
    };
  }

  if (found.length > 1) {
    const value = mergeRecords(found, ipTerms);
    return {
      ...base,
      status: 'wrong',
      explanation:
        `${name} has ${found.length} SPF records. Receivers treat that as an error and ignore all of them ` +
        `(RFC 7208 §4.5), so none of your mail passes SPF. Replace them with one TXT record that combines ` +
        `them, for example the value shown.`,
      fix: value,
      details: { records: found, publish: { name: publishAt, type: 'TXT', value } },
    };
  }

  const record = found[0]!;
  const [walk, evaluations] = await Promise.all([
    walkSpf(resolve, name, record, { timeLimitMs: options.timeLimitMs }),
    Promise.all(
      setup.egress.map((egress) =>
        evaluateSpf({
          ip: egress.ip,
          sender: `postmaster@${name}`,
          helo: egress.ehlo,
          resolve,
          timeLimitMs: options.timeLimitMs,
        }),
      ),
    ),
  ]);

  const problems: Problem[] = [];
  const notAllowed: string[] = [];
  const brokenReasons = new Set<string>();
  const unchecked: string[] = [];
  setup.egress.forEach((egress, i) => {
    const evaluation = evaluations[i]!;
    if (evaluation.result === 'pass') return;
    if (evaluation.result === 'temperror') unchecked.push(egress.ip);
    else notAllowed.push(egress.ip);
    if (evaluation.result === 'permerror' && evaluation.reason) brokenReasons.add(evaluation.reason);
  });
  if (notAllowed.length > 0) {
    problems.push({
      status: 'wrong',
      text:
        `Receivers cannot tell that ${listOf(notAllowed)} may send for ${name}: add ` +
        `${listOf(notAllowed.map(ipTerm))} to the TXT record of ${where}.`,
    });
  }
  // The walk explains the limits in plain words; mailauth's short reason would repeat it.
  const walkExplains =
    walk.lookups > SPF_LOOKUP_LIMIT || walk.voidLookups > SPF_VOID_LIMIT || walk.loops.length > 0;
  for (const reason of brokenReasons) {
    if (walkExplains && /too many/i.test(reason)) continue;
    problems.push({ status: 'wrong', text: `Receivers find an error in this SPF policy: ${reason}.` });
  }
  if (unchecked.length > 0) {
    problems.push({
      status: 'error',
      text:
        `Could not check whether ${listOf(unchecked)} may send: a DNS lookup failed while the policy ` +
        'was evaluated. This is usually temporary; try the check again in a few minutes.',
    });
  }
  problems.push(...walkProblems(walk, name));
  const answerBytes = txt.kind === 'found' ? txt.records.reduce((n, r) => n + Buffer.byteLength(r), 0) : 0;
  if (answerBytes > LONG_ANSWER_BYTES) {
    problems.push({
      status: 'warning',
      text:
        `The TXT records of ${name} add up to ${answerBytes} bytes. Some receivers cannot fetch answers ` +
        'this large (RFC 7208 §3.4 asks for less than 512 bytes): shorten the SPF record or move parts ' +
        'of it into an include.',
    });
  }

  const rootPassAll = walk.passAll.includes(name);
  const amended = amendRecord(record, {
    add: unique(notAllowed.map(ipTerm)),
    removePtr: walk.ptr.includes(name),
    softenAll: rootPassAll,
  });
  const details: Record<string, unknown> = {
    record,
    lookups: walk.lookups,
    lookupLimit: SPF_LOOKUP_LIMIT,
    voidLookups: walk.voidLookups,
    voidLimit: SPF_VOID_LIMIT,
    results: Object.fromEntries(setup.egress.map((e, i) => [e.ip, evaluations[i]!.result])),
  };
  if (walk.notFollowed.length > 0) details['notFollowed'] = walk.notFollowed;
  if (walk.records.length > 1) details['included'] = walk.records.slice(1).map((r) => r.domain);
  if (amended !== record) details['publish'] = { name: publishAt, type: 'TXT', value: amended };

  const status = problems.reduce<CheckStatus>(
    (worst, p) => (SEVERITY[p.status] > SEVERITY[worst] ? p.status : worst),
    'ok',
  );
  if (status === 'ok') {
    return {
      ...base,
      status,
      explanation:
        `The SPF record of ${name} allows ${listOf(ips)} to send for it, and needs ${walk.lookups} of the ` +
        `${SPF_LOOKUP_LIMIT} DNS lookups receivers allow.`,
      details,
    };
  }
  const result: CheckResult = {
    ...base,
    status,
    explanation: problems
      .sort((a, b) => SEVERITY[b.status] - SEVERITY[a.status])
      .map((p) => p.text)
      .join(' '),
    details,
  };
  if (amended !== record) result.fix = amended;
  return result;
}

function walkProblems(walk: SpfWalk, name: string): Problem[] {
  const problems: Problem[] = [];
  if (walk.lookups > SPF_LOOKUP_LIMIT) {
    problems.push({
      status: 'wrong',
      text:
        `The SPF policy of ${name} needs ${walk.stoppedEarly ? 'more than ' : ''}${SPF_LOOKUP_LIMIT} DNS ` +
        `lookups (counting every include, a, mx, ptr, exists and redirect). Receivers stop at ${SPF_LOOKUP_LIMIT} ` +
        'and treat the whole policy as broken: remove includes you no longer use, or replace them with the ' +
        'ip4:/ip6: ranges they stand for.',
    });
  }
  if (walk.voidLookups > SPF_VOID_LIMIT) {
    problems.push({
      status: 'wrong',
      text:
        `${walk.voidLookups} names in the SPF policy of ${name} do not exist or have no records. Receivers ` +
        `allow at most ${SPF_VOID_LIMIT} such lookups and then treat the policy as broken: remove the terms ` +
        'that point at names that are gone.',
    });
  }
  for (const loop of walk.loops) {
    problems.push({
      status: 'wrong',
      text: `The SPF policy includes itself in a loop (${loop.join(' → ')}). Remove the include that closes the loop.`,
    });
  }
  for (const target of walk.brokenTargets) {
    problems.push({
      status: 'wrong',
      text:
        target.reason === 'no-record'
          ? `The SPF policy of ${name} refers to ${target.domain} ("${target.term}"), which has no SPF record. ` +
            `Receivers treat that as an error: remove "${target.term}" or publish an SPF record at ${target.domain}.`
          : `The SPF policy of ${name} refers to ${target.domain} ("${target.term}"), which has more than one ` +
            'SPF record. Receivers treat that as an error.',
    });
  }
  for (const mx of walk.tooManyMx) {
    problems.push({
      status: 'wrong',
      text: `${mx} has more than 10 MX records, too many for an "mx" term in SPF (RFC 7208 §4.6.4).`,
    });
  }
  for (const domain of unique(walk.passAll)) {
    problems.push({
      status: 'warning',
      text:
        domain === name
          ? `The SPF record of ${name} ends in "+all" (or a bare "all"), which lets anyone on the internet ` +
            'send mail for it. Use "~all" instead.'
          : `The SPF policy of ${name} includes ${domain}, whose record ends in "+all" (or a bare "all"): that ` +
            `lets anyone on the internet send mail for ${name}. Remove that include.`,
    });
  }
  for (const domain of unique(walk.ptr)) {
    problems.push({
      status: 'warning',
      text:
        `The SPF record of ${domain} uses the "ptr" mechanism, which is slow, unreliable and deprecated ` +
        '(RFC 7208 §5.5); many receivers ignore it. Replace it with ip4:/ip6: terms.',
    });
  }
  if (walk.timedOut) {
    problems.push({
      status: 'error',
      text:
        `Checking the SPF policy of ${name} took too long (its DNS answers are slow), so the lookup ` +
        'counts are incomplete. Receivers may give up on it too; try the check again later.',
    });
  }
  for (const error of walk.errors) {
    problems.push({
      status: 'error',
      text:
        `Could not look up the ${error.rrtype} record of ${error.name}, which the SPF policy refers to ` +
        `(${error.code}). Receivers would get the same error; try the check again in a few minutes.`,
    });
  }
  return problems;
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}

function listOf(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}
