/**
 * The relay end to end on the PostgreSQL store (database.url): submission → durable queue in
 * PostgreSQL → MX delivery, the CLI against the same database, and a restart on it. Each run
 * uses a schema of its own, dropped afterwards. Skips where PostgreSQL is not reachable,
 * fails in CI.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { escapeIdentifier } from 'pg';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { listMessages, showMessage, simpleMessage, stopPostbote, submit } from '../support/e2e-harness.ts';
import { type PostboteProcess, startPostboteProcess, waitFor } from '../support/postbote-process.ts';
import { freshSchemaName, postgresOrSkip, testDatabaseUrl } from '../support/postgres.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

const admin = await postgresOrSkip('the postgres e2e tests');

if (admin) {
  describe('relay on the PostgreSQL store', { timeout: 90_000 }, () => {
    const dir = tempDir('postbote-e2e-pg-');
    const schema = freshSchemaName('postbote_e2e');
    let dns: TestDnsServer;
    let sink: ScriptedSink;
    let postbote: PostboteProcess | undefined;
    let env: Record<string, string> = {};

    before(async () => {
      sink = await startScriptedSink({ host: '127.0.0.2', hostname: 'mx.pg.test' });
      dns = await startDnsServer({
        zones: {
          'pg.test': { MX: [{ preference: 10, exchange: 'mx.pg.test' }] },
          'mx.pg.test': { A: ['127.0.0.2'] },
          'sender.test': { MX: [{ preference: 0, exchange: '.' }] },
        },
      });
      env = {
        POSTBOTE_DATABASE__URL: testDatabaseUrl,
        POSTBOTE_DATABASE__SCHEMA: schema,
        POSTBOTE_DNS__SERVERS: dns.address,
        POSTBOTE_DELIVERY__PORT: String(sink.port),
        POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
      };
      postbote = await startPostboteProcess({ dataDir: dir.path, env });
      await postbote.cli(['accounts', 'create', 'shop', '--sender-policy', 'any']);
      await postbote.cli(['credentials', 'create', '--account', 'shop', '--ip', '127.0.0.0/8']);
    });

    after(async () => {
      await stopPostbote(postbote);
      await sink?.close();
      await dns?.close();
      await admin.query(`DROP SCHEMA IF EXISTS ${escapeIdentifier(schema)} CASCADE`);
      await admin.end();
      dir.cleanup();
    });

    it('accepts over SMTP, stores in PostgreSQL and delivers; the CLI reads the same database', async () => {
      assert.ok(postbote);
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const to = `user${i}@pg.test`;
        ids.push(
          await submit(postbote.submissionPort, {
            from: 'app@sender.test',
            to: [to],
            message: simpleMessage({ from: 'app@sender.test', to, subject: `pg ${i}` }),
          }),
        );
      }
      await waitFor(() => sink.transactions.length >= 20 || undefined, { what: '20 deliveries at the sink' });
      const shown = await showMessage(postbote, ids[0] ?? '');
      assert.equal(shown.recipients[0]?.state, 'delivered');
      assert.ok(shown.events.some((e) => e.type === 'delivered' && e.data.attempt === 1));
      const tables = await admin.query(
        'SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1',
        [schema],
      );
      assert.ok((tables.rows[0] as { n: number }).n >= 5, 'the tables live in the configured schema');
      const delivered = await listMessages(postbote, ['--status', 'delivered', '--limit', '100']);
      assert.equal(delivered.length, 20);
    });

    it('a restart on the same database picks up where it left off', async () => {
      await stopPostbote(postbote);
      postbote = await startPostboteProcess({ dataDir: dir.path, env });
      const before = sink.transactions.length;
      const id = await submit(postbote.submissionPort, {
        from: 'app@sender.test',
        to: ['again@pg.test'],
        message: simpleMessage({ from: 'app@sender.test', to: 'again@pg.test', subject: 'after restart' }),
      });
      await waitFor(() => sink.transactions.length > before || undefined, { what: 'delivery after restart' });
      await waitFor(
        async () => (await showMessage(postbote!, id)).recipients[0]?.state === 'delivered' || undefined,
        {
          what: 'the delivered state',
        },
      );
    });
  });
}
