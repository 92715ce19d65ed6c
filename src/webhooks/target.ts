import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { addressScope } from '../dns/address-policy.ts';

/** Why a webhook URL may not be used; `field` is `url` for the API. */
export class WebhookTargetError extends Error {
  readonly field = 'url';
  constructor(message: string) {
    super(message);
    this.name = 'WebhookTargetError';
  }
}

export const MAX_URL_LENGTH = 2000;

/** Checks the form of an endpoint URL (before any DNS): http(s), a host, no credentials, not too long. */
export function parseWebhookUrl(raw: string): URL {
  if (raw.length > MAX_URL_LENGTH)
    throw new WebhookTargetError(`url is longer than ${MAX_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookTargetError('url is not a valid absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new WebhookTargetError('url must be http:// or https://');
  }
  if (url.username !== '' || url.password !== '') {
    throw new WebhookTargetError(
      'url must not carry a user name or password (the signature authenticates us)',
    );
  }
  if (url.hostname === '') throw new WebhookTargetError('url has no host');
  return url;
}

export interface TargetPolicy {
  /** `webhooks.allow_private`: loopback, private and link-local targets allowed (tests, intranets). */
  allowPrivate: boolean;
  /** `webhooks.allow_hosts`: host names (lower case) allowed whatever they resolve to. */
  allowHosts: readonly string[];
}

export type LookupAll = (host: string) => Promise<{ address: string; family: number }[]>;

const systemLookup: LookupAll = (host) => lookup(host, { all: true, verbatim: true });

/** Where one attempt connects: the address that was checked (no second DNS lookup, so no rebinding). */
export interface ResolvedTarget {
  url: URL;
  address: string;
  family: 4 | 6;
}

/**
 * Resolves the URL's host and picks the address to connect to. SSRF guard: anyone who can
 * create a webhook could otherwise aim our HTTP client at the cluster's own network (the
 * database, a metadata service at 169.254.169.254, an admin port on loopback), so addresses
 * that are not public unicast are refused (dns/address-policy.ts, the same ranges delivery
 * refuses for MX hosts), unless the policy allows private targets or names the host. The
 * caller connects to the returned address, not to the name, so a DNS answer that changes
 * between the check and the connection (rebinding) cannot move the request inside.
 */
export async function resolveTarget(
  url: URL,
  policy: TargetPolicy,
  lookupAll: LookupAll = systemLookup,
): Promise<ResolvedTarget> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const allowed = policy.allowPrivate || policy.allowHosts.includes(host);
  let addresses: { address: string; family: number }[];
  if (isIP(host)) {
    addresses = [{ address: host, family: isIP(host) }];
  } else {
    try {
      addresses = await lookupAll(host);
    } catch (err) {
      throw new WebhookTargetError(
        `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
  }
  const usable = allowed ? addresses : addresses.filter((a) => addressScope(a.address) === 'public');
  const chosen = usable[0];
  if (!chosen) {
    if (addresses.length === 0) throw new WebhookTargetError(`${host} has no address`);
    const list = addresses.map((a) => `${a.address} (${addressScope(a.address)})`).join(', ');
    throw new WebhookTargetError(
      `${host} resolves only to non-public addresses (${list}); refused unless webhooks.allow_private is on or the host is in webhooks.allow_hosts`,
    );
  }
  return { url, address: chosen.address, family: chosen.family === 6 ? 6 : 4 };
}
