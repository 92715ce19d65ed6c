import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startTestServer, type TestServer } from '../support/smtp-test-server.ts';

describe('command line limits and hostile input', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({
      maxLineLength: 1000,
      authMethods: ['PLAIN'],
      allowPlaintextAuth: () => true,
      handlers: { onAuth: () => ({ ok: true, user: 'u' }) },
    });
  });
  after(() => t.close());

  it('answers 500 to an over-long line, drops it to its CRLF and carries on', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    const r = await c.command(`NOOP ${'x'.repeat(2000)}`);
    assert.deepEqual([r.code, r.enhanced], [500, '5.5.2']);
    assert.match(r.text, /too long/i);
    assert.equal((await c.command('NOOP')).code, 250);
    assert.equal((await c.command(`NOOP ${'x'.repeat(990)}`)).code, 250, 'a line at the limit is fine');
    c.close();
  });

  it('answers once to a flood without newline and resynchronises at the next CRLF', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    const chunk = 'A'.repeat(16 * 1024);
    for (let i = 0; i < 64; i++) c.write(chunk); // 1 MiB without a newline
    const r = await c.read(5000);
    assert.equal(r.code, 500);
    c.write('\r\nNOOP\r\n');
    assert.equal((await c.read(5000)).code, 250);
    assert.equal(t.server.connections, 1);
    c.close();
  });

  it('refuses bare LF line endings, NUL, bare CR and invalid UTF-8 in commands', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    c.write('NOOP\n');
    const bareLf = await c.read();
    assert.deepEqual([bareLf.code, bareLf.enhanced], [500, '5.5.2']);
    assert.equal((await c.command('NO\0OP')).code, 500);
    assert.equal((await c.command('NOOP a\rb')).code, 500);
    c.write(Buffer.from([0x4e, 0x4f, 0x4f, 0x50, 0x20, 0xff, 0xfe, 0x0d, 0x0a]));
    assert.equal((await c.read()).code, 500);
    assert.equal((await c.command('NOOP')).code, 250);
    c.close();
  });

  it('answers 500 5.5.6 to an over-long AUTH response and leaves the exchange', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    assert.equal((await c.command('AUTH PLAIN')).code, 334);
    const r = await c.command('A'.repeat(1200));
    assert.deepEqual([r.code, r.enhanced], [500, '5.5.6']);
    assert.equal((await c.command('NOOP')).code, 250);
    c.close();
  });

  it('survives random binary input', async () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed & 0xff;
    };
    for (let round = 0; round < 20; round++) {
      const c = await SmtpTestClient.connect(t.port);
      await c.read();
      const bytes = Buffer.alloc(4096);
      for (let i = 0; i < bytes.length; i++) bytes[i] = random();
      c.write(bytes);
      c.close();
    }
    const c = await SmtpTestClient.connect(t.port);
    assert.equal((await c.hello()).code, 250, 'the server still answers');
    c.close();
  });
});
