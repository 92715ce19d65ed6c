/**
 * SMTP smuggling, the bytes we send onward (issue 11): whatever line-end tricks a message
 * carries into Postbote, the copy we store has only CRLF line ends, and what our outbound SMTP
 * session puts on the wire ends the message exactly once, at its real end. Both listeners
 * refuse bare CR/LF at the end of DATA (test/smtp/data.test.ts), so the way in for such bytes
 * is the HTTP API's raw message, which is where this test sends them; the receiving side is our
 * own strict server, which would see a second transaction or a cut message if a variant ended
 * the DATA early.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openSession } from '../../src/delivery/smtp-session.ts';
import { type ApiApp, startApiApp } from '../support/api-app.ts';
import { startTestServer, type TestServer } from '../support/smtp-test-server.ts';

/** The end-of-data variants of the 2023 smuggling reports, and a few neighbours. */
const VARIANTS = [
  '\n.\n',
  '\r.\r',
  '\n.\r\n',
  '\r\n.\r',
  '\r.\n',
  '\r\n.\n',
  '\n.\r',
  '\r\n\r.\r\n',
  '\n..\n',
];

const smuggled = (variant: string) =>
  `From: a@acme.test\r\nTo: b@example.com\r\nSubject: s\r\n\r\nhello${variant}MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nowned\r\n.\r\nQUIT\r\n`;

/** True when every CR is followed by LF and every LF preceded by CR. */
const onlyCrlf = (b: Buffer) => !/\r(?!\n)|(?<!\r)\n/.test(b.toString('latin1'));

describe('SMTP smuggling: what Postbote stores and sends onward', () => {
  let api: ApiApp;
  let receiver: TestServer;
  before(async () => {
    api = await startApiApp();
    receiver = await startTestServer({ sizeLimit: 100_000 });
  });
  after(async () => {
    await receiver.close();
    await api.close();
  });

  for (const variant of VARIANTS) {
    it(`stores and relays ${JSON.stringify(variant)} as one message with CRLF line ends only`, async () => {
      const res = await api.app.inject({
        method: 'POST',
        url: '/v1/messages/raw',
        headers: { authorization: `Bearer ${api.keys.all}`, 'content-type': 'application/json' },
        payload: {
          mail_from: 'a@acme.test',
          rcpt_to: ['b@example.com'],
          raw: Buffer.from(smuggled(variant), 'latin1').toString('base64'),
        },
      });
      assert.equal(res.statusCode, 202, res.body);
      const id = (res.json() as { id: string }).id;
      const body = await api.store.getBody(id);
      assert.ok(body);
      assert.ok(
        onlyCrlf(body),
        `stored copy has a bare CR or LF: ${JSON.stringify(body.toString('latin1').slice(-160))}`,
      );

      const before = receiver.received.length;
      const session = await openSession({
        peer: { host: 'mx.test', ip: '127.0.0.1', port: receiver.port },
        ehloName: 'relay.test',
        starttls: 'none',
        connectTimeoutMs: 5000,
        greetingTimeoutMs: 5000,
        socketTimeoutMs: 5000,
        tls: {},
      });
      try {
        const result = await session.send(
          { from: 'a@acme.test', to: ['b@example.com'], size: body.length },
          body,
        );
        assert.ok(
          result.recipients.every((r) => r.outcome === 'delivered'),
          JSON.stringify(result),
        );
      } finally {
        session.quit();
        await session.whenEnded;
      }
      const got = receiver.received.slice(before);
      assert.equal(got.length, 1, 'exactly one message arrived: nothing was smuggled');
      assert.equal(got[0]?.message.toString('latin1'), body.toString('latin1'), 'it arrived whole');
    });
  }
});
