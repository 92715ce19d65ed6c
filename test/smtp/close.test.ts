import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startTestServer } from '../support/smtp-test-server.ts';

describe('server close()', () => {
  it('tells idle sessions 421 4.3.2, closes them and stops listening', async () => {
    const t = await startTestServer();
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    const closing = t.close();
    const r = await c.read();
    assert.deepEqual([r.code, r.enhanced], [421, '4.3.2']);
    await c.waitClosed();
    await closing;
    assert.equal(t.server.connections, 0);
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = net.connect(t.port, '127.0.0.1', () => resolve(s));
        s.on('error', reject);
      }),
      /ECONNREFUSED/,
    );
  });

  it('lets a session inside onData finish its reply, then says 421', async () => {
    let entered: () => void = () => {};
    const inData = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const t = await startTestServer({
      handlers: {
        onData: async () => {
          entered();
          await new Promise((resolve) => setTimeout(resolve, 150));
          return { code: 250, enhanced: '2.0.0', text: 'Ok: queued as late' };
        },
      },
    });
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    await c.sendSmallMessage();
    await inData;
    const closing = t.close();
    const stored = await c.read();
    assert.deepEqual([stored.code, stored.text], [250, '2.0.0 Ok: queued as late']);
    assert.equal((await c.read()).code, 421);
    await c.waitClosed();
    await closing;
  });

  it('destroys sessions that do not finish within closeTimeoutMs', async () => {
    const t = await startTestServer({ closeTimeoutMs: 200 });
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    await c.command('MAIL FROM:<a@example.com>');
    await c.command('RCPT TO:<b@example.com>');
    await c.command('DATA');
    c.write('Subject: never ends\r\n');
    const started = performance.now();
    await t.close();
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 150 && elapsed < 1500, `closed after ${elapsed} ms`);
    await c.waitClosed();
  });
});

describe('QUIT', () => {
  it('closes right after the 221; a client that resets with the 221 unread costs no socket error', async (t) => {
    const logged: string[] = [];
    const note = (_obj: object, msg?: string): void => {
      logged.push(msg ?? '');
    };
    const server = await startTestServer({ logger: { debug: note, info: note, warn: note, error: note } });
    const socket = net.connect(server.port, '127.0.0.1');
    socket.on('error', () => {});
    t.after(async () => {
      socket.destroy();
      await server.close();
    });
    const readLine = (): Promise<string> =>
      new Promise((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    assert.match(await readLine(), /^220 /);
    socket.write('EHLO client.test\r\n');
    assert.match(await readLine(), /^250/);
    // Stop reading: the 221 stays unread in this side's buffer, and closing then sends a reset.
    socket.pause();
    const started = performance.now();
    socket.write('QUIT\r\n');
    await waitUntil(() => server.server.connections === 0);
    const elapsed = performance.now() - started;
    // Not the 2 s linger of other closes: the session ended with the 221.
    assert.ok(elapsed < 1000, `the server kept the session ${elapsed.toFixed(0)} ms after QUIT`);
    socket.resetAndDestroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(
      logged.filter((m) => m === 'SMTP socket error'),
      [],
    );
  });
});

async function waitUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(done(), 'timed out');
}
