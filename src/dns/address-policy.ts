/**
 * Which addresses delivery may connect to. An MX host that resolves to a loopback or private
 * address would make the relay deliver into its own network (SSRF through DNS: anyone who can
 * publish an MX record could aim our SMTP client at internal services), so by default such
 * addresses are refused. `delivery.allow_private_mx` turns that off for tests and intranets.
 *
 * Ranges: RFC 6890 special-purpose registries (IPv4 and IPv6), plus RFC 6598 shared space,
 * RFC 9637 IPv6 documentation space, and IPv6 outside 2000::/3 (not global unicast, RFC 4291).
 */

import type { ParsedIp } from './ip-address.ts';
import { parseIp } from './ip-address.ts';
import type { MxHost } from './mx.ts';

export type AddressScope =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link-local'
  | 'unique-local'
  | 'multicast'
  | 'documentation'
  | 'reserved';

type Rule = { range: string; scope: AddressScope | 'embedded-ipv4' };

/** First match wins, so narrower ranges come before the ranges that contain them. */
const RULES: readonly Rule[] = [
  { range: '0.0.0.0/32', scope: 'unspecified' },
  { range: '0.0.0.0/8', scope: 'reserved' }, // "this network", RFC 1122 §3.2.1.3
  { range: '10.0.0.0/8', scope: 'private' }, // RFC 1918
  { range: '100.64.0.0/10', scope: 'shared' }, // carrier-grade NAT, RFC 6598
  { range: '127.0.0.0/8', scope: 'loopback' },
  { range: '169.254.0.0/16', scope: 'link-local' }, // RFC 3927
  { range: '172.16.0.0/12', scope: 'private' }, // RFC 1918
  { range: '192.0.0.0/24', scope: 'reserved' }, // IETF protocol assignments
  { range: '192.0.2.0/24', scope: 'documentation' }, // RFC 5737
  { range: '192.88.99.0/24', scope: 'reserved' }, // 6to4 relay anycast, RFC 7526
  { range: '192.168.0.0/16', scope: 'private' }, // RFC 1918
  { range: '198.18.0.0/15', scope: 'reserved' }, // benchmarking, RFC 2544
  { range: '198.51.100.0/24', scope: 'documentation' },
  { range: '203.0.113.0/24', scope: 'documentation' },
  { range: '224.0.0.0/4', scope: 'multicast' },
  { range: '240.0.0.0/4', scope: 'reserved' }, // includes 255.255.255.255
  { range: '::/128', scope: 'unspecified' },
  { range: '::1/128', scope: 'loopback' },
  { range: '::ffff:0:0/96', scope: 'embedded-ipv4' }, // IPv4-mapped, RFC 4291 §2.5.5.2
  { range: '64:ff9b::/96', scope: 'embedded-ipv4' }, // NAT64 well-known prefix, RFC 6052
  { range: '::/96', scope: 'reserved' }, // IPv4-compatible (deprecated), RFC 4291 §2.5.5.1
  { range: '100::/64', scope: 'reserved' }, // discard-only, RFC 6666
  { range: '2001:db8::/32', scope: 'documentation' }, // RFC 3849
  { range: '3fff::/20', scope: 'documentation' }, // RFC 9637
  { range: 'fc00::/7', scope: 'unique-local' }, // RFC 4193
  { range: 'fe80::/10', scope: 'link-local' },
  { range: 'fec0::/10', scope: 'private' }, // site-local (deprecated), RFC 3879
  { range: 'ff00::/8', scope: 'multicast' },
];

type CompiledRule = { prefix: ParsedIp; bits: number; scope: Rule['scope'] };

const COMPILED: readonly CompiledRule[] = RULES.map(({ range, scope }) => {
  const [address = '', bits = ''] = range.split('/');
  const prefix = parseIp(address);
  if (!prefix) throw new Error(`bad built-in range ${range}`);
  return { prefix, bits: Number(bits), scope };
});

// Only 2000::/3 is allocated for global unicast (RFC 4291 §2.4, IANA IPv6 address space).
const GLOBAL_UNICAST_V6: CompiledRule = { prefix: parseIp('2000::') as ParsedIp, bits: 3, scope: 'public' };

function matches(ip: ParsedIp, rule: CompiledRule): boolean {
  if (ip.family !== rule.prefix.family) return false;
  for (let bit = 0; bit < rule.bits; bit++) {
    const mask = 0x80 >> (bit % 8);
    const byte = bit >> 3;
    if (((ip.bytes[byte] ?? 0) & mask) !== ((rule.prefix.bytes[byte] ?? 0) & mask)) return false;
  }
  return true;
}

function scopeOf(ip: ParsedIp): AddressScope {
  const rule = COMPILED.find((r) => matches(ip, r));
  if (rule?.scope === 'embedded-ipv4') return scopeOf({ family: 4, bytes: ip.bytes.slice(12) });
  if (rule) return rule.scope;
  if (ip.family === 6 && !matches(ip, GLOBAL_UNICAST_V6)) return 'reserved';
  return 'public';
}

/** The special-purpose range an address belongs to, or 'public'. Throws on a non-address. */
export function addressScope(address: string): AddressScope {
  const ip = parseIp(address);
  if (!ip) throw new TypeError(`not an IP address: ${JSON.stringify(address)}`);
  return scopeOf(ip);
}

/** True for every address that is not public unicast: loopback, RFC 1918, link-local, ... */
export function isPrivateAddress(address: string): boolean {
  return addressScope(address) !== 'public';
}

export interface RefusedMxHost {
  name: string;
  /** The addresses that were refused. */
  addresses: string[];
  /** True when the host was dropped entirely; false when only some of its addresses were. */
  wholeHost: boolean;
  reason: string;
}

export interface AddressPolicyResult {
  hosts: MxHost[];
  refused: RefusedMxHost[];
}

export const ALLOW_PRIVATE_SETTING = 'delivery.allow_private_mx';

/**
 * Keeps only the addresses delivery may connect to. With `allowPrivate` everything passes.
 * Otherwise private addresses are removed; a host left without addresses is dropped, and each
 * removal is reported with a sentence fit for the delivery log.
 */
export function applyAddressPolicy(
  hosts: readonly MxHost[],
  options: { allowPrivate: boolean },
): AddressPolicyResult {
  if (options.allowPrivate)
    return { hosts: hosts.map((h) => ({ ...h, addresses: [...h.addresses] })), refused: [] };
  const kept: MxHost[] = [];
  const refused: RefusedMxHost[] = [];
  for (const host of hosts) {
    const allowed = host.addresses.filter((a) => !isPrivateAddress(a));
    const denied = host.addresses.filter((a) => isPrivateAddress(a));
    if (allowed.length > 0) kept.push({ ...host, addresses: allowed });
    if (denied.length === 0) continue;
    const list = denied.join(', ');
    refused.push({
      name: host.name,
      addresses: denied,
      wholeHost: allowed.length === 0,
      reason:
        allowed.length === 0
          ? `MX host ${host.name} resolves only to private/loopback addresses (${list}); refused because ${ALLOW_PRIVATE_SETTING} is off`
          : `MX host ${host.name}: private/loopback addresses (${list}) left out because ${ALLOW_PRIVATE_SETTING} is off`,
    });
  }
  return { hosts: kept, refused };
}
