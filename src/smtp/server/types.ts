import type tls from 'node:tls';
import type { SmtpReply } from '../replies.ts';

/** ESMTP parameters of MAIL/RCPT: keyword upper-cased; a keyword without value maps to `''`. */
export type SmtpParams = Record<string, string>;

export interface SmtpAddress {
  /** The mailbox without angle brackets; `''` for the null reverse-path `<>`. */
  address: string;
  /** Known parameters, DSN values (ENVID, ORCPT, AUTH) already xtext-decoded (RFC 3461 §4). */
  params: SmtpParams;
}

export interface SmtpEnvelope {
  mailFrom: SmtpAddress | null;
  rcptTo: SmtpAddress[];
}

export interface SmtpSession {
  readonly id: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  secure: boolean;
  tls?: { protocol: string; cipher: string };
  /** Argument of the last HELO/EHLO; `null` before one (and again after STARTTLS). */
  heloName: string | null;
  /** True after EHLO, false after HELO. */
  esmtp: boolean;
  /** What `onAuth` returned as `user`; `undefined` while unauthenticated. */
  user: unknown;
  envelope: SmtpEnvelope;
  /** Transactions completed with a 2xx reply after DATA. */
  transactions: number;
}

export type AuthMethod = 'PLAIN' | 'LOGIN';

export interface AuthCredentials {
  method: AuthMethod;
  username: string;
  password: string;
}

export type AuthResult = { ok: true; user: unknown } | { ok: false; reply: SmtpReply };

type MaybePromise<T> = T | Promise<T>;

/**
 * Hooks by SMTP phase. Each returns a reply to refuse (or to replace the default reply), or
 * `undefined` to accept with the default. A thrown error becomes `451 4.3.0` and is logged.
 */
export interface SmtpHandlers {
  onConnect?(session: SmtpSession): MaybePromise<SmtpReply | undefined>;
  onAuth?(session: SmtpSession, credentials: AuthCredentials): MaybePromise<AuthResult>;
  onMailFrom?(session: SmtpSession, address: string, params: SmtpParams): MaybePromise<SmtpReply | undefined>;
  onRcptTo?(session: SmtpSession, address: string, params: SmtpParams): MaybePromise<SmtpReply | undefined>;
  /** Called once the whole message arrived within the size limit; `session.envelope` is complete. */
  onData(session: SmtpSession, message: Buffer, info: { size: number }): MaybePromise<SmtpReply | undefined>;
}

/** The pino subset we use; any logger with these methods fits. */
export interface SmtpLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

export interface SmtpServerOptions {
  /** Name in the greeting and the EHLO reply. */
  hostname: string;
  /** Implicit TLS (port 465, RFC 8314 §3.3): the TLS handshake comes before the greeting. */
  secure?: boolean;
  /** Certificate getter, asked at every handshake so certificates can be reloaded. */
  tls?: () => tls.SecureContext | undefined;
  /** Maximum message size in bytes, advertised as `SIZE <n>` (RFC 1870). */
  sizeLimit: number;
  maxRecipients: number;
  /** Longest command line in octets, CRLF excluded. Default 4096 (RFC 5321 §4.5.3.1.4 says 512). */
  maxLineLength?: number;
  idleTimeoutMs: number;
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  /** Wait before the greeting; > 0 turns on early-talker detection (inbound MX). Default 0. */
  greetingDelayMs?: number;
  /** Protocol errors in one session before `421` and close. Default 10. */
  maxErrors?: number;
  /** How long `close()` waits for sessions before destroying them. Default 5000. */
  closeTimeoutMs?: number;
  /** AUTH mechanisms to advertise and accept; AUTH is off when unset or empty. */
  authMethods?: AuthMethod[];
  /** Whether AUTH may run without TLS on this session (e.g. loopback). Default: never. */
  allowPlaintextAuth?: (session: SmtpSession) => boolean;
  handlers: SmtpHandlers;
  logger?: SmtpLogger;
}

/** Options after defaults, shared by every connection of one server. */
export interface ResolvedOptions extends SmtpServerOptions {
  maxLineLength: number;
  greetingDelayMs: number;
  maxErrors: number;
  closeTimeoutMs: number;
  authMethods: AuthMethod[];
}
