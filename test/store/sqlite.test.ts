import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { it } from 'node:test';
import { SchemaTooNewError, SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { createThreadedSqliteStore, storeFromPort } from '../../src/store/sqlite/threaded-store.ts';
import type { Store } from '../../src/store/store.ts';
import { tempDir } from '../support/temp-dir.ts';
import { storeContract } from './contract.ts';

/** A migrated store of the given form in a fresh temp dir, removed on cleanup. */
function inTempDir(open: (path: string) => Store) {
  return async () => {
    const dir = tempDir();
    const store = open(join(dir.path, 'postbote.db'));
    await store.migrate();
    return {
      store,
      cleanup: async () => {
        await store.close();
        dir.cleanup();
      },
    };
  };
}

storeContract(
  'sqlite',
  inTempDir((path) => new SqliteStore(path)),
);
storeContract('sqlite on a worker thread', inTempDir(createThreadedSqliteStore));

// The delivery thread reaches the store thread through a port: the same contract must hold.
storeContract('sqlite through a port shared with another thread', async () => {
  const dir = tempDir();
  const owner = createThreadedSqliteStore(join(dir.path, 'postbote.db'));
  await owner.migrate();
  const store = storeFromPort(owner.openPort());
  return {
    store,
    cleanup: async () => {
      await store.close();
      await owner.close();
      dir.cleanup();
    },
  };
});

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
