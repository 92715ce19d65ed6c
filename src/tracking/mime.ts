/**
 * The MIME side of rewriting: find the text/html (and text/plain) parts of a message, decode
 * them (quoted-printable, base64, 7bit/8bit), let html.ts plan them, and re-encode each
 * recipient's filled copy the way the part was encoded. Every other byte of the message is
 * kept exactly as it was.
 *
 * Left alone, with a note saying why (never a corrupted message): parts in a charset that is
 * not ASCII-compatible (UTF-16, ISO-2022-JP, …: their bytes could look like markup), unknown
 * transfer encodings, attachments, enclosed messages (message/rfc822: a forwarded message's
 * links are not ours), multiparts without their closing delimiter, nesting deeper than 10.
 */
import libmime from 'libmime';
import { hasSlots, planHtml, planText, type Segments, type Slot } from './html.ts';

const CRLF = '\r\n';
const MAX_DEPTH = 10;
const MAX_PARTS = 500;
const MAX_LINE = 998;

/** Charsets whose bytes below 0x80 are always ASCII characters. */
const ASCII_COMPATIBLE =
  /^(us-ascii|ascii|utf-?8|iso-8859-\d{1,2}|latin-?1|windows-125\d|cp125\d|koi8-[ru])$/;

type Encoding = 'identity' | 'quoted-printable' | 'base64';

/** A text part whose content changes per recipient. */
export interface PlannedPart {
  /** The part's header block without its final CRLF CRLF. */
  head: string;
  /** The same with Content-Transfer-Encoding: quoted-printable (for a line grown past 998). */
  headQp: string;
  encoding: Encoding;
  segments: Segments;
  /** What followed the encoded text (a base64 body's final line break). */
  trailer: string;
}

export interface MessagePlan {
  /** Literal latin1 text and planned parts, in order. */
  pieces: (string | PlannedPart)[];
  /** Whether any part has a slot (else every copy is the original). */
  changed: boolean;
  notes: string[];
}

export interface PlanMessageOptions {
  clicks: boolean;
  textLinks: boolean;
  opens: boolean;
}

interface Header {
  type: string;
  params: Record<string, string>;
  encoding: string;
  disposition: string;
}

/** The fields of a header block (latin1) that decide how its part is handled. */
function readHeader(block: string): Header {
  const fields = new Map<string, string>();
  let current = '';
  const take = () => {
    const colon = current.indexOf(':');
    if (colon > 0) {
      const name = current.slice(0, colon).trim().toLowerCase();
      if (!fields.has(name)) fields.set(name, current.slice(colon + 1).trim());
    }
  };
  for (const line of block.split(CRLF)) {
    if (line.startsWith(' ') || line.startsWith('\t')) current += ` ${line.trim()}`;
    else {
      take();
      current = line;
    }
  }
  take();
  const type = libmime.parseHeaderValue(fields.get('content-type') ?? 'text/plain');
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(type.params)) params[k.toLowerCase()] = String(v);
  return {
    type: (type.value || 'text/plain').toLowerCase(),
    params,
    encoding: (fields.get('content-transfer-encoding') ?? '').toLowerCase().trim(),
    disposition: libmime.parseHeaderValue(fields.get('content-disposition') ?? '').value.toLowerCase(),
  };
}

/** RFC 2045 §6.7 decoding to latin1 (one character per byte); malformed escapes stay as written. */
export function decodeQuotedPrintable(text: string): string {
  return text
    .replace(/=[ \t]*\r\n/g, '')
    .replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

const HEX = '0123456789ABCDEF';

/** RFC 2045 §6.7 encoding of latin1 text with CRLF hard breaks; lines of at most 76 characters. */
export function encodeQuotedPrintable(text: string): string {
  const lines = text.split(CRLF);
  const out: string[] = [];
  for (const line of lines) {
    let encoded = '';
    let column = 0;
    for (let i = 0; i < line.length; i++) {
      const c = line.charCodeAt(i);
      const last = i === line.length - 1;
      let piece: string;
      if ((c >= 33 && c <= 126 && c !== 61) || ((c === 32 || c === 9) && !last)) piece = line[i] as string;
      else piece = `=${HEX[(c >> 4) & 15]}${HEX[c & 15]}`;
      if (column + piece.length > 75) {
        encoded += `=${CRLF}`;
        column = 0;
      }
      encoded += piece;
      column += piece.length;
    }
    out.push(encoded);
  }
  return out.join(CRLF);
}

function base64Lines(text: string): string {
  const encoded = Buffer.from(text, 'latin1').toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < encoded.length; i += 76) lines.push(encoded.slice(i, i + 76));
  return lines.join(CRLF);
}

/** The header block with its Content-Transfer-Encoding replaced by quoted-printable. */
function withQpEncoding(head: string): string {
  const kept: string[] = [];
  let removing = false;
  for (const line of head.split(CRLF)) {
    const continuation = line.startsWith(' ') || line.startsWith('\t');
    if (!continuation) removing = /^content-transfer-encoding\s*:/i.test(line);
    if (!removing) kept.push(line);
  }
  kept.push('Content-Transfer-Encoding: quoted-printable');
  return kept.filter((l, i) => l !== '' || i < kept.length - 1).join(CRLF);
}

function longestLine(text: string): number {
  let longest = 0;
  let start = 0;
  for (;;) {
    const end = text.indexOf(CRLF, start);
    const length = (end === -1 ? text.length : end) - start;
    if (length > longest) longest = length;
    if (end === -1) return longest;
    start = end + 2;
  }
}

/**
 * Plans a message (its bytes as latin1): which parts change per recipient. `raw` is the whole
 * message, header block included.
 */
export function planMessage(raw: string, options: PlanMessageOptions): MessagePlan {
  const notes: string[] = [];
  const counter = { links: 0 };
  let parts = 0;
  let pixelPlaced = false;

  /** The pieces of one entity (header block + body). */
  function entity(text: string, depth: number): (string | PlannedPart)[] {
    if (++parts > MAX_PARTS) {
      if (parts === MAX_PARTS + 1) notes.push(`more than ${MAX_PARTS} parts: the rest is left as it is`);
      return [text];
    }
    const split = text.startsWith(CRLF) ? 0 : text.indexOf(CRLF + CRLF);
    if (split === -1) return [text];
    const headEnd = split === 0 ? 0 : split;
    const head = text.slice(0, headEnd);
    const bodyStart = split === 0 ? 2 : split + 4;
    const body = text.slice(bodyStart);
    const header = readHeader(head);

    if (header.type.startsWith('multipart/')) {
      const boundary = header.params.boundary;
      if (!boundary) {
        notes.push(`${header.type} without a boundary is left as it is`);
        return [text];
      }
      if (depth >= MAX_DEPTH) {
        notes.push(`multipart nesting deeper than ${MAX_DEPTH} is left as it is`);
        return [text];
      }
      const children = multipart(body, boundary, depth + 1);
      if (!children) {
        notes.push(`${header.type} without its closing boundary is left as it is`);
        return [text];
      }
      return [text.slice(0, bodyStart), ...children];
    }
    const html = header.type === 'text/html';
    if ((!html && header.type !== 'text/plain') || header.disposition === 'attachment') return [text];
    const charset = (header.params.charset ?? 'us-ascii').toLowerCase();
    if (!ASCII_COMPATIBLE.test(charset)) {
      notes.push(`${header.type} in charset ${charset} is left as it is`);
      return [text];
    }
    let encoding: Encoding;
    let decoded: string;
    switch (header.encoding) {
      case '':
      case '7bit':
      case '8bit':
      case 'binary':
        encoding = 'identity';
        decoded = body;
        break;
      case 'quoted-printable':
        encoding = 'quoted-printable';
        decoded = decodeQuotedPrintable(body);
        break;
      case 'base64':
        encoding = 'base64';
        decoded = Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ''), 'base64').toString('latin1');
        break;
      default:
        notes.push(`${header.type} with transfer encoding ${header.encoding} is left as it is`);
        return [text];
    }
    // The open pixel goes into the first HTML part only: one open per reading.
    const pixel = html && options.opens && !pixelPlaced;
    const segments = html
      ? planHtml(decoded, { clicks: options.clicks, pixel, counter, notes })
      : planText(decoded, { clicks: options.textLinks, counter, notes });
    if (!hasSlots(segments)) return [text];
    if (pixel) pixelPlaced = true;
    const trailer = encoding === 'base64' && body.endsWith(CRLF) ? CRLF : '';
    return [{ head, headQp: withQpEncoding(head), encoding, segments, trailer }];
  }

  /** The pieces of a multipart body, or undefined when its closing delimiter is missing. */
  function multipart(body: string, boundary: string, depth: number): (string | PlannedPart)[] | undefined {
    const delimiter = `--${boundary}`;
    /** The next delimiter line at or after `from`: its start, whether it closes, and its end (after CRLF). */
    const next = (from: number): { start: number; close: boolean; end: number } | undefined => {
      let search = from;
      for (;;) {
        let start: number;
        if (search === 0 && body.startsWith(delimiter)) start = 0;
        else {
          const found = body.indexOf(CRLF + delimiter, Math.max(0, search - 2));
          if (found === -1) return undefined;
          start = found + 2;
        }
        let after = start + delimiter.length;
        const close = body.startsWith('--', after);
        if (close) after += 2;
        while (body[after] === ' ' || body[after] === '\t') after++;
        if (body.startsWith(CRLF, after)) return { start, close, end: after + 2 };
        if (close && after === body.length) return { start, close, end: after };
        // A longer boundary that starts with ours: not a delimiter line.
        search = start + delimiter.length;
      }
    };
    const pieces: (string | PlannedPart)[] = [];
    let line = next(0);
    if (!line || line.close) return undefined;
    pieces.push(body.slice(0, line.end));
    for (let guard = 0; guard < MAX_PARTS; guard++) {
      const following = next(line.end);
      if (!following) return undefined;
      // The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
      const partEnd = Math.max(line.end, following.start - 2);
      pieces.push(...entity(body.slice(line.end, partEnd), depth));
      pieces.push(body.slice(partEnd, following.end));
      if (following.close) {
        pieces.push(body.slice(following.end));
        return pieces;
      }
      line = following;
    }
    return undefined;
  }

  const pieces = entity(raw, 0);
  return { pieces, changed: pieces.some((p) => typeof p !== 'string'), notes };
}

/** One recipient's copy of a planned message: every slot filled by `fill`, parts re-encoded. */
export function renderMessage(plan: MessagePlan, fill: (slot: Slot) => string): string {
  let out = '';
  for (const piece of plan.pieces) {
    if (typeof piece === 'string') {
      out += piece;
      continue;
    }
    let content = '';
    for (const s of piece.segments) content += typeof s === 'string' ? s : fill(s);
    let head = piece.head;
    let body: string;
    if (piece.encoding === 'quoted-printable') body = encodeQuotedPrintable(content);
    else if (piece.encoding === 'base64') body = base64Lines(content);
    else if (longestLine(content) > MAX_LINE) {
      // A line that grew past RFC 5322's limit: the part goes out quoted-printable instead.
      head = piece.headQp;
      body = encodeQuotedPrintable(content);
    } else body = content;
    out += head === '' ? `${CRLF}${body}${piece.trailer}` : `${head}${CRLF}${CRLF}${body}${piece.trailer}`;
  }
  return out;
}
