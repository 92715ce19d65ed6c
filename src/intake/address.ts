import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';

/**
 * The delivery domain of a recipient address: lower-cased, IDNs in punycode (RFC 5890),
 * domain literals kept as `[ip]`. Undefined when the address has no usable domain.
 */
export function recipientDomain(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  const domain = address.slice(at + 1).replace(/\.$/, '');
  if (domain.startsWith('[') && domain.endsWith(']')) {
    const literal = domain.slice(1, -1).replace(/^ipv6:/i, '');
    return isIP(literal) ? `[${literal.toLowerCase()}]` : undefined;
  }
  const ascii = domainToASCII(domain);
  if (!ascii || ascii.length > 253 || !ascii.includes('.')) return undefined;
  if (!/^[a-z0-9.-]+$/.test(ascii) || ascii.split('.').some((label) => label === '' || label.length > 63)) {
    return undefined;
  }
  return ascii;
}
