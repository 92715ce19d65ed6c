/**
 * Email addresses as they appear in reports: typed DSN fields (`rfc822; user@example.com`,
 * RFC 3464 §2.3.2; xtext from ORCPT, RFC 3461 §4; `utf-8;` with `\x{HH}`, RFC 6533 §3) and
 * addresses found in free text. Domains are lower-cased; local parts are kept as written.
 */

// Bounded repetition everywhere: a run of local-part characters with no `@` must not make the
// scan quadratic.
const ADDRESS_SOURCE =
  "[\\p{L}\\p{N}.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[\\p{L}\\p{N}](?:[\\p{L}\\p{N}-]{0,61}[\\p{L}\\p{N}])?\\.){1,10}[\\p{L}\\p{N}-]{2,63}";
const ADDRESS = new RegExp(ADDRESS_SOURCE, 'u');

/** A fresh global matcher (callers iterate with lastIndex). */
export function addressPattern(): RegExp {
  return new RegExp(ADDRESS_SOURCE, 'gu');
}

/** `Jane <JANE@Example.COM>` → `JANE@example.com`; undefined when there is no address. */
export function firstAddress(text: string): string | undefined {
  const head = text.slice(0, 4096);
  const m = head.includes('@') ? ADDRESS.exec(head) : null;
  return m ? normalizeAddress(m[0]) : undefined;
}

export function normalizeAddress(address: string): string {
  const trimmed = address.trim().replace(/^<|>$/g, '').replace(/\.+$/, '');
  const at = trimmed.lastIndexOf('@');
  return at < 0 ? trimmed : `${trimmed.slice(0, at)}@${trimmed.slice(at + 1).toLowerCase()}`;
}

/**
 * The address of a typed DSN or ARF field: `rfc822; user@example.com (comment)`, with RFC 6533
 * `\x{HH}` escapes decoded, and with `xtext` the `+2B`/`+3D` an Original-Recipient copied from
 * ORCPT may carry.
 */
export function typedAddress(
  value: string,
  options: { xtext?: boolean } = {},
): { type: string; address: string } | undefined {
  const semi = value.indexOf(';');
  const type = semi < 0 ? 'rfc822' : value.slice(0, semi).trim().toLowerCase();
  let rest = (semi < 0 ? value : value.slice(semi + 1)).slice(0, 2048);
  if (type === 'utf-8') {
    rest = rest.replace(/\\x\{([0-9A-Fa-f]{1,6})\}/g, (_, hex: string) =>
      safeCodePoint(Number.parseInt(hex, 16)),
    );
  }
  // Only `+` and `=` must be xtext-escaped inside an address; other `+HH` is more likely a
  // plus-addressed local part (`b+AB12@…`) than an escape.
  if (options.xtext) rest = rest.replace(/\+2B/g, '+').replace(/\+3D/g, '=');
  const address = firstAddress(rest);
  return address ? { type, address } : undefined;
}

function safeCodePoint(code: number): string {
  return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : '';
}
