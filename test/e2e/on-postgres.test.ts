/**
 * The end-to-end suites again, on the PostgreSQL store: every Postbote process they start runs
 * with database.url (a schema per data dir, dropped at the end). Skips where PostgreSQL is not
 * reachable, fails in CI.
 */
import { after } from 'node:test';
import { escapeIdentifier } from 'pg';
import { postgresOrSkip } from '../support/postgres.ts';

process.env.POSTBOTE_TEST_STORE = 'postgres';
const admin = await postgresOrSkip('the e2e suites on postgres');

if (admin) {
  const { testSchemas } = await import('../support/postbote-process.ts');
  after(async () => {
    for (const schema of testSchemas)
      await admin.query(`DROP SCHEMA IF EXISTS ${escapeIdentifier(schema)} CASCADE`);
    await admin.end();
  });
  await import('./relay.test.ts');
  await import('./policy.test.ts');
  await import('./cli.test.ts');
  await import('./gc.test.ts');
  await import('./crash.test.ts');
}
