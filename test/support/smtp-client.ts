/**
 * A raw SMTP test client on `node:net`: send exact bytes, read replies with a timeout. Nothing
 * is normalised, so tests can send bare LFs, split terminators and pipelined batches.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface Reply {
  code: number;
  /** Text of each line after `ddd-` / `ddd `. */
  lines: string[];
  /** The lines joined with `\n`. */
  text: string;
  /** Enhanced status code of the last line when present, e.g. `5.5.1`. */
  enhanced: string | undefined;
}

type Waiter = { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

export class SmtpTestClient {
  socket: net.Socket;
  private buffer = '';
  private partial: string[] = [];
  private replies: Reply[] = [];
  private waiters: Waiter[] = [];
  private isClosed = false;
  private closeWaiters: (() => void)[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.attach(socket);
  }

  /** Connect (plain, or implicit TLS when `tls` is given) and wait until connected. */
  static connect(
    port: number,
    options: { tls?: tls.ConnectionOptions; host?: string; localAddress?: string } = {},
  ): Promise<SmtpTestClient> {
    const host = options.host ?? '127.0.0.1';
    const from = options.localAddress ? { localAddress: options.localAddress } : {};
    return new Promise((resolve, reject) => {
      const socket = options.tls
        ? tls.connect({ port, host, ...from, ...options.tls }, () => resolve(new SmtpTestClient(socket)))
        : net.connect({ port, host, ...from }, () => resolve(new SmtpTestClient(socket)));
      socket.once('error', reject);
      socket.setNoDelay(true);
    });
  }

  private attach(socket: net.Socket): void {
    socket.setEncoding('latin1');
    socket.on('data', (data: string) => this.onData(data));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.isClosed = true;
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error('connection closed while waiting for a reply'));
      }
      for (const c of this.closeWaiters.splice(0)) c();
    });
  }

  private onData(data: string): void {
    this.buffer += data;
    for (;;) {
      const end = this.buffer.indexOf('\r\n');
      if (end === -1) break;
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      this.partial.push(line);
      if (line.length === 3 || line[3] === ' ') {
        const lines = this.partial.map((l) => l.slice(4));
        this.partial = [];
        const last = lines[lines.length - 1] ?? '';
        const m = /^([245]\.\d{1,3}\.\d{1,3}) /.exec(last);
        const reply: Reply = {
          code: Number(line.slice(0, 3)),
          lines,
          text: lines.join('\n'),
          enhanced: m?.[1],
        };
        const waiter = this.waiters.shift();
        if (waiter) {
          clearTimeout(waiter.timer);
          waiter.resolve(reply);
        } else {
          this.replies.push(reply);
        }
      }
    }
  }

  get closed(): boolean {
    return this.isClosed;
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Send one command line (CRLF added). */
  send(line: string): void {
    this.write(`${line}\r\n`);
  }

  /** The next reply; rejects after `timeoutMs` or when the connection closes first. */
  read(timeoutMs = 2000): Promise<Reply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.isClosed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(new Error(`no reply within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  async command(line: string, timeoutMs = 2000): Promise<Reply> {
    this.send(line);
    return this.read(timeoutMs);
  }

  /** Read `n` replies (pipelining). */
  async readMany(n: number, timeoutMs = 2000): Promise<Reply[]> {
    const out: Reply[] = [];
    for (let i = 0; i < n; i++) out.push(await this.read(timeoutMs));
    return out;
  }

  /** Greeting + EHLO; returns the EHLO reply. */
  async hello(name = 'client.example'): Promise<Reply> {
    const greeting = await this.read();
    if (greeting.code !== 220) throw new Error(`greeting ${greeting.code} ${greeting.text}`);
    return this.command(`EHLO ${name}`);
  }

  /**
   * MAIL, RCPT and DATA of a one-line message, then its data and terminator; the reply after
   * the data is left for the caller to read (handlers under test decide it).
   */
  async sendSmallMessage(from = 'a@example.com', to = 'b@example.com'): Promise<void> {
    await this.command(`MAIL FROM:<${from}>`);
    await this.command(`RCPT TO:<${to}>`);
    await this.command('DATA');
    this.write('x\r\n.\r\n');
  }

  /** STARTTLS handshake on the same socket (after the 220 was read). */
  upgrade(options: tls.ConnectionOptions = {}): Promise<void> {
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    return new Promise((resolve, reject) => {
      const secure = tls.connect({ socket: raw, ...options }, () => resolve());
      secure.once('error', reject);
      this.socket = secure;
      this.attach(secure);
    });
  }

  /** Resolves when the server closed the connection; rejects after `timeoutMs`. */
  waitClosed(timeoutMs = 2000): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`still open after ${timeoutMs} ms`)), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
