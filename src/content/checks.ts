import {
  decodeTransfer,
  fieldValue,
  type MimePart,
  parseMime,
  partText,
  walkParts,
} from '../bounces/mime.ts';
import type { StreamKind } from '../store/types.ts';

/**
 * Built-in content checks: what a scanner is not needed for. Each finding names its check so
 * a client can act on it; none looks at the meaning of the text.
 *
 * - `no_unsubscribe`: broadcast mail without a List-Unsubscribe field (tracking adds one when it
 *   runs before this check, and it does: intake checks the final bytes) and without a link or
 *   text mentioning unsubscribing in any text part. Bulk senders must offer one (RFC 8058; the
 *   Gmail and Yahoo sender rules of 2024).
 * - `html_without_text`: an HTML body with no text/plain alternative (spam filters score it).
 * - `missing_message_id`, `missing_date`: the client sent none (Postbote added them, RFC 5322
 *   §3.6 requires Date and recommends Message-ID; a client that omits them is misconfigured).
 * - `oversize_image`: an image part larger than `maxImageSize` once decoded.
 */

export const CONTENT_CHECKS = [
  'no_unsubscribe',
  'html_without_text',
  'missing_message_id',
  'missing_date',
  'oversize_image',
] as const;
export type ContentCheck = (typeof CONTENT_CHECKS)[number];

export interface ContentFinding {
  check: ContentCheck;
  message: string;
}

/** Text searched for an unsubscribe offer, per part (a link deep in a long newsletter still counts). */
const TEXT_SCAN_BYTES = 512 * 1024;
const UNSUBSCRIBE = /unsubscribe|abmelden|abbestellen|austragen|d[ée]sinscri|opt[\s-]?out/i;

export interface BuiltInInput {
  /** The message as it will be stored (after our header fields, tracking and signing). */
  raw: Buffer;
  /** The header fields the client sent, when they differ from `raw`'s (SMTP: before ours were added). */
  original?: Buffer;
  kind: StreamKind;
  maxImageSize: number;
}

function headerBlock(raw: Buffer): string {
  const text = raw.subarray(0, Math.min(raw.length, 256 * 1024)).toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  return end < 0 ? text : text.slice(0, end);
}

const FIELD = {
  'message-id': /(^|\n)message-id[ \t]*:/i,
  date: /(^|\n)date[ \t]*:/i,
  'list-unsubscribe': /(^|\n)list-unsubscribe[ \t]*:/i,
} as const;

function hasField(block: string, name: keyof typeof FIELD): boolean {
  return FIELD[name].test(block);
}

function decodedSize(part: MimePart): number {
  const encoded = part.bodyEnd - part.bodyStart;
  const encoding = (fieldValue(part.headers, 'content-transfer-encoding') ?? '').toLowerCase();
  if (encoding === 'base64') {
    // Count only base64 characters; a quick bound first so huge parts are not scanned twice.
    return Math.floor(
      (part.source.slice(part.bodyStart, part.bodyEnd).replace(/[^A-Za-z0-9+/]/g, '').length * 3) / 4,
    );
  }
  if (encoding === 'quoted-printable') return decodeTransfer(part, encoded).length;
  return encoded;
}

/** The built-in findings for one message; [] when it passes. Never throws on malformed MIME. */
export function builtInChecks(input: BuiltInInput): ContentFinding[] {
  const findings: ContentFinding[] = [];
  const sent = headerBlock(input.original ?? input.raw);
  if (!hasField(sent, 'message-id')) {
    findings.push({
      check: 'missing_message_id',
      message: 'the message had no Message-ID (Postbote added one)',
    });
  }
  if (!hasField(sent, 'date')) {
    findings.push({ check: 'missing_date', message: 'the message had no Date (Postbote added one)' });
  }
  const { root } = parseMime(input.raw.toString('latin1'));
  let html = false;
  let text = false;
  // Only broadcast mail needs an unsubscribe offer: transactional text is not scanned for one.
  let offersUnsubscribe = input.kind !== 'broadcast' || hasField(headerBlock(input.raw), 'list-unsubscribe');
  for (const part of walkParts(root)) {
    const disposition = (fieldValue(part.headers, 'content-disposition') ?? '').toLowerCase();
    const attachment = disposition.startsWith('attachment');
    if (part.type === 'text/html' && !attachment) html = true;
    if (part.type === 'text/plain' && !attachment && part.children.length === 0) {
      // A message without any Content-Type is text/plain too.
      text = true;
    }
    if ((part.type === 'text/html' || part.type === 'text/plain') && !attachment && !offersUnsubscribe) {
      if (UNSUBSCRIBE.test(partText(part, TEXT_SCAN_BYTES))) offersUnsubscribe = true;
    }
    if (part.type.startsWith('image/')) {
      const size = decodedSize(part);
      if (size > input.maxImageSize) {
        findings.push({
          check: 'oversize_image',
          message: `an image (${part.type}) of ${size} bytes is larger than ${input.maxImageSize}`,
        });
      }
    }
  }
  if (html && !text) {
    findings.push({ check: 'html_without_text', message: 'an HTML body without a text/plain alternative' });
  }
  if (input.kind === 'broadcast' && !offersUnsubscribe) {
    findings.push({
      check: 'no_unsubscribe',
      message: 'broadcast mail without List-Unsubscribe or an unsubscribe link',
    });
  }
  return findings;
}
