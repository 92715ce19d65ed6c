/**
 * Recipient-domain patterns of `routes[].match.domains`, and their matcher.
 *
 *   parseDomainPattern('Example.COM.')        → { pattern: 'example.com' }           exactly that domain
 *   parseDomainPattern('*.example.com')       → { pattern: '*.example.com' }         any subdomain, at any depth,
 *                                                                                    not example.com itself
 *   parseDomainPattern('*')                   → { pattern: '*' }                     every domain
 *   parseDomainPattern('bücher.example')      → { pattern: 'xn--bcher-kva.example' } IDN as punycode, as intake stores it
 *   parseDomainPattern('ex*.com')             → { problem: '…' }
 *
 *   const set = compileDomainSet(['example.com', '*.example.net']);
 *   set.matches('mail.example.net')  → true
 *
 * Write both `example.com` and `*.example.com` to route a domain with its subdomains (the
 * explicit form, unlike Postfix's `.example.com` that depends on `parent_domain_matches_subdomains`).
 * Matching costs one set lookup per label of the recipient domain, however many patterns a
 * route lists.
 */

import { domainToASCII } from 'node:url';
import { normalizeHost } from '../shaping/site.ts';

/** The normalised pattern (`example.com`, `*.example.com`, `*`) or why it is not one. */
export function parseDomainPattern(raw: string): { pattern: string } | { problem: string } {
  const text = raw.trim();
  if (text === '*') return { pattern: '*' };
  const wildcard = text.startsWith('*.');
  const rest = wildcard ? text.slice(2) : text;
  if (rest.includes('*')) {
    return { problem: "a wildcard is '*' alone or a leading '*.' (*.example.com), nothing else" };
  }
  if (rest.startsWith('.')) {
    return { problem: 'write *.example.com for subdomains (a leading dot is not a pattern here)' };
  }
  const domain = normalizeDomain(rest);
  if (domain === undefined) return { problem: 'not a domain name' };
  // A bare top-level label is a plausible wildcard (`*.de`) but not a recipient domain.
  if (!wildcard && !domain.includes('.')) return { problem: 'a domain has at least two labels' };
  return { pattern: wildcard ? `*.${domain}` : domain };
}

/**
 * Lower case, no trailing dot, IDN labels as punycode; undefined when it is not a domain name.
 * Applied to recipient domains too, so that config and mail compare in one form.
 */
export function normalizeDomain(domain: string): string | undefined {
  let text = domain.trim().toLowerCase().replace(/\.$/, '');
  if (/[^\x00-\x7f]/.test(text)) {
    text = domainToASCII(text);
    if (text === '') return undefined;
  }
  return normalizeHost(text);
}

/** A compiled list of patterns. */
export interface DomainSet {
  matches(domain: string): boolean;
}

/** Compiles normalised patterns (as parseDomainPattern returns them). */
export function compileDomainSet(patterns: readonly string[]): DomainSet {
  const exact = new Set<string>();
  const parents = new Set<string>();
  let any = false;
  for (const pattern of patterns) {
    if (pattern === '*') any = true;
    else if (pattern.startsWith('*.')) parents.add(pattern.slice(2));
    else exact.add(pattern);
  }
  return {
    matches(domain) {
      if (any) return true;
      if (exact.has(domain)) return true;
      if (parents.size === 0) return false;
      // `a.b.example.com` is under `b.example.com`, `example.com` and `com`.
      for (let dot = domain.indexOf('.'); dot !== -1; dot = domain.indexOf('.', dot + 1)) {
        if (parents.has(domain.slice(dot + 1))) return true;
      }
      return false;
    },
  };
}
