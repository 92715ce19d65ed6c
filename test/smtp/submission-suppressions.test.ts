/**
 * Suppression lists over SMTP: the lookup of the envelope's recipients starts when DATA is
 * accepted, so its store round trip runs while the content arrives; the stream (named in the
 * content) then picks which of the entries apply. A lookup that failed early is made again at
 * the end of DATA.
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
  /** Each store lookup: the stream it asked for; `failNext` makes the next one fail. */
  const lookups: (string | null)[] = [];
  let failNext = false;

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
    ]);
    const watched: Store = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'findSuppressions') {
          return (input: Parameters<Store['findSuppressions']>[0]) => {
            lookups.push(input.stream);
            if (failNext) {
              failNext = false;
              return Promise.reject(new Error('store unavailable'));
            }
            return target.findSuppressions(input);
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const clock = () => Date.now();
    const suppressions = createSuppressions({
      store: watched,
      clock,
      transactionalIgnoresUnsubscribes: true,
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

  /**
   * Sends one message to `to` with `headers`; `atData` runs after the 354, before the content.
   * Returns each recipient's stored state.
   */
  async function send(to: string[], headers: string, atData?: () => Promise<void>) {
    const c = await SmtpTestClient.connect(server.port);
    try {
      await c.hello();
      assert.equal((await c.command(`AUTH PLAIN ${b64(`\0app\0${password}`)}`)).code, 235);
      assert.equal((await c.command('MAIL FROM:<shop@sender.test>')).code, 250);
      for (const address of to) assert.equal((await c.command(`RCPT TO:<${address}>`)).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      await atData?.();
      const reply = await c.command(`${headers}Subject: s\r\n\r\nhello\r\n.`);
      assert.equal(reply.code, 250, reply.text);
      const id = /queued as (\S+)/.exec(reply.text)?.[1] ?? '';
      return Object.fromEntries((await store.getRecipients(id)).map((r) => [r.address, r.state]));
    } finally {
      c.close();
    }
  }

  const everyone = ['gone@example.org', 'news-only@example.org', 'fine@example.org'];

  it('looks the recipients up when DATA is accepted, before the content names the stream', async () => {
    lookups.length = 0;
    const states = await send(everyone, '', async () => {
      // The content is not sent yet: the lookup has been asked for already, for every scope.
      for (let i = 0; i < 50 && lookups.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(lookups, [null]);
    });
    assert.deepEqual(lookups, [null], 'one lookup per message');
    // outbound: the account-wide entry applies, the one scoped to `news` does not.
    assert.deepEqual(states, {
      'gone@example.org': 'suppressed',
      'news-only@example.org': 'queued',
      'fine@example.org': 'queued',
    });
  });

  it('the stream the content names decides which entries apply', async () => {
    const states = await send(everyone, 'X-Postbote-Stream: news\r\n');
    assert.deepEqual(states, {
      'gone@example.org': 'suppressed',
      'news-only@example.org': 'suppressed',
      'fine@example.org': 'queued',
    });
  });

  it('a lookup that failed at DATA is made again at the end of DATA', async () => {
    lookups.length = 0;
    failNext = true;
    const states = await send(everyone, 'X-Postbote-Stream: news\r\n');
    assert.deepEqual(lookups, [null, 'news']);
    assert.deepEqual(states, {
      'gone@example.org': 'suppressed',
      'news-only@example.org': 'suppressed',
      'fine@example.org': 'queued',
    });
  });
});
