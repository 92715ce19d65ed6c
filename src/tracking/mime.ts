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
const HEADER_CACHE_SIZE = 1000;

/** Charsets whose bytes below 0x80 are always ASCII characters. */
const ASCII_COMPATIBLE =
  /^(us-ascii|ascii|utf-?8|iso-8859-\d{1,2}|latin-?1|windows-125\d|cp125\d|koi8-[ru])$/;

type Encoding = 'identity' | 'quoted-printable' | 'base64';

/** A text part whose content changes per recipient. */
export interface PlannedPart {
  /** The part's header block without its final CRLF CRLF. */
  head: string;
  encoding: Encoding;
  segments: Segments;
  /** What followed the encoded text (a base64 body's final line break). */
  trailer: string;
}

export interface MessagePlan {
  /** Literal latin1 text and planned parts, in order. */
  pieces: (string | PlannedPart)[];
  /**
   * Where header fields added per copy go (List-Unsubscribe): an offset into `pieces[0]` when
   * that is text, after the header block's last field (0 when the message has no header). When
   * `pieces[0]` is a planned part, they go after its head.
   */
  headerEnd: number;
  /** The message is all header block, without a final CRLF: added fields need one first. */
  headerNeedsBreak: boolean;
  /** Whether any part has a slot (else every copy is the original). */
  changed: boolean;
  notes: string[];
}

export interface PlanMessageOptions {
  clicks: boolean;
  textLinks: boolean;
  opens: boolean;
  /** Header blocks already read (readHeader): one map for the copies of one message. */
  headerCache?: Map<string, Header>;
}

export interface Header {
  type: string;
  params: Record<string, string>;
  encoding: string;
  disposition: string;
}

/** The start of the fields that decide how a part is handled (any case, at a line start). */
const DECIDING_FIELD = /(?:^|\r\n)(content-(?:type|transfer-encoding|disposition))[ \t]*:/gi;

/** The unfolded value of the field whose value starts at `start` in `block`. */
function fieldValue(block: string, start: number): string {
  let end = block.indexOf(CRLF, start);
  let value = block.slice(start, end === -1 ? block.length : end);
  // Continuation lines (folded: CRLF then space or tab) belong to the field.
  while (end !== -1 && (block[end + 2] === ' ' || block[end + 2] === '\t')) {
    const next = block.indexOf(CRLF, end + 2);
    value += ` ${block.slice(end + 2, next === -1 ? block.length : next).trim()}`;
    end = next;
  }
  return value.trim();
}

/**
 * The fields of a header block (latin1) that decide how its part is handled; the first of each
 * counts. Only those three are looked at (a top-level header block is mostly other fields), and
 * `cache` (per message: the parts of personalised copies have the same header blocks) keeps
 * what was read.
 */
function readHeader(block: string, cache?: Map<string, Header>): Header {
  const hit = cache?.get(block);
  if (hit) return hit;
  const fields = new Map<string, string>();
  DECIDING_FIELD.lastIndex = 0;
  for (let m = DECIDING_FIELD.exec(block); m !== null; m = DECIDING_FIELD.exec(block)) {
    const name = (m[1] as string).toLowerCase();
    if (!fields.has(name)) fields.set(name, fieldValue(block, m.index + m[0].length));
  }
  const typeField = fields.get('content-type');
  const type = libmime.parseHeaderValue(typeField ?? 'text/plain');
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(type.params)) params[k.toLowerCase()] = String(v);
  const dispositionField = fields.get('content-disposition');
  const header: Header = {
    type: (type.value || 'text/plain').toLowerCase(),
    params,
    encoding: (fields.get('content-transfer-encoding') ?? '').toLowerCase().trim(),
    disposition:
      dispositionField === undefined ? '' : libmime.parseHeaderValue(dispositionField).value.toLowerCase(),
  };
  if (cache) {
    if (cache.size >= HEADER_CACHE_SIZE) cache.clear();
    cache.set(block, header);
  }
  return header;
}

/** Whether the header block `raw.slice(0, end)` has a field `name` (lower case). */
export function hasHeaderField(raw: string, end: number, name: string): boolean {
  const lower = raw.slice(0, end).toLowerCase();
  for (let at = lower.indexOf(name); at !== -1; at = lower.indexOf(name, at + 1)) {
    if (at !== 0 && !(lower[at - 1] === '\n' && lower[at - 2] === '\r')) continue;
    let after = at + name.length;
    while (lower[after] === ' ' || lower[after] === '\t') after++;
    if (lower[after] === ':') return true;
  }
  return false;
}

/** RFC 2045 §6.7 decoding to latin1 (one character per byte); malformed escapes stay as written. */
export function decodeQuotedPrintable(text: string): string {
  return text
    .replace(/=[ \t]*\r\n/g, '')
    .replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

const HEX = '0123456789ABCDEF';

/**
 * RFC 2045 §6.7 encoding of latin1 text with CRLF hard breaks; lines of at most 76 characters.
 * The reference for writeQuotedPrintable, which copies use.
 */
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
    // A top-level header block is each copy's own (To, Subject): only the parts' are shared.
    const header = readHeader(head, depth === 0 ? undefined : options.headerCache);

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
    return [{ head, encoding, segments, trailer }];
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
  const split = raw.startsWith(CRLF) ? 0 : raw.indexOf(CRLF + CRLF);
  return {
    pieces,
    headerEnd: split === -1 ? raw.length : split === 0 ? 0 : split + 2,
    headerNeedsBreak: split === -1 && !raw.endsWith(CRLF),
    changed: pieces.some((p) => typeof p !== 'string'),
    notes,
  };
}

/**
 * A growable byte buffer. One per message: each copy is written into it and then copied out,
 * so a copy costs one allocation of its own size instead of a string per piece.
 */
export class ByteWriter {
  buf: Buffer;
  pos = 0;

  constructor(size = 16 * 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Room for `n` more bytes. */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  /** A string of one-byte characters, one byte each. */
  latin1(text: string): void {
    this.reserve(text.length);
    this.pos += this.buf.write(text, this.pos, 'latin1');
  }

  bytes(source: Buffer, start = 0, end = source.length): void {
    this.reserve(end - start);
    this.pos += source.copy(this.buf, this.pos, start, end);
  }

  /** A copy of what was written. */
  take(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }
}

const HEX_BYTES = Buffer.from(HEX, 'latin1');

/**
 * RFC 2045 §6.7 encoding of `source[start, end)` (CRLF hard breaks) into `out`: the same
 * output as encodeQuotedPrintable, one byte at a time without strings.
 */
export function writeQuotedPrintable(source: Buffer, start: number, end: number, out: ByteWriter): void {
  const length = end - start;
  // Worst case: every byte as =XX, plus a soft break (=CRLF) per 25 of them.
  out.reserve(3 * length + 3 * Math.ceil(length / 25) + 3);
  const b = out.buf;
  let p = out.pos;
  let column = 0;
  for (let i = start; i < end; i++) {
    const c = source[i] as number;
    if (c === 13 && i + 1 < end && source[i + 1] === 10) {
      b[p++] = 13;
      b[p++] = 10;
      i++;
      column = 0;
      continue;
    }
    let literal = c >= 33 && c <= 126 && c !== 61;
    if (c === 32 || c === 9) {
      // Whitespace at the end of a line is encoded (transports strip it).
      const last = i + 1 === end || (source[i + 1] === 13 && i + 2 < end && source[i + 2] === 10);
      literal = !last;
    }
    const width = literal ? 1 : 3;
    if (column + width > 75) {
      b[p++] = 61;
      b[p++] = 13;
      b[p++] = 10;
      column = 0;
    }
    if (literal) b[p++] = c;
    else {
      b[p++] = 61;
      b[p++] = HEX_BYTES[c >> 4] as number;
      b[p++] = HEX_BYTES[c & 15] as number;
    }
    column += width;
  }
  out.pos = p;
}

const CRLF_BYTES = Buffer.from(CRLF, 'latin1');

function longestLineBytes(source: Buffer, start: number, end: number): number {
  let longest = 0;
  let from = start;
  for (;;) {
    const found = source.indexOf(CRLF_BYTES, from);
    const lineEnd = found === -1 || found >= end ? end : found;
    if (lineEnd - from > longest) longest = lineEnd - from;
    if (lineEnd === end) return longest;
    from = lineEnd + 2;
  }
}

/**
 * Writes one recipient's copy of a planned message into `out`: every slot filled by `fill`,
 * parts re-encoded, and `headerFields` (complete fields with their CRLFs) added at the end of
 * the header block. `scratch` holds a part's content between filling and encoding.
 */
export function writeMessage(
  plan: MessagePlan,
  fill: (slot: Slot) => string,
  out: ByteWriter,
  scratch: ByteWriter,
  headerFields = '',
): void {
  for (const [index, piece] of plan.pieces.entries()) {
    if (typeof piece === 'string') {
      if (index === 0 && headerFields !== '') {
        out.latin1(plan.headerEnd === piece.length ? piece : piece.slice(0, plan.headerEnd));
        if (plan.headerNeedsBreak) out.latin1(CRLF);
        out.latin1(headerFields);
        if (plan.headerEnd < piece.length) out.latin1(piece.slice(plan.headerEnd));
      } else out.latin1(piece);
      continue;
    }
    scratch.pos = 0;
    for (const s of piece.segments) scratch.latin1(typeof s === 'string' ? s : fill(s));
    const fields = index === 0 ? headerFields : '';
    let head = piece.head;
    let encoding = piece.encoding;
    if (encoding === 'identity' && longestLineBytes(scratch.buf, 0, scratch.pos) > MAX_LINE) {
      // A line that grew past RFC 5322's limit: the part goes out quoted-printable instead.
      head = withQpEncoding(head);
      encoding = 'quoted-printable';
    }
    if (head !== '') {
      out.latin1(head);
      out.latin1(CRLF);
    }
    if (fields !== '') out.latin1(fields);
    out.latin1(CRLF);
    if (encoding === 'quoted-printable') writeQuotedPrintable(scratch.buf, 0, scratch.pos, out);
    else if (encoding === 'base64') {
      const encoded = scratch.buf.toString('base64', 0, scratch.pos);
      for (let i = 0; i < encoded.length; i += 76) {
        if (i > 0) out.latin1(CRLF);
        out.latin1(encoded.slice(i, i + 76));
      }
    } else out.bytes(scratch.buf, 0, scratch.pos);
    out.latin1(piece.trailer);
  }
}

/** One recipient's copy of a planned message as latin1 text (writeMessage). */
export function renderMessage(plan: MessagePlan, fill: (slot: Slot) => string, headerFields = ''): string {
  const out = new ByteWriter();
  writeMessage(plan, fill, out, new ByteWriter(), headerFields);
  return out.buf.toString('latin1', 0, out.pos);
}
