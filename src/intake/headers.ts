/**
 * Just enough RFC 5322 header handling for intake: find the header block, read a few fields,
 * prepend new fields. The body is never touched or re-encoded (DKIM signing comes after).
 */

const CRLF = Buffer.from('\r\n');
// Header scanning stops here: a header block larger than this is treated as "no such field".
const MAX_HEADER_SCAN = 1024 * 1024;

/** Byte length of the header block including the blank line that ends it (0 when there is none). */
export function headerLength(message: Buffer): number {
  if (message.length >= 2 && message[0] === 0x0d && message[1] === 0x0a) return 2;
  const end = message.indexOf('\r\n\r\n', 0, 'latin1');
  if (end === -1 || end > MAX_HEADER_SCAN) return message.length > MAX_HEADER_SCAN ? 0 : message.length;
  return end + 4;
}

/** The unfolded header fields, in order, as [lower-cased name, raw value]. */
export function readHeaders(message: Buffer): [string, string][] {
  const block = message.subarray(0, headerLength(message)).toString('latin1');
  const fields: [string, string][] = [];
  for (const line of block.split('\r\n')) {
    if (line === '') continue;
    const last = fields[fields.length - 1];
    if ((line[0] === ' ' || line[0] === '\t') && last) {
      last[1] += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    fields.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return fields;
}

export function headerValue(fields: [string, string][], name: string): string | undefined {
  return fields.find(([n]) => n === name)?.[1];
}

/**
 * Removes every field named `name` (lower case; or any of a list), continuation lines included,
 * from the header block; every other byte stays as it was. Returns the message itself when there
 * is none.
 */
export function removeHeaders(message: Buffer, name: string | readonly string[]): Buffer {
  const names = typeof name === 'string' ? [name] : name;
  const length = headerLength(message);
  const lines = message.subarray(0, length).toString('latin1').split('\r\n');
  const kept: string[] = [];
  let removing = false;
  for (const line of lines) {
    const continuation = line.length > 0 && (line[0] === ' ' || line[0] === '\t');
    if (!continuation) {
      const colon = line.indexOf(':');
      removing = colon > 0 && names.includes(line.slice(0, colon).trim().toLowerCase());
    }
    if (!removing) kept.push(line);
  }
  if (kept.length === lines.length) return message;
  return Buffer.concat([Buffer.from(kept.join('\r\n'), 'latin1'), message.subarray(length)]);
}

/** Prepends header lines (each without CRLF) to the message. */
export function prependHeaders(message: Buffer, lines: string[]): Buffer {
  const parts: Buffer[] = [];
  for (const line of lines) parts.push(Buffer.from(line, 'utf8'), CRLF);
  // A message with no header block at all still needs the blank line before its body.
  if (headerLength(message) === 0 && message.length > 0) parts.push(CRLF);
  parts.push(message);
  return Buffer.concat(parts);
}

/** Folds a long header line at spaces so no line exceeds 78 characters where possible (RFC 5322 §2.2.3). */
export function foldHeader(line: string): string {
  if (line.length <= 78) return line;
  const words = line.split(' ');
  const out: string[] = [];
  let current = '';
  for (const word of words) {
    if (current && current.length + 1 + word.length > 78) {
      out.push(current);
      current = `\t${word}`;
    } else current = current ? `${current} ${word}` : word;
  }
  out.push(current);
  return out.join('\r\n');
}
