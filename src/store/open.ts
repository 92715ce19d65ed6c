import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import { SqliteStore } from './sqlite/sqlite-store.ts';
import { createThreadedSqliteStore } from './sqlite/threaded-store.ts';
import type { Store } from './store.ts';

/**
 * Opens (and migrates) the store the configuration names. The server runs SQLite on its own
 * thread (`thread: true`) so commits never block SMTP; short CLI commands use it in-process.
 */
export async function openStore(config: Config, options: { thread?: boolean } = {}): Promise<Store> {
  if (config.database.url !== '') {
    throw new Error(
      `database.url "${config.database.url.replace(/\/\/[^@]*@/, '//…@')}": only the embedded SQLite store exists yet; leave database.url empty`,
    );
  }
  const path = join(config.data_dir, 'postbote.db');
  const store = options.thread ? createThreadedSqliteStore(path) : new SqliteStore(path);
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}
