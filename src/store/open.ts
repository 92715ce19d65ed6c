import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import { SqliteStore } from './sqlite/sqlite-store.ts';
import { createThreadedSqliteStore, type ThreadedStore } from './sqlite/threaded-store.ts';
import type { Store } from './store.ts';

function sqlitePath(config: Config): string {
  if (config.database.url !== '') {
    throw new Error(
      `database.url "${config.database.url.replace(/\/\/[^@]*@/, '//…@')}": only the embedded SQLite store exists yet; leave database.url empty`,
    );
  }
  return join(config.data_dir, 'postbote.db');
}

async function migrated<S extends Store>(store: S): Promise<S> {
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}

/** Opens (and migrates) the store in-process: short CLI commands. */
export function openStore(config: Config): Promise<Store> {
  return migrated(new SqliteStore(sqlitePath(config)));
}

/**
 * The server's store: SQLite on its own thread, so commits never block SMTP; the delivery
 * thread shares it through a port.
 */
export function openThreadedStore(config: Config): Promise<ThreadedStore> {
  return migrated(createThreadedSqliteStore(sqlitePath(config)));
}
