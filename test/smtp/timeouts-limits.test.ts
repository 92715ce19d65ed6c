import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startTestServer } from '../support/smtp-test-server.ts';

describe('idle timeout', () => {
  it('sends 421 4.4.2 and closes an idle session', async () => {
    const t = await startTestServer({ idleTimeoutMs: 200 });
    try {
      const c = await SmtpTestClient.connect(t.port);
      await c.hello();
      const started = performance.now();
      const r = await c.read(2000);
      assert.deepEqual([r.code, r.enhanced], [421, '4.4.2']);
      assert.ok(performance.now() - started >= 150);
      await c.waitClosed();
    } finally {
      await t.close();
    }
  });

  it('does not count a slow onData against the client', async () => {
    const t = await startTestServer({
      idleTimeoutMs: 150,
      handlers: { onData: () => new Promise((resolve) => setTimeout(() => resolve(undefined), 400)) },
    });
    try {
      const c = await SmtpTestClient.connect(t.port);
      await c.hello();
      await c.sendSmallMessage();
      assert.equal((await c.read(2000)).code, 250);
      c.close();
    } finally {
      await t.close();
    }
  });

  it('drops a client stuck in the middle of DATA', async () => {
    const t = await startTestServer({ idleTimeoutMs: 200 });
    try {
      const c = await SmtpTestClient.connect(t.port);
      await c.hello();
      await c.command('MAIL FROM:<a@example.com>');
      await c.command('RCPT TO:<b@example.com>');
      await c.command('DATA');
      c.write('Subject: half\r\n');
      const r = await c.read(2000);
      assert.equal(r.code, 421);
      await c.waitClosed();
      assert.equal(t.received.length, 0);
    } finally {
      await t.close();
    }
  });
});

describe('connection limits', () => {
  it('refuses connections over maxConnections with 421 4.7.0 and admits again when one leaves', async () => {
    const t = await startTestServer({ maxConnections: 2 });
    try {
      const a = await SmtpTestClient.connect(t.port);
      const b = await SmtpTestClient.connect(t.port);
      await a.read();
      await b.read();
      const c = await SmtpTestClient.connect(t.port);
      const r = await c.read();
      assert.deepEqual([r.code, r.enhanced], [421, '4.7.0']);
      await c.waitClosed();
      assert.equal(t.server.connections, 2);
      a.send('QUIT');
      await a.waitClosed();
      await new Promise((resolve) => setTimeout(resolve, 20));
      const d = await SmtpTestClient.connect(t.port);
      assert.equal((await d.read()).code, 220);
      b.close();
      d.close();
    } finally {
      await t.close();
    }
  });

  it('limits connections per client IP', async () => {
    const t = await startTestServer({ maxConnectionsPerIp: 1 });
    try {
      const a = await SmtpTestClient.connect(t.port);
      assert.equal((await a.read()).code, 220);
      const b = await SmtpTestClient.connect(t.port);
      assert.equal((await b.read()).code, 421);
      // Another loopback address is another client.
      const other = net.connect({ port: t.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
      const greeting = await new Promise<string>((resolve, reject) => {
        other.once('data', (d) => resolve(d.toString()));
        other.once('error', reject);
      });
      assert.match(greeting, /^220 /);
      other.destroy();
      a.close();
    } finally {
      await t.close();
    }
  });
});
