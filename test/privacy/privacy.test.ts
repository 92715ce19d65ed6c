import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { createAudit } from '../../src/audit/audit.ts';
import { createSuppressions } from '../../src/bounces/suppressions.ts';
import { addressToken, createPrivacy } from '../../src/privacy/privacy.ts';
import { newId } from '../../src/store/ids.ts';
import { PostgresStore } from '../../src/store/postgres/postgres-store.ts';
import type { Store } from '../../src/store/store.ts';
import { sampleMessage, T0 } from '../store/contract.ts';
import { call, startApiApp } from '../support/api-app.ts';
import { freshSchemaName, postgresOrSkip, testDatabaseUrl } from '../support/postgres.ts';

/** The erased person; Mixed case on purpose: matching ignores case. */
const VICTIM = 'Erin.Erased@Example.ORG';
const victim = VICTIM.toLowerCase();
const KEEP = 'kept@example.net';

/**
 * Every row of every table whose TEXT or BLOB columns mention `needle` (lower-cased), found from
 * the schema itself: a table someone adds later is scanned too.
 */
function sqliteMentions(path: string, needle: string): string[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const hits: string[] = [];
    const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as {
      name: string;
    }[];
    for (const { name } of tables) {
      const cols = db.prepare(`PRAGMA table_info("${name}")`).all() as { name: string }[];
      for (const row of db.prepare(`SELECT * FROM "${name}"`).all() as Record<string, unknown>[]) {
        for (const c of cols) {
          const v = row[c.name];
          const text =
            v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : typeof v === 'string' ? v : '';
          if (text.toLowerCase().includes(needle)) hits.push(`${name}.${c.name}`);
        }
      }
    }
    return hits;
  } finally {
    db.close();
  }
}

/** Delivers or bounces every due recipient (bounced: those at `bounceAddress`). */
async function settle(store: Store, now: number, bounceAddress: string) {
  const leased = await store.leaseDue({ owner: 't', now, limit: 1000, leaseUntil: now + 60_000 });
  await store.recordOutcomes(
    't',
    leased.map((r) => {
      const bounced = r.address.toLowerCase() === bounceAddress;
      return {
        at: now,
        recipientId: r.id,
        messageId: r.messageId,
        accountId: r.accountId,
        recipient: r.address,
        state: bounced ? 'bounced' : 'delivered',
        attempted: true,
        reply: bounced
          ? { code: 550, enhanced: '5.1.1', text: `<${r.address}>: Recipient address rejected` }
          : { code: 250, text: 'ok' },
        event: { type: bounced ? 'bounced' : 'delivered', data: { diagnostic: `to ${r.address}` } },
      } as const;
    }),
  );
  return leased;
}

describe('privacy export and erasure (API, SQLite)', () => {
  it('export shows the address’s messages, events and suppressions; erasure leaves no trace in any table', async () => {
    const api = await startApiApp();
    try {
      const acme = await api.store.getAccountByName('acme');
      assert.ok(acme);
      // Mail naming the victim every way: recipient with another one, personalised copy, sender,
      // a header, an idempotent send whose stored answer lists it, and an unrelated message.
      const sent: string[] = [];
      const send = async (body: Record<string, unknown>, headers: Record<string, string> = {}) => {
        const res = await call(api, api.keys.all, 'POST', '/v1/messages', body, headers);
        assert.equal(res.statusCode, 202, res.body);
        sent.push(res.json().id);
      };
      await send({ from: 'a@sender.test', to: [VICTIM, 'co@example.net'], subject: 'hello', text: 'hi' });
      await send(
        { from: 'a@sender.test', to: VICTIM, subject: 'idempotent', text: `Dear ${VICTIM}` },
        { 'idempotency-key': 'k-1' },
      );
      await send({
        from: 'a@sender.test',
        recipients: [
          { email: VICTIM, variables: { name: 'Erin' } },
          { email: 'x@example.net', variables: { name: 'X' } },
        ],
        subject: 'Hi {{name}}',
        text: 'for {{name}}',
      });
      await send({ from: VICTIM.toLowerCase(), to: 'friend@example.net', subject: 'from her', text: 'x' });
      await send({ from: 'a@sender.test', to: KEEP, subject: 'unrelated', text: 'keep me' });
      await settle(api.store, api.clock.now, victim);
      // A complaint and a soft bounce count, a manual suppression for a stream, an audit entry naming her.
      const [first] = await api.store.getRecipients(sent[0] ?? '');
      assert.ok(first);
      await api.store.recordAsyncReports([
        { recipientId: first.id, at: api.clock.now, type: 'complained', data: { originalRecipient: VICTIM } },
      ]);
      await api.store.recordSoftBounce({ accountId: acme.id, address: victim, at: api.clock.now });
      const suppression = {
        accountId: acme.id,
        address: victim,
        scope: '',
        reason: 'hard_bounce' as const,
        category: 'bad_mailbox',
        source: sent[0] ?? '',
        details: `550 5.1.1 <${VICTIM}>: Recipient address rejected`,
        createdAt: api.clock.now,
        expiresAt: null,
      };
      await api.store.upsertSuppressions([
        suppression,
        {
          accountId: acme.id,
          address: victim,
          scope: 'broadcast',
          reason: 'manual',
          category: '',
          source: 'cli',
          details: `asked by ${VICTIM}`,
          createdAt: api.clock.now,
          expiresAt: null,
        },
      ]);
      await createAudit({ store: api.store }).record({
        actor: 'cli:ops',
        accountId: acme.id,
        action: 'suppression.remove',
        target: victim,
        details: { note: `removed ${VICTIM} once` },
      });
      // A table added by some later module, with a row naming her.
      const db = new DatabaseSync(api.path);
      db.exec(`CREATE TABLE future_module (id INTEGER PRIMARY KEY, account_id TEXT, payload BLOB)`);
      db.prepare('INSERT INTO future_module (account_id, payload) VALUES (?, ?)').run(
        acme.id,
        Buffer.from(`{"to":"${VICTIM}"}`),
      );
      db.close();
      assert.ok(sqliteMentions(api.path, victim).length > 10);

      // Export: an admin key of the account; the other account's key sees nothing of it.
      const exported = await call(api, api.keys.all, 'GET', `/v1/privacy/${encodeURIComponent(VICTIM)}`);
      assert.equal(exported.statusCode, 200, exported.body);
      const x = exported.json();
      assert.equal(x.address, victim);
      assert.ok(x.messages.length >= 3);
      assert.ok(
        x.messages.every((m: { recipients: { address: string }[] }) =>
          m.recipients.every((r) => r.address.toLowerCase() === victim),
        ),
        'only her own recipient rows, not the co-recipients',
      );
      assert.ok(x.suppressions.some((s: { reason: string }) => s.reason === 'hard_bounce'));
      assert.ok(x.other.some((o: { table: string }) => o.table === 'soft_bounces'));
      const foreign = (
        await call(api, api.keys.other, 'GET', `/v1/privacy/${encodeURIComponent(VICTIM)}`)
      ).json();
      assert.deepEqual([foreign.messages, foreign.suppressions], [[], []]);
      assert.equal((await call(api, api.keys.read, 'GET', `/v1/privacy/${victim}`)).statusCode, 403);
      assert.equal((await call(api, api.keys.all, 'GET', '/v1/privacy/not-an-address')).statusCode, 422);

      // Erase.
      const erased = await call(api, api.keys.all, 'DELETE', `/v1/privacy/${encodeURIComponent(VICTIM)}`);
      assert.equal(erased.statusCode, 200, erased.body);
      assert.equal(erased.json().suppressions_hashed, 2);
      assert.deepEqual(sqliteMentions(api.path, victim), []);
      // The unrelated message is still there; the audit trail kept its entry with the token.
      const kept = await api.store.getMessage(sent[4] ?? '');
      assert.ok(kept);
      const audit = await api.store.listAudit({ accountId: acme.id });
      const token = erased.json().token as string;
      assert.deepEqual(
        audit.map((e) => [e.action, e.target]),
        [
          ['privacy.erase', token],
          ['suppression.remove', token],
        ],
      );
      // Still suppressed: the next message to her is stored suppressed, never sent.
      const again = await call(api, api.keys.all, 'POST', '/v1/messages', {
        from: 'a@sender.test',
        to: VICTIM,
        subject: 'again',
        text: 'x',
      });
      assert.equal(again.statusCode, 202, again.body);
      assert.equal((await api.store.getRecipients(again.json().id))[0]?.state, 'suppressed');
      // The stream-scoped entry survives as a token too.
      assert.equal(token, addressToken(await api.privacy.secret(), VICTIM));
    } finally {
      await api.close();
    }
  });
});

const admin = await postgresOrSkip('the privacy erasure on PostgreSQL');
if (admin) after(() => admin.end());

describe('privacy erasure (store level, PostgreSQL)', { skip: !admin }, () => {
  it('scans every table of the schema and leaves no trace; suppressions stay as the token', async () => {
    if (!admin) return;
    const schema = freshSchemaName('privacy');
    const store = new PostgresStore({ url: testDatabaseUrl, schema, poolSize: 2 });
    try {
      await store.migrate();
      const account = newId(T0);
      await store.createAccount({ id: account, name: 'acme', createdAt: T0 });
      const m1 = sampleMessage(account, [VICTIM, KEEP], {
        id: newId(T0),
        body: Buffer.from(`To: ${VICTIM}\r\nSubject: hi\r\n\r\nhello\r\n`),
      });
      const m2 = sampleMessage(account, [KEEP], { id: newId(T0) });
      await store.insertMessages([m1, m2]);
      await settle(store, T0 + 10, victim);
      await store.recordSoftBounce({ accountId: account, address: victim, at: T0 });
      await store.recordAudit([
        {
          at: T0,
          actor: 'cli:x',
          accountId: account,
          action: 'suppression.remove',
          target: victim,
          details: {},
        },
      ]);
      await admin.query(`CREATE TABLE "${schema}".future_module (id serial, account_id text, payload jsonb)`);
      await admin.query(`INSERT INTO "${schema}".future_module (account_id, payload) VALUES ($1, $2)`, [
        account,
        JSON.stringify({ to: VICTIM }),
      ]);
      const suppressions = createSuppressions({
        store,
        clock: () => T0,
        transactionalIgnoresUnsubscribes: true,
      });
      await suppressions.suppress({
        accountId: account,
        address: victim,
        reason: 'hard_bounce',
        source: 'test',
      });
      const privacy = createPrivacy({ store, audit: createAudit({ store }) });
      const result = await privacy.erase({ email: VICTIM, accountId: account, actor: 'cli:x' });
      assert.equal(result.messages, 1);

      const hits: string[] = [];
      const columns = await admin.query(
        `SELECT table_name, column_name, data_type FROM information_schema.columns
          WHERE table_schema = $1 AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea')`,
        [schema],
      );
      for (const c of columns.rows) {
        const found = await admin.query(
          `SELECT 1 FROM "${schema}"."${c.table_name}"
            WHERE position($1 in lower(${c.data_type === 'bytea' ? `encode("${c.column_name}", 'escape')` : `"${c.column_name}"::text`})) > 0
            LIMIT 1`,
          [victim],
        );
        if (found.rowCount) hits.push(`${c.table_name}.${c.column_name}`);
      }
      assert.deepEqual(hits, []);
      assert.ok(await store.getMessage(m2.id), 'the message not naming her stays');
      const withTokens = createSuppressions({
        store,
        clock: () => T0,
        transactionalIgnoresUnsubscribes: true,
        erasedTokens: privacy.tokens,
      });
      const check = await withTokens.check({
        accountId: account,
        stream: 'outbound',
        kind: 'transactional',
        addresses: [VICTIM],
      });
      assert.equal(check.get(victim)?.reason, 'hard_bounce');
    } finally {
      await store.close();
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });
});
