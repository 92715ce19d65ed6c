/**
 * Postfix's `smtp-sink` as a receiving MX for end-to-end tests: a real, independent SMTP
 * server (not ours, not nodemailer's) that accepts mail, can inject failures, and dumps every
 * completed transaction to a file we read back.
 *
 * - `args` passes failure injection straight through, e.g. `['-f', 'RCPT', '-B', '550 5.1.1 …']`
 *   (hard-reject every RCPT), `['-r', 'DATA', '-b', '451 4.3.0 …']` (soft-reject DATA),
 *   `['-Q', 'MAIL']` (421 and close). See `man smtp-sink`.
 * - As root, smtp-sink refuses to run without `-u USER`; it drops to `postfix`, so the dump
 *   directory is handed to that user.
 * - Dump files (`-d DIR/%M.`) hold `X-Client-Addr`, `X-Mail-Args`, `X-Rcpt-Args`… headers, a
 *   three-line `Received:` that ends them, then the message, then one empty line. smtp-sink
 *   writes every line with a bare LF and undoes dot-stuffing; `transactions()` turns the lines
 *   back into CRLF, so for a message with CRLF line endings only (as SMTP requires) `data` is
 *   the message as it went over the wire, after unstuffing.
 * - smtp-sink creates the dump file at MAIL FROM, writes it when the final dot arrives (a
 *   large message may be flushed in pieces before that) and deletes it on RSET/QUIT if DATA
 *   never completed. `transactions()` leaves out files that are empty or do not end like a
 *   finished dump; read them once the client has seen the reply to its final dot (e.g. once
 *   Postbote recorded the delivery).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, chownSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import { delimiter, join } from 'node:path';
import { tempDir } from './temp-dir.ts';

export interface SmtpSinkOptions {
  /** Address to listen on, e.g. `127.0.0.2` (a fake MX host on loopback). */
  host: string;
  port: number;
  /** Name in the greeting and EHLO reply (`-h`). */
  hostname?: string;
  /** Extra smtp-sink options (failure injection), placed before the address. */
  args?: string[];
  /** How long to wait for the listener (default 5000 ms). */
  startTimeoutMs?: number;
}

/** One transaction as smtp-sink dumped it. */
export interface SinkTransaction {
  /** Envelope sender without brackets; `''` for the null sender. */
  mailFrom: string;
  /** Envelope recipients without brackets, in RCPT order. */
  rcptTo: string[];
  /** The message as received (CRLF line endings, dot-stuffing undone). */
  data: Buffer;
  /** The raw `X-Mail-Args` value, with ESMTP parameters (`<a@b> SIZE=123 BODY=8BITMIME`). */
  mailArgs: string;
  /** The raw `X-Rcpt-Args` values, with ESMTP parameters. */
  rcptArgs: string[];
  clientAddr: string;
  heloArgs?: string;
  /** The dump file, for failure messages. */
  file: string;
}

export interface SmtpSink {
  readonly host: string;
  readonly port: number;
  readonly dumpDir: string;
  /** What smtp-sink printed (warnings, fatal errors). */
  readonly output: string[];
  /** Every dumped transaction, oldest first. */
  transactions(): SinkTransaction[];
  /** SIGTERM (SIGKILL after 2 s), wait for exit, remove the dump directory. */
  stop(): Promise<void>;
}

const CANDIDATES = ['/usr/sbin/smtp-sink', '/usr/bin/smtp-sink', '/usr/local/sbin/smtp-sink'];

/** Path of the smtp-sink binary, or undefined when Postfix's test tools are not installed. */
export function smtpSinkBinary(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const path of [...CANDIDATES, ...dirs.map((d) => join(d, 'smtp-sink'))]) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** uid and gid of a local user from /etc/passwd, or undefined. */
function userIds(name: string): { uid: number; gid: number } | undefined {
  if (!existsSync('/etc/passwd')) return undefined;
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined)
      return { uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/** Starts smtp-sink on host:port and resolves once it accepts connections. */
export async function startSmtpSink(options: SmtpSinkOptions): Promise<SmtpSink> {
  const binary = smtpSinkBinary();
  if (!binary) throw new Error('smtp-sink is not installed (Debian package postfix)');
  const dir = tempDir('postbote-smtp-sink-');
  const privileges: string[] = [];
  if (process.getuid?.() === 0) {
    // smtp-sink will not keep root privileges; the user it drops to must write the dumps.
    const postfix = userIds('postfix');
    if (!postfix) {
      dir.cleanup();
      throw new Error('smtp-sink runs as root only with -u USER, and there is no user "postfix"');
    }
    chownSync(dir.path, postfix.uid, postfix.gid);
    privileges.push('-u', 'postfix');
  }
  const args = [
    ...privileges,
    '-d',
    `${dir.path}/%M.`,
    '-h',
    options.hostname ?? 'smtp-sink.test',
    // Bounded: a client that stops talking is dropped after 10 s instead of the default 100.
    '-t',
    '10',
    ...(options.args ?? []),
    `${options.host}:${options.port}`,
    '64',
  ];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const collect = (chunk: Buffer): void => {
    output.push(...chunk.toString().split('\n').filter(Boolean));
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  try {
    await waitUntilListening(child, options.host, options.port, options.startTimeoutMs ?? 5000, output);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    dir.cleanup();
    throw err;
  }

  let stopped: Promise<void> | undefined;
  return {
    host: options.host,
    port: options.port,
    dumpDir: dir.path,
    output,
    transactions: () => readDumps(dir.path),
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
          await exited;
          clearTimeout(timer);
        }
        dir.cleanup();
      })();
      return stopped;
    },
  };
}

async function waitUntilListening(
  child: ChildProcess,
  host: string,
  port: number,
  timeoutMs: number,
  output: string[],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`smtp-sink on ${host}:${port} exited at start: ${output.join(' | ')}`);
    }
    if (await connects(host, port)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `smtp-sink did not listen on ${host}:${port} within ${timeoutMs} ms: ${output.join(' | ')}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** True when a TCP connection to host:port succeeds (it is closed again at once). */
function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function readDumps(dir: string): SinkTransaction[] {
  const files = readdirSync(dir)
    .map((name) => ({ name, mtime: statSync(join(dir, name), { bigint: true }).mtimeNs }))
    .sort((a, b) => (a.mtime < b.mtime ? -1 : a.mtime > b.mtime ? 1 : a.name.localeCompare(b.name)));
  const out: SinkTransaction[] = [];
  for (const { name } of files) {
    const text = readFileSync(join(dir, name)).toString('latin1');
    // In progress: created at MAIL FROM, written at the final dot, ended by an empty line.
    if (!text.endsWith('\n\n')) continue;
    out.push(parseDump(text, join(dir, name)));
  }
  return out;
}

/** Parses one finished `-d` dump (format in `man smtp-sink`, "DUMP FILE FORMAT"). */
export function parseDump(text: string, file: string): SinkTransaction {
  const lines = text.split('\n');
  const fields: [string, string][] = [];
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('Received:')) break;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`${file}: unexpected line before the sink's Received header: ${line}`);
    fields.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  if (i >= lines.length) throw new Error(`${file}: no Received header ending the sink's headers`);
  // The sink's own Received header is one line plus continuation lines.
  i++;
  while (i < lines.length && /^[ \t]/.test(lines[i] ?? '')) i++;
  // The dump ends with one empty line after the message.
  const message = lines.slice(i).join('\n').slice(0, -1);
  const value = (name: string): string | undefined => fields.find(([n]) => n === name)?.[1];
  const all = (name: string): string[] => fields.filter(([n]) => n === name).map(([, v]) => v);
  const path = (args: string): string => /^<([^>]*)>/.exec(args)?.[1] ?? args.split(' ')[0] ?? '';
  const mailArgs = value('X-Mail-Args') ?? '';
  const rcptArgs = all('X-Rcpt-Args');
  const helo = value('X-Helo-Args');
  return {
    mailFrom: path(mailArgs),
    rcptTo: rcptArgs.map(path),
    data: Buffer.from(message.replace(/\n/g, '\r\n'), 'latin1'),
    mailArgs,
    rcptArgs,
    clientAddr: value('X-Client-Addr') ?? '',
    ...(helo === undefined ? {} : { heloArgs: helo }),
    file,
  };
}
