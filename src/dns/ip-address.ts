/**
 * IP address parsing shared by the reverse-lookup name builder and the address policy.
 * `node:net` validates; this only turns a valid address into bytes.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface ParsedIp {
  family: 4 | 6;
  /** 4 bytes for IPv4, 16 for IPv6. */
  bytes: Uint8Array;
}

/** Parses an IPv4 or IPv6 address (a zone id such as `%eth0` is ignored); undefined if invalid. */
export function parseIp(input: string): ParsedIp | undefined {
  if (isIPv4(input)) return { family: 4, bytes: Uint8Array.from(input.split('.').map(Number)) };
  const ip = input.replace(/%.*$/, '');
  if (!isIPv6(ip)) return undefined;
  const groups = ipv6Groups(ip);
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  return { family: 6, bytes };
}

/** The 8 sixteen-bit groups of a valid IPv6 address, with `::` and a dotted IPv4 tail expanded. */
function ipv6Groups(ip: string): number[] {
  let text = ip;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const [a = 0, b = 0, c = 0, d = 0] = dotted[1].split('.').map(Number);
    tail.push((a << 8) | b, (c << 8) | d);
    text = text.slice(0, -dotted[1].length);
    // `::ffff:1.2.3.4` leaves `::ffff:`, `::1.2.3.4` leaves `::`: drop a lone trailing colon.
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const parse = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16));
  const [head = '', rest] = text.split('::');
  const left = parse(head);
  if (rest === undefined) return [...left, ...tail];
  const right = [...parse(rest), ...tail];
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/**
 * The name to query for a PTR lookup: `in-addr.arpa` for IPv4 (RFC 1035 §3.5), nibbles under
 * `ip6.arpa` for IPv6 (RFC 3596 §2.5).
 */
export function reverseName(ip: string): string {
  const parsed = parseIp(ip);
  if (!parsed) throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`);
  if (parsed.family === 4) return `${[...parsed.bytes].reverse().join('.')}.in-addr.arpa`;
  const nibbles: string[] = [];
  for (const byte of parsed.bytes) nibbles.push((byte >> 4).toString(16), (byte & 0xf).toString(16));
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}
