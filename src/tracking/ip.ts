/**
 * The client address of an engagement event as the privacy setting (`tracking.ip`) wants it:
 * `full`, `truncated` (IPv4 to its /24, IPv6 to its /48: enough for a region, not a household)
 * or `none`.
 */
import { isIP } from 'node:net';

export type IpMode = 'full' | 'truncated' | 'none';

/** An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is the IPv4 address it carries. */
function unmapped(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  return mapped?.[1] ?? ip;
}

/** The 8 groups of an IPv6 address as numbers, or undefined. */
function ipv6Groups(ip: string): number[] | undefined {
  let text = ip;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // A trailing dotted quad (::ffff:1.2.3.4 is handled before; other embeddings are rare) counts as two groups.
  const quad = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail].map((g) =>
    Number.parseInt(g, 16),
  );
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff)
    ? groups
    : undefined;
}

/** The address to store, or undefined (mode `none`, or not an IP address at all). */
export function storedIp(ip: string | undefined, mode: IpMode): string | undefined {
  if (ip === undefined || mode === 'none') return undefined;
  const address = unmapped(ip.trim());
  const version = isIP(address);
  if (version === 0) return undefined;
  if (mode === 'full') return address;
  if (version === 4) return address.replace(/\.\d+$/, '.0');
  const groups = ipv6Groups(address);
  if (!groups) return undefined;
  return `${groups
    .slice(0, 3)
    .map((g) => g.toString(16))
    .join(':')}::`;
}
