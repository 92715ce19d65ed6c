import { join } from 'node:path';
import type { Config } from '../config/schema.ts';
import { SqliteStore } from './sqlite/sqlite-store.ts';
import type { Store } from './store.ts';

/** Opens (and migrates) the store the configuration names. */
export async function openStore(config: Config): Promise<Store> {
  if (config.database.url !== '') {
    throw new Error(
      `database.url "${config.database.url.replace(/\/\/[^@]*@/, '//…@')}": only the embedded SQLite store exists yet; leave database.url empty`,
    );
  }
  const store = new SqliteStore(join(config.data_dir, 'postbote.db'));
  await store.migrate();
  return store;
}
