import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startTestServer, type TestServer } from '../support/smtp-test-server.ts';

describe('greeting and EHLO', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  it('greets at once with the host name (no fixed pause on submission)', async () => {
    const started = performance.now();
    const c = await SmtpTestClient.connect(t.port);
    const greeting = await c.read();
    const elapsed = performance.now() - started;
    assert.equal(greeting.code, 220);
    assert.equal(greeting.text, 'mx.test ESMTP Postbote');
    assert.ok(elapsed < 90, `greeting took ${elapsed} ms`);
    c.close();
  });

  it('lists the extensions, without CHUNKING, STARTTLS (no certificate) or AUTH (not configured)', async () => {
    const c = await SmtpTestClient.connect(t.port);
    const ehlo = await c.hello();
    assert.equal(ehlo.code, 250);
    assert.deepEqual(ehlo.lines, [
      'mx.test',
      'SIZE 10000',
      'PIPELINING',
      '8BITMIME',
      'SMTPUTF8',
      'ENHANCEDSTATUSCODES',
      'DSN',
    ]);
    c.close();
  });

  it('requires an EHLO argument and accepts address literals', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.read();
    const bad = await c.command('EHLO');
    assert.equal(bad.code, 501);
    assert.equal(bad.enhanced, '5.5.4');
    assert.equal((await c.command('EHLO [127.0.0.1]')).code, 250);
    assert.equal((await c.command('ehlo lower.case.example')).code, 250, 'verbs are case-insensitive');
    c.close();
  });

  it('answers HELO with one line and then refuses ESMTP parameters', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.read();
    const helo = await c.command('HELO client.example');
    assert.deepEqual([helo.code, helo.lines], [250, ['mx.test']]);
    const mail = await c.command('MAIL FROM:<a@example.com> SIZE=10');
    assert.equal(mail.code, 555);
    assert.equal((await c.command('MAIL FROM:<a@example.com>')).code, 250);
    c.close();
  });

  it('refuses MAIL before HELO/EHLO with 503 5.5.1', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.read();
    const r = await c.command('MAIL FROM:<a@example.com>');
    assert.deepEqual([r.code, r.enhanced], [503, '5.5.1']);
    c.close();
  });

  it('answers the small commands', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    assert.deepEqual(
      [
        (await c.command('NOOP')).code,
        (await c.command('NOOP anything')).code,
        (await c.command('RSET')).code,
      ],
      [250, 250, 250],
    );
    const vrfy = await c.command('VRFY postmaster');
    assert.deepEqual([vrfy.code, vrfy.enhanced], [252, '2.5.0']);
    assert.equal((await c.command('HELP')).code, 214);
    assert.deepEqual((await c.command('EXPN list')).code, 502);
    assert.deepEqual((await c.command('BDAT 10 LAST')).code, 502);
    const unknown = await c.command('FOO bar');
    assert.deepEqual([unknown.code, unknown.enhanced], [500, '5.5.2']);
    assert.equal((await c.command('RSET now')).code, 501);
    const quit = await c.command('QUIT');
    assert.deepEqual([quit.code, quit.enhanced], [221, '2.0.0']);
    await c.waitClosed();
  });

  it('cuts off an HTTP request at once (cross-protocol attempt)', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.read();
    c.write('GET / HTTP/1.1\r\nHost: mx.test\r\n\r\n');
    const r = await c.read();
    assert.equal(r.code, 421);
    await c.waitClosed();
  });

  it('closes with 421 after too many protocol errors', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.read();
    for (let i = 0; i < 9; i++) assert.equal((await c.command(`XYZZY ${i}`)).code, 500);
    c.send('XYZZY 10');
    assert.equal((await c.read()).code, 500);
    const last = await c.read();
    assert.deepEqual([last.code, last.enhanced], [421, '4.7.0']);
    await c.waitClosed();
  });
});

describe('greeting delay and onConnect', () => {
  it('refuses an early talker with 554 and closes', async () => {
    const t = await startTestServer({ greetingDelayMs: 300 });
    try {
      const c = await SmtpTestClient.connect(t.port);
      c.send('EHLO spammer.example');
      const r = await c.read();
      assert.deepEqual([r.code, r.enhanced], [554, '5.5.1']);
      await c.waitClosed();
      assert.equal(t.received.length, 0);
    } finally {
      await t.close();
    }
  });

  it('greets a patient client after the delay', async () => {
    const t = await startTestServer({ greetingDelayMs: 150 });
    try {
      const started = performance.now();
      const c = await SmtpTestClient.connect(t.port);
      const greeting = await c.read();
      assert.equal(greeting.code, 220);
      assert.ok(performance.now() - started >= 140);
      assert.equal((await c.command('EHLO ok.example')).code, 250);
      c.close();
    } finally {
      await t.close();
    }
  });

  it('lets onConnect refuse the session in the greeting slot', async () => {
    const t = await startTestServer({
      handlers: {
        onConnect: async (session) => {
          assert.equal(session.remoteAddress, '127.0.0.1');
          assert.ok(session.remotePort > 0);
          return { code: 554, enhanced: '5.7.1', text: 'Go away' };
        },
      },
    });
    try {
      const c = await SmtpTestClient.connect(t.port);
      const r = await c.read();
      assert.deepEqual([r.code, r.text], [554, '5.7.1 Go away']);
      await c.waitClosed();
    } finally {
      await t.close();
    }
  });

  it('keeps input that arrives while onConnect is still deciding (no delay configured)', async () => {
    const t = await startTestServer({
      handlers: { onConnect: () => new Promise((resolve) => setTimeout(() => resolve(undefined), 50)) },
    });
    try {
      const c = await SmtpTestClient.connect(t.port);
      c.send('EHLO eager.example');
      assert.equal((await c.read()).code, 220);
      assert.equal((await c.read()).code, 250);
      c.close();
    } finally {
      await t.close();
    }
  });
});
