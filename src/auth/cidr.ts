import { BlockList, isIP } from 'node:net';

/** Parses `a.b.c.d/nn`, `v6/nn` or a bare address; returns a problem text when invalid. */
export function parseCidr(
  text: string,
): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | string {
  const [address = '', prefixText, extra] = text.trim().split('/');
  if (extra !== undefined) return `"${text}" is not an address or CIDR`;
  const version = isIP(address);
  if (version === 0) return `"${text}" is not an IP address or CIDR`;
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d+$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max)
    return `"${text}" has an invalid prefix length`;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** A set of CIDRs to test client addresses against; IPv4-mapped IPv6 clients match IPv4 ranges. */
export function cidrMatcher(cidrs: readonly string[]): (ip: string) => boolean {
  const list = new BlockList();
  for (const c of cidrs) {
    const parsed = parseCidr(c);
    if (typeof parsed === 'string') throw new Error(parsed);
    list.addSubnet(parsed.address, parsed.prefix, parsed.family);
  }
  return (ip: string) => {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    const addr = mapped?.[1] ?? ip;
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    return isIP(addr) !== 0 && list.check(addr, family);
  };
}
