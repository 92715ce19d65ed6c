import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { it } from 'node:test';
import { migrations } from '../../src/store/sqlite/migrations.ts';
import { SchemaTooNewError, SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { createThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';
import { tempDir } from '../support/temp-dir.ts';
import { SQLITE_SETUPS, sqliteThroughPort } from './adapters.ts';
import { sampleMessage, storeContract, T0 } from './contract.ts';
import { dashboardContract } from './dashboard-contract.ts';
import { guardContract } from './guard-contract.ts';
import { trackingContract } from './tracking-contract.ts';

// Every contract in-process and on the store thread; the main one also through a port, the
// way the delivery thread reaches the store thread.
for (const [name, open] of SQLITE_SETUPS) {
  storeContract(name, open);
  if (open === sqliteThroughPort) continue;
  for (const contract of [trackingContract, guardContract, dashboardContract]) contract(name, open);
}

it('sqlite on a worker thread: errors keep their meaning across the thread', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'postbote.db');
  const first = createThreadedSqliteStore(path);
  await first.migrate();
  await first.createAccount({ id: 'a1', name: 'dup', createdAt: 1 });
  await assert.rejects(first.createAccount({ id: 'a2', name: 'dup', createdAt: 1 }), /UNIQUE/);
  await first.close();
  const db = new DatabaseSync(path);
  db.exec('INSERT INTO schema_version (version) VALUES (999)');
  db.close();
  const again = createThreadedSqliteStore(path);
  await assert.rejects(again.migrate(), SchemaTooNewError);
  await again.close();
  dir.cleanup();
});

it('sqlite on a worker thread: an argument that cannot cross the thread fails its call, not the process', async () => {
  const dir = tempDir();
  const store = createThreadedSqliteStore(join(dir.path, 'postbote.db'));
  await store.migrate();
  const bad = { id: 'x', name: 'x', createdAt: 1, oops: () => {} } as unknown as Parameters<
    typeof store.createAccount
  >[0];
  await assert.rejects(store.createAccount(bad), /could not be sent to the store thread/);
  assert.deepEqual(await store.listAccounts(), []);
  await store.close();
  dir.cleanup();
});

it('sqlite: runs with WAL and synchronous=FULL (250 means durable)', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'postbote.db');
  const store = new SqliteStore(path);
  await store.migrate();
  const db = new DatabaseSync(path);
  assert.equal((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal');
  db.close();
  await store.close();
  dir.cleanup();
});

it('sqlite: refuses a schema newer than the code', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'postbote.db');
  const store = new SqliteStore(path);
  await store.migrate();
  await store.close();
  const db = new DatabaseSync(path);
  db.exec('INSERT INTO schema_version (version) VALUES (999)');
  db.close();
  const again = new SqliteStore(path);
  await assert.rejects(again.migrate(), SchemaTooNewError);
  await again.close();
  dir.cleanup();
});

it('sqlite: the streams schema (v4) only adds: earlier data gets the defaults, v3 statements still work', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'postbote.db');
  const db = new DatabaseSync(path);
  db.exec('CREATE TABLE schema_version (version INTEGER NOT NULL)');
  for (const [i, version] of migrations.slice(0, 3).entries()) {
    for (const sql of version) db.exec(sql);
    db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(i + 1);
  }
  // What a v3 node writes: no stream, weight or kind anywhere.
  const v3Insert = (id: string) => {
    db.prepare(
      `INSERT INTO messages (id, account_id, credential_id, mail_from, message_id_header, subject, size, source,
         client_ip, dsn, dsn_on_failure, received_at, body) VALUES (?, 'a1', NULL, '', '', '', 1, 'smtp', '', '{}', 0, 1, x'00')`,
    ).run(id);
    db.prepare(
      `INSERT INTO recipients (message_id, account_id, address, domain, state, next_attempt_at, created_at,
         updated_at, dsn) VALUES (?, 'a1', 'x@one.test', 'one.test', 'queued', 1, 1, 1, '{}')`,
    ).run(id);
  };
  db.exec(`INSERT INTO accounts (id, name, created_at) VALUES ('a1', 'old', 1)`);
  db.exec(
    `INSERT INTO credentials (id, account_id, kind, name, secret_hash, created_at) VALUES ('c1', 'a1', 'smtp', 'u', 'h', 1)`,
  );
  v3Insert('m-before');
  const store = new SqliteStore(path);
  await store.migrate();
  v3Insert('m-after');
  db.close();
  assert.equal((await store.getAccount('a1'))?.weight, 1);
  assert.equal((await store.getCredential('c1'))?.defaultStream, '');
  assert.deepEqual(
    (await store.listStreams('a1')).map((s) => s.name),
    ['broadcast', 'outbound'],
  );
  for (const id of ['m-before', 'm-after']) {
    assert.equal((await store.getMessage(id))?.stream, 'outbound');
    assert.deepEqual(
      (await store.getRecipients(id)).map((r) => [r.stream, r.kind]),
      [['outbound', 'transactional']],
    );
  }
  assert.equal((await store.leaseDue({ owner: 'n', now: 1, limit: 10, leaseUntil: 2 })).length, 2);
  await store.close();
  dir.cleanup();
});

it('sqlite: the sending domains schema (v8): existing accounts keep sending as any domain, new ones start verified', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'postbote.db');
  const db = new DatabaseSync(path);
  db.exec('CREATE TABLE schema_version (version INTEGER NOT NULL)');
  for (const [i, version] of migrations.slice(0, 7).entries()) {
    for (const sql of version) db.exec(sql);
    db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(i + 1);
  }
  db.exec(`INSERT INTO accounts (id, name, created_at) VALUES ('a1', 'old', 1)`);
  const store = new SqliteStore(path);
  await store.migrate();
  // What a v7 node writes: no sender policy.
  db.exec(`INSERT INTO accounts (id, name, created_at) VALUES ('a2', 'beside', 1)`);
  db.close();
  assert.deepEqual(
    (await store.listAccounts()).map((a) => [a.id, a.senderPolicy]),
    [
      ['a2', 'verified'],
      ['a1', 'any'],
    ],
  );
  assert.deepEqual(await store.listDomains(), []);
  await store.close();
  dir.cleanup();
});

it('sqlite: with many accounts waiting, a lease looks at 200 per lane and the next lease goes on from there', async () => {
  const store = new SqliteStore(':memory:');
  try {
    await store.migrate();
    const accounts = Array.from({ length: 250 }, (_, i) => `acct-${String(i).padStart(3, '0')}`);
    for (const id of accounts) await store.createAccount({ id, name: id, createdAt: T0 });
    await store.insertMessages(accounts.map((id) => sampleMessage(id, [`r@${id}.test`])));
    const lease = () => store.leaseDue({ owner: 'n1', now: T0, limit: 1000, leaseUntil: T0 + 60_000 });
    const first = await lease();
    assert.equal(first.length, 200, 'one share per account looked at');
    const second = await lease();
    assert.equal(second.length, 50, 'the rest, from where the first lease stopped');
    assert.deepEqual(
      new Set([...first, ...second].map((r) => r.accountId)),
      new Set(accounts),
      'every account had its turn',
    );
    assert.deepEqual(await lease(), []);
  } finally {
    await store.close();
  }
});
