/**
 * MTA-STS (RFC 8461): a receiving domain publishes, over HTTPS with a valid certificate, which
 * MX hosts it uses and that they speak TLS; a sender that honours a policy in `enforce` mode
 * delivers only to those hosts, only over TLS with a certificate valid for the MX name, and
 * otherwise defers. This module finds, fetches, parses and caches policies; destination.ts
 * applies them.
 *
 * Discovery (§3.1, §5.1): the TXT record `_mta-sts.<domain>` (`v=STSv1; id=…`) says whether a
 * policy exists and which version; the policy itself is fetched only when its id differs from
 * the cached one or the cached one expired. Every failure fails open, as the RFC asks (§5.1,
 * §10.3): no TXT record, a bad record, a fetch or parse failure, all mean "no policy", except
 * that a cached, unexpired policy keeps applying (a DNS or HTTPS attacker cannot strip it).
 *
 * The fetch (§3.3): HTTPS to `mta-sts.<domain>` only, certificate checked against the system CAs
 * (plus `delivery.mta_sts.ca_file`), no redirects, at most 64 KB, bounded by a timeout, and only
 * to public addresses unless delivery.allow_private_mx (the same SSRF guard as MX hosts).
 */
import https from 'node:https';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { isPrivateAddress } from '../dns/address-policy.ts';

export type MtaStsMode = 'enforce' | 'testing' | 'none';

export interface MtaStsPolicy {
  /** The TXT record's id the policy was fetched under. */
  id: string;
  mode: MtaStsMode;
  /** MX patterns: `mx.example.com` or `*.example.com` (one leftmost label), lower case. */
  mx: string[];
  maxAgeSeconds: number;
}

/** RFC 8461 §3.2: max_age is at most 31557600 (about a year). */
const MAX_AGE_LIMIT = 31_557_600;
/** §3.3: "senders SHOULD impose a limit on the response size" — 64 KB, as the RFC suggests. */
export const MAX_POLICY_BYTES = 64 * 1024;
/** A policy that could not be fetched is not asked for again for this long (per domain and id). */
const FAILURE_TTL_MS = 5 * 60_000;
/** A temporary DNS failure of the TXT lookup is not retried for this long (per domain). */
const TXT_FAILURE_TTL_MS = 60_000;
/** Domains kept in memory; the least recently fetched go first. */
const MAX_CACHED = 10_000;

/** The policy text, or why it is not one (a line per problem is overkill: the first one). */
export function parsePolicy(text: string, id: string): MtaStsPolicy | { error: string } {
  let version: string | undefined;
  let mode: string | undefined;
  let maxAge: string | undefined;
  const mx: string[] = [];
  // §3.2: lines end with CRLF or LF; "key: value", whitespace around the value ignored.
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return { error: `not a "key: value" line: ${line.slice(0, 60)}` };
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (key === 'version') version ??= value;
    else if (key === 'mode') mode ??= value;
    else if (key === 'max_age') maxAge ??= value;
    else if (key === 'mx') mx.push(value.toLowerCase().replace(/\.$/, ''));
    // Unknown keys are extensions (§3.2): ignored.
  }
  if (version !== 'STSv1') return { error: `version is ${version ?? 'missing'}, not STSv1` };
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') {
    return { error: `mode is ${mode ?? 'missing'}, not enforce, testing or none` };
  }
  if (maxAge === undefined || !/^\d{1,15}$/.test(maxAge)) return { error: 'max_age missing or not a number' };
  const maxAgeSeconds = Math.min(Number(maxAge), MAX_AGE_LIMIT);
  const badMx = mx.find(
    (p) => !/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(p),
  );
  if (badMx !== undefined)
    return { error: `mx pattern ${badMx.slice(0, 60)} is not a host name or *.domain` };
  if (mode !== 'none' && mx.length === 0) return { error: `mode ${mode} without any mx` };
  return { id, mode, mx, maxAgeSeconds };
}

/** The id of the one `v=STSv1` TXT record, or undefined (none, several, or malformed: §3.1). */
export function parseStsRecord(records: string[][]): string | undefined {
  const sts = records.map((chunks) => chunks.join('')).filter((r) => /^v=STSv1(;|$)/.test(r.trim()));
  if (sts.length !== 1) return undefined;
  for (const field of sts[0]!.split(';')) {
    const [key, value] = field.split('=').map((s) => s.trim());
    if (key === 'id') return value && /^[a-zA-Z0-9]{1,32}$/.test(value) ? value : undefined;
  }
  return undefined;
}

/** §4.1: an exact name, or `*.` matching exactly one leftmost label. Case-insensitive. */
export function mxMatches(pattern: string, host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  if (!pattern.startsWith('*.')) return name === pattern;
  const dot = name.indexOf('.');
  return dot > 0 && name.slice(dot + 1) === pattern.slice(2);
}

export interface MtaStsLookup {
  txt(name: string): Promise<string[][]>;
  a(name: string): Promise<string[]>;
  aaaa(name: string): Promise<string[]>;
}

/** Fetches `https://mta-sts.<domain>/.well-known/mta-sts.txt` and returns the body text. */
export type PolicyFetch = (domain: string) => Promise<string>;

export interface MtaStsLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface MtaStsOptions {
  resolver: MtaStsLookup;
  clock: () => number;
  logger: MtaStsLogger;
  /** Default: HTTPS as described in the module comment (`httpsPolicyFetch`). */
  fetch?: PolicyFetch;
}

export interface MtaSts {
  /** The policy in force for `domain`, or undefined: deliver as without MTA-STS. Never throws. */
  policyFor(domain: string): Promise<MtaStsPolicy | undefined>;
}

interface Cached {
  policy: MtaStsPolicy;
  expiresAt: number;
}

export function createMtaSts(options: MtaStsOptions): MtaSts {
  const { resolver, clock, logger } = options;
  const fetchPolicy = options.fetch ?? httpsPolicyFetch({ resolver, timeoutMs: 10_000, allowPrivate: false });
  const cache = new Map<string, Cached>();
  /** `<domain> <id>` → until when a failed fetch is not retried; `<domain>` → a failed TXT lookup. */
  const failures = new Map<string, number>();
  const inFlight = new Map<string, Promise<MtaStsPolicy | undefined>>();

  async function lookup(domain: string): Promise<MtaStsPolicy | undefined> {
    const now = clock();
    const hit = cache.get(domain);
    const cached = hit && hit.expiresAt > now ? hit.policy : undefined;
    if (hit && !cached) cache.delete(domain);
    let id: string | undefined;
    if ((failures.get(domain) ?? 0) <= now) {
      try {
        id = parseStsRecord(await resolver.txt(`_mta-sts.${domain}`));
      } catch (err) {
        // NXDOMAIN or no record (the resolver caches those), or a DNS failure: the cached policy
        // (if any) applies. A failure is not asked again for a while: a zone whose servers never
        // answer TXT would otherwise cost every delivery attempt a DNS timeout.
        if ((err as { kind?: string }).kind === 'temporary') {
          if (failures.size >= MAX_CACHED) failures.clear();
          failures.set(domain, now + TXT_FAILURE_TTL_MS);
        }
      }
    }
    if (id === undefined || id === cached?.id) return cached;
    const failedKey = `${domain} ${id}`;
    if ((failures.get(failedKey) ?? 0) > now) return cached;
    let policy: MtaStsPolicy | undefined;
    try {
      const parsed = parsePolicy(await fetchPolicy(domain), id);
      if ('error' in parsed) throw new Error(parsed.error);
      policy = parsed;
    } catch (err) {
      if (failures.size >= MAX_CACHED) failures.clear();
      failures.set(failedKey, now + FAILURE_TTL_MS);
      logger.warn(
        {
          domain,
          id,
          err: err instanceof Error ? err.message : String(err),
          keptCached: cached !== undefined,
        },
        'MTA-STS policy could not be fetched or parsed; ignored',
      );
      return cached;
    }
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
    cache.delete(domain);
    cache.set(domain, { policy, expiresAt: clock() + policy.maxAgeSeconds * 1000 });
    logger.info({ domain, id, mode: policy.mode, mx: policy.mx }, 'MTA-STS policy fetched');
    return policy;
  }

  return {
    policyFor(domain) {
      const name = domain.toLowerCase().replace(/\.$/, '');
      let running = inFlight.get(name);
      if (!running) {
        running = lookup(name).finally(() => inFlight.delete(name));
        inFlight.set(name, running);
      }
      return running;
    },
  };
}

export interface HttpsFetchOptions {
  resolver: Pick<MtaStsLookup, 'a' | 'aaaa'>;
  timeoutMs: number;
  /** Connect to loopback/private addresses too (delivery.allow_private_mx; tests). */
  allowPrivate: boolean;
  /** Extra trusted CA certificates (PEM), added to the system's. */
  ca?: string | Buffer;
  /** 443 in the real world; tests run their HTTPS server elsewhere. */
  port?: number;
}

/**
 * The policy fetch of §3.3: GET over HTTPS with the certificate checked for `mta-sts.<domain>`,
 * status 200 only (a redirect is a failure), a text/plain body of at most 64 KB.
 */
export function httpsPolicyFetch(options: HttpsFetchOptions): PolicyFetch {
  const ca = options.ca ? [...tls.rootCertificates, options.ca.toString()] : undefined;
  return async (domain) => {
    const host = `mta-sts.${domain}`;
    const [v4, v6] = await Promise.allSettled([options.resolver.a(host), options.resolver.aaaa(host)]);
    const addresses = [
      ...(v4.status === 'fulfilled' ? v4.value : []),
      ...(v6.status === 'fulfilled' ? v6.value : []),
    ].filter((ip) => isIP(ip) !== 0 && (options.allowPrivate || !isPrivateAddress(ip)));
    const ip = addresses[0];
    if (ip === undefined) throw new Error(`${host} has no usable address`);
    return new Promise<string>((resolve, reject) => {
      const request = https.request(
        {
          host: ip,
          port: options.port ?? 443,
          path: '/.well-known/mta-sts.txt',
          method: 'GET',
          servername: host,
          headers: { host, accept: 'text/plain' },
          agent: false,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.2',
          ...(ca ? { ca } : {}),
        },
        (response) => {
          if (response.statusCode !== 200) {
            response.resume();
            return fail(
              new Error(`${host} answered HTTP ${response.statusCode} (redirects are not followed)`),
            );
          }
          const type = String(response.headers['content-type'] ?? '');
          if (!/^text\/plain\b/i.test(type)) {
            response.resume();
            return fail(new Error(`${host} served ${type || 'no content type'}, not text/plain`));
          }
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_POLICY_BYTES) {
              fail(new Error(`${host} policy is larger than ${MAX_POLICY_BYTES} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          response.on('end', () => {
            clearTimeout(timer);
            resolve(Buffer.concat(chunks).toString('utf8'));
          });
          response.on('error', fail);
        },
      );
      const timer = setTimeout(
        () => fail(new Error(`${host} did not answer within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
      function fail(err: Error): void {
        clearTimeout(timer);
        request.destroy();
        reject(err);
      }
      request.on('error', fail);
      request.end();
    });
  };
}
