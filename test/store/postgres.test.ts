import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg, { escapeIdentifier } from 'pg';
import { migrations } from '../../src/store/postgres/migrations.ts';
import {
  PostgresStore,
  RECORD_OUTCOMES,
  SchemaTooNewError,
} from '../../src/store/postgres/postgres-store.ts';
import type { LeaseRequest } from '../../src/store/types.ts';
import { sampleOutcome } from '../support/outcomes.ts';
import {
  explainPrepared,
  freshSchemaName,
  postgresOrSkip,
  recordQueries,
  type SentQuery,
  testDatabaseUrl as url,
} from '../support/postgres.ts';
import { sampleMessage, storeContract, T0 } from './contract.ts';
import { dashboardContract } from './dashboard-contract.ts';
import { guardContract } from './guard-contract.ts';
import { trackingContract } from './tracking-contract.ts';

const admin = await postgresOrSkip('the postgres store tests');

/** The text of each named prepared statement among `queries`, by name. */
const preparedTexts = (queries: SentQuery[]): Map<string, string> =>
  new Map(queries.flatMap((q) => (q.name === undefined ? [] : [[q.name, q.text] as const])));

if (admin) {
  after(() => admin.end());

  /** A fresh schema name; dropped by the returned function. */
  const freshSchema = (): { schema: string; drop: () => Promise<void> } => {
    const schema = freshSchemaName('postbote_test');
    return {
      schema,
      drop: async () => {
        await admin.query(`DROP SCHEMA IF EXISTS ${escapeIdentifier(schema)} CASCADE`);
      },
    };
  };

  // One schema per contract test: each starts from a freshly migrated, empty database.
  const open = async () => {
    const { schema, drop } = freshSchema();
    const store = new PostgresStore({ url, schema, poolSize: 4 });
    await store.migrate();
    return {
      store,
      cleanup: async () => {
        await store.close();
        await drop();
      },
    };
  };
  for (const contract of [storeContract, trackingContract, guardContract, dashboardContract]) {
    contract('postgres', open);
  }

  describe('postgres store', () => {
    it('two nodes migrating at once both succeed and apply each version once', async () => {
      const { schema, drop } = freshSchema();
      const a = new PostgresStore({ url, schema, poolSize: 2 });
      const b = new PostgresStore({ url, schema, poolSize: 2 });
      try {
        await Promise.all([a.migrate(), b.migrate(), a.migrate()]);
        const { rows } = await admin.query(
          `SELECT version, count(*)::int AS n FROM ${escapeIdentifier(schema)}.schema_version GROUP BY version`,
        );
        assert.deepEqual(
          rows.sort((x, y) => x.version - y.version),
          migrations.map((_, i) => ({ version: i + 1, n: 1 })),
        );
        // Every table is in the schema, none in public.
        const tables = await admin.query(
          `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
          [schema],
        );
        assert.deepEqual(
          tables.rows.map((r) => r.table_name),
          [
            'account_retention',
            'accounts',
            'audit_log',
            'connection_slots',
            'credentials',
            'dashboard_sessions',
            'dashboard_users',
            'dkim_keys',
            'domains',
            'event_cursors',
            'event_tags',
            'events',
            'guard_state',
            'idempotency_keys',
            'message_variants',
            'messages',
            'nodes',
            'privacy_secrets',
            'recipients',
            'schema_version',
            'shaping_events',
            'soft_bounces',
            'stats_cursors',
            'stats_rollups',
            'streams',
            'suppressions',
            'template_versions',
            'templates',
            'webhook_attempts',
            'webhook_batches',
            'webhooks',
          ],
        );
      } finally {
        await a.close();
        await b.close();
        await drop();
      }
    });

    it('a node is told within moments when another node commits due work to its schema, not to others', async () => {
      const ours = freshSchema();
      const theirs = freshSchema();
      const a = new PostgresStore({ url, schema: ours.schema, poolSize: 2 });
      const b = new PostgresStore({ url, schema: ours.schema, poolSize: 2 });
      const other = new PostgresStore({ url, schema: theirs.schema, poolSize: 2 });
      let wakes = 0;
      try {
        await a.migrate();
        await other.migrate();
        await a.createAccount({ id: 'a1', name: 'shop', createdAt: T0 });
        await other.createAccount({ id: 'a1', name: 'shop', createdAt: T0 });
        const watch = await b.watchDue(() => wakes++);
        try {
          await other.insertMessages([sampleMessage('a1', ['x@one.test'])]);
          await new Promise((r) => setTimeout(r, 300));
          assert.equal(wakes, 0, 'work in another schema does not wake this one');
          const started = Date.now();
          // The notification follows the insert's commit instead of riding in it: PostgreSQL
          // serialises the commits of notifying transactions, which kept two nodes' intake
          // commits from sharing a WAL flush.
          const sent = recordQueries();
          try {
            await a.insertMessages([sampleMessage('a1', ['x@one.test'])]);
            while (wakes === 0 && Date.now() - started < 3000) await new Promise((r) => setTimeout(r, 10));
          } finally {
            sent.stop();
          }
          const texts = sent.queries.map((q) => q.text);
          assert.ok(wakes >= 1, 'woken by the other node');
          assert.ok(Date.now() - started < 1000, `woken after ${Date.now() - started} ms`);
          const insert = texts.find((t) => t.includes('INSERT INTO messages'));
          assert.ok(
            insert && !insert.includes('pg_notify'),
            'the insert does not notify in its own transaction',
          );
          assert.ok(texts.some((t) => t.includes('pg_notify')));
        } finally {
          await watch.stop();
        }
      } finally {
        await a.close();
        await b.close();
        await other.close();
        await ours.drop();
        await theirs.drop();
      }
    });

    it('refuses a schema newer than the code', async () => {
      const { schema, drop } = freshSchema();
      const store = new PostgresStore({ url, schema, poolSize: 1 });
      try {
        await store.migrate();
        await admin.query(`INSERT INTO ${escapeIdentifier(schema)}.schema_version (version) VALUES (999)`);
        await assert.rejects(store.migrate(), SchemaTooNewError);
        await assert.rejects(store.migrate(), /version 999.*upgrade this node/);
      } finally {
        await store.close();
        await drop();
      }
    });

    it('returns numbers for ids and times, Buffers for bodies, objects for JSON', async () => {
      const { schema, drop } = freshSchema();
      const store = new PostgresStore({ url, schema, poolSize: 2 });
      try {
        await store.migrate();
        await store.createAccount({ id: 'a1', name: 'acme', createdAt: T0 });
        const body = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x5c, 0x27, 0x22, 0x80]);
        await store.insertMessages([
          {
            ...sampleMessage('a1', ['x@one.test']),
            id: 'm1',
            body,
            dsn: { ret: 'HDRS', envid: 'e"1\\' },
            recipients: [{ address: 'x@one.test', domain: 'one.test', dsn: { notify: ['FAILURE'] } }],
          },
        ]);
        assert.deepEqual(await store.getBody('m1'), body);
        assert.ok((await store.getBody('m1')) instanceof Buffer);
        assert.equal(await store.getBody('nope'), undefined);
        assert.deepEqual((await store.getMessage('m1'))?.dsn, { ret: 'HDRS', envid: 'e"1\\' });
        const [r] = await store.getRecipients('m1');
        assert.equal(typeof r?.id, 'number');
        assert.equal(r?.nextAttemptAt, T0);
        assert.deepEqual(r?.dsn, { notify: ['FAILURE'] });
        const [leased] = await store.leaseDue({ owner: 'n1', now: T0, limit: 5, leaseUntil: T0 + 1 });
        assert.deepEqual(leased?.dsn, { notify: ['FAILURE'] });
        assert.equal(leased?.createdAt, T0);
        const [e] = await store.getEvents('m1');
        assert.equal(typeof e?.id, 'number');
        assert.deepEqual(e?.data, { size: body.length, source: 'smtp', clientIp: '127.0.0.1' });
      } finally {
        await store.close();
        await drop();
      }
    });

    it('a lease brings the bodies (up to 64 KB) of the copies it leases, each taken once; larger ones are read when asked for', async () => {
      const { schema, drop } = freshSchema();
      const store = new PostgresStore({ url, schema, poolSize: 2 });
      try {
        await store.migrate();
        await store.createAccount({ id: 'a1', name: 'acme', createdAt: T0 });
        const small = Buffer.from('Subject: small\r\n\r\nhi\r\n');
        const large = Buffer.alloc(100 * 1024, 'x');
        const copies = [
          Buffer.from('Subject: for x\r\n\r\nx\r\n'),
          Buffer.from('Subject: for y\r\n\r\ny\r\n'),
        ];
        await store.insertMessages([
          { ...sampleMessage('a1', ['a@one.test', 'b@one.test']), id: 'small', body: small },
          { ...sampleMessage('a1', ['c@one.test']), id: 'large', body: large },
          {
            ...sampleMessage('a1', []),
            id: 'personal',
            body: Buffer.alloc(0),
            recipients: [
              { address: 'x@one.test', domain: 'one.test', variant: 1 },
              { address: 'y@one.test', domain: 'one.test', variant: 2 },
            ],
            variants: copies,
          },
        ]);
        const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 10, leaseUntil: T0 + 60_000 });
        assert.equal(leased.length, 5);
        // The table loses the bodies behind the store's back: what getBody still returns came with
        // the lease; what it no longer finds would have been a read of its own.
        await admin.query(`UPDATE ${escapeIdentifier(schema)}.messages SET body = NULL`);
        await admin.query(`UPDATE ${escapeIdentifier(schema)}.message_variants SET body = NULL`);
        assert.deepEqual(await store.getBody('small'), small, 'one copy for both of its recipients');
        assert.deepEqual(await store.getBody('personal', 1), copies[0]);
        assert.deepEqual(await store.getBody('personal', 2), copies[1]);
        assert.equal(await store.getBody('large'), undefined, 'a body over 64 KB is read when asked for');
        assert.equal(await store.getBody('small'), undefined, 'taken once: asked again, it is read');
      } finally {
        await store.close();
        await drop();
      }
    });

    it('the delivery path keeps working on its prepared statements after a newer node adds columns', async () => {
      const { schema, drop } = freshSchema();
      // One connection per pool: every statement below reuses the plans prepared by the first round.
      const store = new PostgresStore({ url, schema, poolSize: 1 });
      try {
        await store.migrate();
        await store.createAccount({ id: 'a1', name: 'acme', createdAt: T0 });
        await store.upsertSuppressions([
          {
            accountId: 'a1',
            address: 'gone@one.test',
            scope: '',
            reason: 'hard_bounce',
            category: 'unknown_user',
            source: 'test',
            details: '',
            createdAt: T0,
            expiresAt: null,
          },
        ]);
        const round = async (n: number) => {
          const found = await store.findSuppressions({
            accountId: 'a1',
            stream: 'outbound',
            addresses: ['gone@one.test', `r${n}@one.test`],
            now: T0,
          });
          assert.deepEqual(
            found.map((f) => [f.address, f.reason]),
            [['gone@one.test', 'hard_bounce']],
          );
          await store.insertMessages([{ ...sampleMessage('a1', [`r${n}@one.test`]), id: `m${n}` }]);
          const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 5, leaseUntil: T0 + 60_000 });
          assert.deepEqual(
            leased.map((r) => r.address),
            [`r${n}@one.test`],
          );
          assert.ok((await store.getBody(`m${n}`))?.length);
          await store.renewLeases({ owner: 'n1', ids: leased.map((r) => r.id), leaseUntil: T0 + 120_000 });
          assert.equal(await store.nextDueAt(), T0 + 120_000);
          const applied = await store.recordOutcomes(
            'n1',
            leased.map((r) => ({
              at: T0,
              recipientId: r.id,
              messageId: r.messageId,
              accountId: r.accountId,
              recipient: r.address,
              state: 'delivered' as const,
              attempted: true,
              reply: { code: 250, text: 'ok' },
              event: { type: 'delivered', data: {} },
            })),
          );
          assert.equal(applied.length, 1);
        };
        // Each statement runs often enough here to be planned generically as well.
        for (let n = 0; n < 7; n++) await round(n);
        // A newer version's migration, while this node runs: additive, as migrations must be.
        const q = escapeIdentifier(schema);
        for (const table of [
          'suppressions',
          'recipients',
          'messages',
          'message_variants',
          'events',
          'accounts',
        ]) {
          await admin.query(
            `ALTER TABLE ${q}.${table} ADD COLUMN newer_node_column text NOT NULL DEFAULT ''`,
          );
        }
        for (let n = 7; n < 10; n++) await round(n);
      } finally {
        await store.close();
        await drop();
      }
    });

    it('prepares the delivery path’s statements, and none with preparedStatements: false (connection poolers)', async () => {
      // What each store sends: the names of the statements it asks the server to keep.
      const sent = recordQueries();
      try {
        for (const preparedStatements of [true, false]) {
          sent.queries.length = 0;
          const { schema, drop } = freshSchema();
          const store = new PostgresStore({ url, schema, poolSize: 2, preparedStatements });
          try {
            await store.migrate();
            await store.createAccount({ id: 'a1', name: 'acme', createdAt: T0 });
            await store.findSuppressions({
              accountId: 'a1',
              stream: null,
              addresses: ['x@one.test'],
              now: T0,
            });
            await store.insertMessages([{ ...sampleMessage('a1', ['x@one.test']), id: 'm1' }]);
            const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 5, leaseUntil: T0 + 60_000 });
            assert.equal(leased.length, 1);
            assert.equal(await store.nextDueAt(), T0 + 60_000);
            const id = leased[0]?.id ?? 0;
            const done = { ...sampleOutcome(id), messageId: 'm1', accountId: 'a1', recipient: 'x@one.test' };
            assert.deepEqual(await store.recordOutcomes('n1', [done]), [id]);
            assert.equal((await store.getRecipient(id))?.state, 'delivered');
          } finally {
            await store.close();
            await drop();
          }
          const names = new Set(sent.queries.flatMap((q) => (q.name === undefined ? [] : [q.name])));
          if (preparedStatements) {
            for (const name of [
              'find_suppressions',
              'insert_1',
              'find_due',
              'lease_pass',
              'next_due_at',
              'record_outcomes',
            ])
              assert.ok(names.has(`postbote_${name}`), `${name} is prepared`);
          } else {
            assert.deepEqual([...names], []);
          }
        }
      } finally {
        sent.stop();
      }
    });

    it('no prepared statement’s generic plan, made on empty tables, scans a whole table', async () => {
      // What a node's connection keeps once the server settles on a generic plan (after five
      // executions, for the connection's life), made as early as possible: on a new install.
      // A plan that expects ten input rows hashes a sequential scan of the table when it looks
      // empty, and keeps doing so as the table grows (RECORD_OUTCOMES in postgres-store.ts).
      const { schema, drop } = freshSchema();
      const sent = recordQueries();
      const store = new PostgresStore({ url, schema, poolSize: 1 });
      const client = new pg.Client({ connectionString: url });
      try {
        await store.migrate();
        // Every statement of the delivery path once.
        await store.createAccount({ id: 'a1', name: 'acme', createdAt: T0 });
        await store.findSuppressions({ accountId: 'a1', stream: null, addresses: ['x@one.test'], now: T0 });
        await store.insertMessages([{ ...sampleMessage('a1', ['x@one.test']), id: 'm1' }]);
        const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 5, leaseUntil: T0 + 60_000 });
        await store.renewLeases({ owner: 'n1', ids: leased.map((l) => l.id), leaseUntil: T0 + 90_000 });
        await store.nextDueAt();
        const id = leased[0]?.id ?? 0;
        await store.recordOutcomes('n1', [{ ...sampleOutcome(id), messageId: 'm1', accountId: 'a1' }]);
        sent.stop();
        const texts = preparedTexts(sent.queries);
        assert.ok(texts.size >= 7, [...texts.keys()].join(', '));
        assert.ok(texts.has(RECORD_OUTCOMES.name));

        await client.connect();
        await client.query(`SET search_path = ${escapeIdentifier(schema)}`);
        await client.query('SET plan_cache_mode = force_generic_plan');
        for (const [name, text] of texts) {
          const plan = await explainPrepared(client, text);
          assert.doesNotMatch(plan, /Seq Scan on \w+/, `${name}:\n${plan}`);
        }
      } finally {
        sent.stop();
        await client.end();
        await store.close();
        await drop();
      }
    });

    it('leasing for a small account next to a large backlog reads the small one’s lane, not every due recipient', async () => {
      const { schema, drop } = freshSchema();
      const store = new PostgresStore({ url, schema, poolSize: 2 });
      const client = new pg.Client({ connectionString: url });
      let sent: ReturnType<typeof recordQueries> | undefined;
      try {
        await store.migrate();
        await store.createAccount({ id: 'big', name: 'big', createdAt: T0 });
        await store.createAccount({ id: 'small', name: 'small', createdAt: T0 });
        for (let b = 0; b < 3; b++) {
          await store.insertMessages(
            Array.from({ length: 1000 }, (_, i) => ({
              ...sampleMessage('big', [`u${i}@one.test`]),
              id: `b${b}-${i}`,
            })),
          );
        }
        await store.insertMessages([{ ...sampleMessage('small', ['x@two.test']), id: 's1' }]);
        sent = recordQueries();
        await store.leaseDue({ owner: 'n1', now: T0, limit: 1, leaseUntil: T0 + 60_000 });
        sent.stop();
        const texts = preparedTexts(sent.queries);
        const findDue = texts.get('postbote_find_due');
        const leasePass = texts.get('postbote_lease_pass');
        assert.ok(findDue && leasePass);

        await client.connect();
        await client.query(`SET search_path = ${escapeIdentifier(schema)}`);
        await client.query('ANALYZE recipients');
        const now = T0 + 1;
        const explained: Record<string, [string, string]> = {
          find_due: [findDue, `(${now}::bigint, 100, '{transactional}'::text[], 100)`],
          lease_pass: [
            leasePass,
            `(${now}::bigint, 'n2', ${now + 60_000}::bigint, '{transactional,broadcast}'::text[], '{0,0}'::int[],
              '{transactional}'::text[], '{small}'::text[], '{4}'::int[], 65536, 2, 1, 4)`,
          ],
        };
        for (const mode of ['force_custom_plan', 'force_generic_plan']) {
          await client.query(`SET plan_cache_mode = ${mode}`);
          for (const [name, [text, args]] of Object.entries(explained)) {
            const plan = await explainPrepared(client, text, args);
            assert.doesNotMatch(plan, /using recipients_due/, `${name}, ${mode}:\n${plan}`);
          }
        }
      } finally {
        sent?.stop();
        await client.end();
        await store.close();
        await drop();
      }
    });

    it('records a remote reply containing NUL (PostgreSQL refuses NUL in text)', async () => {
      const { schema, drop } = freshSchema();
      const store = new PostgresStore({ url, schema, poolSize: 2 });
      try {
        await store.migrate();
        await store.createAccount({ id: 'a1', name: 'acme', createdAt: T0 });
        await store.insertMessages([{ ...sampleMessage('a1', ['x@one.test']), id: 'm1', subject: 'h\0i' }]);
        const [r] = await store.leaseDue({ owner: 'n1', now: T0, limit: 1, leaseUntil: T0 + 1000 });
        assert.ok(r);
        const applied = await store.recordOutcomes('n1', [
          {
            at: T0 + 1,
            recipientId: r.id,
            messageId: 'm1',
            accountId: 'a1',
            recipient: r.address,
            state: 'bounced',
            attempted: true,
            reply: { code: 550, enhanced: '5.1.1', text: 'no\0 such user' },
            event: { type: 'bounced', data: { reply: { code: 550, text: 'no\0 such user' } } },
          },
        ]);
        assert.deepEqual(applied, [r.id]);
        assert.equal((await store.getMessage('m1'))?.subject, 'hi');
        assert.deepEqual((await store.getRecipients('m1'))[0]?.lastReply, {
          code: 550,
          enhanced: '5.1.1',
          text: 'no such user',
        });
        assert.deepEqual((await store.getEvents('m1')).at(-1)?.data, {
          reply: { code: 550, text: 'no such user' },
        });
      } finally {
        await store.close();
        await drop();
      }
    });

    /**
     * Three lease loops per node, on three connections each, until nothing is left: every one of
     * `total` recipients is leased once, and the store agrees on who holds each lease.
     */
    const raceToLease = async (
      nodes: { owner: string; store: PostgresStore }[],
      messages: { id: string }[],
      request: Pick<LeaseRequest, 'limit' | 'lanes'>,
      total: number,
    ): Promise<void> => {
      const now = T0 + 1000;
      const taken = new Map<string, number[]>(nodes.map((n) => [n.owner, []]));
      const worker = async (owner: string, store: PostgresStore): Promise<void> => {
        for (;;) {
          const batch = await store.leaseDue({ ...request, owner, now, leaseUntil: now + 60_000 });
          if (batch.length === 0) return;
          taken.get(owner)?.push(...batch.map((r) => r.id));
        }
      };
      await Promise.all(nodes.flatMap((n) => [1, 2, 3].map(() => worker(n.owner, n.store))));
      const all = [...taken.values()].flat();
      assert.equal(all.length, total, 'every recipient leased');
      assert.equal(new Set(all).size, total, 'none twice');
      const first = nodes[0]!.store;
      const holder = new Map<number, string | null>();
      for (const m of messages)
        for (const r of await first.getRecipients(m.id)) holder.set(r.id, r.leaseOwner);
      for (const [owner, ids] of taken) for (const id of ids) assert.equal(holder.get(id), owner);
      assert.deepEqual(await first.countByState(), { delivering: total });
    };

    it('two nodes leasing at the same time never lease the same recipient', async () => {
      const { schema, drop } = freshSchema();
      const nodes = [
        { owner: 'node-a', store: new PostgresStore({ url, schema, poolSize: 3 }) },
        { owner: 'node-b', store: new PostgresStore({ url, schema, poolSize: 3 }) },
      ];
      try {
        const [first, second] = nodes.map((n) => n.store) as [PostgresStore, PostgresStore];
        await Promise.all([first.migrate(), second.migrate()]);
        await first.createAccount({ id: 'a1', name: 'acme', createdAt: T0 });
        const messages = Array.from({ length: 10 }, (_, i) =>
          sampleMessage(
            'a1',
            Array.from({ length: 20 }, (_, j) => `r${i}-${j}@one.test`),
          ),
        );
        await first.insertMessages(messages);
        // Expired leases are part of the race too: 20 recipients leased by a node that died.
        await first.leaseDue({ owner: 'dead', now: T0, limit: 20, leaseUntil: T0 + 10 });
        // Warm both pools so the race starts with open connections on both sides.
        await Promise.all([first.countByState(), second.countByState()]);
        await raceToLease(nodes, messages, { limit: 20 }, 200);
      } finally {
        await Promise.all(nodes.map((n) => n.store.close()));
        await drop();
      }
    });

    it('two nodes leasing by lanes and weights at the same time never lease the same recipient', async () => {
      const { schema, drop } = freshSchema();
      const nodes = [
        { owner: 'node-a', store: new PostgresStore({ url, schema, poolSize: 3 }) },
        { owner: 'node-b', store: new PostgresStore({ url, schema, poolSize: 3 }) },
      ];
      try {
        const [first, second] = nodes.map((n) => n.store) as [PostgresStore, PostgresStore];
        await Promise.all([first.migrate(), second.migrate()]);
        for (const id of ['a1', 'a2', 'a3']) await first.createAccount({ id, name: id, createdAt: T0 });
        await first.setAccountWeight('a2', 3);
        const addresses = (prefix: string, n: number) =>
          Array.from({ length: n }, (_, i) => `${prefix}${i}@one.test`);
        const broadcast = { stream: 'broadcast', kind: 'broadcast' as const };
        const messages = [
          sampleMessage('a1', addresses('a1b', 150), broadcast),
          sampleMessage('a1', addresses('a1t', 30)),
          sampleMessage('a2', addresses('a2b', 120), broadcast),
          sampleMessage('a3', addresses('a3t', 50)),
          sampleMessage('a3', addresses('a3b', 10), broadcast),
        ];
        await first.insertMessages(messages);
        // A node that died holding leases of both kinds.
        await first.leaseDue({ owner: 'dead', now: T0, limit: 25, leaseUntil: T0 + 10 });
        await first.leaseDue({
          owner: 'dead',
          now: T0,
          limit: 5,
          lanes: { transactional: 0 },
          leaseUntil: T0 + 10,
        });
        await Promise.all([first.countByState(), second.countByState()]);
        await raceToLease(nodes, messages, { limit: 20, lanes: { broadcast: 15 } }, 360);
      } finally {
        await Promise.all(nodes.map((n) => n.store.close()));
        await drop();
      }
    });

    it('releases only the given owner’s leases, and every lease with null', async () => {
      const { schema, drop } = freshSchema();
      const store = new PostgresStore({ url, schema, poolSize: 2 });
      try {
        await store.migrate();
        await store.createAccount({ id: 'a1', name: 'acme', createdAt: T0 });
        await store.insertMessages([sampleMessage('a1', ['a@one.test', 'b@one.test', 'c@one.test'])]);
        await store.leaseDue({ owner: 'n1', now: T0, limit: 1, leaseUntil: T0 + 1000 });
        await store.leaseDue({ owner: 'n2', now: T0, limit: 2, leaseUntil: T0 + 1000 });
        assert.equal(await store.releaseLeases('n3', T0), 0);
        assert.equal(await store.releaseLeases('n1', T0), 1);
        assert.equal(await store.releaseLeases(null, T0), 2);
        assert.deepEqual(await store.countByState(), { queued: 3 });
      } finally {
        await store.close();
        await drop();
      }
    });

    it('connection slots: a node above its fair share leaves freed slots to one refused below its share', async () => {
      const { schema, drop } = freshSchema();
      const a = new PostgresStore({ url, schema, poolSize: 2 });
      const b = new PostgresStore({ url, schema, poolSize: 2 });
      try {
        await a.migrate();
        // Four slots; a share is four ÷ the nodes with a heartbeat in the last 30 s.
        const take = (store: PostgresStore, holder: string, now: number) =>
          store.connectionSlots.acquireSlot({
            key: 'mx|25|*',
            limit: 4,
            liveSince: now - 30_000,
            demandMs: 1000,
            holder,
            now,
            until: now + 60_000,
          });
        const free = (store: PostgresStore, holder: string, slot: number) =>
          store.connectionSlots.releaseSlots(holder, [{ key: 'mx|25|*', slot }]);
        // a alone (the only heartbeat): its share is all four.
        await a.heartbeat({ id: 'a', startedAt: T0, info: {} }, T0);
        for (let i = 0; i < 4; i++) assert.equal(await take(a, 'a', T0), i);
        // b starts: counted at once, so its share is two and a's too. b is refused below its
        // share: its demand is recorded.
        await b.heartbeat({ id: 'b', startedAt: T0, info: {} }, T0 + 5);
        assert.equal(await take(b, 'b', T0 + 10), undefined);
        // a frees a slot and asks again at once: above its share, with b waiting, it is refused.
        await free(a, 'a', 3);
        assert.equal(await take(a, 'a', T0 + 20), undefined);
        // b's retry gets it.
        assert.equal(await take(b, 'b', T0 + 300), 3);
        // Once b's demand is older than demandMs, a takes freed slots again beyond its share.
        await free(b, 'b', 3);
        assert.equal(await take(a, 'a', T0 + 2000), 3);
        // Heartbeats older than the window do not count: with none left, a's share is all four
        // again and b's fresh demand does not hold it back.
        assert.equal(await take(b, 'b', T0 + 40_000), undefined);
        await free(a, 'a', 3);
        assert.equal(await take(a, 'a', T0 + 40_010), 3);
      } finally {
        await a.close();
        await b.close();
        await drop();
      }
    });

    it('connection slots: at most `limit` held across nodes; expired ones are retaken; renew keeps only own', async () => {
      const { schema, drop } = freshSchema();
      const a = new PostgresStore({ url, schema, poolSize: 6 });
      const b = new PostgresStore({ url, schema, poolSize: 6 });
      try {
        await a.migrate();
        const take = (store: PostgresStore, holder: string, now = T0) =>
          store.connectionSlots.acquireSlot({
            key: 'mx|25|*',
            limit: 3,
            liveSince: 0,
            demandMs: 1000,
            holder,
            now,
            until: now + 1000,
          });
        // Twelve takers at once on two pools: exactly three slots go out, all different.
        const got = await Promise.all(
          Array.from({ length: 12 }, (_, i) => take(i % 2 ? a : b, i % 2 ? 'a' : 'b')),
        );
        const taken = got.filter((slot) => slot !== undefined);
        assert.equal(taken.length, 3);
        assert.deepEqual([...taken].sort(), [0, 1, 2]);
        // Another key has its own slots.
        assert.equal(
          await a.connectionSlots.acquireSlot({
            key: 'other|25|*',
            limit: 1,
            liveSince: 0,
            demandMs: 1000,
            holder: 'a',
            now: T0,
            until: T0 + 1000,
          }),
          0,
        );
        // After expiry, another holder takes a slot; the old holder's renewal no longer keeps it.
        const held = got
          .map((slot, i) => ({ slot, holder: i % 2 ? 'a' : 'b' }))
          .filter((x): x is { slot: number; holder: string } => x.slot !== undefined);
        const first = held[0]!;
        const thief = first.holder === 'a' ? 'b' : 'a';
        assert.equal(await take(b, thief, T0 + 1000), 0);
        const mine = held
          .filter((h) => h.holder === first.holder)
          .map((h) => ({ key: 'mx|25|*', slot: h.slot }));
        const renewed = await a.connectionSlots.renewSlots({
          holder: first.holder,
          slots: mine,
          until: T0 + 5000,
        });
        assert.deepEqual(
          renewed.map((r) => r.slot).sort(),
          // slot 0 is the thief's now
          mine
            .map((m) => m.slot)
            .filter((slot) => slot !== 0)
            .sort(),
        );
        // Release frees a slot for the next taker; null frees all of a holder's.
        assert.equal(await a.connectionSlots.releaseSlots(thief, [{ key: 'mx|25|*', slot: 0 }]), 1);
        assert.equal(await take(a, 'c', T0 + 1000), 0);
        assert.equal(await a.connectionSlots.releaseSlots('c', null), 1);
        assert.equal(await a.connectionSlots.releaseSlots('nobody', null), 0);
      } finally {
        await a.close();
        await b.close();
        await drop();
      }
    });
  });
}
