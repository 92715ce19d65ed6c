/**
 * What the embedded store writes and spends per message on the relay path, without SMTP or
 * sockets: intake commits, leases and delivered outcomes against SqliteStore in this process,
 * in the batch sizes the relay bench sees. Bytes come from /proc/self/io (wchar: every write
 * syscall, WAL frames and checkpoints), CPU from process.cpuUsage. Unlike throughput, both are
 * steady from run to run, so a change to the schema or the statements can be compared exactly.
 *
 *   node bench/store-writes.ts [--messages 20000] [--intake 4] [--lease 4] [--outcomes 2] [--size 2000]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { newId } from '../src/store/ids.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { LeasedRecipient, NewMessage, Outcome } from '../src/store/types.ts';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    intake: { type: 'string', default: '4' },
    lease: { type: 'string', default: '4' },
    outcomes: { type: 'string', default: '2' },
    size: { type: 'string', default: '2000' },
    drop: { type: 'string', default: '' },
  },
});
const total = Number(args.messages);
const intakeBatch = Number(args.intake);
const leaseBatch = Number(args.lease);
const outcomeBatch = Number(args.outcomes);
for (const [name, n] of Object.entries({ total, intakeBatch, leaseBatch, outcomeBatch })) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
}

function written(): number {
  const m = /^wchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'));
  return Number(m?.[1] ?? 0);
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

const dir = mkdtempSync(join(tmpdir(), 'postbote-store-writes-'));
const store = new SqliteStore(join(dir, 'postbote.db'));
try {
  await store.migrate();
  if (args.drop) {
    const db = new DatabaseSync(join(dir, 'postbote.db'));
    for (const name of args.drop.split(','))
      db.exec(name.startsWith('trigger:') ? `DROP TRIGGER ${name.slice(8)}` : `DROP INDEX ${name}`);
    db.close();
  }
  const accountId = newId(Date.now());
  await store.createAccount({ id: accountId, name: 'bench', createdAt: Date.now() });
  const body = Buffer.alloc(Number(args.size), 'x');

  function message(): NewMessage {
    const now = Date.now();
    const address = `user${randomBytes(4).toString('hex')}@example.net`;
    return {
      id: newId(now),
      accountId,
      credentialId: null,
      mailFrom: 'sender@example.com',
      recipients: [{ address, domain: 'example.net' }],
      body,
      messageIdHeader: `<${randomBytes(12).toString('hex')}@example.com>`,
      subject: 'bench',
      source: 'smtp',
      clientIp: '127.0.0.1',
      dsn: {},
      dsnOnFailure: true,
      receivedAt: now,
      stream: 'outbound',
      kind: 'transactional',
    };
  }

  function delivered(r: LeasedRecipient): Outcome {
    return {
      at: Date.now(),
      recipientId: r.id,
      messageId: r.messageId,
      accountId: r.accountId,
      recipient: r.address,
      state: 'delivered',
      attempted: true,
      reply: { code: 250, enhanced: '2.0.0', text: 'Ok: queued as X' },
      event: { type: 'delivered', data: { mxHost: 'mx.example.net', mxIp: '127.0.0.1' } },
      site: 'example.net',
    };
  }

  const phases = { intake: { bytes: 0, cpu: 0 }, lease: { bytes: 0, cpu: 0 }, outcome: { bytes: 0, cpu: 0 } };
  async function measure(phase: keyof typeof phases, fn: () => Promise<unknown>): Promise<void> {
    const b = written();
    const c = cpuMs();
    await fn();
    phases[phase].bytes += written() - b;
    phases[phase].cpu += cpuMs() - c;
  }

  let sent = 0;
  let done = 0;
  const leased: LeasedRecipient[] = [];
  while (done < total) {
    if (sent < total) {
      const batch = Array.from({ length: Math.min(intakeBatch, total - sent) }, message);
      await measure('intake', () => store.insertMessages(batch));
      sent += batch.length;
    }
    await measure('lease', async () => {
      const now = Date.now();
      leased.push(
        ...(await store.leaseDue({ owner: 'bench', now, limit: leaseBatch, leaseUntil: now + 60_000 })),
      );
    });
    while (leased.length >= outcomeBatch || (sent === total && leased.length > 0)) {
      const batch = leased.splice(0, outcomeBatch);
      await measure('outcome', () => store.recordOutcomes('bench', batch.map(delivered)));
      done += batch.length;
    }
  }

  console.log(
    `store writes per message (${total} messages; intake ${intakeBatch}, lease ${leaseBatch}, outcomes ${outcomeBatch} per call):`,
  );
  let bytes = 0;
  let cpu = 0;
  for (const [phase, m] of Object.entries(phases)) {
    bytes += m.bytes;
    cpu += m.cpu;
    console.log(
      `  ${phase.padEnd(8)} ${(m.bytes / total / 1024).toFixed(1).padStart(6)} KB  ${((m.cpu / total) * 1000).toFixed(0).padStart(4)} µs CPU`,
    );
  }
  console.log(
    `  ${'total'.padEnd(8)} ${(bytes / total / 1024).toFixed(1).padStart(6)} KB  ${((cpu / total) * 1000).toFixed(0).padStart(4)} µs CPU`,
  );
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
