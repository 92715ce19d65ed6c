/**
 * The store setups every contract runs on: SQLite in-process, on its worker thread, through a
 * port shared with another thread (the delivery thread's view), and PostgreSQL in a fresh schema
 * (dropped afterwards; skipped with the reason where no PostgreSQL is reachable).
 */
import { join } from 'node:path';
import { after } from 'node:test';
import { escapeIdentifier } from 'pg';
import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { createThreadedSqliteStore, storeFromPort } from '../../src/store/sqlite/threaded-store.ts';
import type { Store } from '../../src/store/store.ts';
import { freshSchemaName, postgresOrSkip, testDatabaseUrl } from '../support/postgres.ts';
import { tempDir } from '../support/temp-dir.ts';

export type OpenStore = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

/** A migrated store of the given form in a fresh temp dir, removed on cleanup. */
export function sqliteInTempDir(open: (path: string) => Store): OpenStore {
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

/** The threaded store seen through a port of its worker, as the delivery thread sees it. */
export const sqliteThroughPort: OpenStore = async () => {
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
};

/** The three SQLite forms, by name. */
export const SQLITE_SETUPS: readonly [string, OpenStore][] = [
  ['sqlite', sqliteInTempDir((path) => new SqliteStore(path))],
  ['sqlite on a worker thread', sqliteInTempDir(createThreadedSqliteStore)],
  ['sqlite through a port', sqliteThroughPort],
];

/**
 * The PostgreSQL setup (a fresh schema per store, dropped on cleanup), or undefined when no
 * PostgreSQL is reachable (postgresOrSkip registers the skip or, in CI, the failure).
 */
export async function postgresSetup(what: string): Promise<OpenStore | undefined> {
  const admin = await postgresOrSkip(what);
  if (!admin) return undefined;
  after(() => admin.end());
  return async () => {
    const schema = freshSchemaName('postbote_test');
    const store = new PostgresStore({ url: testDatabaseUrl, schema, poolSize: 4 });
    await store.migrate();
    return {
      store,
      cleanup: async () => {
        await store.close();
        await admin.query(`DROP SCHEMA IF EXISTS ${escapeIdentifier(schema)} CASCADE`);
      },
    };
  };
}

/** Registers `contract` on every setup: the SQLite forms, then PostgreSQL where reachable. */
export async function onEveryStore(
  what: string,
  contract: (name: string, open: OpenStore) => void,
): Promise<void> {
  for (const [name, open] of SQLITE_SETUPS) contract(name, open);
  const postgres = await postgresSetup(what);
  if (postgres) contract('postgres', postgres);
}

/** Runs `fn` on a freshly opened store and always cleans it up (each contract test starts empty). */
export function withStoreOf(open: OpenStore): (fn: (store: Store) => Promise<void>) => Promise<void> {
  return async (fn) => {
    const { store, cleanup } = await open();
    try {
      await fn(store);
    } finally {
      await cleanup();
    }
  };
}
