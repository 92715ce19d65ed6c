/**
 * Which stream a message submitted over SMTP goes to: the X-Postbote-Stream header (taken out
 * of the stored message), else the credential's default, else `outbound`; an unknown stream is
 * refused at the end of DATA and nothing is stored. The other X-Postbote-* control fields
 * (test/intake/controls.test.ts has the details) are refused the same way when they are bad.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAccount, createCredential } from '../../src/auth/accounts.ts';
import { createStream } from '../../src/auth/streams.ts';
import { createIntake } from '../../src/intake/intake.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { Account } from '../../src/store/types.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startSubmissionServer, type TestServer } from '../support/smtp-test-server.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('submission: streams', () => {
  const store = new SqliteStore(':memory:');
  let server: TestServer;
  let account: Account;
  const passwords: Record<string, string> = {};

  before(async () => {
    await store.migrate();
    account = await createAccount(store, 'shop', 1);
    await createStream(store, account, { name: 'news', kind: 'broadcast' }, 1);
    await createStream(store, account, { name: 'alerts', kind: 'transactional' }, 1);
    for (const [username, stream] of [
      ['app', undefined],
      ['bulk', 'news'],
    ] as const) {
      const issued = await createCredential(
        store,
        account,
        { kind: 'smtp', username, ...(stream ? { stream } : {}) },
        2,
      );
      passwords[username] = issued.secret ?? '';
    }
    const clock = () => Date.now();
    const intake = createIntake({ store, clock, hostname: 'relay.test', dsnOnFailure: false });
    server = await startSubmissionServer(store, intake);
  });

  after(async () => {
    await server.close();
    await store.close();
  });

  /** Logs in, sends `headers` + a body to one recipient; returns the reply to the data. */
  async function send(
    username: string,
    headers: string,
  ): Promise<{ code: number; enhanced?: string; text: string }> {
    const c = await SmtpTestClient.connect(server.port);
    try {
      await c.hello();
      const auth = await c.command(`AUTH PLAIN ${b64(`\0${username}\0${passwords[username]}`)}`);
      assert.equal(auth.code, 235, auth.text);
      assert.equal((await c.command('MAIL FROM:<shop@sender.test>')).code, 250);
      assert.equal((await c.command('RCPT TO:<someone@example.org>')).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      return await c.command(`${headers}Subject: streams\r\n\r\nhello\r\n.`);
    } finally {
      c.close();
    }
  }

  async function stored(reply: { code: number; text: string }) {
    assert.equal(reply.code, 250, reply.text);
    const id = /queued as (\S+)/.exec(reply.text)?.[1] ?? '';
    const message = await store.getMessage(id);
    const recipients = await store.getRecipients(id);
    const body = (await store.getBody(id))?.toString('latin1') ?? '';
    return { stream: message?.stream, kinds: recipients.map((r) => [r.stream, r.kind]), body };
  }

  it('without a header or a credential default, the message goes to outbound (transactional)', async () => {
    const got = await stored(await send('app', 'From: shop@sender.test\r\n'));
    assert.equal(got.stream, 'outbound');
    assert.deepEqual(got.kinds, [['outbound', 'transactional']]);
  });

  it('X-Postbote-Stream names the stream (any case) and is not part of the stored message', async () => {
    const got = await stored(
      await send('app', 'From: shop@sender.test\r\nX-Postbote-Stream: News\r\nX-Other: kept\r\n'),
    );
    assert.equal(got.stream, 'news');
    assert.deepEqual(got.kinds, [['news', 'broadcast']]);
    assert.doesNotMatch(got.body, /x-postbote-stream/i);
    assert.match(
      got.body,
      /\r\nFrom: shop@sender\.test\r\nX-Other: kept\r\nSubject: streams\r\n\r\nhello\r\n$/,
    );
  });

  it('a folded header and repeated headers: the first one counts, all of them go', async () => {
    const got = await stored(
      await send(
        'app',
        'x-postbote-stream:\r\n alerts\r\nFrom: shop@sender.test\r\nX-Postbote-Stream: news\r\n',
      ),
    );
    assert.equal(got.stream, 'alerts');
    assert.deepEqual(got.kinds, [['alerts', 'transactional']]);
    assert.doesNotMatch(got.body, /postbote-stream|^ alerts/im);
  });

  it('the credential’s default stream applies when the message names none; the header wins over it', async () => {
    assert.equal((await stored(await send('bulk', 'From: shop@sender.test\r\n'))).stream, 'news');
    const overridden = await stored(await send('bulk', 'X-Postbote-Stream: outbound\r\n'));
    assert.deepEqual(overridden.kinds, [['outbound', 'transactional']]);
  });

  it('an unknown stream is refused with 554 5.6.0 at the end of DATA and nothing is stored', async () => {
    const before = (await store.listMessages({ limit: 1000 })).length;
    for (const name of ['newsletter', 'bad name!', '']) {
      const reply = await send('app', `X-Postbote-Stream: ${name}\r\n`);
      assert.deepEqual([reply.code, reply.enhanced], [554, '5.6.0'], reply.text);
      assert.equal(reply.text, `5.6.0 Unknown stream "${name}" (X-Postbote-Stream) for this account`);
    }
    assert.equal((await store.listMessages({ limit: 1000 })).length, before);
  });

  it('X-Postbote-Tags/-Metadata are kept as the message’s; bad ones are refused with 554 5.6.0', async () => {
    const reply = await send('app', 'X-Postbote-Tags: a, b\r\nX-Postbote-Metadata: {"order": "7"}\r\n');
    assert.equal(reply.code, 250, reply.text);
    const id = /queued as (\S+)/.exec(reply.text)?.[1] ?? '';
    const message = await store.getMessage(id);
    assert.deepEqual([message?.tags, message?.metadata], [['a', 'b'], { order: '7' }]);
    assert.doesNotMatch((await store.getBody(id))?.toString() ?? '', /x-postbote/i);
    const before = (await store.listMessages({ limit: 1000 })).length;
    const bad = await send('app', 'X-Postbote-Metadata: {oops\r\n');
    assert.deepEqual([bad.code, bad.enhanced], [554, '5.6.0'], bad.text);
    assert.match(bad.text, /X-Postbote-Metadata is not a JSON object/);
    const noTemplates = await send('app', 'X-Postbote-Template: welcome\r\n');
    assert.equal(noTemplates.code, 554);
    assert.equal((await store.listMessages({ limit: 1000 })).length, before);
  });

  it('a stream created while the server runs is found at once', async () => {
    const unknown = await send('app', 'X-Postbote-Stream: late\r\n');
    assert.equal(unknown.code, 554);
    await createStream(store, account, { name: 'late', kind: 'broadcast' }, 3);
    assert.equal((await stored(await send('app', 'X-Postbote-Stream: late\r\n'))).stream, 'late');
  });
});
