/**
 * One DNS question, its answer sorted into the three outcomes a check cares about: records,
 * no record, or no answer at all. A check never sees a rejection, so a hostile or broken DNS
 * server can only ever produce an `error` result, never a crash.
 */
import type { CheckResult, MxAnswer, Resolve, RRType } from './types.ts';

export type Answer<T> =
  | { kind: 'found'; records: T[] }
  /** NXDOMAIN or NODATA: the name or the record does not exist. */
  | { kind: 'none'; code: string }
  /** Timeout, SERVFAIL, REFUSED, ...: the answer is unknown. */
  | { kind: 'error'; code: string; message: string };

const NO_RECORD = new Set(['ENOTFOUND', 'ENODATA']);

async function ask(resolve: Resolve, name: string, rrtype: RRType): Promise<Answer<unknown>> {
  try {
    const records = await resolve(name, rrtype);
    if (!Array.isArray(records) || records.length === 0) return { kind: 'none', code: 'ENODATA' };
    return { kind: 'found', records };
  } catch (cause) {
    const code =
      typeof (cause as { code?: unknown })?.code === 'string' ? (cause as { code: string }).code : '';
    if (NO_RECORD.has(code)) return { kind: 'none', code };
    const message = cause instanceof Error ? cause.message : String(cause);
    return { kind: 'error', code: code || 'EUNKNOWN', message };
  }
}

/** TXT records, each one's character-strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2). */
export async function lookupTxt(resolve: Resolve, name: string): Promise<Answer<string>> {
  const answer = await ask(resolve, name, 'TXT');
  if (answer.kind !== 'found') return answer;
  return { kind: 'found', records: answer.records.map((r) => (Array.isArray(r) ? r.join('') : String(r))) };
}

/** Host names (CNAME, PTR) or addresses (A, AAAA), lower-cased without a trailing dot for names. */
export async function lookupNames(
  resolve: Resolve,
  name: string,
  rrtype: 'A' | 'AAAA' | 'CNAME' | 'PTR',
): Promise<Answer<string>> {
  const answer = await ask(resolve, name, rrtype);
  if (answer.kind !== 'found') return answer;
  return { kind: 'found', records: answer.records.map((r) => normalizeName(String(r))) };
}

export async function lookupMx(resolve: Resolve, name: string): Promise<Answer<MxAnswer>> {
  const answer = await ask(resolve, name, 'MX');
  if (answer.kind !== 'found') return answer;
  const records: MxAnswer[] = [];
  for (const r of answer.records) {
    const mx = r as Partial<MxAnswer> | null;
    if (typeof mx?.exchange !== 'string') continue;
    records.push({ exchange: normalizeName(mx.exchange), priority: Number(mx.priority) || 0 });
  }
  return records.length > 0 ? { kind: 'found', records } : { kind: 'none', code: 'ENODATA' };
}

/** DNS names compare case-insensitively (RFC 4343) and with or without the root dot. */
export function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/\.+$/, '');
}

export function sameName(a: string, b: string): boolean {
  return normalizeName(a) === normalizeName(b);
}

/** "could not check" wording shared by every check. */
export function unknownAnswer(name: string, rrtype: string, answer: { code: string }): string {
  return (
    `Could not check ${name}: the DNS lookup of its ${rrtype} record failed (${answer.code}). ` +
    'This is usually temporary; try the check again in a few minutes.'
  );
}

/** The result of a check whose DNS question got no usable answer ("could not check"). */
export function unknownResult<B extends { record: CheckResult['record']; name: string }>(
  base: B,
  rrtype: string,
  answer: { code: string },
): B & { status: 'error'; explanation: string; details: { code: string } } {
  return {
    ...base,
    status: 'error',
    explanation: unknownAnswer(base.name, rrtype, answer),
    details: { code: answer.code },
  };
}
