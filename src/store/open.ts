import { join } from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import type { Config } from '../config/schema.ts';
import { PostgresStore } from './postgres/postgres-store.ts';
import { SqliteStore } from './sqlite/sqlite-store.ts';
import { createThreadedSqliteStore } from './sqlite/threaded-store.ts';
import type { Store } from './store.ts';

async function migrated<S extends Store>(store: S): Promise<S> {
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}

function postgres(config: Config): PostgresStore {
  return new PostgresStore({
    url: config.database.url,
    schema: config.database.schema,
    preparedStatements: config.database.prepared_statements,
  });
}

/** Opens (and migrates) the configured store in-process: CLI commands, and PostgreSQL everywhere. */
export function openStore(config: Config): Promise<Store> {
  if (config.database.url !== '') return migrated(postgres(config));
  return migrated(new SqliteStore(join(config.data_dir, 'postbote.db')));
}

/** The server's store, and how another thread reaches it. */
export type ServerStore = Store & { openPort(): MessagePort | null };

/**
 * The server's store. SQLite runs on its own thread (commits never block SMTP) and the
 * delivery thread shares it through a port (`openPort`). PostgreSQL needs no thread of its
 * own: the driver is asynchronous, and the delivery thread opens its own pool (`openPort`
 * returns null).
 */
export async function openServerStore(config: Config): Promise<ServerStore> {
  if (config.database.url !== '') {
    return Object.assign(await migrated(postgres(config)), { openPort: () => null });
  }
  return migrated(createThreadedSqliteStore(join(config.data_dir, 'postbote.db')));
}
