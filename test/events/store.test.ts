import { join } from 'node:path';
import { after } from 'node:test';
import { escapeIdentifier } from 'pg';
import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { createThreadedSqliteStore, storeFromPort } from '../../src/store/sqlite/threaded-store.ts';
import type { Store } from '../../src/store/store.ts';
import { freshSchemaName, postgresOrSkip, testDatabaseUrl } from '../support/postgres.ts';
import { tempDir } from '../support/temp-dir.ts';
import { eventsStoreContract } from './store-contract.ts';

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

eventsStoreContract(
  'sqlite',
  inTempDir((path) => new SqliteStore(path)),
);
eventsStoreContract('sqlite on a worker thread', inTempDir(createThreadedSqliteStore));
eventsStoreContract('sqlite through a port', async () => {
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

const admin = await postgresOrSkip('the postgres event store tests');
if (admin) {
  after(() => admin.end());
  eventsStoreContract('postgres', async () => {
    const schema = freshSchemaName('postbote_events');
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
