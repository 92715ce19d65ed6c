/**
 * What the store writes and spends per message on the relay path, without SMTP or sockets:
 * intake commits, leases and delivered outcomes against SqliteStore in this process, in the
 * batch sizes the relay bench sees. Bytes come from /proc/self/io (wchar: every write syscall,
 * WAL frames and checkpoints), CPU from process.cpuUsage. Unlike throughput, both are steady
 * from run to run, so a change to the schema or the statements can be compared exactly.
 *
 * With `--store postgres` the same calls go to a PostgresStore on a fresh schema of
 * POSTBOTE_TEST_PG_URL (default the local test database), and the figures are the CPU of the
 * database server (when it runs on this machine) and of this process, per message.
 *
 *   node bench/store-writes.ts [--store sqlite|postgres] [--messages 20000] [--intake 4] [--lease 4]
 *     [--outcomes 2] [--size 2000] [--drop INDEX,…]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { escapeIdentifier } from 'pg';
import { newId } from '../src/store/ids.ts';
import { PostgresStore } from '../src/store/postgres/postgres-store.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../src/store/store.ts';
import type { LeasedRecipient, NewMessage, Outcome } from '../src/store/types.ts';
import { testDatabaseUrl } from '../test/support/postgres.ts';
import { connectPostgres, describeServer, freshSchemaName, serverCpuSeconds } from './lib/postgres.ts';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    intake: { type: 'string', default: '4' },
    lease: { type: 'string', default: '4' },
    outcomes: { type: 'string', default: '2' },
    size: { type: 'string', default: '2000' },
    drop: { type: 'string', default: '' },
    store: { type: 'string', default: 'sqlite' },
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

if (args.store !== 'sqlite' && args.store !== 'postgres') throw new Error('--store is sqlite or postgres');
const onPostgres = args.store === 'postgres';
if (onPostgres && args.drop) throw new Error('--drop is for SQLite');

const dir = mkdtempSync(join(tmpdir(), 'postbote-store-writes-'));
let store: Store;
/** CPU seconds of the database server so far (PostgreSQL on this machine), else 0. */
let serverCpu = (): number => 0;
let cleanup = async (): Promise<void> => {};
if (onPostgres) {
  const url = testDatabaseUrl;
  const conn = await connectPostgres(url);
  if ('reason' in conn) throw new Error(conn.reason);
  const { postmasterPid } = await describeServer(conn.client);
  if (postmasterPid !== undefined) serverCpu = () => serverCpuSeconds(postmasterPid);
  const schema = freshSchemaName('postbote_store_writes');
  store = new PostgresStore({ url, schema, poolSize: 4 });
  cleanup = async () => {
    await conn.client.query(`DROP SCHEMA IF EXISTS ${escapeIdentifier(schema)} CASCADE`);
    await conn.client.end();
  };
} else {
  store = new SqliteStore(join(dir, 'postbote.db'));
}
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

  const phases = {
    intake: { bytes: 0, cpu: 0, server: 0 },
    lease: { bytes: 0, cpu: 0, server: 0 },
    outcome: { bytes: 0, cpu: 0, server: 0 },
  };
  async function measure(phase: keyof typeof phases, fn: () => Promise<unknown>): Promise<void> {
    // Reading the server's CPU (/proc of each of its processes) costs this process CPU of its
    // own: outside the span measured for this process.
    const sc = serverCpu();
    const b = written();
    const c = cpuMs();
    await fn();
    phases[phase].bytes += written() - b;
    phases[phase].cpu += cpuMs() - c;
    phases[phase].server += (serverCpu() - sc) * 1000;
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

  const perMessage = (ms: number): string => `${((ms / total) * 1000).toFixed(0).padStart(4)} µs`;
  if (onPostgres) {
    console.log(
      `PostgreSQL store per message (${total} messages; intake ${intakeBatch}, lease ${leaseBatch}, outcomes ${outcomeBatch} per call):`,
    );
    let cpu = 0;
    let server = 0;
    for (const [phase, m] of Object.entries(phases)) {
      cpu += m.cpu;
      server += m.server;
      console.log(
        `  ${phase.padEnd(8)} server CPU ${perMessage(m.server)}  this process ${perMessage(m.cpu)}`,
      );
    }
    console.log(`  ${'total'.padEnd(8)} server CPU ${perMessage(server)}  this process ${perMessage(cpu)}`);
  } else {
    console.log(
      `store writes per message (${total} messages; intake ${intakeBatch}, lease ${leaseBatch}, outcomes ${outcomeBatch} per call):`,
    );
    let bytes = 0;
    let cpu = 0;
    for (const [phase, m] of Object.entries(phases)) {
      bytes += m.bytes;
      cpu += m.cpu;
      console.log(
        `  ${phase.padEnd(8)} ${(m.bytes / total / 1024).toFixed(1).padStart(6)} KB  ${perMessage(m.cpu)} CPU`,
      );
    }
    console.log(
      `  ${'total'.padEnd(8)} ${(bytes / total / 1024).toFixed(1).padStart(6)} KB  ${perMessage(cpu)} CPU`,
    );
  }
} finally {
  await store.close();
  await cleanup();
  rmSync(dir, { recursive: true, force: true });
}
