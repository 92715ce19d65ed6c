/**
 * The SMTP command table: one function per verb. Each checks sequence and syntax, asks the
 * handler hook where there is one, and queues exactly one reply (or a continuation).
 */
import { isUtf8 } from 'node:buffer';
import { isPositive, replies, type SmtpReply } from '../replies.ts';
import type { Connection } from './connection.ts';
import type { DataResult } from './data-reader.ts';
import { decodeBase64Strict, parseMailFrom, parseRcptTo } from './parse.ts';
import type { AuthMethod } from './types.ts';

type Command = (conn: Connection, arg: string) => void | Promise<void>;

/** EHLO keywords of RFC 5321 §4.1.1.1 and the extensions we implement. */
function extensions(conn: Connection): string[] {
  const { options, session } = conn;
  const list = [
    `SIZE ${options.sizeLimit}`,
    'PIPELINING',
    '8BITMIME',
    'SMTPUTF8',
    'ENHANCEDSTATUSCODES',
    'DSN',
  ];
  if (!session.secure && conn.tlsContext() !== undefined) list.push('STARTTLS');
  // RFC 8689 §4: REQUIRETLS is offered inside TLS only.
  if (session.secure) list.push('REQUIRETLS');
  // RFC 4954 §4 leaves it to us: AUTH is only shown where it can succeed (TLS or trusted).
  if (options.authMethods.length > 0 && (session.secure || plaintextAuthAllowed(conn))) {
    list.push(`AUTH ${options.authMethods.join(' ')}`);
  }
  return list;
}

function plaintextAuthAllowed(conn: Connection): boolean {
  return conn.options.allowPlaintextAuth?.(conn.session) ?? false;
}

/** A HELO/EHLO argument: one token of printable ASCII (a domain or an address literal). */
function validHeloName(arg: string): boolean {
  if (arg.length === 0 || arg.length > 255) return false;
  for (let i = 0; i < arg.length; i++) {
    const c = arg.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

function hello(conn: Connection, arg: string, esmtp: boolean): void {
  if (!validHeloName(arg)) {
    conn.protocolError(replies.heloSyntax(esmtp ? 'EHLO' : 'HELO'));
    return;
  }
  const session = conn.session;
  session.heloName = arg;
  session.esmtp = esmtp;
  conn.resetTransaction(); // RFC 5321 §4.1.4: EHLO/HELO implies RSET
  const hostname = conn.options.hostname;
  conn.reply(esmtp ? replies.ehlo(hostname, extensions(conn)) : replies.helo(hostname));
}

/** EHLO (RFC 5321 §4.1.1.1): identify, reset the transaction, list the extensions. */
function ehlo(conn: Connection, arg: string): void {
  hello(conn, arg, true);
}

/** HELO (RFC 5321 §4.1.1.1): plain SMTP, no extensions and no ESMTP parameters afterwards. */
function helo(conn: Connection, arg: string): void {
  hello(conn, arg, false);
}

/** MAIL FROM (RFC 5321 §4.1.1.2): open a transaction; `<>` is the null sender. */
async function mail(conn: Connection, arg: string): Promise<void> {
  const session = conn.session;
  if (session.heloName === null) return conn.protocolError(replies.needHelo);
  if (session.envelope.mailFrom !== null) return conn.protocolError(replies.nestedMail);
  const parsed = parseMailFrom(arg, {
    esmtp: session.esmtp,
    sizeLimit: conn.options.sizeLimit,
    secure: session.secure,
  });
  if (!parsed.ok) return conn.protocolError(parsed.reply);
  const { address, params } = parsed.value;
  const hook = conn.options.handlers.onMailFrom;
  const r = hook
    ? await conn.callHandler('onMailFrom', () => hook(session, address, params), replies.localError)
    : undefined;
  if (r && !isPositive(r)) return conn.reply(r);
  session.envelope.mailFrom = parsed.value;
  conn.reply(r ?? replies.senderOk);
}

/** RCPT TO (RFC 5321 §4.1.1.3): add a recipient, up to `maxRecipients` (then 452, §4.5.3.1.8). */
async function rcpt(conn: Connection, arg: string): Promise<void> {
  const session = conn.session;
  const mailFrom = session.envelope.mailFrom;
  if (mailFrom === null) return conn.protocolError(replies.needMail);
  const parsed = parseRcptTo(arg, { esmtp: session.esmtp, utf8: Object.hasOwn(mailFrom.params, 'SMTPUTF8') });
  if (!parsed.ok) return conn.protocolError(parsed.reply);
  if (session.envelope.rcptTo.length >= conn.options.maxRecipients)
    return conn.reply(replies.tooManyRecipients);
  const { address, params } = parsed.value;
  const hook = conn.options.handlers.onRcptTo;
  const r = hook
    ? await conn.callHandler('onRcptTo', () => hook(session, address, params), replies.localError)
    : undefined;
  if (r && !isPositive(r)) return conn.reply(r);
  session.envelope.rcptTo.push(parsed.value);
  conn.reply(r ?? replies.recipientOk);
}

/** DATA (RFC 5321 §4.1.1.4): 354, then the connection reads content until CRLF.CRLF. */
function data(conn: Connection, arg: string): void {
  const envelope = conn.session.envelope;
  if (arg !== '') {
    conn.protocolError(replies.paramSyntax);
    return;
  }
  if (envelope.mailFrom === null) {
    conn.protocolError(replies.needMail);
    return;
  }
  // RFC 5321 §3.3: no accepted recipient → 554 "no valid recipients" (or 503).
  if (envelope.rcptTo.length === 0) {
    conn.protocolError(replies.noValidRecipients);
    return;
  }
  conn.startData();
}

/**
 * After the end-of-data marker: refuse oversize (RFC 1870 §6.3: 552, the stream was drained)
 * or bare-newline messages, otherwise hand the message to `onData`. Either way the transaction
 * ends (RFC 5321 §4.1.1.4).
 */
export async function endOfData(conn: Connection, result: DataResult): Promise<void> {
  const session = conn.session;
  const { sizeLimit, handlers, logger } = conn.options;
  let r: SmtpReply;
  if (result.oversize) {
    r = replies.messageTooBig(sizeLimit);
  } else if (result.bareNewline) {
    logger?.info(
      { sessionId: session.id, remoteAddress: session.remoteAddress },
      'bare LF/CR in DATA refused',
    );
    r = replies.bareNewlineInData;
  } else {
    const message = result.message;
    const info = { size: result.size };
    r =
      (await conn.callHandler('onData', () => handlers.onData(session, message, info), replies.localError)) ??
      replies.ok;
    if (isPositive(r)) session.transactions++;
  }
  conn.resetTransaction();
  conn.reply(r);
}

/** RSET (RFC 5321 §4.1.1.5): abort the transaction, keep the HELO identity. */
function rset(conn: Connection, arg: string): void {
  if (arg !== '') {
    conn.protocolError(replies.paramSyntax);
    return;
  }
  conn.resetTransaction();
  conn.reply(replies.ok);
}

/** NOOP (RFC 5321 §4.1.1.9): an argument is allowed and ignored. */
function noop(conn: Connection): void {
  conn.reply(replies.ok);
}

/** QUIT (RFC 5321 §4.1.1.10): 221, then we close. */
function quit(conn: Connection): void {
  conn.closeWith(replies.bye, { quit: true });
}

/** VRFY (RFC 5321 §3.5.3): never confirms mailboxes (harvesting); 252 keeps clients happy. */
function vrfy(conn: Connection, arg: string): void {
  if (arg === '') {
    conn.protocolError(replies.paramSyntax);
    return;
  }
  conn.reply(replies.vrfy);
}

/** HELP (RFC 5321 §4.1.1.8). */
function help(conn: Connection): void {
  conn.reply(replies.help);
}

/** STARTTLS (RFC 3207 §4): no argument; not twice; only with a certificate available. */
function starttls(conn: Connection, arg: string): void {
  if (arg !== '') {
    conn.protocolError(replies.paramSyntax);
    return;
  }
  if (conn.session.secure) {
    conn.protocolError(replies.tlsAlreadyActive);
    return;
  }
  const context = conn.tlsContext();
  if (!context) {
    conn.reply(replies.tlsNotAvailable);
    return;
  }
  conn.startTls(context);
}

/**
 * AUTH (RFC 4954 §4): PLAIN (RFC 4616) and LOGIN, with or without an initial response.
 * Only after EHLO, once per session, outside a transaction, and over TLS unless
 * `allowPlaintextAuth` says this session may (538 5.7.11 otherwise).
 */
function auth(conn: Connection, arg: string): void | Promise<void> {
  const { options, session } = conn;
  if (options.authMethods.length === 0) return conn.protocolError(replies.authNotEnabled);
  if (!session.esmtp) return conn.protocolError(replies.needEhlo);
  if (session.user !== undefined) return conn.protocolError(replies.authAlreadyDone);
  if (session.envelope.mailFrom !== null) return conn.protocolError(replies.authInTransaction);
  const space = arg.indexOf(' ');
  const mechanism = (space === -1 ? arg : arg.slice(0, space)).toUpperCase();
  const initial = space === -1 ? undefined : arg.slice(space + 1);
  if (!(options.authMethods as string[]).includes(mechanism)) {
    return conn.protocolError(replies.authMechanismUnsupported);
  }
  if (!session.secure && !plaintextAuthAllowed(conn)) return conn.protocolError(replies.authPlaintextRefused);
  if (mechanism === 'PLAIN') {
    if (initial !== undefined) return plainResponse(conn, initial);
    conn.reply(replies.authContinue);
    return conn.expectAuthLine((line) => plainResponse(conn, line));
  }
  if (initial !== undefined) return loginUsername(conn, initial);
  conn.reply(replies.authUsernamePrompt);
  conn.expectAuthLine((line) => loginUsername(conn, line));
}

/** Decode one base64 client response to UTF-8 text; `=` is the empty response (RFC 4954 §4). */
function decodeResponse(text: string): string | undefined {
  const bytes = text === '=' ? Buffer.alloc(0) : decodeBase64Strict(text);
  if (bytes === undefined || !isUtf8(bytes)) return undefined;
  return bytes.toString('utf8');
}

/** RFC 4616 §2: `[authzid] NUL authcid NUL passwd`. We do not act for another identity. */
function plainResponse(conn: Connection, text: string): void | Promise<void> {
  const decoded = decodeResponse(text);
  if (decoded === undefined) return conn.protocolError(replies.authBadBase64);
  const first = decoded.indexOf('\0');
  const second = first === -1 ? -1 : decoded.indexOf('\0', first + 1);
  if (second === -1 || decoded.indexOf('\0', second + 1) !== -1)
    return conn.protocolError(replies.authFailed);
  const authzid = decoded.slice(0, first);
  const username = decoded.slice(first + 1, second);
  const password = decoded.slice(second + 1);
  if (username === '' || password === '' || (authzid !== '' && authzid !== username)) {
    return conn.protocolError(replies.authFailed);
  }
  return finishAuth(conn, 'PLAIN', username, password);
}

function loginUsername(conn: Connection, text: string): void {
  const username = decodeResponse(text);
  if (username === undefined) {
    conn.protocolError(replies.authBadBase64);
    return;
  }
  conn.reply(replies.authPasswordPrompt);
  conn.expectAuthLine((line) => loginPassword(conn, username, line));
}

function loginPassword(conn: Connection, username: string, text: string): void | Promise<void> {
  const password = decodeResponse(text);
  if (password === undefined) return conn.protocolError(replies.authBadBase64);
  if (username === '' || password === '' || username.includes('\0') || password.includes('\0')) {
    return conn.protocolError(replies.authFailed);
  }
  return finishAuth(conn, 'LOGIN', username, password);
}

async function finishAuth(
  conn: Connection,
  method: AuthMethod,
  username: string,
  password: string,
): Promise<void> {
  const hook = conn.options.handlers.onAuth;
  if (!hook) return conn.protocolError(replies.authFailed);
  const session = conn.session;
  const result = await conn.callHandler('onAuth', () => hook(session, { method, username, password }), {
    ok: false,
    reply: replies.localError,
  });
  if (!result.ok) return conn.protocolError(result.reply);
  // `user` is what the hook returned; the username when it returned nothing.
  session.user = result.user ?? username;
  conn.reply(replies.authSuccess);
}

/** Commands we know of but do not offer (RFC 5321 §4.2.4: 502). BDAT: CHUNKING is not advertised. */
function notImplemented(conn: Connection): void {
  conn.protocolError(replies.notImplemented);
}

/** HTTP or proxy requests on the SMTP port (cross-protocol attacks): close at once, like Postfix. */
function forbidden(conn: Connection): void {
  conn.closeWith(replies.forbiddenCommand);
}

export const commands: ReadonlyMap<string, Command> = new Map<string, Command>([
  ['EHLO', ehlo],
  ['HELO', helo],
  ['MAIL', mail],
  ['RCPT', rcpt],
  ['DATA', data],
  ['RSET', rset],
  ['NOOP', noop],
  ['QUIT', quit],
  ['VRFY', vrfy],
  ['HELP', help],
  ['STARTTLS', starttls],
  ['AUTH', auth],
  ['EXPN', notImplemented],
  ['BDAT', notImplemented],
  ['ETRN', notImplemented],
  ['TURN', notImplemented],
  ['ATRN', notImplemented],
  ['SEND', notImplemented],
  ['SOML', notImplemented],
  ['SAML', notImplemented],
  ['GET', forbidden],
  ['POST', forbidden],
  ['PUT', forbidden],
  ['HEAD', forbidden],
  ['CONNECT', forbidden],
]);
