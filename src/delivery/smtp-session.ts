/**
 * One outbound SMTP session: a promise-based, typed wrapper around nodemailer's
 * SMTPConnection that turns each transaction into per-recipient results.
 *
 * nodemailer reports a transaction as one callback (an error or an info object); delivery
 * needs one outcome per recipient: an RCPT rejection applies to that recipient only, a
 * MAIL FROM or DATA-phase reply to every recipient the server had accepted. This file owns
 * that mapping, and the STARTTLS policy (including the plaintext retry that opportunistic
 * TLS allows when a handshake fails, which nodemailer's `opportunisticTLS` does not cover:
 * it only continues when the server refuses the STARTTLS command).
 */
import { isAscii } from 'node:buffer';
import net from 'node:net';
import tls from 'node:tls';
import SMTPConnection, { type SMTPError } from 'nodemailer/lib/smtp-connection/index.js';
import {
  classifyReply,
  type DeliveryOutcome,
  parseReply,
  type ReplyPeer,
  replyFromError,
  type SmtpReply,
} from './smtp-reply.ts';

export type StartTlsPolicy = 'opportunistic' | 'required' | 'none';

export interface SessionOptions {
  /** MX host name (SNI, reply texts), the IP to connect to, and the port. */
  peer: ReplyPeer;
  localAddress?: string;
  ehloName: string;
  starttls: StartTlsPolicy;
  /** For smarthost routes; sent only after STARTTLS when the policy gives TLS. */
  auth?: { user: string; pass: string };
  /** TLS from the first byte (port 465, RFC 8314) instead of STARTTLS. */
  implicitTls?: boolean;
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  socketTimeoutMs: number;
  tls: tls.ConnectionOptions;
}

/** RFC 3461 parameters; NOTIFY and ORCPT apply to every recipient of the transaction. */
export interface DsnParams {
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  notify?: Array<'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY'>;
  orcpt?: string;
}

export interface TransactionEnvelope {
  /** '' for the null sender (bounces). */
  from: string;
  to: string[];
  dsn?: DsnParams;
  size: number;
  /** The message needs SMTPUTF8 (RFC 6531); refused locally if the server lacks it. */
  smtputf8?: boolean;
  /**
   * RFC 8689 REQUIRETLS: sent on MAIL FROM; refused locally (5.7.30) unless the session is TLS
   * and the server advertises REQUIRETLS. The certificate check is the session's (verifyTls).
   */
  requireTls?: boolean;
}

export interface RecipientResult {
  address: string;
  outcome: DeliveryOutcome;
  reply: SmtpReply;
}

export interface TransactionResult {
  recipients: RecipientResult[];
  /** False when the session broke (timeout, drop, 421, protocol error): do not reuse it. */
  reusable: boolean;
}

export interface SessionTls {
  protocol: string;
  cipher: string;
}

export interface SmtpSession {
  readonly tls: SessionTls | undefined;
  /** The server offered STARTTLS, the handshake failed, and this session runs in plaintext. */
  readonly tlsFallback: boolean;
  /** The local address the socket is bound to. */
  readonly localAddress: string | undefined;
  readonly ended: boolean;
  /** Settles when the socket is gone, whoever closed it. */
  readonly whenEnded: Promise<void>;
  send(envelope: TransactionEnvelope, body: Buffer): Promise<TransactionResult>;
  /** RSET; rejects if the server does not answer 2xx. */
  reset(): Promise<void>;
  /** QUIT, then close; bounded by a timer if the server does not answer. */
  quit(): void;
  /** Closes the socket now (shutdown past its grace); a transaction in progress fails. */
  abort(): void;
}

// After QUIT or end(), how long the peer gets to close its side before we destroy the socket.
const CLOSE_GRACE_MS = 1000;
// RFC 5321 §4.1.2 forbids these in a path; nodemailer would fail the whole envelope on one.
const INVALID_PATH = /[\r\n<>]/;
const INVALID_RECIPIENT: SmtpReply = { code: 553, enhanced: '5.1.3', text: 'invalid recipient address' };
// Errors after which the session's state is unknown (RFC 5321 §3.8: 421 closes the channel).
const BROKEN_SESSION_CODES = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EPROTOCOL', 'ETLS', 'EDNS']);

/**
 * Connects, greets, negotiates STARTTLS per policy and authenticates. Rejects with the
 * underlying error (pass it to `replyFromError(err, peer, 'session')`).
 */
export async function openSession(options: SessionOptions): Promise<SmtpSession> {
  try {
    return wrap(await connect(options, options.starttls), options, false);
  } catch (err) {
    if (options.starttls !== 'opportunistic' || !isTlsFailure(err)) throw err;
    // Opportunistic TLS (RFC 7435): a broken handshake must not stop delivery; the one
    // retry goes without STARTTLS, and the session says so (tlsFallback) for the event log.
    return wrap(await connect(options, 'none'), options, true);
  }
}

function isTlsFailure(err: unknown): boolean {
  const e = err as SMTPError;
  return e?.code === 'ETLS' || (e?.code === 'ETIMEDOUT' && e.timeoutType === 'UPGRADE_TIMEOUT');
}

function connect(options: SessionOptions, starttls: StartTlsPolicy): Promise<SMTPConnection> {
  const conn = new SMTPConnection({
    host: options.peer.ip,
    port: options.peer.port,
    secure: options.implicitTls === true,
    servername: net.isIP(options.peer.host) ? undefined : options.peer.host,
    name: options.ehloName,
    localAddress: options.localAddress,
    connectionTimeout: options.connectTimeoutMs,
    greetingTimeout: options.greetingTimeoutMs,
    socketTimeout: options.socketTimeoutMs,
    socketCloseTimeout: CLOSE_GRACE_MS,
    ignoreTLS: starttls === 'none',
    requireTLS: starttls === 'required',
    opportunisticTLS: starttls === 'opportunistic',
    tls: options.tls,
    logger: false,
  });
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      // A socket error during the STARTTLS handshake arrives as ESOCKET/ECONNRESET; it is a
      // TLS failure all the same (and the trigger for the opportunistic plaintext retry).
      const e = err as SMTPError;
      if (conn.upgrading && e && typeof e === 'object' && e.code !== 'ETIMEDOUT' && e.code !== 'ETLS') {
        if (e.code && !e.originalCode) e.originalCode = e.code;
        e.code = 'ETLS';
      }
      conn.close();
      reject(err);
    };
    const onEnd = () =>
      fail(Object.assign(new Error('Connection closed during session setup'), { code: 'ECONNECTION' }));
    const ready = () => {
      if (settled) return;
      settled = true;
      conn.removeListener('end', onEnd);
      resolve(conn);
    };
    // nodemailer emits 'error' for failures outside a send; an EventEmitter without a
    // listener would throw it. The same errors also reach the send callback, so the
    // listener stays for the session's lifetime and only settles the setup promise.
    conn.on('error', fail);
    conn.once('end', onEnd);
    conn.connect((err) => {
      if (err) return fail(err);
      if (!options.auth) return ready();
      conn.login({ user: options.auth.user, pass: options.auth.pass }, (loginErr) =>
        loginErr ? fail(loginErr) : ready(),
      );
    });
  });
}

function wrap(conn: SMTPConnection, options: SessionOptions, tlsFallback: boolean): SmtpSession {
  const socket = conn._socket || undefined;
  let sessionTls: SessionTls | undefined;
  if (conn.secure && socket instanceof tls.TLSSocket) {
    sessionTls = { protocol: socket.getProtocol() ?? 'unknown', cipher: socket.getCipher().name };
  }
  let ended = false;
  let quitTimer: NodeJS.Timeout | undefined;
  const whenEnded = new Promise<void>((resolve) => {
    if (conn.destroyed) {
      ended = true;
      resolve();
      return;
    }
    conn.once('end', () => {
      ended = true;
      clearTimeout(quitTimer);
      resolve();
    });
  });

  return {
    tls: sessionTls,
    tlsFallback,
    localAddress: socket?.localAddress ?? options.localAddress,
    get ended() {
      return ended;
    },
    whenEnded,
    send: (envelope, body) => send(conn, options.peer, envelope, body, () => ended),
    reset: () =>
      new Promise<void>((resolve, reject) => {
        conn.reset((err) => (err ? reject(err) : resolve()));
      }),
    quit() {
      if (ended) return;
      conn.quit();
      quitTimer = setTimeout(() => conn.close(), CLOSE_GRACE_MS);
    },
    abort() {
      if (!ended) conn.close();
    },
  };
}

function send(
  conn: SMTPConnection,
  peer: ReplyPeer,
  envelope: TransactionEnvelope,
  body: Buffer,
  isEnded: () => boolean,
): Promise<TransactionResult> {
  const local = (reply: SmtpReply): RecipientResult[] =>
    envelope.to.map((address) => ({ address, outcome: classifyReply(reply), reply }));

  if (INVALID_PATH.test(envelope.from)) {
    return Promise.resolve({
      recipients: local({ code: 553, enhanced: '5.1.7', text: 'invalid sender address' }),
      reusable: true,
    });
  }
  const extensions = supportedExtensions(conn);
  if (envelope.smtputf8 && extensions && !extensions.includes('SMTPUTF8')) {
    const text = `${peer.host} does not support SMTPUTF8, required by this message`;
    return Promise.resolve({ recipients: local({ code: 553, enhanced: '5.6.7', text }), reusable: true });
  }
  if (envelope.requireTls) {
    const why = !conn.secure
      ? `the session with ${peer.host} is not TLS`
      : extensions && !extensions.includes('REQUIRETLS')
        ? `${peer.host} does not support REQUIRETLS`
        : undefined;
    if (why) {
      // RFC 8689 §5: such a message is returned, never sent where the requirement is lost.
      const text = `REQUIRETLS: ${why}`;
      return Promise.resolve({ recipients: local({ code: 550, enhanced: '5.7.30', text }), reusable: true });
    }
  }
  const sendable = envelope.to.filter((address) => address !== '' && !INVALID_PATH.test(address));
  if (sendable.length === 0) {
    return Promise.resolve({ recipients: local(INVALID_RECIPIENT), reusable: true });
  }

  return new Promise((resolve) => {
    const settle = (err: SMTPError | null, info?: SMTPConnection.SentMessageInfo) =>
      resolve(mapTransaction(conn, peer, envelope, sendable, err, info, isEnded));
    try {
      conn.send(
        {
          from: envelope.from,
          to: sendable,
          size: envelope.size,
          use8BitMime: has8BitBytes(body),
          ...(envelope.dsn ? { dsn: envelope.dsn } : {}),
          // nodemailer's name for "append REQUIRETLS to MAIL FROM" (RFC 8689 §4.2).
          ...(envelope.requireTls ? { requireTLSExtensionEnabled: true } : {}),
        },
        body,
        settle,
      );
    } catch (err) {
      // nodemailer reports failures through the callback; this only guards the pool's slot
      // accounting against a synchronous throw.
      settle(err as SMTPError);
    }
  });
}

function mapTransaction(
  conn: SMTPConnection,
  peer: ReplyPeer,
  envelope: TransactionEnvelope,
  sendable: string[],
  err: SMTPError | null,
  info: SMTPConnection.SentMessageInfo | undefined,
  isEnded: () => boolean,
): TransactionResult {
  const rejectedErrors = err?.rejectedErrors ?? info?.rejectedErrors ?? envelopeState(conn).rejectedErrors;
  const rejected = new Map<string, SMTPError>();
  // After a refused MAIL FROM, pipelined RCPTs get "503 need MAIL": not about them.
  if (err?.command !== 'MAIL FROM') {
    for (const e of rejectedErrors) if (e.recipient) rejected.set(e.recipient, e);
  }
  const transaction = err ? replyFromError(err, peer, 'transaction') : undefined;
  const accepted = new Set(info?.accepted ?? []);
  const dataReply = info ? parseReply(info.response) : undefined;

  const recipients = envelope.to.map((address): RecipientResult => {
    if (!sendable.includes(address)) return { address, outcome: 'permanent', reply: INVALID_RECIPIENT };
    const rcptError = rejected.get(address);
    if (rcptError) return { address, ...replyFromError(rcptError, peer, 'transaction') };
    if (transaction) return { address, ...transaction };
    if (dataReply && accepted.has(address)) return { address, outcome: 'delivered', reply: dataReply };
    // Not accepted, not rejected: nodemailer lost track; retrying is the safe side.
    const unknown: SmtpReply = { code: 451, enhanced: '4.3.0', text: 'no reply recorded for recipient' };
    return { address, outcome: 'temporary', reply: unknown };
  });
  const broken = err !== null && (BROKEN_SESSION_CODES.has(err.code ?? '') || err.responseCode === 421);
  return { recipients, reusable: !broken && !isEnded() && !conn.destroyed };
}

/** Native, vectorised (a byte loop over a Buffer's iterator cost ~8 µs per 2 KB message). */
function has8BitBytes(body: Buffer): boolean {
  return !isAscii(body);
}

// nodemailer keeps the advertised extensions and the per-transaction recipient bookkeeping
// in underscore fields only. Read them defensively: if a later major version renames them,
// the SMTPUTF8 check is skipped (undefined = unknown, never "refuse everything") and DATA
// failures lose per-recipient detail; the session-pool tests notice either.
function supportedExtensions(conn: SMTPConnection): string[] | undefined {
  const value = (conn as unknown as { _supportedExtensions?: unknown })._supportedExtensions;
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : undefined;
}

function envelopeState(conn: SMTPConnection): { rejectedErrors: SMTPError[] } {
  const value = (conn as unknown as { _envelope?: { rejectedErrors?: unknown } | false })._envelope;
  const list = value ? value.rejectedErrors : undefined;
  return { rejectedErrors: Array.isArray(list) ? (list as SMTPError[]) : [] };
}
