/**
 * Remote SMTP replies as data: parse what a receiving MX said (or what went wrong before it
 * could say anything) into one shape, and classify it into a delivery outcome.
 *
 * Every outcome carries a reply, even a refused TCP connection, so the event log and the
 * bounce message have one schema for "what happened" (KumoMTA-style delivery records).
 */

export interface SmtpReply {
  /** Basic reply code (RFC 5321 §4.2); 0 when the peer sent no parsable reply. */
  code: number;
  /** Enhanced status code (RFC 3463), e.g. '5.1.1', when present and of the same class. */
  enhanced?: string;
  /** Human text with the codes stripped; continuation lines joined by a space. */
  text: string;
}

export type DeliveryOutcome = 'delivered' | 'temporary' | 'permanent';

/** The remote end as named in synthetic replies: `mx1.example.com[192.0.2.1]:25`. */
export interface ReplyPeer {
  host: string;
  ip: string;
  port: number;
}

/**
 * Where the failure happened. `session` is everything before the first MAIL FROM (TCP
 * connect, greeting, EHLO, STARTTLS, AUTH): such failures say nothing about the message or
 * its recipients, so they are always temporary and the caller tries the next MX.
 */
export type FailurePhase = 'session' | 'transaction';

const REPLY_LINE = /^([2-5]\d\d)(?:[ -]|$)/;
// RFC 3463 §2: class "." subject "." detail, subject and detail 1–3 digits.
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/;

/** Parse a raw (possibly multiline) server reply. Garbage yields code 0 and the raw text. */
export function parseReply(raw: string): SmtpReply {
  const lines = raw.split(/\r?\n/).filter((line) => line.trim() !== '');
  const first = lines[0] ?? '';
  const codeMatch = REPLY_LINE.exec(first);
  if (!codeMatch) return { code: 0, text: collapse(lines.join(' ')) };

  const codeText = codeMatch[1]!;
  const code = Number(codeText);
  const afterCode = first.slice(codeText.length + 1).trimStart();
  const enhancedMatch = ENHANCED.exec(afterCode);
  // RFC 3463 §3: the enhanced class must agree with the basic code's class; a mismatch
  // ("250 5.0.0 …") is not a status code we can trust, so it stays part of the text.
  const enhanced = enhancedMatch && enhancedMatch[1] === codeText[0] ? enhancedMatch[0] : undefined;

  const parts = lines.map((line) => {
    let rest = line.startsWith(codeText) ? line.slice(codeText.length + 1) : line;
    rest = rest.trimStart();
    if (enhanced && rest.startsWith(enhanced) && /^(\s|$)/.test(rest.slice(enhanced.length))) {
      rest = rest.slice(enhanced.length);
    }
    return rest.trim();
  });
  const text = collapse(parts.filter((part) => part !== '').join(' '));
  return enhanced ? { code, enhanced, text } : { code, text };
}

/** 2xx delivered, 4xx temporary, 5xx permanent; anything else (no reply, 3xx) is retried. */
export function classifyReply(reply: SmtpReply): DeliveryOutcome {
  if (reply.code >= 200 && reply.code < 300) return 'delivered';
  if (reply.code >= 500 && reply.code < 600) return 'permanent';
  return 'temporary';
}

/** `550 5.1.1 text` — the one-line form used in logs and DSN Diagnostic-Code fields. */
export function formatReply(reply: SmtpReply): string {
  return [reply.code === 0 ? '' : String(reply.code), reply.enhanced ?? '', reply.text]
    .filter((part) => part !== '')
    .join(' ');
}

/** `mx1.example.com[192.0.2.1]:25`, Postfix's way of naming the peer. */
export function peerLabel(peer: ReplyPeer): string {
  return peer.host === peer.ip ? `[${peer.ip}]:${peer.port}` : `${peer.host}[${peer.ip}]:${peer.port}`;
}

/** The fields of a nodemailer error we read; any thrown value is accepted. */
interface ErrorLike {
  message?: unknown;
  code?: unknown;
  originalCode?: unknown;
  timeoutType?: unknown;
  response?: unknown;
  command?: unknown;
}

/**
 * Turn a thrown error (nodemailer's, or a socket's) into a reply and an outcome.
 *
 * A reply the server actually sent is kept as the server sent it. Failures without one get
 * a synthetic reply (code 421/451/55x with a fitting RFC 3463 code) whose text names the
 * peer and keeps the original error message in parentheses.
 */
export function replyFromError(
  error: unknown,
  peer: ReplyPeer,
  phase: FailurePhase,
): { reply: SmtpReply; outcome: DeliveryOutcome } {
  const err: ErrorLike = typeof error === 'object' && error !== null ? error : { message: String(error) };
  const message = typeof err.message === 'string' ? err.message : String(error);
  const code = typeof err.code === 'string' ? err.code : '';
  const label = peerLabel(peer);

  if (typeof err.response === 'string') {
    const reply = parseReply(err.response);
    if (reply.code !== 0) {
      if (phase === 'session' && code === 'ETLS') {
        // The server refused STARTTLS while our policy requires it: name the TLS problem,
        // keep the server's words.
        return synthetic(421, '4.7.4', `TLS is required, but ${label} refused STARTTLS`, formatReply(reply));
      }
      // An error is never a delivery: a stray 2xx/3xx (nodemailer's "Unexpected Response")
      // means the conversation went out of step, which is worth a retry, not a success.
      const outcome = classifyReply(reply);
      return {
        reply,
        outcome: phase === 'transaction' && outcome === 'permanent' ? 'permanent' : 'temporary',
      };
    }
  }

  const systemCode = typeof err.originalCode === 'string' ? err.originalCode : code;
  const detail = message;

  if (code === 'ETIMEDOUT') {
    switch (err.timeoutType) {
      case 'CONNECT_TIMEOUT':
        return synthetic(421, '4.4.1', `connection to ${label} timed out`, detail);
      case 'GREETING_TIMEOUT':
        return synthetic(421, '4.4.2', `timed out waiting for the greeting from ${label}`, detail);
      case 'UPGRADE_TIMEOUT':
        return synthetic(421, '4.4.2', `TLS handshake with ${label} timed out`, detail);
      default:
        return synthetic(421, '4.4.2', `conversation with ${label} timed out`, detail);
    }
  }
  if (code === 'ETLS') return synthetic(421, '4.7.5', `TLS handshake with ${label} failed`, detail);
  switch (systemCode) {
    case 'ECONNREFUSED':
      return synthetic(421, '4.4.1', `connection refused by ${label}`, detail);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return synthetic(421, '4.4.1', `no route to ${label}`, detail);
    case 'EADDRNOTAVAIL':
      // The source IP is not configured on this machine: our problem, not the receiver's.
      return synthetic(451, '4.4.1', `cannot bind the source address to connect to ${label}`, detail);
    case 'ETIMEDOUT':
      return synthetic(421, '4.4.1', `connection to ${label} timed out`, detail);
    case 'ECONNRESET':
    case 'EPIPE':
      return synthetic(421, '4.4.2', `connection to ${label} was reset`, detail);
  }
  switch (code) {
    case 'ECONNECTION':
    case 'ESOCKET':
      return synthetic(421, '4.4.2', `connection to ${label} was lost`, detail);
    case 'EDNS':
      return synthetic(451, '4.4.3', `cannot resolve ${peer.host}`, detail);
    case 'EPROTOCOL':
      return synthetic(421, '4.5.0', `protocol error in the conversation with ${label}`, detail);
    case 'EAUTH':
      return synthetic(451, '4.7.0', `cannot authenticate to ${label}`, detail);
  }
  if (phase === 'transaction') {
    // Local refusals before anything was sent: retrying the same message cannot help.
    if (code === 'EMESSAGE' && /size larger than allowed/i.test(message)) {
      return synthetic(552, '5.3.4', `message is larger than ${label} accepts`, detail);
    }
    if (code === 'EENVELOPE' && /invalid sender/i.test(message)) {
      return synthetic(553, '5.1.7', 'invalid sender address', detail);
    }
    if (code === 'EENVELOPE' && /invalid recipient/i.test(message)) {
      return synthetic(553, '5.1.3', 'invalid recipient address', detail);
    }
  }
  return synthetic(451, '4.3.0', `delivery to ${label} failed`, detail);
}

function synthetic(
  code: number,
  enhanced: string,
  text: string,
  detail: string,
): { reply: SmtpReply; outcome: DeliveryOutcome } {
  const reply: SmtpReply = { code, enhanced, text: detail ? `${text} (${collapse(detail)})` : text };
  return { reply, outcome: classifyReply(reply) };
}

function collapse(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
