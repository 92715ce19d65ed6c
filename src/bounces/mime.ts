/**
 * A small synchronous MIME reader for reports that reach the inbound MX: header fields,
 * the multipart tree, enclosed messages, transfer and charset decoding. Every loop is bounded
 * (depth, parts, header size) because what arrives here is written by strangers; it never
 * throws on malformed input, it reads what it can and says `truncated` when a limit cut it.
 *
 * The message is held as a latin1 string (one char per byte), so offsets are byte offsets and
 * no bytes are lost before the charset of a part is known.
 */
import libmime from 'libmime';

export type HeaderField = [name: string, value: string];

export interface MimeLimits {
  /** Nesting of multiparts and enclosed messages. */
  maxDepth: number;
  /** Parts in the whole tree, enclosed messages included. */
  maxParts: number;
  /** Bytes of one header block. */
  maxHeaderBytes: number;
  /** Fields in one header block. */
  maxHeaderFields: number;
}

export const DEFAULT_MIME_LIMITS: Readonly<MimeLimits> = Object.freeze({
  maxDepth: 8,
  maxParts: 256,
  maxHeaderBytes: 128 * 1024,
  maxHeaderFields: 1000,
});

export interface MimePart {
  /** Unfolded fields in order; names as written, values raw (encoded words not decoded). */
  headers: HeaderField[];
  /** Lower-case media type; text/plain when absent or unreadable (RFC 2045 §5.2). */
  type: string;
  /** Content-Type parameters, names in lower case. */
  params: Record<string, string>;
  /** The text the offsets refer to (latin1). Enclosed messages that were encoded get their own. */
  source: string;
  bodyStart: number;
  bodyEnd: number;
  /** The parts of a multipart. */
  children: MimePart[];
  /** The message enclosed by message/rfc822, message/global or text/rfc822-headers. */
  message?: MimePart;
  depth: number;
}

export interface MimeMessage {
  root: MimePart;
  /** A limit cut the tree short. */
  truncated: boolean;
}

const ENCLOSING = new Set([
  'message/rfc822',
  'message/global',
  'text/rfc822-headers',
  'message/rfc822-headers',
  'message/global-headers',
]);
const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/;
const FIELD = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/;

interface Context {
  limits: MimeLimits;
  parts: number;
  truncated: boolean;
}

export function parseMime(source: string, limits: Partial<MimeLimits> = {}): MimeMessage {
  const ctx: Context = { limits: { ...DEFAULT_MIME_LIMITS, ...limits }, parts: 0, truncated: false };
  const root = parsePart(ctx, source, 0, source.length, 0, 'text/plain');
  return { root, truncated: ctx.truncated };
}

function parsePart(
  ctx: Context,
  source: string,
  start: number,
  end: number,
  depth: number,
  defaultType: string,
): MimePart {
  ctx.parts++;
  const { headers, bodyStart } = readHeaders(ctx, source, start, end);
  const contentType = fieldValue(headers, 'content-type');
  let type = defaultType;
  let params: Record<string, string> = {};
  if (contentType !== undefined) {
    const parsed = parseContentType(contentType);
    if (parsed) ({ type, params } = parsed);
  }
  const part: MimePart = { headers, type, params, source, bodyStart, bodyEnd: end, children: [], depth };

  const nested = depth + 1;
  if (type.startsWith('multipart/') && params['boundary']) {
    if (nested > ctx.limits.maxDepth) {
      ctx.truncated = true;
      return part;
    }
    const childType = type === 'multipart/digest' ? 'message/rfc822' : 'text/plain';
    for (const range of splitMultipart(ctx, source, bodyStart, end, params['boundary'])) {
      if (ctx.parts >= ctx.limits.maxParts) {
        ctx.truncated = true;
        break;
      }
      part.children.push(parsePart(ctx, source, range.start, range.end, nested, childType));
    }
  } else if (ENCLOSING.has(type)) {
    if (nested > ctx.limits.maxDepth || ctx.parts >= ctx.limits.maxParts) {
      ctx.truncated = true;
      return part;
    }
    const encoding = transferEncoding(part);
    if (encoding === 'base64' || encoding === 'quoted-printable') {
      // Not allowed for message/* (RFC 2046 §5.2.1), sent anyway by some gateways.
      const decoded = decodeTransfer(part, end - bodyStart).toString('latin1');
      part.message = parsePart(ctx, decoded, 0, decoded.length, nested, 'text/plain');
    } else {
      part.message = parsePart(ctx, source, bodyStart, end, nested, 'text/plain');
    }
  }
  return part;
}

/** Reads the header block at `start`; a block that does not look like headers is all body. */
function readHeaders(
  ctx: Context,
  source: string,
  start: number,
  end: number,
): { headers: HeaderField[]; bodyStart: number } {
  const headers: HeaderField[] = [];
  const limit = Math.min(end, start + ctx.limits.maxHeaderBytes);
  let pos = start;
  let current: HeaderField | undefined;
  while (pos < end) {
    let nl = source.indexOf('\n', pos);
    if (nl < 0 || nl >= end) nl = end;
    const lineEnd = nl > pos && source.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
    const next = nl < end ? nl + 1 : end;
    if (lineEnd === pos) return { headers, bodyStart: next }; // the blank line
    if (nl > limit || headers.length >= ctx.limits.maxHeaderFields) {
      // A header block this large is an attack or garbage: keep what we have.
      ctx.truncated = true;
      return { headers, bodyStart: pos };
    }
    const first = source.charCodeAt(pos);
    if ((first === 32 || first === 9) && current) {
      current[1] += source.slice(pos, lineEnd);
    } else {
      const line = source.slice(pos, lineEnd);
      const m = FIELD.exec(line);
      if (m) {
        current = [m[1]!, line.slice(m[0].length)];
        headers.push(current);
      } else if (headers.length === 0 && pos === start && line.startsWith('From ')) {
        // mbox separator line before the headers: skip it.
      } else {
        // Not a header: the body starts here (no blank line in between).
        return { headers, bodyStart: pos };
      }
    }
    pos = next;
  }
  return { headers, bodyStart: end };
}

/** Body ranges between `--boundary` lines (RFC 2046 §5.1.1); the CRLF before a delimiter is its own. */
function splitMultipart(
  ctx: Context,
  source: string,
  start: number,
  end: number,
  boundary: string,
): Array<{ start: number; end: number }> {
  const delimiter = `--${boundary}`;
  const ranges: Array<{ start: number; end: number }> = [];
  let partStart = -1;
  let pos = start;
  while (pos < end) {
    const at = source.indexOf(delimiter, pos);
    if (at < 0 || at + delimiter.length > end) break;
    const after = at + delimiter.length;
    pos = after;
    if (at !== start && source.charCodeAt(at - 1) !== 10) continue;
    const closing = source.startsWith('--', after) && after + 2 <= end;
    let eol = closing ? after + 2 : after;
    // Only transport padding may follow on the line; anything else is a longer boundary.
    while (eol < end && (source.charCodeAt(eol) === 32 || source.charCodeAt(eol) === 9)) eol++;
    if (eol < end && source.charCodeAt(eol) === 13) eol++;
    if (eol < end && source.charCodeAt(eol) !== 10) continue;
    if (partStart >= 0) {
      let partEnd = at;
      if (partEnd > partStart && source.charCodeAt(partEnd - 1) === 10) partEnd--;
      if (partEnd > partStart && source.charCodeAt(partEnd - 1) === 13) partEnd--;
      ranges.push({ start: partStart, end: partEnd });
      if (ranges.length >= ctx.limits.maxParts) {
        ctx.truncated = true;
        return ranges;
      }
    }
    if (closing) return ranges;
    partStart = eol < end ? eol + 1 : end;
    pos = partStart;
  }
  // No closing delimiter: the last part runs to the end, as most readers do.
  if (partStart >= 0 && partStart < end) ranges.push({ start: partStart, end });
  return ranges;
}

function parseContentType(value: string): { type: string; params: Record<string, string> } | undefined {
  try {
    const parsed = libmime.parseHeaderValue(value.slice(0, 4096));
    const type = String(parsed.value ?? '')
      .trim()
      .toLowerCase();
    if (!MEDIA_TYPE.test(type)) return undefined;
    const params: Record<string, string> = {};
    for (const [key, v] of Object.entries(parsed.params ?? {})) {
      if (typeof v === 'string') params[key.toLowerCase()] = v;
    }
    return { type, params };
  } catch {
    return undefined;
  }
}

/** The first field of that name, unfolded and trimmed. */
export function fieldValue(headers: readonly HeaderField[], name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [n, v] of headers) if (n.toLowerCase() === lower) return v.trim();
  return undefined;
}

/** Every field of that name, unfolded and trimmed. */
export function fieldValues(headers: readonly HeaderField[], name: string): string[] {
  const lower = name.toLowerCase();
  return headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v.trim());
}

/** RFC 2047 encoded words decoded; the raw value when they cannot be. */
export function decodeWords(value: string): string {
  try {
    return libmime.decodeWords(value.slice(0, 4096));
  } catch {
    return value;
  }
}

export function transferEncoding(part: MimePart): string {
  return (fieldValue(part.headers, 'content-transfer-encoding') ?? '7bit').toLowerCase();
}

/** The body's bytes after Content-Transfer-Encoding, at most `maxBytes` of them. */
export function decodeTransfer(part: MimePart, maxBytes: number): Buffer {
  const { source, bodyStart, bodyEnd } = part;
  const encoding = transferEncoding(part);
  if (encoding === 'base64') {
    // Line breaks and padding: a little more input than 4/3 of the output.
    const take = Math.ceil((maxBytes * 4) / 3) + Math.ceil(maxBytes / 19) + 8;
    const text = source.slice(bodyStart, Math.min(bodyEnd, bodyStart + take));
    return Buffer.from(text, 'base64').subarray(0, maxBytes);
  }
  if (encoding === 'quoted-printable') {
    const text = source.slice(bodyStart, Math.min(bodyEnd, bodyStart + maxBytes * 3));
    return decodeQuotedPrintable(text).subarray(0, maxBytes);
  }
  return Buffer.from(source.slice(bodyStart, Math.min(bodyEnd, bodyStart + maxBytes)), 'latin1');
}

/** RFC 2045 §6.7, lenient: a stray `=` stays as it is. */
export function decodeQuotedPrintable(text: string): Buffer {
  const out = Buffer.allocUnsafe(text.length);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 61) {
      out[n++] = c & 0xff;
      continue;
    }
    const hi = hexValue(text.charCodeAt(i + 1));
    const lo = hexValue(text.charCodeAt(i + 2));
    if (hi >= 0 && lo >= 0) {
      out[n++] = hi * 16 + lo;
      i += 2;
      continue;
    }
    // Soft line break: `=`, optional trailing whitespace, end of line.
    let j = i + 1;
    while (text.charCodeAt(j) === 32 || text.charCodeAt(j) === 9) j++;
    if (text.charCodeAt(j) === 13 && text.charCodeAt(j + 1) === 10) i = j + 1;
    else if (text.charCodeAt(j) === 10) i = j;
    else if (j >= text.length) i = j;
    else out[n++] = c;
  }
  return out.subarray(0, n);
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** Bytes to text in the declared charset; undeclared or unknown: UTF-8 when valid, else Windows-1252. */
export function decodeCharset(bytes: Uint8Array, charset?: string): string {
  const label = (charset ?? '').trim().toLowerCase();
  if (label !== '' && label !== 'us-ascii' && label !== 'ascii' && label !== 'utf-8' && label !== 'utf8') {
    try {
      return new TextDecoder(label).decode(bytes);
    } catch {
      // an unknown label (or one ICU refuses): fall through
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder(label === 'utf-8' || label === 'utf8' ? 'utf-8' : 'windows-1252').decode(bytes);
  }
}

/** The body as text (transfer- and charset-decoded), at most `maxBytes` of input bytes. */
export function partText(part: MimePart, maxBytes: number): string {
  return decodeCharset(decodeTransfer(part, maxBytes), part.params['charset']);
}

/** Depth-first over a part and its multipart children (not into enclosed messages). */
export function* walkParts(part: MimePart): Generator<MimePart> {
  yield part;
  for (const child of part.children) yield* walkParts(child);
}

const ENTITIES: Readonly<Record<string, string>> = {
  nbsp: ' ',
  lt: '<',
  gt: '>',
  amp: '&',
  quot: '"',
  apos: "'",
};

/** Readable text from HTML, enough to find addresses and replies in an HTML-only bounce. */
export function htmlToText(html: string): string {
  // Drop <style>, <script> and <head> contents with indexOf, not a lazy regex (quadratic on
  // many unclosed tags).
  let text = '';
  let pos = 0;
  const lower = html.toLowerCase();
  const opening = /<(style|script|head)\b/g;
  for (;;) {
    opening.lastIndex = pos;
    const m = opening.exec(lower);
    if (!m) {
      text += html.slice(pos);
      break;
    }
    text += html.slice(pos, m.index);
    const close = lower.indexOf(`</${m[1]}`, m.index);
    if (close < 0) break;
    const gt = lower.indexOf('>', close);
    pos = gt < 0 ? html.length : gt + 1;
  }
  return text
    .replace(/<br\b[^<>]*>|<\/(p|div|tr|li|h\d|table|blockquote|pre)\s*>/gi, '\n')
    .replace(/<(td|th)\b[^<>]*>/gi, ' ')
    .replace(/<[^<>]*>/g, '')
    .replace(/&(#x[0-9a-f]{1,6}|#\d{1,7}|[a-z]{2,6});/gi, (entity, name: string) => {
      if (name[0] === '#') {
        const code =
          name[1] === 'x' || name[1] === 'X' ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1));
        return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : ' ';
      }
      return ENTITIES[name.toLowerCase()] ?? entity;
    })
    .replace(/[ \t\u00a0]+/g, ' ')
    .replace(/\n[ \t]+/g, '\n');
}
