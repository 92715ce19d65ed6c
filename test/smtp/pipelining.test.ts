import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { replies } from '../../src/smtp/replies.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startTestServer, type TestServer } from '../support/smtp-test-server.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('PIPELINING (RFC 2920)', () => {
  let t: TestServer;
  const order: string[] = [];
  before(async () => {
    t = await startTestServer({
      handlers: {
        // Slow, decreasing delays: replies must still come back in command order.
        onMailFrom: async () => {
          await sleep(30);
          order.push('mail');
          return undefined;
        },
        onRcptTo: async (_s, address) => {
          await sleep(address.startsWith('slow') ? 40 : 5);
          order.push(address);
          return address.startsWith('bad') ? replies.relayDenied : undefined;
        },
      },
    });
  });
  after(() => t.close());

  it('answers a pipelined batch in order, with async handlers of different speeds', async () => {
    const c = await SmtpTestClient.connect(t.port);
    const ehlo = await c.hello();
    assert.ok(ehlo.lines.includes('PIPELINING'));
    order.length = 0;
    c.write(
      'MAIL FROM:<s@example.com>\r\nRCPT TO:<slow@example.com>\r\nRCPT TO:<bad@example.com>\r\nRCPT TO:<fast@example.com>\r\nDATA\r\n',
    );
    const r = await c.readMany(5);
    assert.deepEqual(
      r.map((x) => x.code),
      [250, 250, 554, 250, 354],
    );
    assert.deepEqual(order, ['mail', 'slow@example.com', 'bad@example.com', 'fast@example.com']);
    // Message, end marker and the next commands in one write.
    c.write('Subject: p\r\n\r\nbody\r\n.\r\nRSET\r\nQUIT\r\n');
    const end = await c.readMany(3);
    assert.deepEqual(
      end.map((x) => x.code),
      [250, 250, 221],
    );
    assert.deepEqual(
      t.received.at(-1)?.envelope.rcptTo.map((x) => x.address),
      ['slow@example.com', 'fast@example.com'],
    );
    await c.waitClosed();
  });

  it('survives a whole session in a single write (even the DATA content)', async () => {
    const c = await SmtpTestClient.connect(t.port);
    c.write(
      'EHLO one.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: s\r\n\r\nx\r\n.\r\nQUIT\r\n',
    );
    const r = await c.readMany(6);
    assert.deepEqual(
      r.map((x) => x.code),
      [220, 250, 250, 250, 354, 250],
    );
    assert.equal((await c.read()).code, 221);
    await c.waitClosed();
  });

  it('answers every command of a client that half-closes right after sending (scripted peers)', async () => {
    const c = await SmtpTestClient.connect(t.port);
    c.socket.end(
      'EHLO script.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<slow1@example.com>\r\nRCPT TO:<slow2@example.com>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n',
    );
    const r = await c.readMany(7);
    assert.deepEqual(
      r.map((x) => x.code),
      [220, 250, 250, 250, 250, 354, 250],
    );
    assert.equal((await c.read()).code, 221);
    await c.waitClosed();
  });

  it('handles commands split across TCP writes at any byte', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.read();
    const text = 'EHLO split.example\r\nNOOP\r\n';
    for (const ch of text) {
      c.write(ch);
      await sleep(1);
    }
    const r = await c.readMany(2);
    assert.deepEqual(
      r.map((x) => x.code),
      [250, 250],
    );
    c.close();
  });
});
