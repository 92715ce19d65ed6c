/**
 * The `mailto:` entry of List-Unsubscribe (RFC 2369): `u+<token>@<return-path domain>`, an
 * address of the inbound MX that unsubscribes the recipient it was minted for when mail reaches
 * it (smtp/inbound.ts). Mailbox providers that do not do RFC 8058's one-click POST send such a
 * mail instead.
 *
 * Token: `<message id>-<recipient index in base32>-<MAC>`. The MAC is HMAC-SHA256 over the
 * message id, the index *and* the domain, with the tracking key (token.ts), cut to 12 base32
 * characters (60 bits): only we can mint an address that suppresses someone, and one seen on a
 * domain is worthless on another. Guessing can only happen online, one RCPT at a time.
 *
 * Local parts stay within RFC 5321's 64 octets: "u+" + 40 + "-" + 6 + "-" + 12 = 62 at most. One
 * alphabet, base32hex in lower case (`0-9a-v`, what `Number#toString(32)` writes), and the
 * message ids are `[0-9a-z]`: reading is case-insensitive because some MTAs change the case of
 * an address on the way.
 */
import { timingSafeEqual } from 'node:crypto';
import { base32Mac, canonicalDomain, parseBase32 } from '../hmac.ts';

/** Local-part prefix of every unsubscribe address. */
export const MAILTO_PREFIX = 'u+';
/** The subject the mailto URI asks for (RFC 6068 `?subject=`): anything received counts. */
export const MAILTO_SUBJECT = 'unsubscribe';

const MAC_CHARS = 12;
const MESSAGE_ID = /^[0-9a-z]{1,40}$/;
/** Six base32 digits: recipient indexes below 2^30 (a message has far fewer recipients). */
const MAX_INDEX_CHARS = 6;
export const MAX_MAILTO_INDEX = 32 ** MAX_INDEX_CHARS - 1;
/** RFC 5321 §4.5.3.1.1. */
export const MAX_LOCAL_PART = 64;

/** What an unsubscribe address stands for (the same pair as a `/u/` token). */
export interface MailtoToken {
  messageId: string;
  recipient: number;
}

/** The first `MAC_CHARS` base32 characters of the HMAC. */
function mac(messageId: string, recipient: number, domain: string, key: Buffer): string {
  // Versioned and separated: the input can never be read as another (id, index, domain).
  return base32Mac(key, `postbote-unsubscribe-mailto-v1\n${messageId}\n${recipient}\n${domain}`, MAC_CHARS);
}

/** `u+<token>@<domain>` for recipient `token.recipient` of message `token.messageId`. */
export function mailtoAddress(token: MailtoToken, returnPathDomain: string, key: Buffer): string {
  if (!MESSAGE_ID.test(token.messageId)) throw new RangeError(`mailto: bad message id ${token.messageId}`);
  if (!Number.isSafeInteger(token.recipient) || token.recipient < 0 || token.recipient > MAX_MAILTO_INDEX) {
    throw new RangeError(`mailto: recipient index out of range: ${token.recipient}`);
  }
  const domain = canonicalDomain(returnPathDomain);
  if (domain === '') throw new RangeError('mailto: empty return-path domain');
  const index = token.recipient.toString(32);
  return `${MAILTO_PREFIX}${token.messageId}-${index}-${mac(token.messageId, token.recipient, domain, key)}@${domain}`;
}

/** The List-Unsubscribe URI of an address (RFC 6068). */
export function mailtoUri(address: string): string {
  return `mailto:${address}?subject=${MAILTO_SUBJECT}`;
}

/** The index digits: canonical (no leading zero), so one recipient has exactly one address. */
function parseIndex(digits: string): number | undefined {
  return parseBase32(digits, MAX_INDEX_CHARS);
}

/**
 * What an unsubscribe local part (`u+…`, any case) received for `domain` stands for, or
 * undefined when it is not one of ours, was altered, or was minted for another domain. Never
 * throws, whatever the input.
 */
export function readMailto(localPart: string, domain: string, key: Buffer): MailtoToken | undefined {
  if (localPart.length > MAX_LOCAL_PART) return undefined;
  const lower = localPart.toLowerCase();
  if (!lower.startsWith(MAILTO_PREFIX)) return undefined;
  const fields = lower.slice(MAILTO_PREFIX.length).split('-');
  if (fields.length !== 3) return undefined;
  const [messageId = '', digits = '', given = ''] = fields;
  const recipient = parseIndex(digits);
  const canonical = canonicalDomain(domain);
  if (!MESSAGE_ID.test(messageId) || recipient === undefined || given.length !== MAC_CHARS) return undefined;
  if (canonical === '') return undefined;
  const expected = mac(messageId, recipient, canonical, key);
  return timingSafeEqual(Buffer.from(given, 'latin1'), Buffer.from(expected, 'latin1'))
    ? { messageId, recipient }
    : undefined;
}

/** `readMailto` on a whole `local@domain` address (split at the last `@`). */
export function readMailtoAddress(address: string, key: Buffer): MailtoToken | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0) return undefined;
  return readMailto(address.slice(0, at), address.slice(at + 1), key);
}
