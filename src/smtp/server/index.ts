/**
 * A lean SMTP/ESMTP server: the listener, connection limits and graceful close. Used by the
 * submission listener (AUTH, no greeting pause) and later by the inbound MX (greeting pause).
 *
 * Why our own and not `smtp-server`: that package waits a fixed 100 ms before every greeting
 * and costs ~0.7 ms CPU per connection; see docs/architecture.md and bench/smtp-server.ts.
 */
import { randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { formatReply, replies } from '../replies.ts';
import { Connection } from './connection.ts';
import type { ResolvedOptions, SmtpServerOptions } from './types.ts';

export type {
  AuthCredentials,
  AuthMethod,
  AuthResult,
  SmtpAddress,
  SmtpEnvelope,
  SmtpHandlers,
  SmtpLogger,
  SmtpParams,
  SmtpServerOptions,
  SmtpSession,
} from './types.ts';

export interface SmtpServer {
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Stop accepting, 421 to idle sessions, let running replies finish; bounded by `closeTimeoutMs`. */
  close(): Promise<void>;
  /** Open sessions. */
  readonly connections: number;
}

/** A refused socket gets this long to read its 421 and go. */
const REFUSED_LINGER_MS = 1000;

function resolveOptions(options: SmtpServerOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    ...options,
    maxLineLength: options.maxLineLength ?? 4096,
    greetingDelayMs: options.greetingDelayMs ?? 0,
    maxErrors: options.maxErrors ?? 10,
    closeTimeoutMs: options.closeTimeoutMs ?? 5000,
    authMethods: [...new Set(options.authMethods ?? [])],
  };
  if (!(resolved.sizeLimit > 0) || !(resolved.maxRecipients > 0) || !(resolved.idleTimeoutMs > 0)) {
    throw new TypeError('createSmtpServer: sizeLimit, maxRecipients and idleTimeoutMs must be positive');
  }
  if (resolved.maxLineLength < 512)
    throw new TypeError('createSmtpServer: maxLineLength below 512 (RFC 5321)');
  return Object.freeze(resolved);
}

export function createSmtpServer(options: SmtpServerOptions): SmtpServer {
  const opts = resolveOptions(options);
  const maxConnections = opts.maxConnections ?? Number.POSITIVE_INFINITY;
  const maxPerIp = opts.maxConnectionsPerIp ?? Number.POSITIVE_INFINITY;
  const sessions = new Set<Connection>();
  const refused = new Set<net.Socket>();
  const perIp = new Map<string, number>();
  const idPrefix = randomBytes(4).toString('hex');
  let nextId = 0;
  let closing = false;
  let onEmpty: (() => void) | undefined;

  const checkEmpty = (): void => {
    if (onEmpty && sessions.size === 0 && refused.size === 0) onEmpty();
  };

  const host = {
    release(connection: Connection): void {
      sessions.delete(connection);
      const ip = connection.session.remoteAddress;
      const count = (perIp.get(ip) ?? 1) - 1;
      if (count <= 0) perIp.delete(ip);
      else perIp.set(ip, count);
      checkEmpty();
    },
  };

  /** Over a limit: 421 4.7.0 in the greeting slot, then close (RFC 5321 §3.1, §3.8). */
  const refuse = (socket: net.Socket, reason: string): void => {
    opts.logger?.warn({ remoteAddress: socket.remoteAddress, reason }, 'SMTP connection refused');
    refused.add(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      refused.delete(socket);
      checkEmpty();
    });
    socket.setTimeout(REFUSED_LINGER_MS, () => socket.destroy());
    // On implicit TLS a plaintext 421 would be garbage to the client: just close.
    if (opts.secure) socket.destroy();
    else socket.end(formatReply(replies.tooManyConnections));
  };

  const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    const ip = socket.remoteAddress;
    if (ip === undefined || closing) {
      socket.destroy();
      return;
    }
    const count = perIp.get(ip) ?? 0;
    if (sessions.size >= maxConnections) return refuse(socket, 'maxConnections');
    if (count >= maxPerIp) return refuse(socket, 'maxConnectionsPerIp');
    perIp.set(ip, count + 1);
    nextId++;
    const connection = new Connection({
      socket,
      options: opts,
      host,
      id: `${idPrefix}${nextId.toString(36)}`,
    });
    sessions.add(connection);
    connection.start();
  });
  server.on('error', (err) => opts.logger?.error({ err }, 'SMTP listener error'));

  let closed: Promise<void> | undefined;

  return {
    listen(port: number, hostname: string): Promise<AddressInfo> {
      return new Promise((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        server.once('error', onError);
        server.listen(port, hostname, () => {
          server.removeListener('error', onError);
          resolve(server.address() as AddressInfo);
        });
      });
    },

    close(): Promise<void> {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        if (server.listening) server.close();
        const timer = setTimeout(() => {
          opts.logger?.warn({ sessions: sessions.size }, 'SMTP close timed out, destroying sessions');
          for (const connection of sessions) connection.destroy();
          for (const socket of refused) socket.destroy();
        }, opts.closeTimeoutMs);
        onEmpty = () => {
          clearTimeout(timer);
          onEmpty = undefined;
          resolve();
        };
        for (const connection of sessions) connection.shutdown();
        checkEmpty();
      });
      return closed;
    },

    get connections(): number {
      return sessions.size;
    },
  };
}
