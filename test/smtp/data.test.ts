import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DataReader } from '../../src/smtp/server/data-reader.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startTestServer, type TestServer } from '../support/smtp-test-server.ts';

/** Feed `input` to a reader in the given pieces; returns the result and what followed the marker. */
function read(pieces: Buffer[], limit = 1_000_000) {
  const reader = new DataReader(limit);
  for (let i = 0; i < pieces.length; i++) {
    const rest = reader.push(pieces[i] as Buffer);
    if (rest !== undefined) {
      return { ...reader.result(), rest: Buffer.concat([rest, ...pieces.slice(i + 1)]).toString('latin1') };
    }
  }
  return undefined;
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('DataReader', () => {
  it('ends at CRLF.CRLF and undoes dot-stuffing (RFC 5321 §4.5.2)', () => {
    const r = read([b('Subject: x\r\n\r\n..leading dot\r\n...two\r\n.\r\nQUIT\r\n')]);
    assert.ok(r);
    assert.equal(r.message.toString('latin1'), 'Subject: x\r\n\r\n.leading dot\r\n..two\r\n');
    assert.equal(r.size, r.message.length);
    assert.equal(r.rest, 'QUIT\r\n');
    assert.equal(r.bareNewline, false);
  });

  it('treats an immediate "." CRLF as an empty message', () => {
    const r = read([b('.\r\n')]);
    assert.ok(r);
    assert.equal(r.message.length, 0);
  });

  it('finds the marker and the same content at every chunk boundary', () => {
    const input = 'A: 1\r\n\r\n.x\r\nline\r\n..\r\n.\r\nNEXT';
    const expected = 'A: 1\r\n\r\nx\r\nline\r\n.\r\n';
    for (let cut = 1; cut < input.length; cut++) {
      const r = read([b(input.slice(0, cut)), b(input.slice(cut))]);
      assert.ok(r, `cut ${cut}`);
      assert.equal(r.message.toString('latin1'), expected, `cut ${cut}`);
      assert.equal(r.rest, 'NEXT', `cut ${cut}`);
      assert.equal(r.bareNewline, false, `cut ${cut}`);
    }
    const bytes = [...input].map((ch) => b(ch));
    const r = read(bytes);
    assert.equal(r?.message.toString('latin1'), expected, 'one byte at a time');
  });

  // SMTP smuggling (2023): a marker variant that some server accepts but ours must not.
  const smuggling = [
    '\n.\n',
    '\n.\r\n',
    '\r.\r\n',
    '\r\n.\n',
    '\r\n.\r',
    '.\n',
    '\r\n.\r\r\n',
    '\r\n\n.\r\n',
  ];
  for (const variant of smuggling) {
    it(`does not end at ${JSON.stringify(variant)} and flags the bare LF/CR`, () => {
      const input = `Subject: a\r\n\r\nbody${variant}MAIL FROM:<evil@example.com>\r\nDATA\r\nsmuggled\r\n.\r\nAFTER`;
      for (let cut = 1; cut < input.length; cut += 3) {
        const r = read([b(input.slice(0, cut)), b(input.slice(cut))]);
        assert.ok(r, `cut ${cut}`);
        assert.equal(r.rest, 'AFTER', `cut ${cut}: ended early`);
        assert.equal(r.bareNewline, true, `cut ${cut}`);
        assert.equal(r.message.length, 0);
      }
    });
  }

  it('flags bare LF and bare CR inside lines', () => {
    assert.equal(read([b('a\nb\r\n.\r\n')])?.bareNewline, true);
    assert.equal(read([b('a\rb\r\n.\r\n')])?.bareNewline, true);
    assert.equal(read([b('a\r'), b('b\r\n.\r\n')])?.bareNewline, true);
    assert.equal(read([b('a\r'), b('\nb\r\n.\r\n')])?.bareNewline, false);
  });

  it('stops collecting past the limit but still finds the marker', () => {
    const r = read([b('x'.repeat(50)), b('\r\n'), b('y'.repeat(60)), b('\r\n.\r\nREST')], 100);
    assert.ok(r);
    assert.equal(r.oversize, true);
    assert.equal(r.message.length, 0);
    assert.equal(r.rest, 'REST');
  });

  it('counts the size after unstuffing, so a message of exactly the limit passes', () => {
    const r = read([b('..abc\r\n.\r\n')], 6);
    assert.ok(r);
    assert.equal(r.oversize, false);
    assert.equal(r.message.toString(), '.abc\r\n');
    assert.equal(r.size, 6);
  });
});

describe('DATA in a session', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  async function transaction(c: SmtpTestClient): Promise<void> {
    assert.equal((await c.command('MAIL FROM:<s@example.com>')).code, 250);
    assert.equal((await c.command('RCPT TO:<r@example.com>')).code, 250);
    assert.equal((await c.command('DATA')).code, 354);
  }

  it('hands the unstuffed message to onData and counts the transaction', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    await transaction(c);
    c.write('Subject: one\r\n\r\n..hidden dot\r\n.\r\n');
    const r = await c.read();
    assert.equal(r.code, 250);
    assert.match(r.text, /^2\.0\.0 Ok: queued as Q\d+$/);
    const got = t.received.at(-1);
    assert.equal(got?.message.toString(), 'Subject: one\r\n\r\n.hidden dot\r\n');
    assert.equal(got?.size, got?.message.length);
    assert.equal(got?.session.transactions, 1);
    assert.equal((await c.command('RCPT TO:<r@example.com>')).code, 503, 'the transaction ended');
    c.close();
  });

  it('refuses a message with a bare LF with 550 5.6.11 after the real marker, and stays in sync', async () => {
    const before = t.received.length;
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    await transaction(c);
    // The smuggling payload: a second transaction hidden behind "\n.\r\n".
    c.write(
      'Subject: a\r\n\r\nhello\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n',
    );
    const r = await c.read();
    assert.deepEqual([r.code, r.enhanced], [550, '5.6.11']);
    assert.equal(t.received.length, before, 'nothing stored');
    assert.equal((await c.command('NOOP')).code, 250, 'the next reply is for our next command');
    await transaction(c);
    c.write('Subject: fine\r\n\r\nok\r\n.\r\n');
    assert.equal((await c.read()).code, 250);
    assert.equal(t.received.length, before + 1);
    c.close();
  });

  it('does not end the message at "\\r\\n.\\n" either', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    await transaction(c);
    c.write('Subject: a\r\n\r\nhello\r\n.\nRSET\r\n');
    await assert.rejects(c.read(300), /no reply/);
    c.write('.\r\n');
    assert.equal((await c.read()).code, 550);
    c.close();
  });
});
