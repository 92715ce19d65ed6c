import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SmtpLogger } from '../../src/smtp/server/types.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startTestServer } from '../support/smtp-test-server.ts';

function recordingLogger(): SmtpLogger & { errors: { obj: object; msg: string | undefined }[] } {
  const errors: { obj: object; msg: string | undefined }[] = [];
  return { errors, info() {}, warn() {}, error: (obj, msg) => errors.push({ obj, msg }) };
}

describe('handler failures', () => {
  it('turns throws and rejections into 451 4.3.0, logs them, and keeps the session', async () => {
    const logger = recordingLogger();
    const t = await startTestServer({
      logger,
      handlers: {
        onMailFrom: (_s, address) => {
          if (address === 'throw@example.com') throw new Error('sync boom');
          return undefined;
        },
        onRcptTo: async (_s, address) => {
          if (address === 'reject@example.com') throw new Error('async boom');
          return undefined;
        },
        onData: async () => {
          throw new Error('store down');
        },
      },
    });
    try {
      const c = await SmtpTestClient.connect(t.port);
      await c.hello();
      const mail = await c.command('MAIL FROM:<throw@example.com>');
      assert.deepEqual([mail.code, mail.enhanced], [451, '4.3.0']);
      assert.equal((await c.command('MAIL FROM:<ok@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<reject@example.com>')).code, 451);
      assert.equal((await c.command('RCPT TO:<ok@example.com>')).code, 250);
      await c.command('DATA');
      c.write('x\r\n.\r\n');
      const data = await c.read();
      assert.deepEqual([data.code, data.enhanced], [451, '4.3.0']);
      assert.equal((await c.command('RCPT TO:<ok@example.com>')).code, 503, 'transaction reset after DATA');
      assert.deepEqual(
        logger.errors.map((e) => (e.obj as { handler: string }).handler),
        ['onMailFrom', 'onRcptTo', 'onData'],
      );
      c.close();
    } finally {
      await t.close();
    }
  });

  it('answers 421 when onConnect throws', async () => {
    const t = await startTestServer({
      handlers: {
        onConnect: () => {
          throw new Error('nope');
        },
      },
    });
    try {
      const c = await SmtpTestClient.connect(t.port);
      const r = await c.read();
      assert.deepEqual([r.code, r.enhanced], [421, '4.3.0']);
      await c.waitClosed();
    } finally {
      await t.close();
    }
  });

  it('uses 250 2.0.0 when onData returns nothing', async () => {
    const t = await startTestServer({ handlers: { onData: () => undefined } });
    try {
      const c = await SmtpTestClient.connect(t.port);
      await c.hello();
      await c.sendSmallMessage();
      const r = await c.read();
      assert.deepEqual([r.code, r.enhanced], [250, '2.0.0']);
      c.close();
    } finally {
      await t.close();
    }
  });

  it('does not write to a socket the client closed while onData was running', async () => {
    let finish: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const logger = recordingLogger();
    const t = await startTestServer({
      logger,
      handlers: {
        onData: async () => {
          await new Promise((resolve) => setTimeout(resolve, 100));
          finish();
          return undefined;
        },
      },
    });
    try {
      const c = await SmtpTestClient.connect(t.port);
      await c.hello();
      await c.command('MAIL FROM:<a@example.com>');
      await c.command('RCPT TO:<b@example.com>');
      await c.command('DATA');
      c.write('x\r\n.\r\nQUIT\r\n');
      c.close();
      await done;
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(t.server.connections, 0);
      assert.deepEqual(logger.errors, []);
      const d = await SmtpTestClient.connect(t.port);
      assert.equal((await d.hello()).code, 250);
      d.close();
    } finally {
      await t.close();
    }
  });
});
