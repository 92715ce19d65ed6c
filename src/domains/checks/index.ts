/**
 * Runs every DNS setup check of a sending domain and reports one result per record:
 * SPF of the return path, DKIM per key, DMARC, the return path's MX, the tracking CNAME and
 * reverse DNS per egress address. Checks run concurrently and never reject: a check that
 * throws anyway (a bug) is reported as `error`, never as a failed request.
 *
 * All checks of one run share one answer per question, so they judge the same view of the
 * zone and a slow name is asked once.
 */
import { reverseName } from '../../dns/ip-address.ts';
import { checkDkim } from './dkim.ts';
import { checkDmarc, loadDmarc } from './dmarc.ts';
import { normalizeName } from './lookup.ts';
import { checkPtr } from './ptr.ts';
import { checkReturnPath } from './return-path.ts';
import { checkSpf, loadSpf } from './spf.ts';
import { checkTracking } from './tracking.ts';
import type { CheckResult, DomainSetup, RecordKind, Resolve } from './types.ts';

export { createCheckResolver, resolveWith } from './resolver.ts';
export { type EvaluateSpfOptions, evaluateSpf, type SpfEvaluation, type SpfResult } from './spf.ts';
export type * from './types.ts';

export interface CheckDomainOptions {
  /** Limit for each SPF evaluation (default 20 s, RFC 7208 §4.6.4). */
  spfTimeLimitMs?: number;
}

/**
 * Loads what the checks load at first use (mailauth, ~300 ms of blocked event loop): the server
 * calls it at start, so its first domain check does not stall the sessions it serves.
 */
export function preloadChecks(): Promise<void> {
  return Promise.all([loadSpf(), loadDmarc()]).then(
    () => undefined,
    () => undefined,
  );
}

export async function checkDomain(
  setup: DomainSetup,
  resolve: Resolve,
  options: CheckDomainOptions = {},
): Promise<CheckResult[]> {
  // mailauth loads at first use and blocks the event loop while it does: before any query is in
  // flight, or a first check's short DNS timeouts would run out meanwhile.
  // One that fails to load fails its checks (reported as `error`), not the run.
  await preloadChecks();
  const shared = memoize(resolve);
  const guarded = (record: RecordKind, name: string, run: () => Promise<CheckResult>): Promise<CheckResult> =>
    run().catch((cause: unknown) => ({
      record,
      name,
      status: 'error' as const,
      explanation: `Could not check ${name} because of an internal error. Try again later or contact support.`,
      details: { cause: cause instanceof Error ? cause.message : String(cause) },
    }));
  // The names each check reports, so a failed check is still found under its usual name.
  const domain = normalizeName(setup.domain);
  const returnPath = normalizeName(setup.returnPath);
  return Promise.all([
    guarded('spf', returnPath, () => checkSpf(setup, shared, { timeLimitMs: options.spfTimeLimitMs })),
    ...setup.dkim.map((key) =>
      guarded('dkim', `${key.selector}._domainkey.${domain}`, () => checkDkim(setup.domain, key, shared)),
    ),
    guarded('dmarc', `_dmarc.${domain}`, () => checkDmarc(setup, shared)),
    guarded('return_path', returnPath, () => checkReturnPath(setup, shared)),
    guarded('tracking', normalizeName(setup.trackingHost), () => checkTracking(setup, shared)),
    ...setup.egress.map((egress) => guarded('ptr', ptrName(egress.ip), () => checkPtr(egress, shared))),
  ]);
}

function ptrName(ip: string): string {
  try {
    return reverseName(ip);
  } catch {
    return ip; // not an address: checkPtr reports it under this name
  }
}

/** One query per (name, type) for the run; every caller gets its own copy of the records. */
function memoize(resolve: Resolve): Resolve {
  const answers = new Map<string, ReturnType<Resolve>>();
  return (name, rrtype) => {
    const key = `${rrtype} ${name.toLowerCase().replace(/\.$/, '')}`;
    let answer = answers.get(key);
    if (!answer) {
      answer = Promise.resolve().then(() => resolve(name, rrtype));
      answer.catch(() => {}); // each caller observes the rejection itself
      answers.set(key, answer);
    }
    return answer.then((records) =>
      records.map((r: unknown) =>
        Array.isArray(r) ? [...r] : typeof r === 'object' && r !== null ? { ...r } : r,
      ),
    ) as ReturnType<Resolve>;
  };
}
