import { join } from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import type { Config } from '../config/schema.ts';
import type { PostgresStore } from './postgres/postgres-store.ts';
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

/**
 * The adapters are loaded when opened, so a process loads only the one it uses: a CLI command on
 * SQLite does not load the PostgreSQL driver (about 35 modules).
 */
async function postgres(config: Config): Promise<PostgresStore> {
  const { PostgresStore } = await import('./postgres/postgres-store.ts');
  return new PostgresStore({
    url: config.database.url,
    schema: config.database.schema,
    preparedStatements: config.database.prepared_statements,
  });
}

/** Opens (and migrates) the configured store in-process: CLI commands, and PostgreSQL everywhere. */
export async function openStore(config: Config): Promise<Store> {
  if (config.database.url !== '') return migrated(await postgres(config));
  const { SqliteStore } = await import('./sqlite/sqlite-store.ts');
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
    return Object.assign(await migrated(await postgres(config)), { openPort: () => null });
  }
  const { createThreadedSqliteStore } = await import('./sqlite/threaded-store.ts');
  return migrated(createThreadedSqliteStore(join(config.data_dir, 'postbote.db')));
}
