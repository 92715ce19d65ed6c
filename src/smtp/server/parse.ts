/**
 * Parsing of SMTP command lines: verbs, MAIL/RCPT paths, ESMTP parameters, xtext and base64.
 * Hand-written scanners, no regular expressions: linear time on any input (fuzzing, hostile
 * clients). Every function returns a result or a reply from the catalogue; nothing throws.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { replies, type SmtpReply } from '../replies.ts';
import type { SmtpAddress, SmtpParams } from './types.ts';

export type Parsed<T> = { ok: true; value: T } | { ok: false; reply: SmtpReply };

function fail(reply: SmtpReply): { ok: false; reply: SmtpReply } {
  return { ok: false, reply };
}

/** Split `VERB args`: the verb upper-cased, the argument without trailing spaces. */
export function splitCommand(line: string): { verb: string; arg: string } {
  const space = line.indexOf(' ');
  if (space === -1) return { verb: line.toUpperCase(), arg: '' };
  let end = line.length;
  while (end > space + 1 && line.charCodeAt(end - 1) === 0x20) end--;
  return { verb: line.slice(0, space).toUpperCase(), arg: line.slice(space + 1, end) };
}

// ---------------------------------------------------------------------------------------------
// Mailboxes (RFC 5321 §4.1.2, §4.5.3.1; RFC 6531 §3.3 for UTF-8)

/** Why a mailbox was refused; the caller maps it to the sender or the recipient reply. */
export type MailboxProblem = 'syntax' | 'tooLong' | 'sourceRoute' | 'utf8';

/** RFC 5321 §4.1.2 atext: ALPHA / DIGIT / "!#$%&'*+-/=?^_`{|}~". */
function isAtext(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x21 || // !
    (c >= 0x23 && c <= 0x27) || // # $ % & '
    c === 0x2a || // *
    c === 0x2b || // +
    c === 0x2d || // -
    c === 0x2f || // /
    c === 0x3d || // =
    c === 0x3f || // ?
    (c >= 0x5e && c <= 0x60) || // ^ _ `
    (c >= 0x7b && c <= 0x7e) // { | } ~
  );
}

function isLetDig(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39);
}

function octets(s: string, nonAscii: boolean): number {
  return nonAscii ? Buffer.byteLength(s, 'utf8') : s.length;
}

/** Domain or address literal (RFC 5321 §4.1.2, §4.1.3); U-labels only when `utf8`. */
function checkDomain(domain: string, nonAscii: boolean): boolean {
  if (domain.length === 0) return false;
  if (domain.charCodeAt(0) === 0x5b /* [ */) {
    if (domain.charCodeAt(domain.length - 1) !== 0x5d /* ] */) return false;
    const literal = domain.slice(1, -1);
    if (literal.length > 5 && literal.slice(0, 5).toUpperCase() === 'IPV6:') return isIPv6(literal.slice(5));
    // General-address-literal (Standardized-tag ":" dcontent) has no registered tag in use.
    return isIPv4(literal);
  }
  if (octets(domain, nonAscii) > 255) return false;
  let labelStart = 0;
  for (let i = 0; i <= domain.length; i++) {
    const c = i === domain.length ? 0x2e : domain.charCodeAt(i);
    if (c === 0x2e /* . */) {
      const len = i - labelStart;
      if (len === 0 || len > 63) return false;
      if (domain.charCodeAt(labelStart) === 0x2d || domain.charCodeAt(i - 1) === 0x2d) return false;
      if (nonAscii && octets(domain.slice(labelStart, i), true) > 63) return false;
      labelStart = i + 1;
    } else if (!(isLetDig(c) || c === 0x2d || c >= 0x80)) {
      return false;
    }
  }
  return true;
}

/**
 * Check a mailbox (the text between the angle brackets). `utf8` is whether SMTPUTF8 was given
 * for this transaction; `allowPostmaster` admits the bare `Postmaster` of RFC 5321 §4.1.1.3.
 */
export function checkMailbox(
  mailbox: string,
  options: { utf8: boolean; allowPostmaster?: boolean },
): MailboxProblem | undefined {
  const n = mailbox.length;
  if (n === 0) return 'syntax';
  // RFC 5321 §4.1.1.3 / Appendix C: `@a,@b:user@c`. We refuse rather than silently strip it.
  if (mailbox.charCodeAt(0) === 0x40 /* @ */) return 'sourceRoute';
  let nonAscii = false;
  for (let i = 0; i < n; i++) {
    const c = mailbox.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return 'syntax'; // CR, LF, NUL, TAB and other controls
    if (c >= 0x80) nonAscii = true;
  }
  if (nonAscii && !options.utf8) return 'utf8';
  // Path limit 256 octets including the angle brackets (RFC 5321 §4.5.3.1.3).
  if (octets(mailbox, nonAscii) > 254) return 'tooLong';

  let i = 0;
  if (mailbox.charCodeAt(0) === 0x22 /* " */) {
    // Quoted-string: qtextSMTP = %d32-33 / %d35-91 / %d93-126, quoted-pairSMTP = "\" %d32-126.
    i = 1;
    for (;;) {
      if (i >= n) return 'syntax';
      const c = mailbox.charCodeAt(i);
      if (c === 0x22) break;
      if (c === 0x5c /* \ */) {
        if (i + 1 >= n) return 'syntax';
        i += 2;
        continue;
      }
      i++;
    }
    if (i === 1) return 'syntax'; // "" is not a useful local part
    i++;
  } else {
    // Dot-string = Atom *("." Atom): no leading, trailing or doubled dots.
    let atomLength = 0;
    for (; i < n; i++) {
      const c = mailbox.charCodeAt(i);
      if (c === 0x40) break;
      if (c === 0x2e) {
        if (atomLength === 0) return 'syntax';
        atomLength = 0;
      } else if (isAtext(c) || c >= 0x80) {
        atomLength++;
      } else {
        return 'syntax';
      }
    }
    if (atomLength === 0) return 'syntax';
  }
  const local = mailbox.slice(0, i);
  if (i === n) {
    return options.allowPostmaster && local.toLowerCase() === 'postmaster' ? undefined : 'syntax';
  }
  if (mailbox.charCodeAt(i) !== 0x40) return 'syntax';
  if (octets(local, nonAscii) > 64) return 'tooLong';
  return checkDomain(mailbox.slice(i + 1), nonAscii) ? undefined : 'syntax';
}

/**
 * Split `FROM:<path> params` / `TO:<path> params`. One space after the colon is tolerated
 * (common client habit). The path ends at the first `>` outside a quoted local part.
 */
export function splitPath(
  arg: string,
  keyword: 'FROM:' | 'TO:',
): { path: string; params: string } | undefined {
  const k = keyword.length;
  if (arg.length <= k || arg.slice(0, k).toUpperCase() !== keyword) return undefined;
  let i = k;
  if (arg.charCodeAt(i) === 0x20) i++;
  if (arg.charCodeAt(i) !== 0x3c /* < */) return undefined;
  const start = i + 1;
  let quoted = false;
  for (i = start; i < arg.length; i++) {
    const c = arg.charCodeAt(i);
    if (quoted) {
      if (c === 0x5c) i++;
      else if (c === 0x22) quoted = false;
    } else if (c === 0x22) {
      quoted = true;
    } else if (c === 0x3e /* > */) {
      const rest = arg.slice(i + 1);
      if (rest.length > 0 && rest.charCodeAt(0) !== 0x20) return undefined;
      return { path: arg.slice(start, i), params: rest };
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// ESMTP parameters (RFC 5321 §4.1.2 esmtp-param)

/** `KEY[=value] KEY2[=value]`: keywords upper-cased; a repeated keyword is a syntax error. */
export function parseParams(text: string): SmtpParams | undefined {
  const params: SmtpParams = {};
  for (const token of text.split(' ')) {
    if (token.length === 0) continue;
    const eq = token.indexOf('=');
    const key = (eq === -1 ? token : token.slice(0, eq)).toUpperCase();
    if (key.length === 0 || key.length > 32 || key.charCodeAt(0) === 0x2d) return undefined;
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      if (!(isLetDig(c) || c === 0x2d)) return undefined;
    }
    let value = '';
    if (eq !== -1) {
      value = token.slice(eq + 1);
      if (value.length === 0) return undefined;
      // esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 under SMTPUTF8 (RFC 6531 §3.3).
      for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i);
        if (c < 0x21 || c === 0x3d || c === 0x7f) return undefined;
      }
    }
    if (Object.hasOwn(params, key)) return undefined;
    params[key] = value;
  }
  return params;
}

/** RFC 3461 §4: xtext, `+XX` hex escapes for `+`, `=` and anything outside 33..126. */
export function decodeXtext(text: string): string | undefined {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2b /* + */) {
      const hex = text.slice(i + 1, i + 3);
      if (hex.length !== 2 || !isHex(hex.charCodeAt(0)) || !isHex(hex.charCodeAt(1))) return undefined;
      out += String.fromCharCode(Number.parseInt(hex, 16));
      i += 2;
    } else if (c < 0x21 || c > 0x7e || c === 0x3d) {
      return undefined;
    } else {
      out += text[i];
    }
  }
  return out;
}

/** RFC 6533 §3: utf-8-addr-xtext, `\x{HEX}` escapes for code points. */
function decodeUtf8AddrXtext(text: string): string | undefined {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) {
      const close = text.indexOf('}', i);
      if (text[i + 1] !== 'x' || text[i + 2] !== '{' || close === -1 || close - i - 3 > 6) return undefined;
      const hex = text.slice(i + 3, close);
      for (let j = 0; j < hex.length; j++) if (!isHex(hex.charCodeAt(j))) return undefined;
      const cp = Number.parseInt(hex, 16);
      if (!(cp > 0 && cp <= 0x10ffff) || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
      out += String.fromCodePoint(cp);
      i = close;
    } else if (c < 0x21 || c === 0x7f || c === 0x2b || c === 0x3d) {
      return undefined;
    } else {
      out += text[i];
    }
  }
  return out;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function isDigits(s: string, maxLength: number): boolean {
  if (s.length === 0 || s.length > maxLength) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function isPrintableAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// MAIL FROM and RCPT TO

function mailboxReply(problem: MailboxProblem, kind: 'sender' | 'recipient'): SmtpReply {
  switch (problem) {
    case 'sourceRoute':
      return kind === 'sender' ? replies.senderSourceRoute : replies.recipientSourceRoute;
    case 'tooLong':
      return kind === 'sender' ? replies.senderTooLong : replies.recipientTooLong;
    case 'utf8':
      return replies.utf8AddressNotPermitted;
    case 'syntax':
      return kind === 'sender' ? replies.badSenderSyntax : replies.badRecipientSyntax;
  }
}

/**
 * `MAIL FROM:<reverse-path> [params]` (RFC 5321 §4.1.1.2). Parameters: SIZE (RFC 1870),
 * BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET and ENVID (RFC 3461 §4.3, §4.4), AUTH (RFC 4954 §5),
 * REQUIRETLS (RFC 8689 §4.1, TLS sessions only).
 */
export function parseMailFrom(
  arg: string,
  options: { esmtp: boolean; sizeLimit: number; secure?: boolean },
): Parsed<SmtpAddress> {
  const split = splitPath(arg, 'FROM:');
  if (!split) return fail(replies.badSenderSyntax);
  const params = parseParams(split.params);
  if (!params) return fail(replies.paramSyntax);
  for (const key of Object.keys(params)) {
    if (!options.esmtp) return fail(replies.paramNotRecognised(key)); // extensions need EHLO
    const value = params[key] ?? '';
    switch (key) {
      case 'SIZE':
        if (!isDigits(value, 20)) return fail(replies.paramInvalid(key));
        // RFC 1870 §6.1: a declared size over the fixed limit is refused at MAIL.
        if (Number(value) > options.sizeLimit) return fail(replies.messageTooBig(options.sizeLimit));
        break;
      case 'BODY': {
        const body = value.toUpperCase();
        if (body !== '7BIT' && body !== '8BITMIME') return fail(replies.paramInvalid(key));
        params[key] = body;
        break;
      }
      case 'SMTPUTF8':
        if (value !== '') return fail(replies.paramInvalid(key));
        break;
      case 'REQUIRETLS':
        // RFC 8689 §4.1: a flag without value, and only over TLS.
        if (value !== '') return fail(replies.paramInvalid(key));
        if (!options.secure) return fail(replies.requireTlsNeedsTls);
        break;
      case 'RET': {
        const ret = value.toUpperCase();
        if (ret !== 'FULL' && ret !== 'HDRS') return fail(replies.paramInvalid(key));
        params[key] = ret;
        break;
      }
      case 'ENVID': {
        const envid = decodeXtext(value);
        // RFC 3461 §4.4: printable US-ASCII, at most 100 characters.
        if (envid === undefined || envid.length > 100 || !isPrintableAscii(envid)) {
          return fail(replies.paramInvalid(key));
        }
        params[key] = envid;
        break;
      }
      case 'AUTH': {
        const auth = decodeXtext(value);
        if (auth === undefined || !isPrintableAscii(auth)) return fail(replies.paramInvalid(key));
        params[key] = auth;
        break;
      }
      default:
        return fail(replies.paramNotRecognised(key));
    }
  }
  if (split.path === '') return { ok: true, value: { address: '', params } }; // null sender
  const problem = checkMailbox(split.path, { utf8: Object.hasOwn(params, 'SMTPUTF8') });
  if (problem) return fail(mailboxReply(problem, 'sender'));
  return { ok: true, value: { address: split.path, params } };
}

const notifyValues = new Set(['SUCCESS', 'FAILURE', 'DELAY']);

/**
 * `RCPT TO:<forward-path> [params]` (RFC 5321 §4.1.1.3). Parameters: NOTIFY and ORCPT
 * (RFC 3461 §4.1, §4.2). `utf8` is whether the transaction's MAIL carried SMTPUTF8.
 */
export function parseRcptTo(arg: string, options: { esmtp: boolean; utf8: boolean }): Parsed<SmtpAddress> {
  const split = splitPath(arg, 'TO:');
  if (!split) return fail(replies.badRecipientSyntax);
  const params = parseParams(split.params);
  if (!params) return fail(replies.paramSyntax);
  for (const key of Object.keys(params)) {
    if (!options.esmtp) return fail(replies.paramNotRecognised(key));
    const value = params[key] ?? '';
    switch (key) {
      case 'NOTIFY': {
        // "NEVER" alone, or a comma list of SUCCESS, FAILURE, DELAY without repeats.
        const notify = value.toUpperCase();
        if (notify !== 'NEVER') {
          const seen = new Set<string>();
          for (const item of notify.split(',')) {
            if (!notifyValues.has(item) || seen.has(item)) return fail(replies.paramInvalid(key));
            seen.add(item);
          }
        }
        params[key] = notify;
        break;
      }
      case 'ORCPT': {
        // addr-type ";" xtext; the utf-8 address type uses RFC 6533 escapes instead.
        const semi = value.indexOf(';');
        if (semi <= 0) return fail(replies.paramInvalid(key));
        const type = value.slice(0, semi);
        for (let i = 0; i < type.length; i++) {
          const c = type.charCodeAt(i);
          if (!(isLetDig(c) || c === 0x2d)) return fail(replies.paramInvalid(key));
        }
        const raw = value.slice(semi + 1);
        const decoded = type.toLowerCase() === 'utf-8' ? decodeUtf8AddrXtext(raw) : decodeXtext(raw);
        if (decoded === undefined || decoded.length === 0) return fail(replies.paramInvalid(key));
        params[key] = `${type};${decoded}`;
        break;
      }
      default:
        return fail(replies.paramNotRecognised(key));
    }
  }
  const problem = checkMailbox(split.path, { utf8: options.utf8, allowPostmaster: true });
  if (problem) return fail(mailboxReply(problem, 'recipient'));
  return { ok: true, value: { address: split.path, params } };
}

// ---------------------------------------------------------------------------------------------
// Base64 for AUTH (RFC 4954 §4: a response that is not valid base64 gets 501)

function base64Value(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2b ||
    c === 0x2f
  );
}

/** Decode canonical padded base64; `undefined` for anything Buffer.from would silently skip. */
export function decodeBase64Strict(text: string): Buffer | undefined {
  const n = text.length;
  if (n % 4 !== 0) return undefined;
  let pad = 0;
  if (n > 0 && text.charCodeAt(n - 1) === 0x3d) pad = text.charCodeAt(n - 2) === 0x3d ? 2 : 1;
  for (let i = 0; i < n - pad; i++) {
    if (!base64Value(text.charCodeAt(i))) return undefined;
  }
  return Buffer.from(text, 'base64');
}
