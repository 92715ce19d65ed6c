/**
 * A static walk of an SPF policy: every record reachable through `include:` and `redirect=`,
 * without a client address. It answers what a single evaluation cannot: how many DNS lookups
 * the policy costs an address that matches none of its terms (every receiver's worst case), how
 * many of those come back empty, and where the policy loops.
 *
 * RFC 7208 §4.6.4: `include`, `a`, `mx`, `ptr`, `exists` and `redirect` each cost one lookup, at
 * most 10 per evaluation; at most 2 may be "void" (NXDOMAIN or no records). Past either limit the
 * result is permerror: receivers treat the whole policy as broken.
 *
 * Approximations, because no client address is known:
 * - an `a` term is void only when its name has neither A nor AAAA records (RFC 7208 counts the
 *   query of the client's address family only);
 * - terms whose target uses a macro (`exists:%{i}._spf.example.com`) are counted but not looked
 *   up: their target depends on the message.
 *
 * The walk stops as soon as the count passes the limit, so hostile policies (include loops,
 * deep include chains, huge records) cost at most a handful of queries; and it stops at a time
 * limit, so a policy whose every name times out cannot hold a check for minutes.
 */
import { lookupMx, lookupNames, lookupTxt, normalizeName } from './lookup.ts';
import { isSpfRecord, parseSpfTerms, type SpfTerm } from './spf-record.ts';
import type { Resolve } from './types.ts';

export const SPF_LOOKUP_LIMIT = 10;
export const SPF_VOID_LIMIT = 2;
/** RFC 7208 §4.6.4: each `mx` term may name at most 10 mail exchangers. */
const MX_NAMES_LIMIT = 10;

export interface SpfWalk {
  /** DNS-querying terms in the whole tree; above SPF_LOOKUP_LIMIT once the walk stopped early. */
  lookups: number;
  /** Lookups that found nothing (NXDOMAIN or no records). */
  voidLookups: number;
  /** Every record visited, the starting one first. */
  records: { domain: string; record: string }[];
  /** Include or redirect chains that come back to a domain already on the path. */
  loops: string[][];
  /** Domains whose record has `+all` (or a bare `all`): any address on the internet passes. */
  passAll: string[];
  /** Domains whose record uses the `ptr` mechanism (RFC 7208 §5.5: do not use). */
  ptr: string[];
  /** Terms not followed because their target depends on the message (macros). */
  notFollowed: string[];
  /** include/redirect targets with no SPF record, or with more than one. */
  brokenTargets: { domain: string; term: string; reason: 'no-record' | 'multiple-records' }[];
  /** `mx` terms whose domain names more than 10 mail exchangers. */
  tooManyMx: string[];
  /** Lookups that got no answer (timeouts, SERVFAIL). */
  errors: { name: string; rrtype: string; code: string }[];
  /** True when counting stopped because the lookup limit was passed. */
  stoppedEarly: boolean;
  /** True when the walk stopped at its time limit; the counts are then incomplete. */
  timedOut: boolean;
}

export interface WalkSpfOptions {
  /** Stop walking after this long (default 20 s, like the evaluation's limit). */
  timeLimitMs?: number;
  /** Milliseconds; injected by tests. */
  clock?: () => number;
}

/** Walks the SPF policy published at `domain`, whose record text is `record`. */
export async function walkSpf(
  resolve: Resolve,
  domain: string,
  record: string,
  options: WalkSpfOptions = {},
): Promise<SpfWalk> {
  const clock = options.clock ?? Date.now;
  const deadline = clock() + (options.timeLimitMs ?? 20_000);
  const walk: SpfWalk = {
    lookups: 0,
    voidLookups: 0,
    records: [],
    loops: [],
    passAll: [],
    ptr: [],
    notFollowed: [],
    brokenTargets: [],
    tooManyMx: [],
    errors: [],
    stoppedEarly: false,
    timedOut: false,
  };
  const overLimit = (): boolean => {
    if (walk.lookups > SPF_LOOKUP_LIMIT) walk.stoppedEarly = true;
    if (clock() >= deadline) walk.timedOut = true;
    return walk.stoppedEarly || walk.timedOut;
  };

  const follow = async (spec: string, via: string, path: string[]): Promise<void> => {
    if (usesMacro(spec)) {
      walk.notFollowed.push(via);
      return;
    }
    const target = normalizeName(spec);
    if (path.includes(target)) {
      walk.loops.push([...path, target]);
      return;
    }
    const answer = await lookupTxt(resolve, target);
    if (answer.kind === 'error') {
      walk.errors.push({ name: target, rrtype: 'TXT', code: answer.code });
      return;
    }
    if (answer.kind === 'none') walk.voidLookups++;
    const found = answer.kind === 'found' ? answer.records.filter(isSpfRecord) : [];
    if (found.length !== 1) {
      walk.brokenTargets.push({
        domain: target,
        term: via,
        reason: found.length === 0 ? 'no-record' : 'multiple-records',
      });
      return;
    }
    await visit(target, found[0]!, [...path, target]);
  };

  const visit = async (current: string, text: string, path: string[]): Promise<void> => {
    walk.records.push({ domain: current, record: text });
    const terms = parseSpfTerms(text);
    // RFC 7208 §6.1: redirect is ignored when the record has an `all` mechanism.
    const hasAll = terms.some((t) => t.kind === 'mechanism' && t.name === 'all');
    for (const term of terms) {
      if (overLimit()) return;
      if (term.kind === 'modifier') {
        if (term.name === 'redirect' && !hasAll) {
          walk.lookups++;
          if (overLimit()) return;
          await follow(term.value, term.text, path);
        }
        continue;
      }
      switch (term.name) {
        case 'all':
          if (term.qualifier === '+') walk.passAll.push(current);
          break;
        case 'include':
          walk.lookups++;
          if (overLimit()) return;
          await follow(term.value, term.text, path);
          break;
        case 'ptr':
          walk.lookups++;
          walk.ptr.push(current);
          break;
        case 'a':
        case 'mx':
        case 'exists': {
          walk.lookups++;
          if (overLimit()) return;
          const spec = term.name === 'exists' ? term.value : stripCidr(term.value) || current;
          if (usesMacro(spec)) {
            walk.notFollowed.push(term.text);
            break;
          }
          await countTarget(term, normalizeName(spec));
          break;
        }
      }
    }
  };

  const countTarget = async (term: SpfTerm, target: string): Promise<void> => {
    if (term.name === 'mx') {
      const answer = await lookupMx(resolve, target);
      if (answer.kind === 'error') walk.errors.push({ name: target, rrtype: 'MX', code: answer.code });
      else if (answer.kind === 'none') walk.voidLookups++;
      else if (answer.records.length > MX_NAMES_LIMIT) walk.tooManyMx.push(target);
      return;
    }
    const types = term.name === 'a' ? (['A', 'AAAA'] as const) : (['A'] as const);
    const answers = await Promise.all(types.map((rrtype) => lookupNames(resolve, target, rrtype)));
    if (answers.some((a) => a.kind === 'found')) return;
    const failed = answers.findIndex((a) => a.kind === 'error');
    if (failed >= 0) {
      walk.errors.push({
        name: target,
        rrtype: types[failed]!,
        code: (answers[failed] as { code: string }).code,
      });
      return;
    }
    walk.voidLookups++;
  };

  const start = normalizeName(domain);
  await visit(start, record, [start]);
  return walk;
}

/** `a:host/24//64` → `host`; `a/24` → ''. */
function stripCidr(value: string): string {
  return value.replace(/(\/\d+)?(\/\/\d+)?$/, '');
}

/** RFC 7208 §7: `%%`, `%_` and `%-` are literal; any other `%` starts a macro. */
function usesMacro(spec: string): boolean {
  return spec.replace(/%[%_-]/g, '').includes('%');
}
