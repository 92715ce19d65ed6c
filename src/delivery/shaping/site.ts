/**
 * Sites: the delivery destination as the network sees it (KumoMTA's "MX rollup").
 *
 *   siteOf(['ALT1.aspmx.l.google.com.', 'aspmx.l.google.com'], providers)
 *     → { key: 'provider:google', provider: 'google', hosts: ['alt1.aspmx.l.google.com', 'aspmx.l.google.com'] }
 *   siteOf(['mx2.a.test', 'mx1.a.test', 'mx1.a.test'], providers)
 *     → { key: 'mx1.a.test,mx2.a.test', hosts: ['mx1.a.test', 'mx2.a.test'] }
 *   siteOf(['b.test'], providers)                  // implicit MX (RFC 5321 §5.1): the domain itself
 *     → { key: 'b.test', hosts: ['b.test'] }
 *   smarthostSite('relay.example', 587)            // a smarthost route: one host and port
 *     → { key: 'host:relay.example:587', hosts: ['relay.example'] }
 *
 * Rules:
 * - Host names are compared lower-case without a trailing dot (`MX.A.TEST.` is `mx.a.test`).
 * - A provider claims a host when the host equals one of its MX suffixes or ends with
 *   `.` + suffix (`aspmx.l.google.com` and `google.com` match; `evilgoogle.com` does not). When
 *   several providers claim a host, the longest suffix wins.
 * - A domain belongs to a provider's site only when the provider claims *every* MX host: a domain
 *   whose backup MX is elsewhere may be answered by either, so it stays its own site.
 * - Otherwise the site is the sorted, deduplicated host set joined by commas: every domain with
 *   the same MX hosts shares it (e.g. the thousands of domains of one hosting company).
 *
 * Limits and ready queues are per (egress source, site); see limits.ts.
 */

export interface Provider {
  /** Lower-case name, e.g. `google`; the site key is `provider:<name>`. */
  readonly name: string;
  /** MX host suffixes, lower-case, without leading or trailing dots: `google.com`. */
  readonly mx: readonly string[];
}

export interface Site {
  /** `provider:google`, `mx1.a.test,mx2.a.test`, `b.test` or `host:relay.example:587`. */
  readonly key: string;
  /** Set when every MX host belongs to this provider. */
  readonly provider?: string;
  /** The hosts the site was made from, normalised, sorted and deduplicated. */
  readonly hosts: readonly string[];
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * `MX.Example.COM.` → `mx.example.com`; undefined when it is not a host name (empty, spaces,
 * commas, over 253 characters, a label over 63). Underscores are tolerated: they occur in real
 * MX names even though RFC 952 forbids them.
 */
export function normalizeHost(name: string): string | undefined {
  const host = name.trim().toLowerCase().replace(/\.$/, '');
  if (host === '' || host.length > 253) return undefined;
  return host.split('.').every((label) => LABEL.test(label)) ? host : undefined;
}

/**
 * An MX suffix as written in providers.yaml or the config: `.google.com` or `google.com`. At
 * least two labels, so that no entry can claim a whole top-level domain.
 */
export function normalizeSuffix(suffix: string): string | undefined {
  const host = normalizeHost(suffix.trim().replace(/^\./, ''));
  return host?.includes('.') ? host : undefined;
}

/** Dot-boundary suffix match on normalised names. */
export function hostHasSuffix(host: string, suffix: string): boolean {
  return host === suffix || host.endsWith(`.${suffix}`);
}

/** The provider claiming this normalised host (longest matching suffix), if any. */
export function providerOfHost(host: string, providers: readonly Provider[]): string | undefined {
  let best: { name: string; length: number } | undefined;
  for (const provider of providers) {
    for (const suffix of provider.mx) {
      if (hostHasSuffix(host, suffix) && (best === undefined || suffix.length > best.length)) {
        best = { name: provider.name, length: suffix.length };
      }
    }
  }
  return best?.name;
}

/**
 * The site of a domain from its MX host names (or `[domain]` for an implicit MX). Throws a
 * TypeError for an empty list or a name that is not a host name: a null MX (RFC 7505) or a
 * broken answer has no site, and the caller must not deliver to it.
 */
export function siteOf(mxHostNames: readonly string[], providers: readonly Provider[]): Site {
  const hosts = normalizeHosts(mxHostNames);
  const owners = new Set(hosts.map((host) => providerOfHost(host, providers)));
  const [owner] = owners;
  if (owners.size === 1 && owner !== undefined) return { key: `provider:${owner}`, provider: owner, hosts };
  return { key: hosts.join(','), hosts };
}

/** The site of a smarthost route: `host:relay.example:587`. Provider limits never apply to it. */
export function smarthostSite(host: string, port: number): Site {
  const normalized = normalizeHost(host);
  if (normalized === undefined) throw new TypeError(`not a host name: ${JSON.stringify(host)}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`not a port: ${port}`);
  return { key: `host:${normalized}:${port}`, hosts: [normalized] };
}

/**
 * The site a key names, as far as the key tells (`queue summary` has keys from the store, not MX
 * answers): a provider site without its hosts, a smarthost or MX host set with them. Enough for
 * `limitsFor`, which needs only the provider or the hosts. undefined for '' (no site yet).
 */
export function siteFromKey(key: string): Site | undefined {
  if (key === '') return undefined;
  if (key.startsWith('provider:')) return { key, provider: key.slice('provider:'.length), hosts: [] };
  const smarthost = /^host:(.+):(\d+)$/.exec(key);
  if (smarthost) return { key, hosts: [smarthost[1] ?? ''] };
  return { key, hosts: key.split(',') };
}

/** Normalised, sorted, deduplicated; throws a TypeError naming the first bad entry. */
export function normalizeHosts(names: readonly string[]): string[] {
  if (names.length === 0) throw new TypeError('a site needs at least one host');
  const hosts = new Set<string>();
  for (const name of names) {
    const host = typeof name === 'string' ? normalizeHost(name) : undefined;
    if (host === undefined) throw new TypeError(`not a host name: ${JSON.stringify(name)}`);
    hosts.add(host);
  }
  return [...hosts].sort();
}
