import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser';

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

/**
 * An address list as an API caller writes it (`"Doe, Jane" <j@x.io>, b@y.io`), parsed like a
 * header. `problem` says why it is refused: `control` for a line break or another control
 * character (`b@y.io\r\nBcc: e@z.io` would otherwise read as the group `Bcc:` and send to
 * e@z.io instead), `no_address` for an entry without one (its text in `entry`).
 */
export function parseAddressList(text: string): {
  mailboxes: { address: string; name?: string }[];
  problem?: 'control' | 'no_address';
  entry?: string;
} {
  if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(text)) return { mailboxes: [], problem: 'control' };
  const parsed = addressparser(text, { flatten: true });
  const empty = parsed.find((p) => !p.address);
  if (empty) return { mailboxes: [], problem: 'no_address', entry: empty.name || text };
  return {
    mailboxes: parsed.map((p) => (p.name ? { address: p.address, name: p.name } : { address: p.address })),
  };
}
