import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { it } from 'node:test';
import pg, { Client } from 'pg';

/** CI provides PostgreSQL here (trust auth); elsewhere tests that need it skip without it. */
export const testDatabaseUrl =
  process.env.POSTBOTE_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

/** A connected client for creating and dropping test schemas, or why there is none. */
export async function connectAdmin(): Promise<{ admin: Client } | { reason: string }> {
  const admin = new Client({ connectionString: testDatabaseUrl, connectionTimeoutMillis: 2000 });
  // A server that drops the connection later must not crash the test process.
  admin.on('error', () => {});
  const started = Date.now();
  try {
    await admin.connect();
    return { admin };
  } catch (err) {
    await admin.end().catch(() => {});
    // pg reports its connect timeout as a terminated connection; say what happened.
    const why = Date.now() - started >= 2000 ? 'no answer within 2 s' : (err as Error).message;
    return { reason: `PostgreSQL not reachable at ${testDatabaseUrl.replace(/\/\/[^@]*@/, '//…@')}: ${why}` };
  }
}

/** A schema name no other test run uses. */
export function freshSchemaName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/**
 * An admin client when PostgreSQL is reachable. Otherwise registers one test that says why
 * (skipped on a machine without PostgreSQL, failing when CI is set, where it is part of the
 * machine) and returns undefined: `const admin = await postgresOrSkip('the x tests'); if (admin) …`
 */
export async function postgresOrSkip(what: string): Promise<Client | undefined> {
  const connected = await connectAdmin();
  if (!('reason' in connected)) return connected.admin;
  if (process.env.CI) {
    it(`${what}: the database is reachable (required when CI is set)`, () => assert.fail(connected.reason));
  } else {
    console.log(`# skipping ${what}: ${connected.reason}`);
    it(what, { skip: connected.reason }, () => {});
  }
  return undefined;
}

/** A query some pg client sent: its text, and its name when it is a named prepared statement. */
export interface SentQuery {
  name?: string;
  text: string;
}

/** Records the queries every pg client sends from now until `stop()`. */
export function recordQueries(): { queries: SentQuery[]; stop: () => void } {
  const queries: SentQuery[] = [];
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const config = args[0] as { name?: unknown; text?: unknown } | string | undefined;
    const text = typeof config === 'string' ? config : config?.text;
    if (typeof text === 'string') {
      const name = typeof config === 'object' && typeof config.name === 'string' ? config.name : undefined;
      queries.push(name === undefined ? { text } : { name, text });
    }
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  return {
    queries,
    stop: () => {
      pg.Client.prototype.query = original;
    },
  };
}

/**
 * The plan `client` (with its settings: search_path, plan_cache_mode) makes for `text` prepared
 * and executed with `args` (a parenthesised list of SQL literals; by default a NULL of each
 * parameter's inferred type).
 */
export async function explainPrepared(client: Client, text: string, args?: string): Promise<string> {
  await client.query(`PREPARE explained AS ${text}`);
  try {
    let list = args;
    if (list === undefined) {
      const { rows } = await client.query(
        `SELECT parameter_types::text[] AS types FROM pg_prepared_statements WHERE name = 'explained'`,
      );
      const types = (rows[0]?.types ?? []) as string[];
      list = types.length > 0 ? `(${types.map((t) => `NULL::${t}`).join(', ')})` : '';
    }
    const { rows } = await client.query(`EXPLAIN EXECUTE explained${list}`);
    return rows.map((r) => String(r['QUERY PLAN'])).join('\n');
  } finally {
    await client.query('DEALLOCATE explained');
  }
}
