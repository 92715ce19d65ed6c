/**
 * The header fields of a composed message (RFC 5322 §2.2, §3.6; RFC 2047): custom fields checked
 * before they are written, address lists, Subject and other unstructured text, encoded-words for
 * what is not ASCII, and folding. Synchronous and allocation-light, as compose.ts needs them.
 */
import libmime from 'libmime';
import addressparser from 'nodemailer/lib/addressparser';
import { SendError } from './send-errors.ts';
import type { Mailbox } from './send-request.ts';

export const CRLF = '\r\n';
// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters and MUST be at most 998.
const FOLD_AT = 78;
export const MAX_LINE = 998;

// RFC 5322 §3.6.8: printable ASCII except ":".
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
// HT is the only control character a header value may hold; CR and LF would start a new field.
export const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
export const PLAIN_TEXT = /^[\x20-\x7e\t]*$/;
// RFC 5322 §3.2.3 atext, words separated by single spaces: a phrase that needs no quoting.
const ATOMS = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*$/;
const LONG_WORD = /[^ ]{77}/;
export const MSG_ID = /^<[\x21-\x3b\x3d\x3f\x41-\x7e]+@[\x21-\x3b\x3d\x3f\x41-\x7e]+>$/;
// Deliberately narrower than RFC 5321 (no quoted local parts): whatever passes can be written
// into a header without quoting and cannot end the field or the address early.
const ADDRESS = /^[^\x00-\x20\x7f<>()[\]\\,;:"@]+@[^\x00-\x20\x7f<>()\\,;:"@]+$/;

/** Fields Postbote writes itself, and where the caller says what it wants instead. */
const RESERVED = new Map<string, string>([
  ['from', 'use the "from" field'],
  ['to', 'use the "to" field'],
  ['cc', 'use the "cc" field'],
  ['bcc', 'use the "bcc" field'],
  ['subject', 'use the "subject" field'],
  ['date', 'Postbote dates the message when it accepts it; use "sendAt" to schedule it'],
  ['content-type', 'use "text", "html" and "attachments"'],
  ['content-transfer-encoding', 'use "text", "html" and "attachments"; Postbote chooses the encoding'],
  ['mime-version', 'Postbote writes it'],
  ['content-disposition', 'use "attachments" (with "contentId" for inline parts)'],
  ['return-path', 'the receiving server writes it from the envelope sender, which is "from"'],
  ['received', 'Postbote adds its own trace field'],
  ['dkim-signature', "Postbote signs with the sending domain's key"],
]);

export interface CustomHeaders {
  messageId: string | undefined;
  replyTo: Mailbox[] | undefined;
  others: [string, string][];
}

/** Refuses custom header fields that are malformed, could inject fields, or that Postbote owns. */
export function checkHeaders(headers: [string, string][]): void {
  readCustomHeaders(headers);
}

export function readCustomHeaders(headers: [string, string][]): CustomHeaders {
  const custom: CustomHeaders = { messageId: undefined, replyTo: undefined, others: [] };
  for (const [name, value] of headers) {
    const field = `headers.${name}`;
    const refuse = (why: string): never => {
      throw new SendError('invalid_header', `header ${JSON.stringify(name)} ${why}`, field);
    };
    if (!FIELD_NAME.test(name)) refuse('is not a field name: use printable ASCII without spaces or ":"');
    const lower = name.toLowerCase();
    const instead = RESERVED.get(lower);
    if (instead) refuse(`cannot be set in "headers": ${instead}`);
    if (typeof value !== 'string') refuse('must have a string value');
    if (CONTROL.test(value)) refuse('contains CR, LF or another control character: a value is one line');
    if (value.length > MAX_LINE) refuse(`is ${value.length} characters long; at most ${MAX_LINE}`);
    if (lower === 'message-id') {
      if (custom.messageId !== undefined) refuse('is given twice');
      const id = value.trim();
      if (!MSG_ID.test(id)) refuse('must look like <id@domain>');
      custom.messageId = id;
    } else if (lower === 'reply-to') {
      if (custom.replyTo !== undefined) refuse('is given twice');
      custom.replyTo = parseReplyTo(value, refuse);
    } else {
      // Only a field this long can hold a run without a fold point that ends up over 998. Not
      // encoded into words as a subject would be: that would break structured fields (URLs).
      if (
        name.length + 2 + value.length > MAX_LINE &&
        longestLine(unstructuredField(name, value)) > MAX_LINE
      ) {
        refuse(`has a word too long to fold under ${MAX_LINE} characters`);
      }
      custom.others.push([name, value]);
    }
  }
  return custom;
}

function parseReplyTo(value: string, refuse: (why: string) => never): Mailbox[] {
  const parsed = addressparser(value, { flatten: true });
  if (parsed.length === 0) refuse('has no address');
  return parsed.map(({ name, address }) => {
    if (!isAddress(address)) refuse(`has an address that is not usable: ${JSON.stringify(address)}`);
    return name ? { address, name: libmime.decodeWords(name) } : { address };
  });
}

function isAddress(address: string): boolean {
  return address.length <= 254 && ADDRESS.test(address);
}

export function addressField(name: string, list: Mailbox[], path: string): string {
  let value = '';
  for (let i = 0; i < list.length; i++) {
    const mailbox = list[i]!;
    const field = path === 'from' ? 'from.email' : `${path}[${i}].email`;
    if (!isAddress(mailbox.address)) {
      throw new SendError(
        'invalid_address',
        `${JSON.stringify(mailbox.address)} is not a usable address`,
        field,
      );
    }
    const display = mailbox.name?.trim();
    if (i > 0) value += ', ';
    value += display ? `${displayName(display)} <${mailbox.address}>` : mailbox.address;
  }
  return fold(`${name}: ${value}`);
}

function displayName(name: string): string {
  // A literal "=?" would be decoded as an encoded-word by readers; a 77-character word cannot fold.
  if (name.includes('=?') || (name.length > 76 && LONG_WORD.test(name)) || !PLAIN_TEXT.test(name))
    return encodedWords(name);
  if (ATOMS.test(name)) return name;
  return `"${name.replace(/[\\"]/g, '\\$&')}"`;
}

/** A subject with a word too long to fold within 998 characters is encoded whole: words split. */
export function subjectField(subject: string): string {
  const line = unstructuredField('Subject', subject);
  if (line.length <= MAX_LINE || longestLine(line) <= MAX_LINE) return line;
  return fold(`Subject: ${encodedWords(subject)}`);
}

/** Subject and custom fields: RFC 5322 §3.2.5 unstructured text, RFC 2047 words where needed. */
export function unstructuredField(name: string, value: string): string {
  if (value === '') return `${name}:`;
  if (PLAIN_TEXT.test(value) && !value.includes('=?')) return fold(`${name}: ${value}`);
  // encodeWords leaves the ASCII words around the non-ASCII run readable; a value holding
  // "=?" is encoded whole so that no reader mistakes its text for an encoded-word.
  const encoded = value.includes('=?')
    ? encodedWords(value)
    : libmime.encodeWords(value, wordEncoding(value), 52);
  return fold(`${name}: ${encoded}`);
}

/** RFC 2047 words of at most 52 characters, so a folded line stays near 78. */
function encodedWords(text: string): string {
  return libmime.encodeWord(text, wordEncoding(text), 52);
}

/** Q keeps mostly-ASCII text short and readable; B is shorter once most characters are not ASCII. */
function wordEncoding(text: string): 'Q' | 'B' {
  let nonAscii = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7e) nonAscii++;
  return nonAscii * 2 > text.length ? 'B' : 'Q';
}

const isWsp = (c: number): boolean => c === 0x20 || c === 0x09;

/**
 * Folds a header line (RFC 5322 §2.2.3) by putting CRLF before white space, preferring
 * points outside quoted strings, so that lines stay within 78 characters where the text allows.
 * Never folds where the continuation line would be white space only (§3.2.2).
 */
export function fold(line: string): string {
  if (line.length <= FOLD_AT) return line;
  let last = line.length - 1;
  while (last > 0 && isWsp(line.charCodeAt(last))) last--;
  let out = '';
  let start = 0;
  let quoted = false;
  let outside = -1;
  let inside = -1;
  for (let i = 1; i <= last; i++) {
    const c = line.charCodeAt(i);
    if (quoted && c === 0x5c) {
      i++;
      continue;
    }
    if (c === 0x22) quoted = !quoted;
    else if (isWsp(c) && !isWsp(line.charCodeAt(i - 1))) {
      if (i - start > FOLD_AT) {
        // No fold point within 78 characters: take the first one there is.
        out += line.slice(start, i) + CRLF;
        start = i;
        outside = inside = -1;
        continue;
      }
      if (quoted) inside = i;
      else outside = i;
    }
    if (i - start >= FOLD_AT) {
      const cut = outside > start ? outside : inside > start ? inside : -1;
      if (cut !== -1) {
        out += line.slice(start, cut) + CRLF;
        start = cut;
        outside = -1;
        if (inside <= cut) inside = -1;
      }
    }
  }
  return out + line.slice(start);
}

export function longestLine(text: string): number {
  let longest = 0;
  for (const line of text.split(CRLF)) longest = Math.max(longest, line.length);
  return longest;
}
