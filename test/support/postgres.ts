import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { it } from 'node:test';
import { Client } from 'pg';

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
