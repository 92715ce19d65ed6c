/**
 * Where to deliver mail for a domain: RFC 5321 §5.1 MX resolution, with RFC 7505 null MX.
 *
 * - MX hosts are tried in order of preference; hosts of equal preference are shuffled
 *   (RFC 5321 §5.1: "the sender-SMTP MUST randomize them to spread the load").
 * - No MX record (NODATA) means an implicit MX of preference 0: the domain itself.
 * - A single MX whose exchange is the root ("." or "") is a null MX: the domain accepts no mail.
 *   RFC 7505 §3 forbids mixing it with other MX records; if a zone does anyway, the null entry is
 *   ignored and the real hosts are used.
 * - Each host's addresses are its A records followed by its AAAA records: IPv4 first, because a
 *   relay's IPv4 egress usually has the established reputation and PTR records.
 * - A host that does not resolve is skipped; only when none resolves does the lookup fail.
 * - An MX exchange written as an IP address breaks RFC 5321 §5.1 but is common enough that we
 *   tolerate it and use the address as is.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import type { DnsResolver, MxRecord } from './resolver.ts';
import { DnsError } from './resolver.ts';

export interface MxHost {
  /** The MX exchange (ASCII, lower case), or the domain literal as written (`[192.0.2.1]`). */
  name: string;
  preference: number;
  addresses: string[];
}

export interface SkippedMxHost {
  name: string;
  preference: number;
  reason: string;
}

export interface MxTargets {
  /** The domain as queried (ASCII, punycode for IDNs, no trailing dot). */
  domain: string;
  /** True when the domain has no MX and its own address is used (RFC 5321 §5.1). */
  implicit: boolean;
  hosts: MxHost[];
  /** MX hosts left out because they have no address, with why (for logs). */
  skipped: SkippedMxHost[];
}

export class MxError extends Error {
  override readonly name = 'MxError';
  readonly domain: string;
  /** True: bounce now. False: defer and retry later. */
  readonly permanent: boolean;
  /** Plain language, fit for a bounce message or the dashboard. */
  readonly reason: string;
  /** RFC 3463 enhanced status code. */
  readonly enhancedCode: string;

  constructor(init: {
    domain: string;
    permanent: boolean;
    reason: string;
    enhancedCode: string;
    cause?: unknown;
  }) {
    super(init.reason, { cause: init.cause });
    this.domain = init.domain;
    this.permanent = init.permanent;
    this.reason = init.reason;
    this.enhancedCode = init.enhancedCode;
  }
}

/** RFC 3463 / RFC 7505 codes used here. */
const CODES = {
  badSyntax: '5.1.3', // bad destination address syntax
  noSuchDomain: '5.1.2', // bad destination system address
  nullMx: '5.1.10', // RFC 7505 §4.2: recipient address has null MX
  unroutable: '5.4.4', // unable to route
  dnsTemporary: '4.4.3', // directory server failure
} as const;

export type MxLookup = Pick<DnsResolver, 'mx' | 'a' | 'aaaa'>;

export async function resolveMxTargets(
  resolver: MxLookup,
  domain: string,
  options: { random?: () => number } = {},
): Promise<MxTargets> {
  const literal = parseDomainLiteral(domain);
  if (literal) return { domain, implicit: false, hosts: [literal], skipped: [] };
  const ascii = toAsciiDomain(domain);

  let records: MxRecord[];
  try {
    records = await resolver.mx(ascii);
  } catch (err) {
    if (!(err instanceof DnsError)) throw err;
    if (err.kind === 'nxdomain') {
      throw new MxError({
        domain: ascii,
        permanent: true,
        reason: `${ascii} does not exist (${err.code === 'ENOTFOUND' ? 'DNS answered NXDOMAIN' : err.code})`,
        enhancedCode: CODES.noSuchDomain,
        cause: err,
      });
    }
    if (err.kind === 'temporary') {
      throw new MxError({
        domain: ascii,
        permanent: false,
        reason: `the MX lookup for ${ascii} failed temporarily (${err.code})`,
        enhancedCode: CODES.dnsTemporary,
        cause: err,
      });
    }
    records = []; // NODATA: the domain exists but publishes no MX
  }

  const implicit = records.length === 0;
  const isNull = (r: MxRecord): boolean => r.exchange === '' || r.exchange === '.';
  if (!implicit && records.every(isNull)) {
    throw new MxError({
      domain: ascii,
      permanent: true,
      reason: `${ascii} publishes a null MX (RFC 7505): it accepts no mail`,
      enhancedCode: CODES.nullMx,
    });
  }
  const candidates = implicit
    ? [{ name: ascii, preference: 0 }]
    : orderByPreference(
        records.filter((r) => !isNull(r)),
        options.random ?? Math.random,
      );

  const resolved = await Promise.all(candidates.map((c) => resolveHost(resolver, c.name, c.preference)));
  const hosts = resolved.filter((r) => r.host.addresses.length > 0).map((r) => r.host);
  const skipped = resolved.flatMap((r) =>
    r.host.addresses.length > 0
      ? []
      : [{ name: r.host.name, preference: r.host.preference, reason: r.failure ?? 'no address' }],
  );
  if (hosts.length > 0) return { domain: ascii, implicit, hosts, skipped };

  const temporary = resolved.find((r) => r.temporary);
  const names = candidates.map((c) => c.name).join(', ');
  if (temporary) {
    throw new MxError({
      domain: ascii,
      permanent: false,
      reason: implicit
        ? `${ascii} has no MX record and the lookup of its address failed temporarily (${temporary.failure})`
        : `none of the MX hosts of ${ascii} (${names}) could be resolved; temporary DNS failure (${temporary.failure})`,
      enhancedCode: CODES.dnsTemporary,
    });
  }
  throw new MxError({
    domain: ascii,
    permanent: true,
    reason: implicit
      ? `${ascii} has no MX record and no A/AAAA address: it accepts no mail`
      : `none of the MX hosts of ${ascii} (${names}) has an A/AAAA address`,
    enhancedCode: CODES.unroutable,
  });
}

/** RFC 5321 §4.1.3: `[192.0.2.1]` or `[IPv6:2001:db8::1]` (the tag is tolerated if missing). */
function parseDomainLiteral(domain: string): MxHost | undefined {
  const match = /^\[(.*)\]$/.exec(domain.trim());
  if (!match) return undefined;
  const inner = (match[1] ?? '').replace(/^ipv6:/i, '');
  if (isIPv4(inner) || (isIPv6(inner) && !inner.includes('%'))) {
    return { name: domain.trim(), preference: 0, addresses: [inner.toLowerCase()] };
  }
  throw new MxError({
    domain,
    permanent: true,
    reason: `${domain} is not a valid address literal`,
    enhancedCode: CODES.badSyntax,
  });
}

/**
 * Converts a (possibly internationalised) domain to the ASCII form DNS needs (RFC 5890 A-labels)
 * and checks RFC 1035 §2.3.4 lengths. URL parsing would also percent-decode and turn numeric
 * hosts into IPv4 addresses, so such input is refused first.
 */
function toAsciiDomain(domain: string): string {
  const name = domain.trim().replace(/\.$/, '');
  const invalid = (why: string): MxError =>
    new MxError({
      domain,
      permanent: true,
      reason: `${JSON.stringify(domain)} is not a valid domain: ${why}`,
      enhancedCode: CODES.badSyntax,
    });
  if (/[^\p{L}\p{M}\p{N}._-]/u.test(name)) throw invalid('it contains characters not allowed in a domain');
  const ascii = domainToASCII(name);
  if (ascii === '' || isIPv4(ascii)) throw invalid('it cannot be converted to a DNS name');
  if (ascii.length > 253) throw invalid('it is longer than 253 characters');
  if (ascii.split('.').some((label) => label.length === 0 || label.length > 63)) {
    throw invalid('each label must have 1 to 63 characters');
  }
  return ascii;
}

/** Ascending preference; ties shuffled with Fisher–Yates; a host listed twice keeps its best preference. */
function orderByPreference(
  records: MxRecord[],
  random: () => number,
): Array<{ name: string; preference: number }> {
  const groups = new Map<number, string[]>();
  const seen = new Set<string>();
  for (const r of [...records].sort((x, y) => x.priority - y.priority)) {
    const name = r.exchange.toLowerCase().replace(/\.$/, '');
    if (seen.has(name)) continue;
    seen.add(name);
    const group = groups.get(r.priority) ?? [];
    group.push(name);
    groups.set(r.priority, group);
  }
  const ordered: Array<{ name: string; preference: number }> = [];
  for (const [preference, names] of groups) {
    for (let i = names.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [names[i], names[j]] = [names[j] as string, names[i] as string];
    }
    for (const name of names) ordered.push({ name, preference });
  }
  return ordered;
}

interface ResolvedHost {
  host: MxHost;
  temporary: boolean;
  /** The failure codes, when the host has no address. */
  failure?: string;
}

async function resolveHost(resolver: MxLookup, name: string, preference: number): Promise<ResolvedHost> {
  if (isIPv4(name) || isIPv6(name))
    return { host: { name, preference, addresses: [name] }, temporary: false };
  const [v4, v6] = await Promise.allSettled([resolver.a(name), resolver.aaaa(name)]);
  const addresses: string[] = [];
  const errors: DnsError[] = [];
  for (const result of [v4, v6]) {
    if (result.status === 'fulfilled') addresses.push(...result.value);
    else if (result.reason instanceof DnsError) errors.push(result.reason);
    else throw result.reason;
  }
  const failure = errors.length > 0 ? errors.map((e) => `${e.rrtype} ${e.code}`).join(', ') : undefined;
  return {
    host: { name, preference, addresses },
    temporary: errors.some((e) => e.kind === 'temporary'),
    ...(failure === undefined ? {} : { failure }),
  };
}
