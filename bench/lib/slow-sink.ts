/**
 * A receiving MX that is slow on purpose: it answers the final dot of every message only after
 * `delayMs`, the way a busy mailbox provider's MX does while it scans and stores a message. With
 * C connections it accepts at most C × 1000 / delayMs messages per second, whatever the sender
 * does, so a backlog drains at a known pace.
 *
 * Why not smtp-sink: its delays (`-w`, `-W command:delay`) are whole seconds, which would make a
 * 50,000-message backlog take hours; and the scripted test sink (test/support/scripted-sink.ts)
 * keeps every message body, 100 MB for such a run. This one keeps, per message, when it was
 * accepted and to whom, and nothing else. It speaks just enough ESMTP for nodemailer:
 * PIPELINING (commands are still handled strictly in order), 8BITMIME, SIZE, SMTPUTF8, DSN.
 */
import net from 'node:net';

export interface SlowSinkArrival {
  /** When the sink answered 250 to the final dot (ms epoch). */
  at: number;
  /** The first RCPT TO address of the transaction, lower-cased. */
  rcpt: string;
  /** Sequential id of the connection that carried it (1, 2, …). */
  connection: number;
}

export interface SlowSink {
  readonly port: number;
  /** Messages accepted so far. */
  readonly messages: number;
  /** Every accepted message, in the order the 250 went out. */
  readonly arrivals: readonly SlowSinkArrival[];
  readonly connections: number;
  readonly maxConcurrent: number;
  /**
   * Resolves once `n` messages have arrived, or nothing arrived for `stallMs`, or at `deadline`
   * (ms epoch); `at` is when the count reached n (undefined if it did not).
   */
  waitFor(n: number, options: { stallMs: number; deadline: number }): Promise<{ at?: number; count: number }>;
  close(): Promise<void>;
}

const EXTENSIONS = ['PIPELINING', '8BITMIME', 'SIZE 52428800', 'ENHANCEDSTATUSCODES', 'SMTPUTF8', 'DSN'];
const TERMINATOR = '\r\n.\r\n';

export async function startSlowSink(options: {
  delayMs: number;
  host?: string;
  hostname?: string;
}): Promise<SlowSink> {
  const hostname = options.hostname ?? 'mx.sink.test';
  const arrivals: SlowSinkArrival[] = [];
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let connections = 0;
  let concurrent = 0;
  let maxConcurrent = 0;
  let lastArrivalAt = Date.now();
  const waiters = new Set<() => void>();

  const later = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  const server = net.createServer((socket) => {
    // Small replies: without this Nagle and delayed ACKs add ~40 ms to a round trip.
    socket.setNoDelay(true);
    sockets.add(socket);
    const id = ++connections;
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    let input = '';
    let inData = false;
    let rcpt: string | undefined;
    let busy = false;
    let ended = false;
    let quitting = false;
    socket.setEncoding('latin1');
    socket.on('error', () => {});
    socket.on('close', () => {
      ended = true;
      concurrent--;
      sockets.delete(socket);
    });
    const reply = (text: string): void => {
      if (!ended) socket.write(`${text}\r\n`);
    };

    /** The reply to one command line (and its effect on the transaction). */
    const answer = (line: string): string => {
      switch (line.slice(0, 4).toUpperCase()) {
        case 'EHLO':
          return [hostname, ...EXTENSIONS]
            .map((t, i, all) => `250${i < all.length - 1 ? '-' : ' '}${t}`)
            .join('\r\n');
        case 'HELO':
          return `250 ${hostname}`;
        case 'MAIL':
          rcpt = undefined;
          return '250 2.1.0 Ok';
        case 'RCPT':
          rcpt ??= (/<([^>]*)>/.exec(line)?.[1] ?? '').toLowerCase();
          return '250 2.1.5 Ok';
        case 'DATA':
          if (rcpt === undefined) return '503 5.5.1 Need RCPT';
          inData = true;
          // The data starts at a line start: the terminator may be its very first line.
          input = `\r\n${input}`;
          return '354 End data with <CR><LF>.<CR><LF>';
        case 'RSET':
          rcpt = undefined;
          return '250 2.0.0 Ok';
        case 'NOOP':
          return '250 2.0.0 Ok';
        case 'QUIT':
          quitting = true;
          return '221 2.0.0 Bye';
        default:
          return '502 5.5.2 Command not recognized';
      }
    };

    /** Handles buffered input strictly in order; the only wait is the delay after a final dot. */
    const drain = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      try {
        while (!ended) {
          if (inData) {
            const end = input.indexOf(TERMINATOR);
            if (end < 0) {
              // Keep only what could be the start of a terminator split across reads.
              if (input.length > TERMINATOR.length) input = input.slice(-(TERMINATOR.length - 1));
              return;
            }
            input = input.slice(end + TERMINATOR.length);
            inData = false;
            await later(options.delayMs);
            if (ended) return;
            arrivals.push({ at: Date.now(), rcpt: rcpt ?? '', connection: id });
            lastArrivalAt = Date.now();
            rcpt = undefined;
            reply(`250 2.0.0 Ok: queued as S${arrivals.length}`);
            for (const wake of waiters) wake();
            continue;
          }
          const lf = input.indexOf('\n');
          if (lf < 0) return;
          const line = input.slice(0, lf).replace(/\r$/, '');
          input = input.slice(lf + 1);
          reply(answer(line));
          if (quitting) {
            socket.end();
            return;
          }
        }
      } finally {
        busy = false;
      }
    };

    socket.on('data', (chunk: string) => {
      input += chunk;
      void drain();
    });
    reply(`220 ${hostname} ESMTP slow sink`);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;

  return {
    port,
    get messages() {
      return arrivals.length;
    },
    arrivals,
    get connections() {
      return connections;
    },
    get maxConcurrent() {
      return maxConcurrent;
    },
    async waitFor(n, { stallMs, deadline }) {
      lastArrivalAt = Math.max(lastArrivalAt, Date.now() - 1);
      while (arrivals.length < n) {
        const now = Date.now();
        if (now >= deadline || now - lastArrivalAt >= stallMs) return { count: arrivals.length };
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
      return { at: arrivals[n - 1]?.at ?? Date.now(), count: arrivals.length };
    },
    close() {
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
