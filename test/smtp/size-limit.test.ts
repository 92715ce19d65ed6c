import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startTestServer, type TestServer } from '../support/smtp-test-server.ts';

describe('message size limit', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ sizeLimit: 1000 });
  });
  after(() => t.close());

  async function open(): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(t.port);
    const ehlo = await c.hello();
    assert.ok(ehlo.lines.includes('SIZE 1000'));
    return c;
  }

  async function send(c: SmtpTestClient, body: string | Buffer): Promise<number> {
    await c.command('MAIL FROM:<s@example.com>');
    await c.command('RCPT TO:<r@example.com>');
    assert.equal((await c.command('DATA')).code, 354);
    c.write(body);
    return (await c.read(5000)).code;
  }

  it('accepts a message of exactly the limit', async () => {
    const c = await open();
    const before = t.received.length;
    const body = `${'x'.repeat(998)}\r\n`;
    assert.equal(await send(c, `${body}.\r\n`), 250);
    assert.equal(t.received.length, before + 1);
    assert.equal(t.received.at(-1)?.size, 1000);
    c.close();
  });

  it('drains an oversize message to its end, answers 552 5.3.4 and keeps the session', async () => {
    const c = await open();
    const before = t.received.length;
    await c.command('MAIL FROM:<s@example.com>');
    await c.command('RCPT TO:<r@example.com>');
    await c.command('DATA');
    const line = `${'y'.repeat(998)}\r\n`;
    for (let i = 0; i < 200; i++) c.write(line); // 200 KB in many writes
    c.write('.\r\n');
    const r = await c.read(5000);
    assert.deepEqual([r.code, r.enhanced], [552, '5.3.4']);
    assert.match(r.text, /1000/);
    assert.equal(t.received.length, before, 'onData was not called');
    assert.equal(await send(c, 'small\r\n.\r\n'), 250, 'the connection is still usable');
    c.close();
  });

  it('refuses a declared SIZE over the limit at MAIL', async () => {
    const c = await open();
    const r = await c.command('MAIL FROM:<s@example.com> SIZE=1001');
    assert.deepEqual([r.code, r.enhanced], [552, '5.3.4']);
    assert.equal((await c.command('MAIL FROM:<s@example.com> SIZE=1000')).code, 250);
    c.close();
  });
});
