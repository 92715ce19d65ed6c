/**
 * A scripted SMTP sink for tests: a real TCP peer on loopback that answers like a receiving
 * MX unless a test script says otherwise, and records what it saw.
 *
 * - Script any reply per command with `respond` (return a reply, a delay, silence, or close).
 * - Records every connection (remote address/port, local port, EHLO name, TLS) and every
 *   transaction (envelope with parameters, the un-dot-stuffed data, the replies sent).
 * - Counts concurrent sessions (`concurrent`, `maxConcurrent`).
 * - Offers STARTTLS when given a key and certificate (`generateSelfSignedCert()`), or
 *   deliberately breaks the handshake (`brokenTls`).
 *
 * Written for tests only: no limits on line length or data size beyond what a test sends.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';

export type SinkVerb =
  | 'CONNECT'
  | 'EHLO'
  | 'HELO'
  | 'STARTTLS'
  | 'MAIL'
  | 'RCPT'
  | 'DATA'
  | 'DATA_END'
  | 'RSET'
  | 'NOOP'
  | 'QUIT'
  | 'OTHER';

export interface SinkRecipient {
  address: string;
  params: string;
  reply: string;
}

export interface SinkTransaction {
  connectionId: number;
  mailFrom: string;
  mailParams: string;
  mailReply: string;
  recipients: SinkRecipient[];
  /** Message data after removing dot-stuffing; undefined if DATA never completed. */
  data?: Buffer;
  dataReply?: string;
}

export interface SinkConnection {
  id: number;
  remoteAddress: string;
  remotePort: number;
  localPort: number;
  ehloName?: string;
  tls?: { protocol: string | null; cipher: string };
  /** Every command line received, in order (no data lines). */
  commands: string[];
  transactions: SinkTransaction[];
  open: boolean;
}

/** What a script hook sees for each command. `CONNECT` is the greeting, `DATA_END` the final dot. */
export interface SinkCommand {
  verb: SinkVerb;
  /** Everything after the verb (`FROM:<a@b> SIZE=10`, the EHLO name, ...). */
  arg: string;
  line: string;
  connection: SinkConnection;
  transaction?: SinkTransaction;
}

export interface SinkAction {
  /** Reply lines; a multiline reply is several lines joined with '\n', each with its code. */
  reply?: string;
  /** Wait before replying. */
  delayMs?: number;
  /** Never reply (the peer's timeouts take over). */
  silent?: boolean;
  /** Close the connection after the reply. */
  close?: boolean;
}

export type SinkResponder = (command: SinkCommand) => SinkAction | string | undefined;

export interface ScriptedSinkOptions {
  host?: string;
  port?: number;
  hostname?: string;
  /** EHLO keywords (default: PIPELINING, 8BITMIME, SIZE, ENHANCEDSTATUSCODES, DSN, SMTPUTF8). */
  extensions?: string[];
  /** Key and certificate (PEM): STARTTLS is offered and works (other context options, e.g. maxVersion, apply). */
  tls?: { key: string; cert: string } & tls.SecureContextOptions;
  /** Offer STARTTLS, answer 220, then send plain text instead of a TLS handshake. */
  brokenTls?: boolean;
  respond?: SinkResponder;
}

export interface ScriptedSink {
  host: string;
  port: number;
  connections: SinkConnection[];
  /** All transactions of all connections, in the order MAIL FROM was received. */
  transactions: SinkTransaction[];
  readonly concurrent: number;
  readonly maxConcurrent: number;
  close(): Promise<void>;
}

const DEFAULT_EXTENSIONS = [
  'PIPELINING',
  '8BITMIME',
  'SIZE 10485760',
  'ENHANCEDSTATUSCODES',
  'DSN',
  'SMTPUTF8',
];

export async function startScriptedSink(options: ScriptedSinkOptions = {}): Promise<ScriptedSink> {
  const hostname = options.hostname ?? 'sink.test';
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const connections: SinkConnection[] = [];
  const transactions: SinkTransaction[] = [];
  let concurrent = 0;
  let maxConcurrent = 0;
  const secureContext = options.tls ? tls.createSecureContext(options.tls) : undefined;

  const defaults = (cmd: SinkCommand, secure: boolean): string => {
    const tx = cmd.transaction;
    switch (cmd.verb) {
      case 'CONNECT':
        return `220 ${hostname} ESMTP scripted sink`;
      case 'EHLO': {
        const keywords = [...(options.extensions ?? DEFAULT_EXTENSIONS)];
        if ((secureContext || options.brokenTls) && !secure) keywords.push('STARTTLS');
        const lines = [hostname, ...keywords];
        return lines.map((text, i) => `250${i === lines.length - 1 ? ' ' : '-'}${text}`).join('\n');
      }
      case 'HELO':
        return `250 ${hostname}`;
      case 'STARTTLS':
        return secureContext || options.brokenTls
          ? '220 2.0.0 Ready to start TLS'
          : '502 5.5.1 Not supported';
      case 'MAIL':
        // The transaction is created before the script runs, so it can see the sender.
        return tx && tx.mailReply !== '' ? '503 5.5.1 Nested MAIL command' : '250 2.1.0 Ok';
      case 'RCPT':
        return tx ? '250 2.1.5 Ok' : '503 5.5.1 Need MAIL command';
      case 'DATA':
        return tx?.recipients.some((r) => r.reply.startsWith('2'))
          ? '354 End data with <CR><LF>.<CR><LF>'
          : '554 5.5.1 No valid recipients';
      case 'DATA_END':
        return `250 2.0.0 Ok: queued as T${cmd.connection.id}x${transactions.length}`;
      case 'RSET':
      case 'NOOP':
        return '250 2.0.0 Ok';
      case 'QUIT':
        return '221 2.0.0 Bye';
      default:
        return '502 5.5.2 Command not recognized';
    }
  };

  const server = net.createServer((raw) => {
    // Replies are small writes; without this Nagle + delayed ACK add ~40 ms per round trip.
    raw.setNoDelay(true);
    sockets.add(raw);
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    const connection: SinkConnection = {
      id: connections.length + 1,
      remoteAddress: raw.remoteAddress ?? '',
      remotePort: raw.remotePort ?? 0,
      localPort: raw.localPort ?? 0,
      commands: [],
      transactions: [],
      open: true,
    };
    connections.push(connection);

    let socket: net.Socket = raw;
    let secure = false;
    let buffer = Buffer.alloc(0);
    let inData = false;
    let dataLines: Buffer[] = [];
    let transaction: SinkTransaction | undefined;
    let busy = false;
    let ended = false;

    // A session is over for the count once the client has closed its side (FIN: 'end'), which
    // it does before it may open the next one; under load 'close' can come after the next
    // connection has been accepted and would count one session too many.
    let counted = true;
    const uncount = (): void => {
      if (!counted) return;
      counted = false;
      concurrent--;
    };
    raw.on('end', uncount);
    raw.on('close', () => {
      sockets.delete(raw);
      uncount();
      connection.open = false;
      ended = true;
    });
    raw.on('error', () => {});

    const write = (reply: string) => {
      if (!ended && !socket.destroyed) socket.write(reply.split('\n').join('\r\n') + '\r\n');
    };
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          timers.delete(timer);
          resolve();
        }, ms);
        timers.add(timer);
      });

    /** Runs the script for one command; returns the reply sent, or undefined when silent/closed. */
    const answer = async (verb: SinkVerb, arg: string, line: string): Promise<string | undefined> => {
      const cmd: SinkCommand = { verb, arg, line, connection, transaction };
      const scripted = options.respond?.(cmd);
      const action: SinkAction = typeof scripted === 'string' ? { reply: scripted } : (scripted ?? {});
      if (action.delayMs) await sleep(action.delayMs);
      if (action.silent || ended) return undefined;
      const reply = action.reply ?? defaults(cmd, secure);
      write(reply);
      if (action.close) {
        socket.end();
        return undefined;
      }
      return reply;
    };

    const startTls = () => {
      socket.removeListener('data', onData);
      buffer = Buffer.alloc(0); // RFC 3207 §4.2: nothing sent before the handshake counts
      if (options.brokenTls || !secureContext) {
        raw.end('this is not a TLS handshake\r\n');
        return;
      }
      const secured = new tls.TLSSocket(raw, { isServer: true, secureContext });
      secured.on('error', () => raw.destroy());
      secured.on('secure', () => {
        secure = true;
        const cipher = secured.getCipher();
        connection.tls = { protocol: secured.getProtocol(), cipher: cipher.name };
      });
      socket = secured;
      socket.on('data', onData);
    };

    const handleCommand = async (line: string) => {
      connection.commands.push(line);
      const space = line.indexOf(' ');
      const word = (space < 0 ? line : line.slice(0, space)).toUpperCase();
      const arg = space < 0 ? '' : line.slice(space + 1);
      const verb: SinkVerb =
        (['EHLO', 'HELO', 'STARTTLS', 'MAIL', 'RCPT', 'DATA', 'RSET', 'NOOP', 'QUIT'] as const).find(
          (v) => v === word,
        ) ?? 'OTHER';

      if (verb === 'MAIL' && !transaction) {
        const m = /^FROM:\s*<([^>]*)>\s*(.*)$/i.exec(arg);
        const tx: SinkTransaction = {
          connectionId: connection.id,
          mailFrom: m?.[1] ?? arg,
          mailParams: m?.[2] ?? '',
          mailReply: '',
          recipients: [],
        };
        transaction = tx;
        transactions.push(tx);
        connection.transactions.push(tx);
        const reply = await answer(verb, arg, line);
        tx.mailReply = reply ?? '';
        if (!reply?.startsWith('2')) transaction = undefined;
        return;
      }
      if (verb === 'RCPT' && transaction) {
        const m = /^TO:\s*<([^>]*)>\s*(.*)$/i.exec(arg);
        const recipient: SinkRecipient = { address: m?.[1] ?? arg, params: m?.[2] ?? '', reply: '' };
        const reply = await answer(verb, arg, line);
        recipient.reply = reply ?? '';
        transaction.recipients.push(recipient);
        return;
      }
      if (verb === 'EHLO' || verb === 'HELO') connection.ehloName = arg;
      const reply = await answer(verb, arg, line);
      if (reply === undefined) return;
      if (verb === 'DATA' && reply.startsWith('3')) {
        inData = true;
        dataLines = [];
      } else if (verb === 'RSET' || verb === 'EHLO' || verb === 'HELO') {
        transaction = undefined;
      } else if (verb === 'STARTTLS' && reply.startsWith('220')) {
        transaction = undefined;
        startTls();
      } else if (verb === 'QUIT') {
        socket.end();
      }
    };

    const handleDataEnd = async () => {
      inData = false;
      const tx = transaction;
      if (tx) tx.data = Buffer.concat(dataLines);
      const reply = await answer('DATA_END', '', '.');
      if (tx) tx.dataReply = reply ?? '';
      transaction = undefined;
    };

    /** Processes complete lines one at a time, so scripted delays keep pipelined order. */
    const drain = async () => {
      if (busy) return;
      busy = true;
      try {
        for (;;) {
          if (ended) return;
          const lf = buffer.indexOf(0x0a);
          if (lf < 0) return;
          const lineBytes = buffer.subarray(0, lf + 1);
          buffer = buffer.subarray(lf + 1);
          if (inData) {
            const text = lineBytes.toString('latin1');
            if (text === '.\r\n' || text === '.\n') await handleDataEnd();
            else dataLines.push(Buffer.from(text.startsWith('.') ? lineBytes.subarray(1) : lineBytes));
            continue;
          }
          const line = lineBytes.toString('utf8').replace(/\r?\n$/, '');
          await handleCommand(line);
        }
      } finally {
        busy = false;
      }
    };

    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      void drain();
    };
    socket.on('data', onData);
    void answer('CONNECT', '', '');
  });

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;

  return {
    host,
    port,
    connections,
    transactions,
    get concurrent() {
      return concurrent;
    },
    get maxConcurrent() {
      return maxConcurrent;
    },
    close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback port with nothing listening on it (bound once, then released). */
export async function unusedPort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A throwaway self-signed certificate for CN=localhost, made by the system's openssl. */
export async function generateSelfSignedCert(): Promise<{ key: string; cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'postbote-cert-'));
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    await promisify(execFile)(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=localhost',
        '-days',
        '1',
        '-keyout',
        keyPath,
        '-out',
        certPath,
      ],
      { timeout: 30_000 },
    );
    return { key: await readFile(keyPath, 'utf8'), cert: await readFile(certPath, 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
