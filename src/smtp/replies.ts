/**
 * The one catalogue of SMTP replies Postbote sends. Every reply is written once here and used by
 * name, so `554 5.7.1 Relay access denied` reads the same on every listener.
 *
 * Basic codes: RFC 5321 §4.2.2 and §4.2.3. Enhanced codes: RFC 3463 and the IANA registry
 * (RFC 5248); AUTH codes: RFC 4954 §6; SMTPUTF8: RFC 6531 §3.7.1; STARTTLS: RFC 3207 §4.
 * RFC 2034 §3 leaves the enhanced code off the greeting, the EHLO/HELO reply and the
 * 334/354 intermediate replies; every other reply carries one.
 */

/** One SMTP reply. `text` may hold several lines separated by `\n`: it is sent multi-line. */
export interface SmtpReply {
  readonly code: number;
  /** RFC 3463 enhanced status code, e.g. `5.7.1`; sent at the start of every line. */
  readonly enhanced?: string;
  readonly text: string;
}

function reply(code: number, enhanced: string | undefined, text: string): SmtpReply {
  return Object.freeze(enhanced === undefined ? { code, text } : { code, enhanced, text });
}

/** `334` prompts of AUTH LOGIN carry base64 text (draft-murchison-sasl-login). */
const usernamePrompt = Buffer.from('Username:').toString('base64');
const passwordPrompt = Buffer.from('Password:').toString('base64');

export const replies = Object.freeze({
  // --- connection (RFC 5321 §3.1, §4.2.3) ---
  greeting: (hostname: string): SmtpReply => reply(220, undefined, `${hostname} ESMTP Postbote`),
  bye: reply(221, '2.0.0', 'Bye'),
  /** Sent to a client that talks before the greeting (early-talker detection, RFC 5321 §4.3.1). */
  earlyTalker: reply(554, '5.5.1', 'Protocol error: client sent data before the greeting'),
  tooManyConnections: reply(421, '4.7.0', 'Too many connections, try again later'),
  idleTimeout: reply(421, '4.4.2', 'Idle timeout, closing connection'),
  shuttingDown: reply(421, '4.3.2', 'Service shutting down, try again later'),
  tooManyErrors: reply(421, '4.7.0', 'Too many errors, closing connection'),
  /** An HTTP or proxy request sent to the SMTP port (cross-protocol attempt): cut it off. */
  forbiddenCommand: reply(421, '4.7.0', 'Not an SMTP command, closing connection'),
  /** The connection hook failed: the greeting slot only admits 220, 421 or 554 (RFC 5321 §3.1). */
  connectError: reply(421, '4.3.0', 'Local error, try again later'),

  // --- generic outcomes ---
  ok: reply(250, '2.0.0', 'Ok'),
  queued: (id: string): SmtpReply => reply(250, '2.0.0', `Ok: queued as ${id}`),
  localError: reply(451, '4.3.0', 'Local error in processing, try again later'),
  serviceUnavailable: reply(451, '4.3.0', 'Service temporarily unavailable, try again later'),
  storeUnavailable: reply(451, '4.3.0', 'Message store temporarily unavailable, try again later'),

  // --- command syntax and sequence (RFC 5321 §4.2.4, RFC 3463 X.5.x) ---
  syntaxError: reply(500, '5.5.2', 'Syntax error, command unrecognised'),
  unrecognised: reply(500, '5.5.2', 'Error: command not recognised'),
  /** A command line over the limit (RFC 5321 §4.5.3.1.4 says "500 Line too long"). */
  lineTooLong: reply(500, '5.5.2', 'Line too long'),
  /** A bare LF ends a command line: refused, so our idea of lines matches a strict peer's. */
  bareLfInCommand: reply(500, '5.5.2', 'Bare LF not allowed, lines end with CRLF'),
  invalidCharacters: reply(500, '5.5.2', 'Invalid characters in command'),
  paramSyntax: reply(501, '5.5.4', 'Syntax error in parameters or arguments'),
  notImplemented: reply(502, '5.5.1', 'Command not implemented'),
  badSequence: reply(503, '5.5.1', 'Bad sequence of commands'),
  needHelo: reply(503, '5.5.1', 'Error: send HELO/EHLO first'),
  needEhlo: reply(503, '5.5.1', 'Error: send EHLO first'),
  needMail: reply(503, '5.5.1', 'Error: need MAIL command'),
  needRcpt: reply(503, '5.5.1', 'Error: need RCPT command'),
  nestedMail: reply(503, '5.5.1', 'Error: nested MAIL command'),
  /** RFC 5321 §4.1.1.11: an ESMTP parameter we do not know or did not advertise. */
  paramNotRecognised: (name: string): SmtpReply =>
    reply(555, '5.5.4', `Unsupported parameter ${name.slice(0, 32)}`),
  paramInvalid: (name: string): SmtpReply => reply(501, '5.5.4', `Invalid value for parameter ${name}`),
  /** RFC 8689 §4.1: REQUIRETLS only in a TLS session (it is advertised only there). */
  requireTlsNeedsTls: reply(530, '5.7.10', 'REQUIRETLS needs a TLS session: STARTTLS first'),
  heloSyntax: (verb: string): SmtpReply => reply(501, '5.5.4', `Syntax: ${verb} hostname`),

  // --- HELO / EHLO / misc commands ---
  helo: (hostname: string): SmtpReply => reply(250, undefined, hostname),
  /** The EHLO reply: first line the host name, then one extension keyword per line (RFC 5321 §4.1.1.1). */
  ehlo: (hostname: string, extensions: readonly string[]): SmtpReply =>
    reply(250, undefined, [hostname, ...extensions].join('\n')),
  /** RFC 5321 §3.5.3: 252 when we will not verify but would accept. */
  vrfy: reply(252, '2.5.0', 'Cannot VRFY user, but will accept message and attempt delivery'),
  help: reply(214, '2.0.0', 'Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY STARTTLS AUTH HELP'),

  // --- MAIL / RCPT (RFC 5321 §4.1.1.2, §4.1.1.3; RFC 3463 X.1.x) ---
  senderOk: reply(250, '2.1.0', 'Sender ok'),
  recipientOk: reply(250, '2.1.5', 'Recipient ok'),
  badSenderSyntax: reply(501, '5.1.7', 'Bad sender address syntax'),
  badRecipientSyntax: reply(501, '5.1.3', 'Bad recipient address syntax'),
  /** RFC 5321 §4.5.3.1.3: path longer than 256 octets (local part 64, domain 255). */
  senderTooLong: reply(501, '5.1.7', 'Sender address too long'),
  recipientTooLong: reply(501, '5.1.3', 'Recipient address too long'),
  /** Generic "mailbox name not allowed" (RFC 5321 §4.2.2 code 553). */
  invalidAddress: reply(553, '5.1.3', 'Mailbox name not allowed'),
  /** We do not honour source routes (RFC 5321 §4.1.1.3, Appendix C); refused rather than stripped. */
  senderSourceRoute: reply(553, '5.1.7', 'Source routes are not accepted'),
  recipientSourceRoute: reply(553, '5.1.3', 'Source routes are not accepted'),
  /** RFC 6531 §3.7.1: a non-ASCII address without the SMTPUTF8 parameter. */
  utf8AddressNotPermitted: reply(553, '5.6.7', 'Non-ASCII address requires SMTPUTF8'),
  relayDenied: reply(554, '5.7.1', 'Relay access denied'),
  /**
   * Inbound MX (smtp/inbound.ts): a recipient that is neither a valid VERP return path of ours
   * nor a feedback address. One reply for relay attempts, forged tokens and unknown mailboxes,
   * so probing learns nothing about which tokens or domains exist.
   */
  notOurAddress: reply(550, '5.7.1', 'Recipient address rejected: not a bounce or feedback address here'),
  /** RFC 5321 §4.5.3.1.8: the client should retry the remaining recipients in a new transaction. */
  tooManyRecipients: reply(452, '4.5.3', 'Too many recipients'),

  // --- DATA (RFC 5321 §4.1.1.4, RFC 1870) ---
  startData: reply(354, undefined, 'End data with <CR><LF>.<CR><LF>'),
  noValidRecipients: reply(554, '5.5.1', 'Error: no valid recipients'),
  messageTooBig: (limit: number): SmtpReply =>
    reply(552, '5.3.4', `Message size exceeds fixed maximum message size of ${limit} bytes`),
  /**
   * SMTP smuggling defence: a bare LF or CR anywhere in DATA refuses the message (the Postfix
   * `smtpd_forbid_bare_newline = reject` choice; 5.6.11 as Exchange Online uses it).
   */
  bareNewlineInData: reply(550, '5.6.11', 'Bare LF/CR not allowed in message data'),
  /**
   * The message names a stream its account does not have; `namedBy` says where the name came
   * from (the X-Postbote-Stream header, the credential's default). X.6.0: something in the content made it undeliverable (RFC 3463 §3.7); 554
   * is the end-of-data failure (RFC 5321 §4.2.2). Permanent: resending the same will not help.
   */
  /** The account's sender policy refuses the From (or Sender) domain (domains/sender-gate.ts). */
  senderNotAllowed: reply(550, '5.7.1', 'Sender domain not verified for this account'),
  /** An X-Postbote-* control header the submission cannot honour (bad tags, metadata, template). */
  invalidControl: (text: string): SmtpReply =>
    reply(554, '5.6.0', text.replace(/[^\x20-\x7e]/g, '?').slice(0, 400)),
  unknownStream: (name: string, namedBy: string): SmtpReply =>
    reply(
      554,
      '5.6.0',
      `Unknown stream "${name.replace(/[^\x20-\x7e]/g, '?').slice(0, 64)}" (${namedBy}) for this account`,
    ),

  // --- STARTTLS (RFC 3207 §4) ---
  readyTls: reply(220, '2.0.0', 'Ready to start TLS'),
  tlsNotAvailable: reply(454, '4.7.0', 'TLS not available due to temporary reason'),
  tlsAlreadyActive: reply(503, '5.5.1', 'TLS already active'),

  // --- AUTH (RFC 4954 §4, §6) ---
  authContinue: reply(334, undefined, ''),
  authUsernamePrompt: reply(334, undefined, usernamePrompt),
  authPasswordPrompt: reply(334, undefined, passwordPrompt),
  authSuccess: reply(235, '2.7.0', 'Authentication successful'),
  authRequired: reply(530, '5.7.0', 'Authentication required'),
  authFailed: reply(535, '5.7.8', 'Authentication credentials invalid'),
  authLockedOut: reply(454, '4.7.0', 'Too many failed authentication attempts, try again later'),
  /** RFC 4954 §6: the credential store could not be asked. */
  authTemporaryFailure: reply(454, '4.7.0', 'Temporary authentication failure, try again later'),
  authPlaintextRefused: reply(538, '5.7.11', 'Encryption required for requested authentication mechanism'),
  authCancelled: reply(501, '5.0.0', 'Authentication cancelled'),
  authBadBase64: reply(501, '5.5.2', 'Cannot decode base64 response'),
  /** X.5.6 is registered (RFC 4954) for an AUTH exchange line over the mechanism's buffer. */
  authLineTooLong: reply(500, '5.5.6', 'Authentication exchange line is too long'),
  authMechanismUnsupported: reply(504, '5.5.4', 'Unrecognised authentication mechanism'),
  authAlreadyDone: reply(503, '5.5.1', 'Already authenticated'),
  authInTransaction: reply(503, '5.5.1', 'AUTH not permitted during a mail transaction'),
  authNotEnabled: reply(503, '5.5.1', 'Authentication not enabled'),
});

/**
 * Format a reply for the wire: one line per text line, `-` after the code on all but the last
 * (RFC 5321 §4.2.1), the enhanced code on every line (RFC 2034 §3). CR and LF can only end a
 * line: a handler cannot inject an extra reply through its text.
 */
export function formatReply(r: SmtpReply): string {
  const prefix = String(r.code);
  const enhanced = r.enhanced === undefined ? '' : `${r.enhanced} `;
  const text = r.text;
  if (text.indexOf('\n') === -1 && text.indexOf('\r') === -1) {
    return `${prefix} ${enhanced}${text}\r\n`;
  }
  const lines = text.split(/\r\n|\r|\n/);
  let out = '';
  for (let i = 0; i < lines.length; i++) {
    out += `${prefix}${i === lines.length - 1 ? ' ' : '-'}${enhanced}${lines[i]}\r\n`;
  }
  return out;
}

/** True for 2xx replies. */
export function isPositive(r: SmtpReply): boolean {
  return r.code >= 200 && r.code < 300;
}
