import { randomBytes } from 'node:crypto';
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
