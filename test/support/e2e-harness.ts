/**
 * What the end-to-end tests share: finding the real peers (and skipping, or failing in CI,
 * when one is missing), running swaks, submitting over a raw SMTP connection, a port shared by
 * several fake MX addresses, and reading Postbote's own view (`messages show`, the log).
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import net from 'node:net';
import { delimiter, join } from 'node:path';
import type { TestContext } from 'node:test';
import { type PostboteProcess, waitFor } from './postbote-process.ts';
import { smtpSinkBinary } from './smtp-sink.ts';

// --- peers -----------------------------------------------------------------------------------

function onPath(name: string, extra: string[] = []): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const path of [...extra, ...dirs.map((d) => join(d, name))]) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

export const SWAKS = onPath('swaks', ['/usr/bin/swaks']);

let swaksTls: boolean | undefined;
function swaksHasTls(): boolean {
  if (!SWAKS) return false;
  // `swaks --support` names what its Perl installation lacks.
  swaksTls ??= !/TLS not available/.test(
    (({ stdout, stderr }) => `${stdout}${stderr}`)(
      spawnSync(SWAKS, ['--support'], { encoding: 'utf8', timeout: 10_000 }),
    ),
  );
  return swaksTls;
}

export type Peer = 'smtp-sink' | 'swaks' | 'swaks with TLS';

/** Why a peer cannot be used here, or undefined when it can. */
export function peerMissing(peer: Peer): string | undefined {
  switch (peer) {
    case 'smtp-sink':
      return smtpSinkBinary() ? undefined : 'smtp-sink not installed (Debian package postfix)';
    case 'swaks':
      return SWAKS ? undefined : 'swaks not installed (Debian package swaks)';
    case 'swaks with TLS':
      return (
        peerMissing('swaks') ?? (swaksHasTls() ? undefined : 'swaks has no TLS support (libnet-ssleay-perl)')
      );
  }
}

/**
 * True when every peer is there. Otherwise the test is skipped with the reason, except in
 * CI (`CI` set), where .ci/run installs the peers and a missing one is a failure.
 */
export function havePeers(t: TestContext, ...peers: Peer[]): boolean {
  const missing = peers.map(peerMissing).filter((m): m is string => m !== undefined);
  if (missing.length === 0) return true;
  if (process.env.CI) assert.fail(`${missing.join('; ')}: CI must have it (.ci/run installs it)`);
  t.skip(missing.join('; '));
  return false;
}

/** Runs swaks; resolves with its exit code and transcript (swaks exits non-zero on SMTP errors). */
export function swaks(args: string[], timeoutMs = 20_000): Promise<{ code: number; transcript: string }> {
  return new Promise((resolve, reject) => {
    if (!SWAKS) return reject(new Error('swaks is not installed'));
    execFile(SWAKS, ['--timeout', '10', ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code, transcript: `${stdout}${stderr}` });
    });
  });
}

/** The queue id from Postbote's `250 2.0.0 Ok: queued as ID`. */
export function queuedId(text: string): string {
  const id = /250 2\.0\.0 Ok: queued as (\S+)/.exec(text)?.[1];
  assert.ok(id, `no "250 2.0.0 Ok: queued as ID" in:\n${text}`);
  return id;
}

// --- raw SMTP sessions ---------------------------------------------------------------------

export interface SmtpReply {
  code: number;
  /** Text of every line after the code and separator. */
  lines: string[];
  /** The last line's text. */
  text: string;
  /** Enhanced status code of the last line, e.g. `5.7.0`. */
  enhanced: string | undefined;
}

/**
 * A plain SMTP client session on `node:net` that can bind a source address (127.0.0.x), so a
 * test can be "another client" on loopback. Exact bytes, replies read with a timeout.
 */
export class SmtpSession {
  readonly socket: net.Socket;
  #buffer = '';
  #lines: string[] = [];
  #replies: SmtpReply[] = [];
  #waiting: ((reply: SmtpReply | Error) => void)[] = [];
  #closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.#closed = true;
      for (const w of this.#waiting.splice(0)) w(new Error('connection closed while waiting for a reply'));
    });
  }

  /** Connects from `localAddress` (default 127.0.0.1) and reads the greeting. */
  static async open(port: number, options: { localAddress?: string } = {}): Promise<SmtpSession> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port, localAddress: options.localAddress ?? '127.0.0.1' });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
    const session = new SmtpSession(socket);
    const greeting = await session.read();
    assert.equal(greeting.code, 220, `greeting: ${greeting.code} ${greeting.text}`);
    return session;
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    for (let end = this.#buffer.indexOf('\r\n'); end !== -1; end = this.#buffer.indexOf('\r\n')) {
      const line = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      this.#lines.push(line);
      if (line.length > 3 && line[3] === '-') continue;
      const lines = this.#lines.map((l) => l.slice(4));
      this.#lines = [];
      const text = lines[lines.length - 1] ?? '';
      const reply: SmtpReply = {
        code: Number(line.slice(0, 3)),
        lines,
        text,
        enhanced: /^([245]\.\d{1,3}\.\d{1,3}) /.exec(text)?.[1],
      };
      const waiter = this.#waiting.shift();
      if (waiter) waiter(reply);
      else this.#replies.push(reply);
    }
  }

  read(timeoutMs = 5000): Promise<SmtpReply> {
    const ready = this.#replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.#closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => {
      const waiter = (reply: SmtpReply | Error): void => {
        clearTimeout(timer);
        if (reply instanceof Error) reject(reply);
        else resolve(reply);
      };
      const timer = setTimeout(() => {
        this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
        reject(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.push(waiter);
    });
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  async command(line: string, timeoutMs = 5000): Promise<SmtpReply> {
    this.send(`${line}\r\n`);
    return this.read(timeoutMs);
  }

  /** Sends the message dot-stuffed with its end marker; returns the reply to the final dot. */
  async data(message: string | Buffer, timeoutMs = 10_000): Promise<SmtpReply> {
    const go = await this.command('DATA');
    assert.equal(go.code, 354, `DATA: ${go.code} ${go.text}`);
    this.send(dataLines(message));
    return this.read(timeoutMs);
  }

  /** Resolves once the server has closed the connection. */
  closed(timeoutMs = 5000): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`still open after ${timeoutMs} ms`)), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

export function authPlain(user: string, password: string): string {
  return Buffer.from(`\0${user}\0${password}`).toString('base64');
}

/** Dot-stuffs a CRLF message and appends the end-of-data marker (RFC 5321 §4.5.2). */
export function dataLines(message: Buffer | string): Buffer {
  const text = Buffer.isBuffer(message) ? message.toString('latin1') : message;
  const body = text.endsWith('\r\n') ? text : `${text}\r\n`;
  return Buffer.from(`${body.replace(/^\./gm, '..')}.\r\n`, 'latin1');
}

export interface Submission {
  from: string;
  to: string[];
  message: string | Buffer;
  /** Without it the client relies on an IP credential. */
  auth?: { user: string; password: string };
  localAddress?: string;
}

/**
 * Submits one message over plain SMTP (AUTH without TLS is allowed on loopback) and returns
 * the queue id; fails the test on any refusal.
 */
export async function submit(port: number, submission: Submission): Promise<string> {
  const session = await SmtpSession.open(
    port,
    submission.localAddress ? { localAddress: submission.localAddress } : {},
  );
  try {
    const ehlo = await session.command('EHLO app.sender.test');
    assert.equal(ehlo.code, 250, ehlo.text);
    if (submission.auth) {
      const auth = await session.command(
        `AUTH PLAIN ${authPlain(submission.auth.user, submission.auth.password)}`,
      );
      assert.equal(auth.code, 235, `AUTH: ${auth.code} ${auth.text}`);
    }
    const mail = await session.command(`MAIL FROM:<${submission.from}>`);
    assert.equal(mail.code, 250, `MAIL FROM: ${mail.code} ${mail.text}`);
    for (const rcpt of submission.to) {
      const reply = await session.command(`RCPT TO:<${rcpt}>`);
      assert.equal(reply.code, 250, `RCPT TO:<${rcpt}>: ${reply.code} ${reply.text}`);
    }
    const done = await session.data(submission.message);
    assert.equal(done.code, 250, `end of data: ${done.code} ${done.text}`);
    await session.command('QUIT').catch(() => undefined);
    return queuedId(`250 ${done.text}`);
  } finally {
    session.close();
  }
}

/** A small RFC 5322 message with a unique Message-ID. */
export function simpleMessage(options: { from: string; to: string; subject: string; body?: string }): string {
  const id = `${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}@sender.test`;
  return [
    `From: <${options.from}>`,
    `To: <${options.to}>`,
    `Subject: ${options.subject}`,
    `Message-ID: <${id}>`,
    'Date: Sat, 28 Nov 2026 12:00:00 +0000',
    '',
    options.body ?? 'Hello.',
    '',
  ].join('\r\n');
}

// --- fake MX hosts -------------------------------------------------------------------------

/**
 * A port free on every given loopback address. Delivery has one remote port
 * (`delivery.port`), so every fake MX host listens on the same port at its own 127.0.0.x.
 */
export async function sharedPort(hosts: string[]): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = await listen(0, hosts[0] ?? '127.0.0.1');
    const port = (first.address() as net.AddressInfo).port;
    const others: net.Server[] = [];
    let ok = true;
    for (const host of hosts.slice(1)) {
      try {
        others.push(await listen(port, host));
      } catch {
        ok = false;
        break;
      }
    }
    await Promise.all([first, ...others].map((s) => new Promise((r) => s.close(r))));
    if (ok) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}

function listen(port: number, host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

// --- Postbote's view ------------------------------------------------------------------------

export interface ReplyJson {
  code: number;
  enhanced?: string;
  text: string;
}

export interface EventJson {
  type: string;
  at: number;
  recipient: string | null;
  data: {
    reply?: ReplyJson;
    mxHost?: string;
    ip?: string;
    port?: number;
    attempt?: number;
    nextAttemptAt?: number;
    reason?: string;
    [key: string]: unknown;
  };
}

export interface MessageJson {
  message: {
    id: string;
    mailFrom: string;
    source: string;
    clientIp: string;
    credentialId: string | null;
    accountId: string;
    messageIdHeader: string;
    subject: string;
    bodyPurged: boolean;
    stream: string;
  };
  recipients: {
    address: string;
    state: string;
    attempts: number;
    lastReply: ReplyJson | null;
    stream: string;
    kind: string;
  }[];
  events: EventJson[];
}

export interface ListedMessage {
  id: string;
  mailFrom: string;
  source: string;
  subject: string;
  stream: string;
  recipients: { address: string; state: string }[];
}

/** SIGTERM, and SIGKILL if it has not exited after `graceMs` (an after-hook must not hang). */
export async function stopPostbote(postbote: PostboteProcess | undefined, graceMs = 15_000): Promise<void> {
  if (!postbote) return;
  let timer: NodeJS.Timeout | undefined;
  const stopped = await Promise.race([
    postbote.stop().then(() => true),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    }),
  ]);
  clearTimeout(timer);
  if (!stopped) await postbote.kill();
}

export async function showMessage(postbote: PostboteProcess, id: string): Promise<MessageJson> {
  return JSON.parse(await postbote.cli(['messages', 'show', id, '--json'])) as MessageJson;
}

export async function listMessages(postbote: PostboteProcess, args: string[] = []): Promise<ListedMessage[]> {
  return JSON.parse(await postbote.cli(['messages', 'list', '--json', ...args])) as ListedMessage[];
}

/** The parsed JSON log lines of the process so far. */
export function logRecords(postbote: PostboteProcess): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of postbote.logs) {
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not a log record (a stack trace line)
    }
  }
  return out;
}

/** Waits until a log record matches; returns it. */
export function waitForLog(
  postbote: PostboteProcess,
  match: (record: Record<string, unknown>) => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<Record<string, unknown>> {
  return waitFor(() => logRecords(postbote).find(match), { timeoutMs, intervalMs: 25, what });
}

/**
 * Waits until Postbote's log shows a delivery attempt of `messageId` (and `recipient`, if
 * given) ending in `event` (cheap to poll), then until `messages show` has that event
 * recorded, and returns the show.
 */
export async function waitForEvent(
  postbote: PostboteProcess,
  messageId: string,
  event: string,
  options: { recipient?: string; timeoutMs?: number } = {},
): Promise<MessageJson> {
  const { recipient, timeoutMs = 15_000 } = options;
  const who = `${messageId}${recipient ? ` to ${recipient}` : ''}`;
  await waitFor(
    () =>
      logRecords(postbote).some(
        (r) =>
          r.msg === 'delivery attempt' &&
          r.messageId === messageId &&
          r.event === event &&
          (recipient === undefined || r.recipient === recipient),
      ),
    { timeoutMs, intervalMs: 25, what: `a "${event}" delivery attempt of ${who} in the log` },
  );
  return waitFor(
    async () => {
      const shown = await showMessage(postbote, messageId);
      return shown.events.some(
        (e) => e.type === event && (recipient === undefined || e.recipient === recipient),
      )
        ? shown
        : undefined;
    },
    { timeoutMs: 5000, intervalMs: 50, what: `the "${event}" event of ${who} in messages show` },
  );
}

/** The id of the DSN Postbote queued for `originalId` (from its `dsn_queued` log record). */
export async function waitForDsn(
  postbote: PostboteProcess,
  originalId: string,
  timeoutMs = 10_000,
): Promise<string> {
  return waitFor(
    () => {
      const record = logRecords(postbote).find(
        (r) => r.event === 'dsn_queued' && r.originalMessageId === originalId,
      );
      return typeof record?.messageId === 'string' ? record.messageId : undefined;
    },
    { timeoutMs, intervalMs: 25, what: `a DSN queued for ${originalId}` },
  );
}

/** Unfolds header-style continuation lines (CRLF + whitespace), for matching folded fields. */
export function unfold(text: string): string {
  return text.replace(/\r?\n[ \t]+/g, ' ');
}

/**
 * The settings of a Postbote under test that delivers to fake MX hosts on loopback: its data
 * dir, the test DNS server, the one port every fake MX listens on, no DSNs, short timeouts.
 */
export function fakeMxEnv(options: { dataDir: string; dns: string; mxPort: number }): Record<string, string> {
  return {
    POSTBOTE_DATA_DIR: options.dataDir,
    POSTBOTE_DNS__SERVERS: options.dns,
    POSTBOTE_DNS__TIMEOUT: '2s',
    POSTBOTE_DELIVERY__PORT: String(options.mxPort),
    POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
    POSTBOTE_DELIVERY__DSN: 'false',
    POSTBOTE_DELIVERY__CONNECT_TIMEOUT: '2s',
  };
}

/** Recipients still waiting or in flight, from `queue summary --json` (0 each: the queue drained). */
export async function queueLeft(
  cli: (args: string[]) => Promise<string>,
): Promise<{ queued: number; deferred: number; delivering: number }> {
  const rows = (
    JSON.parse(await cli(['queue', 'summary', '--json'])) as {
      domains: { queued: number; deferred: number; delivering: number }[];
    }
  ).domains;
  return rows.reduce(
    (sum, r) => ({
      queued: sum.queued + r.queued,
      deferred: sum.deferred + r.deferred,
      delivering: sum.delivering + r.delivering,
    }),
    { queued: 0, deferred: 0, delivering: 0 },
  );
}
