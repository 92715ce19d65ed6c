/**
 * SMTP fuzzing (issue 11, "Hostile input"): seeded, reproducible sessions of mutated commands
 * and DATA streams against the submission and MX listeners with their real policies. Every
 * reply must be well formed (RFC 5321 §4.2: `ddd`, `-` or space, text, CRLF; a multi-line
 * reply keeps one code), the server must answer every command or close, never crash, and keep
 * serving: after the run a clean session still delivers a message and every connection has
 * been let go. The heap after the run may not have grown with the number of sessions.
 *
 * POSTBOTE_FUZZ_COMMANDS sets the number of commands (default 100,000: the floor),
 * POSTBOTE_FUZZ_SEED the seed (printed, so a failure can be replayed).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { FEEDBACK, type Listeners, seededRandom, startListeners, TRUSTED_IP } from './harness.ts';

const COMMANDS = Number(process.env.POSTBOTE_FUZZ_COMMANDS ?? 100_000);
const SEED = Number(process.env.POSTBOTE_FUZZ_SEED ?? 20261128);
const PARALLEL = 16;
const REPLY_TIMEOUT_MS = 5_000;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

type Random = () => number;
const pick = <T>(rnd: Random, list: readonly T[]): T => list[Math.floor(rnd() * list.length)] as T;

const ADDRESSES = [
  'user@example.com',
  '',
  'postmaster',
  '"quoted local"@example.com',
  'a@[127.0.0.1]',
  'ü@bücher.example',
  FEEDBACK,
  'x@y',
  '@route:user@example.com',
  `${'a'.repeat(70)}@${'b'.repeat(250)}.com`,
];
const PARAMS = [
  '',
  ' SIZE=100',
  ' BODY=8BITMIME',
  ' SMTPUTF8',
  ' RET=HDRS ENVID=x+2Bid',
  ' NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.c',
  ' SIZE=99999999999999',
  ' FOO=bar',
  ' =',
  ' AUTH=<>',
];

/** A plausible command, before mutation. */
function command(rnd: Random): string {
  const r = rnd();
  if (r < 0.1) return `EHLO ${pick(rnd, ['client.example', '[127.0.0.1]', '', 'a'.repeat(300), 'x y'])}`;
  if (r < 0.14) return `HELO ${pick(rnd, ['client.example', ''])}`;
  if (r < 0.32) return `MAIL FROM:<${pick(rnd, ADDRESSES)}>${pick(rnd, PARAMS)}`;
  if (r < 0.52) return `RCPT TO:<${pick(rnd, ADDRESSES)}>${pick(rnd, PARAMS)}`;
  if (r < 0.62) return 'DATA';
  if (r < 0.66) return 'RSET';
  if (r < 0.7) return 'NOOP';
  if (r < 0.73)
    return pick(rnd, ['VRFY postmaster', 'EXPN list', 'HELP', 'HELP MAIL', 'TURN', 'ETRN x', 'BDAT 10 LAST']);
  if (r < 0.78) {
    const plain = Buffer.from(`\0${pick(rnd, ['app', 'nobody', ''])}\0${pick(rnd, ['pw', ''])}`).toString(
      'base64',
    );
    return pick(rnd, [
      `AUTH PLAIN ${plain}`,
      'AUTH LOGIN',
      'AUTH PLAIN',
      'AUTH CRAM-MD5',
      `AUTH PLAIN ${plain}=`,
      'AUTH LOGIN dXNlcg==',
    ]);
  }
  if (r < 0.8) return 'STARTTLS';
  if (r < 0.82) return 'QUIT';
  return pick(rnd, [
    'mail from:<user@example.com>',
    'rcpt to:<user@example.com>',
    'GET / HTTP/1.1',
    '\u0000',
    '',
    ' ',
    'MAIL',
    'RCPT TO',
    'MAIL FROM user@example.com',
  ]);
}

/** A mutation of a command or body line: bytes flipped, inserted, deleted, repeated, or odd line ends. */
function mutate(rnd: Random, line: string): string {
  if (rnd() < 0.45) return line;
  const chars = [...line];
  const ops = 1 + Math.floor(rnd() * 3);
  for (let i = 0; i < ops; i++) {
    const at = Math.floor(rnd() * (chars.length + 1));
    switch (Math.floor(rnd() * 8)) {
      case 0:
        chars.splice(at, 1);
        break;
      case 1:
        chars.splice(at, 0, String.fromCharCode(Math.floor(rnd() * 256)));
        break;
      case 2:
        chars.splice(
          at,
          0,
          pick(rnd, [
            '\r',
            '\n',
            '\r\n.\r\n',
            '\n.\n',
            '\r.\r',
            '\n.\r\n',
            '\u0000',
            '\u00ff',
            '\u00c3\u0028',
            '<',
            '>',
            '"',
            '\\',
          ]),
        );
        break;
      case 3:
        chars.splice(at, 0, 'X'.repeat(Math.floor(rnd() * 1200)));
        break;
      case 4:
        chars.splice(0, chars.length, ...chars.concat(chars));
        break;
      case 5:
        chars.length = Math.min(chars.length, at);
        break;
      case 6:
        if (chars[at] !== undefined)
          chars[at] = String.fromCharCode((chars[at]?.charCodeAt(0) ?? 0) ^ (1 << Math.floor(rnd() * 8)));
        break;
      default:
        chars.splice(at, 0, ' '.repeat(Math.floor(rnd() * 20)));
    }
  }
  return chars.join('');
}

/** A DATA stream: header and body lines, some mutated, maybe dot-stuffing errors and smuggling. */
function dataStream(rnd: Random): string {
  const lines = ['Subject: fuzz', 'From: <user@example.com>', 'X-Postbote-Stream: outbound', ''];
  const n = Math.floor(rnd() * 12);
  for (let i = 0; i < n; i++)
    lines.push(
      mutate(
        rnd,
        pick(rnd, [
          'hello',
          '.',
          '..',
          '.hidden',
          'MAIL FROM:<evil@example.com>',
          '=?utf-8?q?x?=',
          'a'.repeat(999),
          'tab\there',
        ]),
      ),
    );
  return `${lines.join('\r\n')}\r\n${pick(rnd, ['.\r\n', '.\r\n', '.\r\n', '\n.\n.\r\n', '\r.\r\n.\r\n'])}`;
}

/** Checks one reply's lines (without CRLF) against RFC 5321 §4.2. */
function wellFormed(lines: string[]): string | undefined {
  const code = lines[0]?.slice(0, 3) ?? '';
  if (!/^[2-5][0-5]\d$/.test(code)) return `bad code in ${JSON.stringify(lines[0])}`;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.slice(0, 3) !== code) return `code changes inside a multi-line reply: ${JSON.stringify(lines)}`;
    const sep = line[3];
    const last = i === lines.length - 1;
    if (line.length > 3 && sep !== (last ? ' ' : '-')) return `bad separator: ${JSON.stringify(line)}`;
    if (line.length > 512) return `reply line over 512 octets: ${line.length}`;
    if (/[\r\n\u0000]/.test(line)) return `control character in ${JSON.stringify(line)}`;
  }
  return undefined;
}

interface Tally {
  commands: number;
  replies: number;
  closedByServer: number;
  codes: Map<number, number>;
}

/**
 * One fuzz session: sends `budget` units (a command line, or a DATA stream after 354), waits
 * for each to be answered, validates every reply. Resolves with the units sent.
 */
function fuzzSession(
  port: number,
  localAddress: string,
  rnd: Random,
  budget: number,
  tally: Tally,
  prefix: string[],
): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    socket.setEncoding('latin1');
    let buffer = '';
    let partial: string[] = [];
    let sent = 0;
    let answered = 0;
    let inData = false;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(sent);
    };
    // Pipelined answers can leave us a unit out of step (a 354 read after the next command
    // was sent, which the server then takes as message content): after a quiet second we end
    // any message the server may be reading, as a client would; silence after that is a fault.
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        socket.write('\r\n.\r\n');
        timer = setTimeout(
          () => finish(new Error(`no reply within ${REPLY_TIMEOUT_MS} ms after unit ${sent} (seed ${SEED})`)),
          REPLY_TIMEOUT_MS,
        );
      }, 1000);
    };
    const next = () => {
      if (sent >= budget) {
        socket.end('QUIT\r\n');
        return;
      }
      sent++;
      tally.commands++;
      const unit = inData
        ? dataStream(rnd)
        : sent <= prefix.length
          ? `${prefix[sent - 1]}\r\n`
          : `${mutate(rnd, command(rnd))}\r\n`;
      inData = false;
      arm();
      socket.write(Buffer.from(unit, 'latin1'));
    };
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (;;) {
        const end = buffer.indexOf('\r\n');
        if (end === -1) break;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        partial.push(line);
        if (line[3] === '-') continue;
        const problem = wellFormed(partial);
        if (problem) return finish(new Error(`${problem} (seed ${SEED})`));
        const code = Number(line.slice(0, 3));
        tally.replies++;
        tally.codes.set(code, (tally.codes.get(code) ?? 0) + 1);
        partial = [];
        answered++;
        // The greeting is reply 1; afterwards a reply answers the latest unit (a mutation with
        // a line end inside may make two commands of one unit: extra replies are fine).
        if (answered === 1 || answered - 1 >= sent) {
          inData = code === 354;
          next();
        }
      }
      if (buffer.length > 4096 && !buffer.includes('\r\n'))
        finish(new Error(`a reply line without CRLF (seed ${SEED})`));
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (!done && sent < budget) tally.closedByServer++;
      if (!done && buffer.length > 0)
        return finish(new Error(`reply cut off at close: ${JSON.stringify(buffer.slice(0, 80))}`));
      finish();
    });
    arm();
  });
}

describe('SMTP fuzzing: submission and MX listeners', () => {
  let t: Listeners;
  before(async () => {
    t = await startListeners({ idleTimeoutMs: 30_000, keepReports: false });
  });
  after(async () => {
    await t.close();
  });

  it(`answers ${COMMANDS.toLocaleString('en')} mutated commands and DATA streams with valid replies, never crashes, keeps no memory`, {
    timeout: 600_000,
  }, async () => {
    process.stdout.write(
      `# fuzz seed ${SEED}, ${COMMANDS} commands (POSTBOTE_FUZZ_SEED / POSTBOTE_FUZZ_COMMANDS)\n`,
    );
    const rnd = seededRandom(SEED);
    const tally: Tally = { commands: 0, replies: 0, closedByServer: 0, codes: new Map() };
    // Each worker draws from its own stream so the run is reproducible whatever the timing.
    const streams = Array.from({ length: PARALLEL }, () => seededRandom(Math.floor(rnd() * 2 ** 32)));
    const heap: number[] = [];
    let sessions = 0;
    const worker = async (w: number) => {
      const r = streams[w] as Random;
      while (tally.commands < COMMANDS) {
        const budget = Math.max(1, Math.min(COMMANDS - tally.commands, 5 + Math.floor(r() * 60)));
        const mx = r() < 0.4;
        // Submission as a stranger, a trusted IP (it may send), or the MX (anyone).
        const from = mx ? '127.0.0.3' : r() < 0.5 ? TRUSTED_IP : '127.0.0.4';
        // Most sessions start with a valid EHLO, MAIL and RCPT so the mutations reach DATA and
        // the states after it, not only the greeting's.
        const start = r();
        const prefix =
          start < 0.2
            ? []
            : start < 0.4
              ? ['EHLO client.example']
              : [
                  'EHLO client.example',
                  `MAIL FROM:<${mx ? '' : 'user@example.com'}>`,
                  `RCPT TO:<${mx ? FEEDBACK : 'user@example.com'}>`,
                ];
        await fuzzSession(mx ? t.mx.port : t.submission.port, from, r, budget, tally, prefix);
        sessions++;
        if (sessions === 200) {
          gc();
          heap.push(process.memoryUsage().heapUsed);
        }
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, (_, w) => worker(w)));
    assert.ok(tally.commands >= COMMANDS, `${tally.commands} commands sent`);
    process.stdout.write(
      `# ${sessions} sessions, ${tally.commands} units, ${tally.replies} replies, ${tally.closedByServer} closed by the server; codes ${JSON.stringify(Object.fromEntries([...tally.codes].sort((a, b) => a[0] - b[0])))}\n`,
    );

    // Still serving: a clean session delivers a message.
    const c = await SmtpTestClient.connect(t.submission.port, { localAddress: TRUSTED_IP });
    await c.hello();
    assert.equal((await c.command('MAIL FROM:<sender@shop.test>')).code, 250);
    assert.equal((await c.command('RCPT TO:<someone@example.org>')).code, 250);
    assert.equal((await c.command('DATA')).code, 354);
    assert.equal((await c.command('Subject: after the storm\r\n\r\nstill here\r\n.')).code, 250);
    c.send('QUIT');
    await c.waitClosed();
    // Every session was let go, and the heap did not grow with them.
    for (let i = 0; i < 50 && (t.submission.server.connections > 0 || t.mx.server.connections > 0); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(t.submission.server.connections, 0);
    assert.equal(t.mx.server.connections, 0);
    gc();
    const end = process.memoryUsage().heapUsed;
    const start = heap[0] ?? end;
    process.stdout.write(
      `# heap after 200 sessions ${(start / 1e6).toFixed(1)} MB, after ${sessions}: ${(end / 1e6).toFixed(1)} MB\n`,
    );
    assert.ok(
      end - start < 16e6,
      `heap grew by ${((end - start) / 1e6).toFixed(1)} MB over ${sessions} sessions`,
    );
  });
});
