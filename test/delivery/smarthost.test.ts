/**
 * Smarthost routes on the delivery path (destination → pool → our own SMTP server as the relay):
 * implicit TLS with AUTH, STARTTLS required, and what happens when a relay does not offer it.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { createMxDestination } from '../../src/delivery/destination.ts';
import { createRouter, routerInput } from '../../src/delivery/routing/router.ts';
import { createSessionPool } from '../../src/delivery/session-pool.ts';
import { createShapingPolicy } from '../../src/delivery/shaping/policy.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { replies } from '../../src/smtp/replies.ts';
import { startTestServer, testSecureContext } from '../support/smtp-test-server.ts';
import { load } from './routing/load.ts';

const body = Buffer.from('Subject: via the relay\r\n\r\nhello\r\n');

async function relay(
  t: TestContext,
  options: { secure?: boolean; starttls?: boolean; user?: string; password?: string },
) {
  const logins: string[] = [];
  const server = await startTestServer({
    ...(options.secure ? { secure: true } : {}),
    ...(options.secure || options.starttls ? { tls: () => testSecureContext() } : {}),
    authMethods: ['PLAIN', 'LOGIN'],
    allowPlaintextAuth: () => false,
    handlers: {
      onAuth: async (_session, credentials) => {
        logins.push(credentials.username);
        return credentials.username === 'relay-user' && credentials.password === 'relay secret'
          ? { ok: true, user: { name: credentials.username } }
          : { ok: false, reply: replies.authFailed };
      },
      onMailFrom: (session) => (options.user && !session.user ? replies.authRequired : undefined),
    },
  });
  t.after(() => server.close());
  return { server, logins };
}

function destinationFor(t: TestContext, port: number, tls: 'tls' | 'starttls' | 'none', user?: string) {
  const config = load({
    routes: [
      {
        name: 'relay',
        match: { domains: ['*'] },
        via: 'smarthost',
        smarthost: {
          host: '127.0.0.1',
          port,
          tls,
          ...(user ? { user, password: 'relay secret' } : {}),
        },
      },
    ],
  });
  const pool = createSessionPool({
    maxConnectionsPerKey: 2,
    ehloName: 'relay.postbote.test',
    connectTimeoutMs: 2000,
  });
  t.after(() => pool.close());
  const destination = createMxDestination({
    resolver: { mx: async () => [], a: async () => [], aaaa: async () => [] },
    pool,
    port: 25,
    allowPrivate: true,
    starttls: 'opportunistic',
    shaping: createShapingPolicy(config),
    router: createRouter(routerInput(config), { clock: { now: Date.now }, random: () => 0.5 }),
    logger: silentLogger(),
  });
  return (to: string) =>
    destination.deliver({
      domain: to.split('@')[1]!,
      mailFrom: 'app@sender.test',
      recipients: [to],
      dsn: {},
      body,
    });
}

describe('smarthost routes', () => {
  it('implicit TLS (tls) with AUTH: the relay gets the message over TLS from the configured user', async (t) => {
    const { server, logins } = await relay(t, { secure: true, user: 'relay-user' });
    const send = destinationFor(t, server.port, 'tls', 'relay-user');
    const result = await send('someone@anywhere.test');
    assert.equal(result.recipients[0]?.outcome, 'delivered', result.recipients[0]?.reply.text);
    assert.equal(result.route, 'relay');
    assert.ok(result.connection?.tls, 'over TLS');
    assert.deepEqual(logins, ['relay-user']);
    assert.equal(server.received.length, 1);
    assert.equal(server.received[0]?.session.secure, true);
  });

  it('starttls means STARTTLS required: delivered over TLS where offered, not sent in plaintext where not', async (t) => {
    const withTls = await relay(t, { starttls: true, user: 'relay-user' });
    const ok = await destinationFor(t, withTls.server.port, 'starttls', 'relay-user')('a@anywhere.test');
    assert.equal(ok.recipients[0]?.outcome, 'delivered', ok.recipients[0]?.reply.text);
    assert.ok(ok.connection?.tls);

    const plain = await relay(t, {});
    const refused = await destinationFor(t, plain.server.port, 'starttls')('b@anywhere.test');
    assert.equal(refused.recipients[0]?.outcome, 'temporary');
    assert.equal(plain.server.received.length, 0, 'nothing sent in plaintext');
  });
});
