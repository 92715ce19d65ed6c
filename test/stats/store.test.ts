/** The statistics store contract on every adapter setup: SQLite in-process, on its thread, through a port, PostgreSQL. */
import { join } from 'node:path';
import { after } from 'node:test';
import { escapeIdentifier } from 'pg';
import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { createThreadedSqliteStore, storeFromPort } from '../../src/store/sqlite/threaded-store.ts';
import type { Store } from '../../src/store/store.ts';
import { freshSchemaName, postgresOrSkip, testDatabaseUrl } from '../support/postgres.ts';
import { tempDir } from '../support/temp-dir.ts';
import { statsStoreContract } from './store-contract.ts';

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

statsStoreContract(
  'sqlite',
  inTempDir((path) => new SqliteStore(path)),
);
statsStoreContract('sqlite on a worker thread', inTempDir(createThreadedSqliteStore));
statsStoreContract('sqlite through a port', async () => {
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

const admin = await postgresOrSkip('the postgres statistics store tests');
if (admin) {
  after(() => admin.end());
  statsStoreContract('postgres', async () => {
    const schema = freshSchemaName('postbote_stats');
    const store = new PostgresStore({ url: testDatabaseUrl, schema, poolSize: 4 });
    await store.migrate();
    return {
      store,
      cleanup: async () => {
        await store.close();
        await admin.query(`DROP SCHEMA IF EXISTS ${escapeIdentifier(schema)} CASCADE`);
      },
    };
  });
}
