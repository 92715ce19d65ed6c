/**
 * Suppression lists over SMTP: the store checks the recipients inside the intake commit (no
 * lookup of its own before it); the stream the content names picks which entries apply.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAccount, createCredential } from '../../src/auth/accounts.ts';
import { createStream } from '../../src/auth/streams.ts';
import { createSuppressions } from '../../src/bounces/suppressions.ts';
import { createIntake } from '../../src/intake/intake.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import type { Account, Suppression } from '../../src/store/types.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startSubmissionServer, type TestServer } from '../support/smtp-test-server.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('submission: suppressions', () => {
  const store = new SqliteStore(':memory:');
  let server: TestServer;
  let account: Account;
  let password = '';
  /** Every store call the intake made, by name. */
  const calls: string[] = [];

  before(async () => {
    await store.migrate();
    account = await createAccount(store, 'shop', 1);
    await createStream(store, account, { name: 'news', kind: 'broadcast' }, 1);
    password = (await createCredential(store, account, { kind: 'smtp', username: 'app' }, 2)).secret ?? '';
    const entry = (address: string, scope: string, reason: Suppression['reason']): Suppression => ({
      accountId: account.id,
      address,
      scope,
      reason,
      category: '',
      source: 'test',
      details: '',
      createdAt: 1,
      expiresAt: null,
    });
    await store.upsertSuppressions([
      entry('gone@example.org', '', 'hard_bounce'),
      entry('news-only@example.org', 'news', 'manual'),
      entry('unsubscribed@example.org', '', 'unsubscribe'),
      // An erased address stays listed under its token (privacy/).
      entry('token:erased@example.org', '', 'complaint'),
    ]);
    const watched: Store = new Proxy(store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls.push(String(prop));
          return value.apply(target, args);
        };
      },
    });
    const clock = () => Date.now();
    const suppressions = createSuppressions({
      store: watched,
      clock,
      transactionalIgnoresUnsubscribes: true,
      erasedTokens: async (addresses) => new Map(addresses.map((a) => [`token:${a}`, a])),
    });
    const intake = createIntake({
      store: watched,
      clock,
      hostname: 'relay.test',
      dsnOnFailure: false,
      suppressions,
    });
    server = await startSubmissionServer(store, intake);
  });

  after(async () => {
    await server.close();
    await store.close();
  });

  /** Sends one message to `to` with `headers`; returns each recipient's stored state. */
  async function send(to: string[], headers: string) {
    const c = await SmtpTestClient.connect(server.port);
    try {
      await c.hello();
      assert.equal((await c.command(`AUTH PLAIN ${b64(`\0app\0${password}`)}`)).code, 235);
      assert.equal((await c.command('MAIL FROM:<shop@sender.test>')).code, 250);
      for (const address of to) assert.equal((await c.command(`RCPT TO:<${address}>`)).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      const reply = await c.command(`${headers}Subject: s\r\n\r\nhello\r\n.`);
      assert.equal(reply.code, 250, reply.text);
      const id = /queued as (\S+)/.exec(reply.text)?.[1] ?? '';
      return Object.fromEntries((await store.getRecipients(id)).map((r) => [r.address, r.state]));
    } finally {
      c.close();
    }
  }

  const everyone = [
    'gone@example.org',
    'news-only@example.org',
    'unsubscribed@example.org',
    'Erased@Example.org',
    'fine@example.org',
  ];

  it('the intake commit checks the lists: no lookup of its own', async () => {
    calls.length = 0;
    const states = await send(everyone, '');
    assert.deepEqual(
      calls.filter((c) => c !== 'getStream' && c !== 'listStreams'),
      ['insertMessages'],
    );
    // outbound (transactional): the account-wide entries apply, the one scoped to `news` does
    // not, nor an unsubscribe.
    assert.deepEqual(states, {
      'gone@example.org': 'suppressed',
      'news-only@example.org': 'queued',
      'unsubscribed@example.org': 'queued',
      'Erased@Example.org': 'suppressed',
      'fine@example.org': 'queued',
    });
  });

  it('the stream the content names decides which entries apply', async () => {
    const states = await send(everyone, 'X-Postbote-Stream: news\r\n');
    assert.deepEqual(states, {
      'gone@example.org': 'suppressed',
      'news-only@example.org': 'suppressed',
      'unsubscribed@example.org': 'suppressed',
      'Erased@Example.org': 'suppressed',
      'fine@example.org': 'queued',
    });
  });
});
