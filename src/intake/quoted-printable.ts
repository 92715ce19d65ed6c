/**
 * Quoted-printable (RFC 2045 §6.7) for the text parts compose.ts writes, tuned for its hot path:
 * the batch API encodes one copy per recipient.
 */

const isWsp = (c: number): boolean => c === 0x20 || c === 0x09;

const HEX = Buffer.from('0123456789ABCDEF', 'latin1');
// Output space reused by every call (synchronous, so never shared): measured, a fresh buffer of
// this size per part cost more than the encoding itself.
let scratch = Buffer.allocUnsafe(32 * 1024);
// Printable ASCII but "=", space and tab: what quoted-printable leaves as is (RFC 2045 §6.7 rules 2, 3).
const LITERALS = /[\x20-\x3c\x3e-\x7e\t]+/y;

/**
 * RFC 2045 §6.7 quoted-printable of the text's UTF-8 bytes, read straight from the string (no
 * intermediate Buffer). Any line break (CRLF, LF, CR) becomes a CRLF hard break; lines are at
 * most 76 characters with soft breaks, never splitting a character's bytes; white space before
 * a line end is encoded. "=" is always encoded, so the output never holds "=_".
 */
export function quotedPrintable(text: string): string {
  const n = text.length;
  // Worst case per UTF-16 unit: 3 UTF-8 bytes as "=XX" each, plus a soft break every 75 characters.
  const need = n * 10 + 8;
  if (scratch.length < need) scratch = Buffer.allocUnsafe(need);
  const out = scratch;
  let o = 0;
  let column = 0;
  for (let i = 0; i < n; i++) {
    // A run of characters that stand for themselves goes out in one copy per line: measured
    // three times faster than a character at a time on HTML, where such runs are most of the text.
    LITERALS.lastIndex = i;
    if (LITERALS.test(text)) {
      let end = LITERALS.lastIndex;
      const after = end < n ? text.charCodeAt(end) : 0x0a;
      // White space before a line end must be encoded: that is left to the code below.
      if (after === 0x0d || after === 0x0a) while (end > i && isWsp(text.charCodeAt(end - 1))) end--;
      while (i < end) {
        if (column >= 75) {
          o = softBreak(out, o);
          column = 0;
        }
        const take = Math.min(75 - column, end - i);
        o += out.write(text.slice(i, i + take), o, 'latin1');
        i += take;
        column += take;
      }
      if (i >= n) break;
    }
    const c = text.charCodeAt(i);
    if (c === 0x0d || c === 0x0a) {
      if (c === 0x0d && i + 1 < n && text.charCodeAt(i + 1) === 0x0a) i++;
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      column = 0;
      continue;
    }
    let width: number;
    let codePoint = c;
    if (c < 0x80) {
      let literal = c >= 0x21 && c <= 0x7e && c !== 0x3d;
      if (c === 0x20 || c === 0x09) {
        const next = i + 1 < n ? text.charCodeAt(i + 1) : 0x0a;
        literal = next !== 0x0d && next !== 0x0a;
      }
      width = literal ? 1 : 3;
    } else {
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
        const low = text.charCodeAt(i + 1);
        if (low >= 0xdc00 && low <= 0xdfff) {
          codePoint = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
          i++;
        }
      }
      // A lone surrogate has no UTF-8 form: U+FFFD, as Buffer.from would write.
      if (codePoint >= 0xd800 && codePoint <= 0xdfff) codePoint = 0xfffd;
      width = codePoint < 0x800 ? 6 : codePoint < 0x10000 ? 9 : 12;
    }
    // 76 characters per line, the last of them the "=" of the soft break.
    if (column + width > 75) {
      o = softBreak(out, o);
      column = 0;
    }
    column += width;
    if (width === 1) out[o++] = c;
    else if (codePoint < 0x80) o = escaped(out, o, c);
    else if (codePoint < 0x800) {
      o = escaped(out, o, 0xc0 | (codePoint >> 6));
      o = escaped(out, o, 0x80 | (codePoint & 0x3f));
    } else if (codePoint < 0x10000) {
      o = escaped(out, o, 0xe0 | (codePoint >> 12));
      o = escaped(out, o, 0x80 | ((codePoint >> 6) & 0x3f));
      o = escaped(out, o, 0x80 | (codePoint & 0x3f));
    } else {
      o = escaped(out, o, 0xf0 | (codePoint >> 18));
      o = escaped(out, o, 0x80 | ((codePoint >> 12) & 0x3f));
      o = escaped(out, o, 0x80 | ((codePoint >> 6) & 0x3f));
      o = escaped(out, o, 0x80 | (codePoint & 0x3f));
    }
  }
  return out.toString('latin1', 0, o);
}

function softBreak(out: Buffer, o: number): number {
  out[o] = 0x3d;
  out[o + 1] = 0x0d;
  out[o + 2] = 0x0a;
  return o + 3;
}

/** Writes "=XX" at `o`; returns the next offset. Not a closure: a captured offset is measurably slower. */
function escaped(out: Buffer, o: number, byte: number): number {
  out[o] = 0x3d;
  out[o + 1] = HEX[byte >> 4]!;
  out[o + 2] = HEX[byte & 15]!;
  return o + 3;
}
