/**
 * SPF record text: recognising a record, splitting it into terms (RFC 7208 §4.5, §4.6.1), and
 * writing the corrected record a check suggests.
 */
import { isIPv4 } from 'node:net';

export type SpfQualifier = '+' | '-' | '~' | '?';

export interface SpfTerm {
  kind: 'mechanism' | 'modifier';
  qualifier: SpfQualifier;
  /** Lower-cased mechanism or modifier name (`include`, `ip4`, `redirect`, ...). */
  name: string;
  /** What follows `:` or `=` (a mechanism's `/cidr` suffix stays in it), '' if nothing. */
  value: string;
  /** The term as written. */
  text: string;
}

/** RFC 7208 §4.5: a record is an SPF record if it starts with `v=spf1` followed by a space or its end. */
export function isSpfRecord(txt: string): boolean {
  return /^v=spf1( |$)/i.test(txt);
}

/** The terms after `v=spf1`, split on spaces (RFC 7208 §4.6.1). */
export function parseSpfTerms(record: string): SpfTerm[] {
  const terms: SpfTerm[] = [];
  for (const text of record.split(' ').slice(1)) {
    if (text === '') continue;
    const modifier = /^([a-z][a-z0-9_.-]*)=(.*)$/is.exec(text);
    if (modifier) {
      terms.push({
        kind: 'modifier',
        qualifier: '+',
        name: modifier[1]!.toLowerCase(),
        value: modifier[2]!,
        text,
      });
      continue;
    }
    const first = text.charAt(0);
    const qualifier: SpfQualifier =
      first === '-' || first === '~' || first === '?' || first === '+' ? first : '+';
    const body = qualifier === first ? text.slice(1) : text;
    const split = /[:/]/.exec(body);
    const name = (split ? body.slice(0, split.index) : body).toLowerCase();
    const value = split ? (split[0] === ':' ? body.slice(split.index + 1) : body.slice(split.index)) : '';
    terms.push({ kind: 'mechanism', qualifier, name, value, text });
  }
  return terms;
}

/** Our egress addresses first (they cost no lookups and match before anything else), then the rest. */
export function amendRecord(
  record: string,
  change: { add: string[]; removePtr: boolean; softenAll: boolean },
): string {
  if (change.add.length === 0 && !change.removePtr && !change.softenAll) return record;
  const added = new Set(change.add.map((t) => t.toLowerCase()));
  const terms = parseSpfTerms(record)
    .filter((t) => !(change.removePtr && t.kind === 'mechanism' && t.name === 'ptr'))
    .filter((t) => !added.has(t.text.toLowerCase()))
    .map((t) =>
      change.softenAll && t.kind === 'mechanism' && t.name === 'all' && t.qualifier === '+' ? '~all' : t.text,
    );
  return ['v=spf1', ...change.add, ...terms].join(' ');
}

/** One record with the terms of all, our addresses first and one `~all` at the end. */
export function mergeRecords(records: string[], ipTerms: string[]): string {
  const seen = new Set(ipTerms.map((t) => t.toLowerCase()));
  const merged = [...ipTerms];
  for (const record of records) {
    for (const term of parseSpfTerms(record)) {
      if ((term.kind === 'mechanism' && term.name === 'all') || term.name === 'redirect') continue;
      if (seen.has(term.text.toLowerCase())) continue;
      seen.add(term.text.toLowerCase());
      merged.push(term.text);
    }
  }
  return ['v=spf1', ...merged, '~all'].join(' ');
}

export function ipTerm(ip: string): string {
  return `${isIPv4(ip) ? 'ip4' : 'ip6'}:${ip}`;
}
