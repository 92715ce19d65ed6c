import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type tls from 'node:tls';
import type { SmtpSession } from '../../src/smtp/server/types.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import {
  selfSignedCertificate,
  startTestServer,
  type TestServer,
  testSecureContext,
} from '../support/smtp-test-server.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('STARTTLS (RFC 3207)', () => {
  let t: TestServer;
  let contextCalls = 0;
  const authSessions: SmtpSession[] = [];
  const ca = selfSignedCertificate().cert;
  const clientTls: tls.ConnectionOptions = { ca, servername: 'localhost' };
  before(async () => {
    const context = testSecureContext();
    t = await startTestServer({
      tls: () => {
        contextCalls++;
        return context;
      },
      authMethods: ['PLAIN'],
      handlers: {
        onAuth: (session, { password }) => {
          authSessions.push(session);
          return password === 'pw'
            ? { ok: true, user: 'u' }
            : { ok: false, reply: { code: 535, text: 'no' } };
        },
      },
    });
  });
  after(() => t.close());

  async function upgraded(): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(t.port);
    const ehlo = await c.hello();
    assert.ok(ehlo.lines.includes('STARTTLS'));
    assert.ok(!ehlo.lines.some((l) => l.startsWith('AUTH')), 'no AUTH offered in plaintext');
    const ready = await c.command('STARTTLS');
    assert.deepEqual([ready.code, ready.enhanced], [220, '2.0.0']);
    await c.upgrade(clientTls);
    return c;
  }

  it('upgrades, forgets the EHLO, then offers AUTH and no second STARTTLS', async () => {
    const c = await upgraded();
    const mail = await c.command('MAIL FROM:<a@example.com>');
    assert.equal(mail.code, 503, 'EHLO required again after TLS');
    const ehlo = await c.command('EHLO again.example');
    assert.ok(!ehlo.lines.includes('STARTTLS'));
    assert.ok(ehlo.lines.includes('AUTH PLAIN'));
    const again = await c.command('STARTTLS');
    assert.equal(again.code, 503);
    assert.equal((await c.command(`AUTH PLAIN ${b64('\0user\0pw')}`)).code, 235);
    const session = authSessions.at(-1);
    assert.equal(session?.secure, true);
    assert.match(session?.tls?.protocol ?? '', /^TLSv1\.[23]$/);
    assert.ok(session?.tls?.cipher);
    await c.command('MAIL FROM:<a@example.com>');
    await c.command('RCPT TO:<b@example.com>');
    await c.command('DATA');
    c.write('Subject: tls\r\n\r\nsecret\r\n.\r\n');
    assert.equal((await c.read()).code, 250);
    assert.equal(t.received.at(-1)?.session.secure, true);
    c.close();
  });

  it('refuses AUTH before TLS with 538 5.7.11', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    const r = await c.command(`AUTH PLAIN ${b64('\0user\0pw')}`);
    assert.deepEqual([r.code, r.enhanced], [538, '5.7.11']);
    c.close();
  });

  it('discards commands pipelined after STARTTLS (CVE-2011-0411)', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    c.write('STARTTLS\r\nHELP\r\nMAIL FROM:<injected@example.com>\r\n');
    assert.equal((await c.read()).code, 220);
    await c.upgrade(clientTls);
    const first = await c.command('NOOP');
    assert.equal(first.code, 250, `first reply inside TLS must answer NOOP, got ${first.code} ${first.text}`);
    await assert.rejects(c.read(200), /no reply/);
    c.close();
  });

  it('refuses STARTTLS with an argument', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    assert.equal((await c.command('STARTTLS now')).code, 501);
    c.close();
  });

  it('asks the certificate getter at every handshake (reloadable certificates)', async () => {
    const calls = contextCalls;
    const c = await upgraded();
    assert.ok(contextCalls > calls);
    c.close();
  });

  it('drops a client that sends garbage instead of a handshake, and keeps serving others', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    await c.command('STARTTLS');
    c.write('this is not TLS\r\n\r\n');
    await c.waitClosed(2000);
    const d = await upgraded();
    assert.equal((await d.command('EHLO ok.example')).code, 250);
    d.close();
  });
});

describe('STARTTLS without a certificate', () => {
  it('is not offered and answers 454 4.7.0', async () => {
    const t = await startTestServer({ tls: () => undefined });
    try {
      const c = await SmtpTestClient.connect(t.port);
      const ehlo = await c.hello();
      assert.ok(!ehlo.lines.includes('STARTTLS'));
      const r = await c.command('STARTTLS');
      assert.deepEqual([r.code, r.enhanced], [454, '4.7.0']);
      c.close();
    } finally {
      await t.close();
    }
  });
});

describe('implicit TLS (secure: true)', () => {
  it('greets inside TLS and never offers STARTTLS', async () => {
    const context = testSecureContext();
    const t = await startTestServer({ secure: true, tls: () => context });
    try {
      const c = await SmtpTestClient.connect(t.port, {
        tls: { ca: selfSignedCertificate().cert, servername: 'localhost' },
      });
      const ehlo = await c.hello();
      assert.ok(!ehlo.lines.includes('STARTTLS'));
      await c.sendSmallMessage();
      assert.equal((await c.read()).code, 250);
      assert.equal(t.received.at(-1)?.session.secure, true);
      c.close();
      // A plaintext client gets no SMTP at all and is disconnected.
      const raw = net.connect(t.port, '127.0.0.1');
      raw.on('error', () => {});
      raw.write('EHLO plain.example\r\n');
      await new Promise((resolve) => raw.once('close', resolve));
    } finally {
      await t.close();
    }
  });
});
