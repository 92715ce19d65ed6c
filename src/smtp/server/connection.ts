/**
 * One SMTP session on one socket: byte input → command lines (or DATA content) → handlers in
 * order → batched replies. The commands themselves live in `commands.ts`.
 *
 * Order and pipelining (RFC 2920): input is appended to one buffer and consumed strictly in
 * order; while a command waits for an async handler nothing else is read from the buffer, so a
 * pipelined DATA never runs ahead of its RCPTs. Replies are collected and written in one
 * `write` when the buffer has no further complete line (RFC 2920 §3.2: flush before waiting).
 */
import { isUtf8 } from 'node:buffer';
import type net from 'node:net';
import tls from 'node:tls';
import { formatReply, replies, type SmtpReply } from '../replies.ts';
import { commands, endOfData } from './commands.ts';
import { DataReader } from './data-reader.ts';
import type { ResolvedOptions, SmtpSession } from './types.ts';

const CR = 0x0d;
const LF = 0x0a;
/** Unconsumed input above which we stop reading from the socket until a handler finishes. */
const HIGH_WATER = 256 * 1024;
/** After we end a session, how long the client has to close its side before we destroy. */
const LINGER_MS = 2000;

export interface ConnectionHost {
  /** Called once when the socket is gone. */
  release(connection: Connection): void;
}

type AuthStep = (line: string) => void | Promise<void>;

export class Connection {
  readonly session: SmtpSession;
  readonly options: ResolvedOptions;
  private socket: net.Socket;
  private readonly host: ConnectionHost;
  /** Input not yet consumed (partial line, pipelined commands). */
  private pending: Buffer | null = null;
  /** Replies waiting for the next flush. */
  private out = '';
  /** A handler is running: input waits in `pending`. */
  private busy = true;
  private greeted = false;
  private upgrading = false;
  private ending = false;
  private closed = false;
  private paused = false;
  private shutdownRequested = false;
  /** The client sent FIN: answer what it sent, then close our side. */
  private peerEnded = false;
  /** Inside a command line that passed `maxLineLength`: drop bytes until its LF. */
  private discardLine = false;
  private reader: DataReader | null = null;
  private authStep: AuthStep | null = null;
  private errors = 0;
  private timer: NodeJS.Timeout;

  constructor(init: { socket: net.Socket; options: ResolvedOptions; host: ConnectionHost; id: string }) {
    const { socket, options } = init;
    this.socket = socket;
    this.options = options;
    this.host = init.host;
    this.session = {
      id: init.id,
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      localAddress: socket.localAddress ?? '',
      localPort: socket.localPort ?? 0,
      secure: false,
      heloName: null,
      esmtp: false,
      user: undefined,
      envelope: { mailFrom: null, rcptTo: [] },
      transactions: 0,
    };
    this.timer = setTimeout(this.onIdle, options.idleTimeoutMs);
    socket.on('data', this.onBytes);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  /** Begin the session: TLS handshake first on an implicit-TLS listener, then the greeting. */
  start(): void {
    if (!this.options.secure) {
      this.greet();
      return;
    }
    const context = this.tlsContext();
    if (!context) {
      this.options.logger?.error(
        { sessionId: this.session.id },
        'implicit TLS listener without a certificate',
      );
      this.destroy();
      return;
    }
    this.wrapTls(context, () => this.greet());
  }

  /** Server shutdown: 421 now when idle, otherwise right after the reply in progress. */
  shutdown(): void {
    this.shutdownRequested = true;
    if (this.atSafePoint()) this.closeWith(replies.shuttingDown);
  }

  destroy(): void {
    this.ending = true;
    this.socket.destroy();
  }

  // --- used by the command handlers -----------------------------------------------------------

  get isClosed(): boolean {
    return this.ending || this.closed;
  }

  reply(r: SmtpReply): void {
    if (!this.ending) this.out += formatReply(r);
  }

  /** A reply for a client mistake; too many of them end the session (a confused or hostile peer). */
  protocolError(r: SmtpReply): void {
    this.reply(r);
    this.errors++;
    if (this.errors >= this.options.maxErrors) this.closeWith(replies.tooManyErrors);
  }

  /** The next input line goes to `step` instead of the command table (AUTH exchanges). */
  expectAuthLine(step: AuthStep): void {
    this.authStep = step;
  }

  /** Switch the input to message content after the 354 (RFC 5321 §4.1.1.4). */
  startData(): void {
    this.reply(replies.startData);
    this.reader = new DataReader(this.options.sizeLimit);
  }

  resetTransaction(): void {
    // A fresh object: a handler still holding the old envelope keeps a consistent view.
    this.session.envelope = { mailFrom: null, rcptTo: [] };
  }

  /**
   * Reply and end the session (QUIT, limits, shutdown). Otherwise the socket lingers (reading and
   * dropping input) until the client closes or LINGER_MS: a client still sending gets the reply
   * rather than a reset. After QUIT (`quit`) the client has nothing more to say: the socket is
   * closed as soon as the 221 and the FIN are with the kernel. Most clients close on reading the
   * 221 with it still unread on their side, which resets the connection: a socket still open
   * here would turn that into an error object with a stack trace per session (~25 µs).
   */
  closeWith(r: SmtpReply | undefined, options: { quit?: boolean } = {}): void {
    if (this.ending) return;
    if (r) this.reply(r);
    this.flush();
    this.ending = true;
    this.reader = null;
    this.pending = null;
    this.authStep = null;
    clearTimeout(this.timer);
    if (options.quit) {
      this.socket.end(() => this.socket.destroy());
    } else {
      this.socket.end();
    }
    this.timer = setTimeout(() => this.socket.destroy(), LINGER_MS);
  }

  /**
   * Run a handler hook; a throw or rejection is logged and turned into `fallback`, so no
   * handler can take the server down.
   */
  async callHandler<T>(name: string, call: () => T | Promise<T>, fallback: T): Promise<T> {
    try {
      return await call();
    } catch (err) {
      this.options.logger?.error({ err, sessionId: this.session.id, handler: name }, 'SMTP handler failed');
      return fallback;
    }
  }

  tlsContext(): tls.SecureContext | undefined {
    try {
      return this.options.tls?.();
    } catch (err) {
      this.options.logger?.error({ err, sessionId: this.session.id }, 'TLS context getter failed');
      return undefined;
    }
  }

  /**
   * STARTTLS (RFC 3207 §4.2): send 220, then handshake on the same socket. Bytes the client
   * pipelined after STARTTLS arrived in plaintext and are dropped (CVE-2011-0411 command
   * injection); after the handshake every piece of session state starts again.
   */
  startTls(context: tls.SecureContext): void {
    this.reply(replies.readyTls);
    this.flush();
    this.pending = null;
    this.discardLine = false;
    this.wrapTls(context, () => {
      const s = this.session;
      s.heloName = null;
      s.esmtp = false;
      s.user = undefined;
      this.resetTransaction();
      this.drain();
    });
  }

  // --- socket plumbing ------------------------------------------------------------------------

  private wrapTls(context: tls.SecureContext, onSecure: () => void): void {
    const raw = this.socket;
    this.upgrading = true;
    this.busy = true;
    raw.removeListener('data', this.onBytes);
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
    // Client-initiated renegotiation is a CPU-exhaustion lever and SMTP never needs it.
    secure.disableRenegotiation();
    this.socket = secure;
    secure.on('data', this.onBytes);
    secure.on('end', this.onEnd);
    secure.on('error', this.onError);
    secure.on('_tlsError', this.onError);
    secure.on('close', this.onClose);
    // once: a TLS 1.2 renegotiation emits 'secure' again and must not reset the session.
    secure.once('secure', () => {
      if (this.isClosed) return;
      this.upgrading = false;
      this.busy = false;
      this.session.secure = true;
      this.session.tls = { protocol: secure.getProtocol() ?? '', cipher: secure.getCipher()?.name ?? '' };
      onSecure();
    });
  }

  /** Greeting, after the optional early-talker pause and the onConnect hook (RFC 5321 §3.1). */
  private greet(): void {
    const { greetingDelayMs, handlers } = this.options;
    const onConnect = handlers.onConnect;
    if (greetingDelayMs === 0 && !onConnect) {
      this.sendGreeting(undefined);
      return;
    }
    const delay =
      greetingDelayMs > 0 ? new Promise<void>((resolve) => setTimeout(resolve, greetingDelayMs)) : undefined;
    const decision = onConnect
      ? this.callHandler('onConnect', () => onConnect(this.session), replies.connectError)
      : undefined;
    Promise.all([decision, delay]).then(([r]) => this.sendGreeting(r), this.crashed);
  }

  private sendGreeting(refusal: SmtpReply | undefined): void {
    if (this.isClosed) return;
    if (refusal && refusal.code >= 400) {
      this.closeWith(refusal);
      return;
    }
    if (this.shutdownRequested) {
      this.closeWith(replies.shuttingDown);
      return;
    }
    this.greeted = true;
    this.busy = false;
    this.reply(replies.greeting(this.options.hostname));
    this.drain();
  }

  private readonly onBytes = (chunk: Buffer): void => {
    if (this.isClosed || this.upgrading) return;
    this.timer.refresh();
    if (!this.greeted && this.options.greetingDelayMs > 0) {
      // RFC 5321 §4.3.1: the client waits for the greeting. One that does not is a spam
      // engine; refuse it before it costs us anything.
      this.options.logger?.info(
        { sessionId: this.session.id, remoteAddress: this.session.remoteAddress },
        'early talker',
      );
      this.closeWith(replies.earlyTalker);
      return;
    }
    this.pending = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    if (this.busy) {
      if (this.pending.length > HIGH_WATER && !this.paused) {
        this.paused = true;
        this.socket.pause();
      }
      return;
    }
    this.drain();
  };

  /** Consume input until it runs out, a handler goes async, or the session ends. */
  private drain(): void {
    while (!this.busy && !this.ending) {
      if (this.shutdownRequested && this.atSafePoint()) {
        this.closeWith(replies.shuttingDown);
        return;
      }
      const buf = this.pending;
      if (buf === null) break;
      if (this.reader) {
        this.consumeData(buf);
        continue;
      }
      const lf = buf.indexOf(LF);
      if (lf === -1) {
        // +1: the CR of the CRLF may already be here.
        if (buf.length > this.options.maxLineLength + 1) {
          this.pending = null;
          if (!this.discardLine) {
            this.discardLine = true;
            this.lineTooLong();
          }
        }
        break;
      }
      this.pending = lf + 1 < buf.length ? buf.subarray(lf + 1) : null;
      if (this.discardLine) {
        this.discardLine = false;
        continue;
      }
      if (lf === 0 || buf[lf - 1] !== CR) {
        this.authStep = null;
        this.protocolError(replies.bareLfInCommand);
        continue;
      }
      if (lf - 1 > this.options.maxLineLength) {
        this.lineTooLong();
        continue;
      }
      this.run(this.dispatch(buf.subarray(0, lf - 1)));
    }
    if (!this.busy) {
      if (this.peerEnded && !this.ending) {
        // A half-closed client (a script piping a whole session) still gets every reply.
        this.closeWith(undefined);
        return;
      }
      if (this.paused && !this.ending) {
        this.paused = false;
        this.socket.resume();
      }
      this.flush();
    }
  }

  private consumeData(buf: Buffer): void {
    const reader = this.reader as DataReader;
    const rest = reader.push(buf);
    if (rest === undefined) {
      this.pending = null;
      return;
    }
    this.pending = rest.length > 0 ? rest : null;
    this.reader = null;
    this.run(endOfData(this, reader.result()));
  }

  private run(work: void | Promise<void>): void {
    if (work === undefined) return;
    this.busy = true;
    work.then(this.resume, this.crashed);
  }

  private readonly resume = (): void => {
    this.busy = false;
    this.drain();
  };

  /** A bug in our own command code (handlers are already guarded): end this session only. */
  private readonly crashed = (err: unknown): void => {
    this.options.logger?.error({ err, sessionId: this.session.id }, 'SMTP session failed');
    this.busy = false;
    this.closeWith(replies.localError);
  };

  private lineTooLong(): void {
    if (this.authStep) {
      this.authStep = null;
      this.protocolError(replies.authLineTooLong);
    } else {
      this.protocolError(replies.lineTooLong);
    }
  }

  private dispatch(raw: Buffer): void | Promise<void> {
    // NUL or a bare CR inside a line, or invalid UTF-8: no command of ours can contain them.
    if (raw.indexOf(0) !== -1 || raw.indexOf(CR) !== -1 || !isUtf8(raw)) {
      this.authStep = null;
      return this.protocolError(replies.invalidCharacters);
    }
    const line = raw.toString('utf8');
    const step = this.authStep;
    if (step) {
      this.authStep = null;
      // RFC 4954 §4: "*" cancels the exchange.
      if (line === '*') return this.protocolError(replies.authCancelled);
      return step(line);
    }
    const space = line.indexOf(' ');
    const verb = (space === -1 ? line : line.slice(0, space)).toUpperCase();
    const command = commands.get(verb);
    if (!command) return this.protocolError(replies.unrecognised);
    return command(this, space === -1 ? '' : line.slice(space + 1));
  }

  private flush(): void {
    if (this.out.length === 0) return;
    const out = this.out;
    this.out = '';
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(out);
  }

  private atSafePoint(): boolean {
    return this.greeted && !this.busy && !this.upgrading && this.reader === null;
  }

  private readonly onIdle = (): void => {
    if (this.closed) return;
    if (this.ending) {
      this.socket.destroy();
      return;
    }
    if (this.busy && this.greeted && !this.upgrading) {
      // Our handler is slow, not the client: keep waiting.
      this.timer.refresh();
      return;
    }
    if (!this.greeted || this.upgrading) {
      this.destroy(); // stuck in a TLS handshake or before the greeting
      return;
    }
    this.closeWith(replies.idleTimeout);
  };

  private readonly onEnd = (): void => {
    this.peerEnded = true;
    if (this.upgrading) {
      this.destroy(); // FIN in the middle of a TLS handshake: nothing left to answer
      return;
    }
    if (!this.busy && this.greeted) this.drain();
  };

  /** ECONNRESET, EPIPE, TLS alerts: normal life on the Internet, logged at debug only. */
  private readonly onError = (err: Error): void => {
    this.options.logger?.debug?.({ err, sessionId: this.session.id }, 'SMTP socket error');
    this.socket.destroy();
  };

  private readonly onClose = (): void => {
    if (this.closed) return;
    this.closed = true;
    this.ending = true;
    this.reader = null;
    this.pending = null;
    clearTimeout(this.timer);
    this.host.release(this);
  };
}
