/**
 * REQUIRETLS (RFC 8689): accepted on submission only inside TLS and kept on the recipients;
 * delivered only over STARTTLS with a verified certificate to an MX that advertises REQUIRETLS
 * (and passed on MAIL FROM), else bounced with 5.7.30, never sent in the clear.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAccount, createCredential } from '../../src/auth/accounts.ts';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { createMxDestination, type DestinationResult } from '../../src/delivery/destination.ts';
import { createSessionPool } from '../../src/delivery/session-pool.ts';
import { createIntake } from '../../src/intake/intake.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { submissionHandlers } from '../../src/smtp/submission.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { RecipientDsn } from '../../src/store/types.ts';
import {
  generateSelfSignedCert,
  type ScriptedSink,
  startScriptedSink,
  unusedPort,
} from '../support/scripted-sink.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startTestServer, type TestServer, testSecureContext } from '../support/smtp-test-server.ts';
import { testPki } from '../support/test-pki.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('REQUIRETLS at submission', () => {
  const store = new SqliteStore(':memory:');
  let server: TestServer;
  let password = '';

  before(async () => {
    await store.migrate();
    const account = await createAccount(store, 'shop', 1);
    password = (await createCredential(store, account, { kind: 'smtp', username: 'app' }, 2)).secret ?? '';
    const clock = () => Date.now();
    const authenticator = new Authenticator({
      store,
      clock,
      maxFailures: 5,
      failureWindowMs: 60_000,
      lockoutMs: 60_000,
    });
    server = await startTestServer({
      tls: testSecureContext,
      authMethods: ['PLAIN'],
      allowPlaintextAuth: () => true,
      sizeLimit: 100_000,
      handlers: submissionHandlers({
        authenticator,
        intake: createIntake({ store, clock, hostname: 'relay.test', dsnOnFailure: false }),
        logger: silentLogger(),
      }),
    });
  });
  after(async () => {
    await server.close();
    await store.close();
  });

  it('is advertised and accepted only after STARTTLS, and stored on every recipient', async () => {
    const c = await SmtpTestClient.connect(server.port);
    try {
      const plain = await c.hello();
      assert.ok(!plain.lines.includes('REQUIRETLS'), 'not offered in plaintext');
      assert.equal((await c.command(`AUTH PLAIN ${b64(`\0app\0${password}`)}`)).code, 235);
      const refused = await c.command('MAIL FROM:<shop@sender.test> REQUIRETLS');
      assert.deepEqual([refused.code, refused.enhanced], [530, '5.7.10']);
      assert.equal((await c.command('STARTTLS')).code, 220);
      await c.upgrade({ rejectUnauthorized: false });
      const ehlo = await c.command('EHLO client.test');
      assert.ok(ehlo.lines.includes('REQUIRETLS'), ehlo.lines.join('|'));
      assert.equal((await c.command(`AUTH PLAIN ${b64(`\0app\0${password}`)}`)).code, 235);
      assert.equal((await c.command('MAIL FROM:<shop@sender.test> REQUIRETLS=yes')).code, 501);
      assert.equal((await c.command('MAIL FROM:<shop@sender.test> REQUIRETLS')).code, 250);
      assert.equal((await c.command('RCPT TO:<a@example.org> NOTIFY=FAILURE')).code, 250);
      assert.equal((await c.command('RCPT TO:<b@example.net>')).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      assert.equal((await c.command('Subject: secret\r\n\r\nhello\r\n.')).code, 250);
      // A message without the flag in the same session.
      assert.equal((await c.command('MAIL FROM:<shop@sender.test>')).code, 250);
      assert.equal((await c.command('RCPT TO:<c@example.com>')).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      assert.equal((await c.command('Subject: plain\r\n\r\nhello\r\n.')).code, 250);
    } finally {
      c.socket.destroy();
    }
    const now = Date.now() + 60_000;
    const leased = await store.leaseDue({ owner: 't', now, limit: 10, leaseUntil: now + 60_000 });
    const dsn = new Map<string, RecipientDsn>(leased.map((r) => [r.address, r.dsn]));
    assert.deepEqual(dsn.get('a@example.org'), { notify: ['FAILURE'], requireTls: true });
    assert.deepEqual(dsn.get('b@example.net'), { requireTls: true });
    assert.deepEqual(dsn.get('c@example.com'), {});
  });
});

describe('REQUIRETLS when delivering', () => {
  let sinks: Record<'good' | 'noExtension' | 'plain' | 'selfSigned', ScriptedSink>;
  let deliver: (domain: string, requireTls: boolean, body?: string) => Promise<DestinationResult>;
  let closePool: () => Promise<void>;
  const ips = {
    good: '127.0.0.21',
    noExtension: '127.0.0.22',
    plain: '127.0.0.23',
    selfSigned: '127.0.0.24',
  };

  before(async () => {
    const pki = await testPki(['mx.good.test', 'mx.noextension.test']);
    const port = await unusedPort();
    const tls = { key: pki.key, cert: pki.cert };
    const defaults = ['PIPELINING', '8BITMIME', 'SIZE 10485760', 'ENHANCEDSTATUSCODES', 'DSN', 'SMTPUTF8'];
    sinks = {
      good: await startScriptedSink({ host: ips.good, port, tls, extensions: [...defaults, 'REQUIRETLS'] }),
      noExtension: await startScriptedSink({ host: ips.noExtension, port, tls }),
      plain: await startScriptedSink({ host: ips.plain, port, extensions: [...defaults, 'REQUIRETLS'] }),
      selfSigned: await startScriptedSink({
        host: ips.selfSigned,
        port,
        tls: await generateSelfSignedCert(),
        extensions: [...defaults, 'REQUIRETLS'],
      }),
    };
    const byDomain: Record<string, string> = {
      'good.test': ips.good,
      'noextension.test': ips.noExtension,
      'plain.test': ips.plain,
      'selfsigned.test': ips.selfSigned,
    };
    const pool = createSessionPool({
      maxConnectionsPerKey: 2,
      ehloName: 'relay.postbote.test',
      connectTimeoutMs: 2000,
      greetingTimeoutMs: 2000,
      trustedCa: pki.ca,
    });
    closePool = () => pool.close();
    const destination = createMxDestination({
      resolver: {
        mx: async (domain: string) => [{ exchange: `mx.${domain}`, priority: 10 }],
        a: async (host: string) => [byDomain[host.replace(/^mx\./, '')]!],
        aaaa: async () => [],
      },
      pool,
      port,
      allowPrivate: true,
      starttls: 'opportunistic',
      logger: silentLogger(),
    });
    deliver = (domain, requireTls, body = 'Subject: rt\r\n\r\nhello\r\n') =>
      destination.deliver({
        domain,
        mailFrom: 'app@sender.test',
        recipients: [`someone@${domain}`],
        dsn: requireTls ? { requireTls: true } : {},
        body: Buffer.from(body),
      });
  });
  after(async () => {
    await closePool();
    await Promise.all(Object.values(sinks).map((s) => s.close()));
  });

  it('verified TLS to an MX that supports REQUIRETLS: delivered, REQUIRETLS passed on MAIL FROM', async () => {
    const result = await deliver('good.test', true);
    assert.equal(result.recipients[0]?.outcome, 'delivered', JSON.stringify(result.recipients[0]?.reply));
    assert.ok(result.connection?.tls);
    assert.match(sinks.good.transactions[0]!.mailParams, /\bREQUIRETLS\b/);
  });

  for (const [domain, sink, why] of [
    ['noextension.test', 'noExtension', /does not support REQUIRETLS/],
    ['plain.test', 'plain', /REQUIRETLS: TLS is required/],
    ['selfsigned.test', 'selfSigned', /REQUIRETLS: TLS handshake/],
  ] as const) {
    it(`${domain}: bounced with 5.7.30, nothing sent`, async () => {
      const result = await deliver(domain, true);
      const answer = result.recipients[0]!;
      assert.equal(answer.outcome, 'permanent');
      assert.equal(answer.reply.enhanced, '5.7.30');
      assert.match(answer.reply.text, why);
      assert.ok(
        sinks[sink].transactions.every((t) => t.data === undefined),
        'no message data reached it',
      );
    });
  }

  it('TLS-Required: No does not lift REQUIRETLS; without REQUIRETLS plaintext delivery works as before', async () => {
    const header = 'TLS-Required: No\r\nSubject: rt\r\n\r\nhello\r\n';
    assert.equal((await deliver('plain.test', true, header)).recipients[0]?.outcome, 'permanent');
    assert.equal((await deliver('plain.test', false)).recipients[0]?.outcome, 'delivered');
    assert.equal(sinks.plain.transactions.filter((t) => t.data !== undefined).length, 1);
  });
});
