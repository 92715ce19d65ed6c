/**
 * The `smarthost` of a route (route-spec.ts) and its validation:
 *
 *   smarthost: { host: relay.example.net, port: 587, tls: starttls, user: postbote, password: '…' }
 *
 * `host`: a host name or an IP address (IPv6 bare or in brackets); `port`: 25 when left out;
 * `tls`: `none` (plain), `starttls` (the default; STARTTLS required, never a plain fallback) or
 * `tls` (implicit TLS, port 465 style); `user` and `password` go together (AUTH) and are refused
 * over `tls: none` except to a loopback host, as they would cross the network in clear.
 *
 * Secrets: the password is never part of a problem line, nor the user name, nor any value
 * under `smarthost` that is not a known non-secret field, nor an unknown key that does not look
 * like a key (`password hunter2` written without its colon is a key in YAML).
 */

import { isIP } from 'node:net';
import { normalizeHost } from '../shaping/site.ts';
import { describe, isMapping } from '../shaping/spec.ts';

export type SmarthostTls = 'none' | 'starttls' | 'tls';

export interface Smarthost {
  /** Lower-case host name or IP address (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  readonly tls: SmarthostTls;
  readonly user?: string;
  /** Secret: never log it; log the route name. */
  readonly password?: string;
}

const SMARTHOST_KEYS = ['host', 'port', 'tls', 'user', 'password'];

/** `unknown key x (known: …)`; a key that does not look like one is not shown (it may be a secret). */
export function checkKeysQuietly(
  raw: Record<string, unknown>,
  keys: readonly string[],
  path: string,
  problems: string[],
) {
  for (const key of Object.keys(raw)) {
    if (keys.includes(key)) continue;
    const shown = /^[A-Za-z_]{1,30}$/.test(key) ? key : '(an unknown key, not shown as it may hold a secret)';
    problems.push(`${path}.${shown}: unknown key (known: ${keys.join(', ')})`);
  }
}

export function parseSmarthost(raw: unknown, path: string, problems: string[]): Smarthost | undefined {
  if (!isMapping(raw)) {
    problems.push(`${path}: must be a mapping { host, port, tls, user, password }`);
    return undefined;
  }
  const before = problems.length;
  checkKeysQuietly(raw, SMARTHOST_KEYS, path, problems);
  const host = parseHost(raw.host, `${path}.host`, problems);
  let port = 25;
  if (raw.port !== undefined) {
    const n = typeof raw.port === 'string' && /^\s*\d+\s*$/.test(raw.port) ? Number(raw.port) : raw.port;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) {
      problems.push(`${path}.port: must be a port number (1-65535), got ${describe(raw.port)}`);
    } else port = n;
  }
  let tls: SmarthostTls = 'starttls';
  if (raw.tls === 'none' || raw.tls === 'starttls' || raw.tls === 'tls') tls = raw.tls;
  else if (raw.tls !== undefined)
    problems.push(`${path}.tls: must be none, starttls or tls, got ${describe(raw.tls)}`);
  // Neither value is echoed: a user name is sometimes the password's neighbour in a typo.
  const user = raw.user;
  const password = raw.password;
  if (user !== undefined && (typeof user !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(user))) {
    problems.push(`${path}.user: must be a string of 1-255 visible ASCII characters`);
  }
  if (
    password !== undefined &&
    (typeof password !== 'string' || password.length === 0 || password.length > 1024)
  ) {
    problems.push(
      `${path}.password: must be a quoted string of 1-1024 characters (YAML reads unquoted digits as a number)`,
    );
  }
  if (password !== undefined && user === undefined) problems.push(`${path}.password: given without user`);
  if (user !== undefined && password === undefined) problems.push(`${path}.user: given without password`);
  if (user !== undefined && tls === 'none' && host !== undefined && !isLoopback(host)) {
    problems.push(
      `${path}.tls: none would send the AUTH password in clear to ${host}; use starttls or tls (none with AUTH is only allowed to a loopback host)`,
    );
  }
  if (problems.length > before || host === undefined) return undefined;
  return {
    host,
    port,
    tls,
    ...(typeof user === 'string' ? { user } : {}),
    ...(typeof password === 'string' ? { password } : {}),
  };
}

function parseHost(raw: unknown, path: string, problems: string[]): string | undefined {
  if (typeof raw === 'string') {
    const text = raw.trim().replace(/^\[(.*)\]$/, '$1');
    if (isIP(text) !== 0) return text.toLowerCase();
    const host = normalizeHost(text);
    if (host !== undefined) return host;
  }
  problems.push(
    raw === undefined
      ? `${path}: required: the smarthost's name or IP address`
      : `${path}: must be a host name or IP address (the port goes in port), got ${describe(raw)}`,
  );
  return undefined;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}
