/**
 * Throughput of the SMTP protocol layer alone: one message per connection (connect, EHLO,
 * MAIL, RCPT, DATA with a 2 KB body, QUIT), 20 concurrent clients, 20,000 messages, against a
 * server whose onData resolves at once. The clients run in a child process so they do not eat
 * the server's event loop. If Postfix's smtp-source is installed, its figure is printed too.
 *
 *   node bench/smtp-server.ts [--messages 20000] [--sessions 20] [--pipeline]
 *
 * Not part of `npm test`.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { replies } from '../src/smtp/replies.ts';
import { createSmtpServer } from '../src/smtp/server/index.ts';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    sessions: { type: 'string', default: '20' },
    pipeline: { type: 'boolean', default: false },
    client: { type: 'string' }, // internal: run as the load generator against this port
  },
});
const messages = Number(values.messages);
const sessions = Number(values.sessions);

const body = `Subject: bench\r\nFrom: a@example.com\r\nTo: b@example.net\r\n\r\n${`${'x'.repeat(78)}\r\n`.repeat(25)}.\r\n`;

/** One message on one connection, lockstep (or MAIL/RCPT/DATA pipelined with --pipeline). */
function oneMessage(port: number, pipeline: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
    let buffer = '';
    let step = 0;
    const script = pipeline
      ? [
          ['EHLO bench.example\r\n'],
          ['MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n', 3],
          [body, 1],
          ['QUIT\r\n', 1],
        ]
      : [
          ['EHLO bench.example\r\n'],
          ['MAIL FROM:<a@example.com>\r\n'],
          ['RCPT TO:<b@example.net>\r\n'],
          ['DATA\r\n'],
          [body],
          ['QUIT\r\n'],
        ];
    let waiting = 1; // the greeting
    socket.setEncoding('latin1');
    socket.on('data', (data: string) => {
      buffer += data;
      for (;;) {
        const end = buffer.indexOf('\r\n');
        if (end === -1) return;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (line[3] === '-') continue;
        const code = Number(line.slice(0, 3));
        if (code >= 400) {
          socket.destroy();
          reject(new Error(`unexpected reply: ${line}`));
          return;
        }
        if (--waiting > 0) continue;
        const next = script[step];
        if (!next) return;
        step++;
        socket.write(next[0] as string);
        waiting = (next[1] as number | undefined) ?? 1;
      }
    });
    socket.on('close', () => (step === script.length ? resolve() : reject(new Error('closed early'))));
    socket.on('error', reject);
  });
}

async function runClients(port: number): Promise<void> {
  let started = 0;
  let done = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (started < messages) {
      started++;
      await oneMessage(port, values.pipeline);
      done++;
    }
  };
  await Promise.all(Array.from({ length: sessions }, worker));
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(JSON.stringify({ done, seconds }));
}

async function main(): Promise<void> {
  let accepted = 0;
  const server = createSmtpServer({
    hostname: 'bench.example',
    sizeLimit: 10 * 1024 * 1024,
    maxRecipients: 100,
    idleTimeoutMs: 30_000,
    handlers: {
      onData() {
        accepted++;
        return replies.queued(String(accepted));
      },
    },
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const cpu = os.cpus();
  console.log(
    `machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${os.platform()} ${os.release()}, Node ${process.version}`,
  );
  console.log(
    `load: ${messages} messages, ${sessions} concurrent sessions, one message per connection, 2 KB body`,
  );

  const cpuBefore = process.cpuUsage();
  const child = spawn(
    process.execPath,
    [
      import.meta.filename,
      '--client',
      String(port),
      '--messages',
      String(messages),
      '--sessions',
      String(sessions),
      ...(values.pipeline ? ['--pipeline'] : []),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`client exited with ${code}`);
  const { done, seconds } = JSON.parse(out) as { done: number; seconds: number };
  const used = process.cpuUsage(cpuBefore);
  const cpuPerMessage = (used.user + used.system) / 1000 / done;
  console.log(
    `raw clients${values.pipeline ? ' (pipelined)' : ''}: ${done} msgs in ${seconds.toFixed(2)} s = ${Math.round(done / seconds)} msgs/s; server CPU ${cpuPerMessage.toFixed(3)} ms/msg`,
  );

  const smtpSource = '/usr/sbin/smtp-source';
  if (existsSync(smtpSource)) {
    accepted = 0;
    const sourceCpu = process.cpuUsage();
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      execFile(
        smtpSource,
        ['-s', String(sessions), '-m', String(messages), '-l', '2000', `127.0.0.1:${port}`],
        { timeout: 600_000 },
        (err) => (err ? reject(err) : resolve()),
      );
    });
    const s = (performance.now() - t0) / 1000;
    const u = process.cpuUsage(sourceCpu);
    console.log(
      `smtp-source -s ${sessions} -m ${messages} -l 2000: ${accepted} msgs in ${s.toFixed(2)} s = ${Math.round(accepted / s)} msgs/s; server CPU ${((u.user + u.system) / 1000 / accepted).toFixed(3)} ms/msg`,
    );
  } else {
    console.log(`${smtpSource} not installed: skipped`);
  }
  await server.close();
}

if (values.client) await runClients(Number(values.client));
else await main();
