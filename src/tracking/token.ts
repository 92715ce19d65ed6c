/**
 * Tracking tokens: what a tracked link, the open pixel and the unsubscribe URL carry, signed so
 * that nobody without the secret can mint one (an unsubscribe token suppresses an address; a
 * click token names where we redirect to: never an open redirect).
 *
 * Form: `<payload>.<mac>`, both base64url. The payload is `v1|<kind>|<message id>|<recipient
 * index>|<link index>|<url>` (the last two only for clicks); the URL is embedded rather than
 * looked up because links must keep working after retention deleted the message's body. The
 * MAC is HMAC-SHA256 over the payload, cut to 128 bits, with a key derived from the shared
 * bounce secret (bounces/verp.ts): the same on every node and across restarts.
 *
 * The kind is inside the MAC, so an open token cannot be replayed as an unsubscribe token.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { hmacSha256 } from '../hmac.ts';

export type TokenKind = 'open' | 'click' | 'unsubscribe';

export interface TrackingToken {
  kind: TokenKind;
  messageId: string;
  /** The recipient's position in its message (the API's `<message id>-<index>`). */
  recipient: number;
  /** Clicks: the link's position among the message's tracked links (0-based). */
  link?: number;
  /** Clicks: where the link leads. */
  url?: string;
}

const KIND_CODE: Record<TokenKind, string> = { open: 'o', click: 'c', unsubscribe: 'u' };
const CODE_KIND: Record<string, TokenKind> = { o: 'open', c: 'click', u: 'unsubscribe' };
const MAC_BYTES = 16;
/** Longer tokens are refused before any work (a URL over ~6 KB is not a link we wrote). */
export const MAX_TOKEN_CHARS = 8192;
const MESSAGE_ID = /^[0-9a-z]{1,40}$/;
const INDEX = /^(0|[1-9][0-9]{0,8})$/;

/** The key tokens are signed with: derived, so the bounce secret itself never signs anything else. */
export function trackingKey(secret: Buffer): Buffer {
  return createHmac('sha256', secret).update('postbote-tracking-key-v1').digest();
}

/** A tracked copy signs five or more tokens: the pads are prepared once per key (src/hmac.ts). */
function mac(payload: string | Buffer, key: Buffer): Buffer {
  return hmacSha256(key, payload).subarray(0, MAC_BYTES);
}

/** The token for `token`, signed with `key` (trackingKey). */
export function signToken(token: TrackingToken, key: Buffer): string {
  if (!MESSAGE_ID.test(token.messageId))
    throw new RangeError(`tracking token: bad message id ${token.messageId}`);
  if (!Number.isSafeInteger(token.recipient) || token.recipient < 0) {
    throw new RangeError(`tracking token: bad recipient index ${token.recipient}`);
  }
  let payload = `v1|${KIND_CODE[token.kind]}|${token.messageId}|${token.recipient}`;
  if (token.kind === 'click') {
    if (token.url === undefined || token.link === undefined)
      throw new RangeError('tracking token: a click needs url and link');
    payload += `|${token.link}|${token.url}`;
  }
  const body = Buffer.from(payload, 'utf8');
  return `${body.toString('base64url')}.${mac(body, key).toString('base64url')}`;
}

/** The token's content when it is ours and intact, else undefined (tampered, truncated, foreign). */
export function readToken(text: string, key: Buffer): TrackingToken | undefined {
  if (text.length === 0 || text.length > MAX_TOKEN_CHARS) return undefined;
  const dot = text.indexOf('.');
  if (dot <= 0 || dot !== text.lastIndexOf('.')) return undefined;
  const bodyText = text.slice(0, dot);
  const macText = text.slice(dot + 1);
  if (!/^[A-Za-z0-9_-]+$/.test(bodyText) || !/^[A-Za-z0-9_-]+$/.test(macText)) return undefined;
  const body = Buffer.from(bodyText, 'base64url');
  const given = Buffer.from(macText, 'base64url');
  // One encoding per token: a re-encoded variant of a valid token is not accepted.
  if (body.toString('base64url') !== bodyText || given.toString('base64url') !== macText) return undefined;
  const payload = body.toString('utf8');
  const expected = mac(payload, key);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  const fields = payload.split('|');
  const [version, code, messageId, recipient] = fields;
  const kind = code === undefined ? undefined : CODE_KIND[code];
  if (version !== 'v1' || !kind || !messageId || !MESSAGE_ID.test(messageId)) return undefined;
  if (recipient === undefined || !INDEX.test(recipient)) return undefined;
  if (kind !== 'click') {
    return fields.length === 4 ? { kind, messageId, recipient: Number(recipient) } : undefined;
  }
  const link = fields[4];
  if (link === undefined || !INDEX.test(link) || fields.length < 6) return undefined;
  // The URL is the rest: it may contain "|" itself.
  const url = fields.slice(5).join('|');
  return { kind, messageId, recipient: Number(recipient), link: Number(link), url };
}
