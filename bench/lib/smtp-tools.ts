/**
 * Postfix's test peers: `smtp-sink` (counts what it receives, `-c`) and `smtp-source` (the
 * load generator). Both run on loopback only.
 */
import { existsSync } from 'node:fs';
import { type Child, type Cleanup, freePort, startChild, waitAtMost, waitForListener } from './processes.ts';

export const SMTP_SINK = '/usr/sbin/smtp-sink';
export const SMTP_SOURCE = '/usr/sbin/smtp-source';

export function smtpToolsInstalled(): boolean {
  return existsSync(SMTP_SINK) && existsSync(SMTP_SOURCE);
}

export interface Sink {
  readonly port: number;
  readonly child: Child;
  /** Messages received so far (the `mesg=` counter: one per "." answered). */
  readonly messages: number;
  /** When the first message arrived (ms epoch), if any. */
  readonly firstAt: number | undefined;
  /**
   * Resolves when `n` messages have arrived, or when nothing arrived for `stallMs`, or at
   * `deadline` (ms epoch): `at` is the time the count reached n (undefined if it did not).
   */
  waitFor(n: number, options: { stallMs: number; deadline: number }): Promise<{ at?: number; count: number }>;
  stop(): Promise<void>;
}

/**
 * Starts `smtp-sink -c` on 127.0.0.1. The running counter it prints ("sess=N quit=N mesg=N",
 * CR-separated, written unbuffered after every ".") is parsed as it arrives, so the time the
 * Nth message landed is known to within one event-loop turn of the bench.
 */
export async function startSink(options: {
  cleanup: Cleanup;
  name: string;
  /** Extra flags, e.g. ['-r', 'RCPT', '-b', '451 4.3.0 …'] for a sink that defers everything. */
  flags?: string[];
}): Promise<Sink> {
  const port = await freePort();
  let messages = 0;
  let firstAt: number | undefined;
  let lastChangeAt = Date.now();
  let reachedAt = new Map<number, number>();
  let pending = '';
  const waiters = new Set<() => void>();
  const asRoot = process.getuid?.() === 0;
  const args = [
    ...(asRoot ? ['-u', 'postfix'] : []),
    '-c',
    ...(options.flags ?? []),
    `127.0.0.1:${port}`,
    '1024', // listen backlog
  ];
  const child = startChild(SMTP_SINK, args, {
    name: options.name,
    cleanup: options.cleanup,
    onStdout: (chunk) => {
      pending += chunk.toString('latin1');
      const records = pending.split(/[\r\n]/);
      pending = records.pop() ?? '';
      for (const record of records) {
        const m = /mesg=(\d+)/.exec(record);
        if (!m) continue;
        const count = Number(m[1]);
        if (count > messages) {
          const now = Date.now();
          if (messages === 0) firstAt = now;
          messages = count;
          lastChangeAt = now;
          reachedAt.set(count, now);
          for (const wake of waiters) wake();
        }
      }
      // Only the latest counts matter to waiters; keep the map small.
      if (reachedAt.size > 10_000) reachedAt = new Map([...reachedAt].slice(-1000));
    },
    onStderr: (chunk) => process.stderr.write(`[${options.name}] ${chunk}`),
  });
  await waitForListener(port, { timeoutMs: 10_000, what: options.name });
  return {
    port,
    child,
    get messages() {
      return messages;
    },
    get firstAt() {
      return firstAt;
    },
    async waitFor(n, { stallMs, deadline }) {
      lastChangeAt = Math.max(lastChangeAt, Date.now() - 1);
      while (messages < n) {
        const now = Date.now();
        if (now >= deadline || now - lastChangeAt >= stallMs || !child.running) break;
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            waiters.delete(wake);
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(wake, 250);
          waiters.add(wake);
        });
      }
      if (messages < n) return { count: messages };
      let at: number | undefined;
      for (const [count, time] of reachedAt) if (count >= n && (at === undefined || time < at)) at = time;
      return { at: at ?? Date.now(), count: messages };
    },
    async stop() {
      await child.stop('SIGTERM', 5000);
    },
  };
}

export interface SourceRun {
  startedAt: number;
  endedAt: number;
  ok: boolean;
  /** What smtp-source printed (it aborts with a message on the first unexpected reply). */
  output: string;
}

/**
 * `smtp-source -s SESSIONS -m MESSAGES -l SIZE -f FROM -t TO 127.0.0.1:PORT`: one message per
 * connection (no -d), which is what an application without a connection pool does.
 */
export async function runSource(options: {
  cleanup: Cleanup;
  port: number;
  messages: number;
  sessions: number;
  size: number;
  from: string;
  to: string;
  timeoutMs: number;
}): Promise<SourceRun> {
  let output = '';
  const args = [
    '-s',
    String(options.sessions),
    '-m',
    String(options.messages),
    '-l',
    String(options.size),
    '-f',
    options.from,
    '-t',
    options.to,
    '-M',
    'source.bench.test',
    `127.0.0.1:${options.port}`,
  ];
  const startedAt = Date.now();
  const child = startChild(SMTP_SOURCE, args, {
    name: 'smtp-source',
    cleanup: options.cleanup,
    onStdout: (c) => {
      output += c.toString();
    },
    onStderr: (c) => {
      output += c.toString();
    },
  });
  const exit = await waitAtMost(child.exited, options.timeoutMs);
  const endedAt = Date.now();
  if (!exit) {
    await child.stop('SIGTERM', 2000);
    return { startedAt, endedAt, ok: false, output: `${output}\n(smtp-source timed out; stopped)` };
  }
  return {
    startedAt,
    endedAt,
    ok: exit.code === 0 && !exit.error,
    output: exit.error ? `${output}${exit.error.message}` : output,
  };
}
