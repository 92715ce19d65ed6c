/**
 * An SMTP submission load generator on `node:net` (no client library), for crash and soak
 * tests: `sessions` concurrent connections share a pool of `total` messages, each carrying a
 * unique `X-Load-Id: <n>` header, and every message ends in exactly one of three sets:
 *
 * - acknowledged: the server answered 2xx to the end of DATA. "250 means durable": the
 *   server has promised delivery (at least once).
 * - unknown: the final dot was written but no reply came (reset, EOF, timeout). The server
 *   may or may not have committed it; nothing is promised either way.
 * - failed: the server refused it after the dot (4xx/5xx), or it could not be submitted
 *   within `maxAttemptsPerMessage` tries. Nothing is promised; a refused message must not
 *   be delivered.
 *
 * A message whose final dot was never written cannot have been accepted, so a connection that
 * breaks before that point (refused, reset, 421 on connect, a MAIL/RCPT refusal) puts the
 * message back in the pool and the session reconnects with a small backoff. That is how the
 * generator survives the server dying mid-run: it keeps trying until the pool is empty, the
 * stop signal fires, or a session fails `maxConsecutiveFailures` times in a row.
 */
import net from 'node:net';

export interface LoadOptions {
  host: string;
  port: number;
  /** Concurrent SMTP sessions. */
  sessions: number;
  /** Messages in the whole run, numbered 0 .. total-1 (the X-Load-Id). */
  total: number;
  /** Transactions on one connection before QUIT and a new connection (default 50). */
  messagesPerConnection?: number;
  /** Send RSET between transactions on one connection (default false: just a new MAIL). */
  rsetBetween?: boolean;
  /** Approximate body size in bytes (default 1024). */
  bodySize?: number;
  mailFrom?: string;
  rcptTo?: string;
  ehloName?: string;
  /** Stops taking new messages; the transaction in progress still finishes (bounded by timeouts). */
  signal?: AbortSignal;
  /** Per-reply and connect timeout (default 10 s). */
  replyTimeoutMs?: number;
  /** Submission attempts per message before it counts as failed (default 50). */
  maxAttemptsPerMessage?: number;
  /** Failures in a row (connect or session) after which a session gives up (default 150). */
  maxConsecutiveFailures?: number;
  /** Reconnect backoff: first delay and cap (defaults 20 ms and 250 ms, doubling). */
  backoffMs?: { first: number; max: number };
  /** Called for every acknowledged message, as it happens. */
  onAcknowledged?: (id: string) => void;
}

export interface LoadResult {
  acknowledged: Set<string>;
  /** Messages refused after DATA or given up on before it. */
  failed: number;
  unknown: Set<string>;
  /** Refusal replies after the dot, for the report (first few). */
  refusals: string[];
  /** Connections opened and connection-level failures, for the report. */
  connections: number;
  connectionFailures: number;
}

export interface LoadRun {
  /** Live view of the sets while the run is going on. */
  readonly progress: Readonly<LoadResult>;
  /** True once no message is waiting to be sent (the pool is empty). */
  readonly exhausted: boolean;
  readonly done: Promise<LoadResult>;
}

/** A reply as read off the wire: the code of the last line and all lines. */
interface WireReply {
  code: number;
  text: string;
}

class SessionBroken extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SessionBroken';
  }
}

/** Reads multi-line SMTP replies from a socket, one promise per reply, each with a timeout. */
class ReplyReader {
  readonly #socket: net.Socket;
  readonly #timeoutMs: number;
  #buffer = '';
  #lines: string[] = [];
  #replies: WireReply[] = [];
  #waiter: { resolve: (r: WireReply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  #closed: Error | undefined;

  constructor(socket: net.Socket, timeoutMs: number) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('error', (err) =>
      this.#fail(new SessionBroken(`socket error: ${err.message}`, { cause: err })),
    );
    socket.on('close', () => this.#fail(new SessionBroken('connection closed')));
  }

  next(): Promise<WireReply> {
    const ready = this.#replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(new SessionBroken(`no reply within ${this.#timeoutMs} ms`));
        this.#socket.destroy();
      }, this.#timeoutMs);
      this.#waiter = { resolve, reject, timer };
    });
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    for (;;) {
      const end = this.#buffer.indexOf('\r\n');
      if (end < 0) break;
      const line = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      this.#lines.push(line);
      // RFC 5321 §4.2.1: "ddd-" continues a reply, "ddd " or a bare "ddd" ends it.
      if (line.length === 3 || line[3] === ' ') {
        const reply = { code: Number(line.slice(0, 3)), text: this.#lines.join('\n') };
        this.#lines = [];
        const waiter = this.#waiter;
        if (waiter) {
          this.#waiter = undefined;
          clearTimeout(waiter.timer);
          waiter.resolve(reply);
        } else {
          this.#replies.push(reply);
        }
      }
    }
  }

  #fail(err: Error): void {
    this.#closed ??= err;
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      clearTimeout(waiter.timer);
      waiter.reject(this.#closed);
    }
  }
}

function connect(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new SessionBroken(`connect timeout after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      resolve(socket);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(new SessionBroken(`connect failed: ${err.message}`, { cause: err }));
    };
    socket.once('error', onError);
  });
}

/** The message text for one load id: CRLF lines, dot-stuffed, without the final dot. */
function messageFor(id: string, options: { from: string; to: string; bodySize: number }): string {
  const line = `load message ${id} `.padEnd(76, 'x');
  const bodyLines: string[] = [];
  for (let size = 0; size < options.bodySize; size += line.length + 2) bodyLines.push(line);
  const text = [
    `From: <${options.from}>`,
    `To: <${options.to}>`,
    `Subject: load ${id}`,
    `X-Load-Id: ${id}`,
    '',
    ...bodyLines,
  ]
    .map((l) => (l.startsWith('.') ? `.${l}` : l))
    .join('\r\n');
  return `${text}\r\n`;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts the run; `done` resolves when every session has finished (it never rejects). */
export function startLoad(options: LoadOptions): LoadRun {
  const perConnection = options.messagesPerConnection ?? 50;
  const timeoutMs = options.replyTimeoutMs ?? 10_000;
  const maxAttempts = options.maxAttemptsPerMessage ?? 50;
  const maxConsecutive = options.maxConsecutiveFailures ?? 150;
  const backoff = options.backoffMs ?? { first: 20, max: 250 };
  const from = options.mailFrom ?? 'load@client.test';
  const to = options.rcptTo ?? 'user@sink.test';
  const bodySize = options.bodySize ?? 1024;
  const ehlo = options.ehloName ?? 'load.client.test';

  const result: LoadResult = {
    acknowledged: new Set(),
    failed: 0,
    unknown: new Set(),
    refusals: [],
    connections: 0,
    connectionFailures: 0,
  };
  /** Ids not yet sent, or put back after a failure before their dot; LIFO is fine. */
  const pool: string[] = [];
  for (let n = options.total - 1; n >= 0; n--) pool.push(String(n));
  const attempts = new Map<string, number>();
  const stopped = (): boolean => options.signal?.aborted === true;

  /** Takes the next id to send, or undefined when the run is over for this session. */
  const take = (): string | undefined => (stopped() ? undefined : pool.pop());

  /** The message could not be handed over (nothing after its dot): retry it, within bounds. */
  const putBack = (id: string): void => {
    const n = (attempts.get(id) ?? 0) + 1;
    attempts.set(id, n);
    if (n >= maxAttempts) result.failed++;
    else pool.push(id);
  };

  const expect = async (reader: ReplyReader, ok: (code: number) => boolean, what: string) => {
    const reply = await reader.next();
    if (!ok(reply.code)) throw new SessionBroken(`${what} refused: ${reply.text}`);
    return reply;
  };

  /**
   * One connection: greeting, EHLO, then up to `perConnection` transactions. Returns how many
   * transactions completed with a reply after the dot (0 means the session failed early).
   */
  async function oneConnection(): Promise<number> {
    const socket = await connect(options.host, options.port, timeoutMs);
    result.connections++;
    const reader = new ReplyReader(socket, timeoutMs);
    let current: string | undefined;
    let dotSent = false;
    let completed = 0;
    try {
      await expect(reader, (c) => c === 220, 'greeting');
      socket.write(`EHLO ${ehlo}\r\n`);
      await expect(reader, (c) => c === 250, 'EHLO');
      for (let i = 0; i < perConnection; i++) {
        current = take();
        if (current === undefined) break;
        dotSent = false;
        if (i > 0 && options.rsetBetween) {
          socket.write('RSET\r\n');
          await expect(reader, (c) => c === 250, 'RSET');
        }
        socket.write(`MAIL FROM:<${from}>\r\n`);
        await expect(reader, (c) => c === 250, 'MAIL');
        socket.write(`RCPT TO:<${to}>\r\n`);
        await expect(reader, (c) => c === 250, 'RCPT');
        socket.write('DATA\r\n');
        await expect(reader, (c) => c === 354, 'DATA');
        socket.write(messageFor(current, { from, to, bodySize }));
        socket.write('.\r\n');
        dotSent = true;
        const reply = await reader.next();
        if (reply.code >= 200 && reply.code < 300) {
          result.acknowledged.add(current);
          options.onAcknowledged?.(current);
        } else {
          result.failed++;
          if (result.refusals.length < 10) result.refusals.push(`${current}: ${reply.text}`);
        }
        current = undefined;
        completed++;
      }
      socket.write('QUIT\r\n');
      await reader.next().catch(() => undefined);
      return completed;
    } catch (err) {
      if (current !== undefined) {
        if (dotSent) result.unknown.add(current);
        else putBack(current);
      }
      if (completed > 0) return completed;
      throw err;
    } finally {
      socket.destroy();
    }
  }

  async function session(): Promise<void> {
    let consecutive = 0;
    while (!stopped() && pool.length > 0) {
      try {
        const completed = await oneConnection();
        if (completed > 0) consecutive = 0;
      } catch {
        result.connectionFailures++;
        consecutive++;
        if (consecutive >= maxConsecutive) return;
        await sleep(Math.min(backoff.max, backoff.first * 2 ** Math.min(consecutive - 1, 10)));
      }
    }
  }

  const done = Promise.all(Array.from({ length: options.sessions }, () => session())).then(() => {
    // Sessions that gave up (or a stop signal) leave messages behind: never sent, so failed.
    result.failed += pool.splice(0).length;
    return result;
  });

  return {
    progress: result,
    get exhausted() {
      return pool.length === 0;
    },
    done,
  };
}

/** Runs a whole load and resolves with the outcome of every message. */
export function runLoad(options: LoadOptions): Promise<LoadResult> {
  return startLoad(options).done;
}

/** The X-Load-Id of a message as a sink received it ('(none)' without one). */
export function loadIdOf(data: Buffer): string {
  const text = data.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return /^X-Load-Id: *(\S+)\r?$/im.exec(end < 0 ? text : text.slice(0, end))?.[1] ?? '(none)';
}

/**
 * One message of an HTTP API load: POST /v1/messages from load@sender.test to user@sink.test
 * carrying `X-Load-Id: id` (and `Idempotency-Key: id` when `idempotent`). Never throws: a
 * transport failure is status 0 with the error's message.
 */
export async function postLoadMessage(
  port: number,
  key: string,
  id: string,
  options: { idempotent?: boolean; bodyBytes?: number; timeoutMs?: number } = {},
): Promise<{ status: number; error: string }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/v1/messages`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        ...(options.idempotent ? { 'idempotency-key': id } : {}),
      },
      body: JSON.stringify({
        from: 'load@sender.test',
        to: ['user@sink.test'],
        subject: `load ${id}`,
        text: 'x'.repeat(options.bodyBytes ?? 1024),
        headers: { 'X-Load-Id': id },
      }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
    const body = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
    return { status: res.status, error: body.error?.code ?? '' };
  } catch (err) {
    return { status: 0, error: (err as Error).message };
  }
}
