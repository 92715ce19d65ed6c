import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { replies } from '../../src/smtp/replies.ts';
import {
  checkMailbox,
  decodeBase64Strict,
  decodeXtext,
  parseMailFrom,
  parseRcptTo,
} from '../../src/smtp/server/parse.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startTestServer, type TestServer } from '../support/smtp-test-server.ts';

const mailOpts = { esmtp: true, sizeLimit: 1000 };

describe('address syntax (RFC 5321 §4.1.2)', () => {
  it('accepts ordinary, quoted, literal and sub-addressed mailboxes', () => {
    for (const ok of [
      'user@example.com',
      'first.last+tag@sub.example.co.uk',
      "o'brien!#$%&*/=?^_`{|}~-@example.com",
      '"john doe"@example.com',
      '"a\\"b@c"@example.com',
      'user@[192.0.2.1]',
      'user@[IPv6:2001:db8::1]',
      'x@a-b.example',
    ]) {
      assert.equal(checkMailbox(ok, { utf8: false }), undefined, ok);
    }
  });

  it('refuses malformed mailboxes', () => {
    for (const bad of [
      'user',
      'user@',
      '@example.com',
      '.user@example.com',
      'user.@example.com',
      'us..er@example.com',
      'us er@example.com',
      'user@-example.com',
      'user@example-.com',
      'user@exa_mple.com',
      'user@example..com',
      'user@example.com.',
      'user@[300.1.1.1]',
      'user@[IPv6:zz::1]',
      'user@[tag:stuff]',
      'a@b@c.example',
      'user\r@example.com',
      'user@exa\nmple.com',
      'user\0@example.com',
      '"unterminated@example.com',
      '""@example.com',
    ]) {
      assert.notEqual(checkMailbox(bad, { utf8: false }), undefined, JSON.stringify(bad));
    }
  });

  it('classifies source routes, length and UTF-8 separately', () => {
    assert.equal(checkMailbox('@relay.example:user@example.com', { utf8: false }), 'sourceRoute');
    assert.equal(checkMailbox('@a.example,@b.example:user@example.com', { utf8: false }), 'sourceRoute');
    assert.equal(checkMailbox(`${'a'.repeat(65)}@example.com`, { utf8: false }), 'tooLong');
    assert.equal(checkMailbox(`${'a'.repeat(64)}@example.com`, { utf8: false }), undefined);
    const longDomain = `${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.${'e'.repeat(63)}.com`;
    assert.equal(checkMailbox(`a@${longDomain}`, { utf8: false }), 'tooLong', 'path over 256 octets');
    assert.equal(checkMailbox(`a@${'b'.repeat(64)}.example`, { utf8: false }), 'syntax', 'label over 63');
    assert.equal(checkMailbox('jörg@müller.example', { utf8: false }), 'utf8');
    assert.equal(checkMailbox('jörg@müller.example', { utf8: true }), undefined);
    assert.equal(checkMailbox('Postmaster', { utf8: false, allowPostmaster: true }), undefined);
    assert.equal(checkMailbox('Postmaster', { utf8: false }), 'syntax');
  });
});

describe('MAIL and RCPT parameters', () => {
  it('parses MAIL FROM with a space after the colon and the null sender', () => {
    const a = parseMailFrom('FROM: <a@example.com>', mailOpts);
    assert.deepEqual(a, { ok: true, value: { address: 'a@example.com', params: {} } });
    const n = parseMailFrom('from:<>', mailOpts);
    assert.deepEqual(n, { ok: true, value: { address: '', params: {} } });
  });

  it('requires angle brackets', () => {
    for (const arg of [
      'FROM:a@example.com',
      'FROM:<a@example.com',
      'FROM:  <a@example.com>',
      'FROM<a@example.com>',
      'FROM:<a@example.com>SIZE=1',
    ]) {
      const r = parseMailFrom(arg, mailOpts);
      assert.equal(r.ok, false, arg);
    }
  });

  it('validates and normalises the MAIL parameters', () => {
    const r = parseMailFrom(
      'FROM:<a@example.com> size=999 body=8bitmime SMTPUTF8 RET=hdrs ENVID=abc+2Bdef AUTH=<>',
      mailOpts,
    );
    assert.ok(r.ok);
    assert.deepEqual(r.value.params, {
      SIZE: '999',
      BODY: '8BITMIME',
      SMTPUTF8: '',
      RET: 'HDRS',
      ENVID: 'abc+def',
      AUTH: '<>',
    });
    const failures: [string, number, string][] = [
      ['SIZE=1001', 552, '5.3.4'],
      ['SIZE=abc', 501, '5.5.4'],
      ['BODY=BINARYMIME', 501, '5.5.4'],
      ['RET=ALL', 501, '5.5.4'],
      ['ENVID=a+ZZ', 501, '5.5.4'],
      [`ENVID=${'x'.repeat(101)}`, 501, '5.5.4'],
      ['SMTPUTF8=yes', 501, '5.5.4'],
      ['XFOO=1', 555, '5.5.4'],
      ['SIZE=1 SIZE=2', 501, '5.5.4'],
      ['=x', 501, '5.5.4'],
      ['SIZE=', 501, '5.5.4'],
    ];
    for (const [params, code, enhanced] of failures) {
      const f = parseMailFrom(`FROM:<a@example.com> ${params}`, mailOpts);
      assert.ok(!f.ok, params);
      assert.deepEqual([f.reply.code, f.reply.enhanced], [code, enhanced], params);
    }
  });

  it('decodes DSN parameters on RCPT (RFC 3461)', () => {
    const r = parseRcptTo('TO:<b@example.com> NOTIFY=success,delay ORCPT=rfc822;b+2Bx@example.com', {
      esmtp: true,
      utf8: false,
    });
    assert.ok(r.ok);
    assert.deepEqual(r.value.params, { NOTIFY: 'SUCCESS,DELAY', ORCPT: 'rfc822;b+x@example.com' });
    const utf = parseRcptTo('TO:<b@example.com> ORCPT=utf-8;j\\x{F6}rg@example.com', {
      esmtp: true,
      utf8: false,
    });
    assert.ok(utf.ok);
    assert.equal(utf.value.params.ORCPT, 'utf-8;jörg@example.com');
    for (const bad of [
      'NOTIFY=NEVER,SUCCESS',
      'NOTIFY=SUCCESS,SUCCESS',
      'NOTIFY=SOMETIMES',
      'ORCPT=b@example.com',
      'ORCPT=rfc822;',
      'ORCPT=rfc822;a+G0',
    ]) {
      const f = parseRcptTo(`TO:<b@example.com> ${bad}`, { esmtp: true, utf8: false });
      assert.ok(!f.ok, bad);
      assert.equal(f.reply.code, 501, bad);
    }
  });

  it('decodes xtext and strict base64', () => {
    assert.equal(decodeXtext('a+2Bb+3Dc'), 'a+b=c');
    assert.equal(decodeXtext('a=b'), undefined);
    assert.equal(decodeXtext('a+2'), undefined);
    assert.equal(decodeBase64Strict('aGk=')?.toString(), 'hi');
    assert.equal(decodeBase64Strict('aGk'), undefined);
    assert.equal(decodeBase64Strict('a=Gk'), undefined);
    assert.equal(decodeBase64Strict('aG k'), undefined);
  });
});

describe('MAIL and RCPT in a session', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({
      maxRecipients: 3,
      handlers: {
        onRcptTo: (_s, address) => (address.endsWith('@denied.example') ? replies.relayDenied : undefined),
      },
    });
  });
  after(() => t.close());

  async function session(): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    return c;
  }

  it('stores the envelope with decoded DSN parameters', async () => {
    const c = await session();
    assert.equal((await c.command('MAIL FROM:<sender@example.com> RET=FULL ENVID=id+2B1')).code, 250);
    const rcpt = await c.command('RCPT TO:<r@example.com> NOTIFY=FAILURE ORCPT=rfc822;r@example.com');
    assert.deepEqual([rcpt.code, rcpt.enhanced], [250, '2.1.5']);
    await c.command('DATA');
    c.write('Subject: x\r\n\r\nhi\r\n.\r\n');
    assert.equal((await c.read()).code, 250);
    const got = t.received.at(-1);
    assert.deepEqual(got?.envelope, {
      mailFrom: { address: 'sender@example.com', params: { RET: 'FULL', ENVID: 'id+1' } },
      rcptTo: [{ address: 'r@example.com', params: { NOTIFY: 'FAILURE', ORCPT: 'rfc822;r@example.com' } }],
    });
    c.close();
  });

  it('answers with the right codes for each MAIL refusal', async () => {
    const c = await session();
    const noMail = await c.command('RCPT TO:<r@example.com>');
    assert.deepEqual([noMail.code, noMail.enhanced], [503, '5.5.1']);
    const noBrackets = await c.command('MAIL FROM:sender@example.com');
    assert.deepEqual([noBrackets.code, noBrackets.enhanced], [501, '5.1.7']);
    const route = await c.command('MAIL FROM:<@relay.example:sender@example.com>');
    assert.deepEqual([route.code, route.enhanced], [553, '5.1.7']);
    const big = await c.command('MAIL FROM:<sender@example.com> SIZE=10001');
    assert.deepEqual([big.code, big.enhanced], [552, '5.3.4']);
    const utf8 = await c.command('MAIL FROM:<jörg@example.com>');
    assert.equal(utf8.code, 500, 'latin1 bytes are not UTF-8');
    c.write(Buffer.from('MAIL FROM:<jörg@example.com>\r\n', 'utf8'));
    const noUtf8Param = await c.read();
    assert.deepEqual([noUtf8Param.code, noUtf8Param.enhanced], [553, '5.6.7']);
    c.close();
  });

  it('answers with the right codes for each RCPT refusal', async () => {
    const c = await session();
    assert.equal((await c.command('MAIL FROM:<>')).code, 250, 'null sender');
    const nested = await c.command('MAIL FROM:<other@example.com>');
    assert.deepEqual([nested.code, nested.enhanced], [503, '5.5.1']);
    const rcptRoute = await c.command('RCPT TO:<@a.example,@b.example:r@example.com>');
    assert.deepEqual([rcptRoute.code, rcptRoute.enhanced], [553, '5.1.3']);
    const rcptSyntax = await c.command('RCPT TO:<r@@example.com>');
    assert.deepEqual([rcptSyntax.code, rcptSyntax.enhanced], [501, '5.1.3']);
    const tooLong = await c.command(`RCPT TO:<${'r'.repeat(65)}@example.com>`);
    assert.deepEqual([tooLong.code, tooLong.enhanced], [501, '5.1.3']);
    const unknown = await c.command('RCPT TO:<r@example.com> XYZ=1');
    assert.deepEqual([unknown.code, unknown.enhanced], [555, '5.5.4']);
    const denied = await c.command('RCPT TO:<r@denied.example>');
    assert.deepEqual([denied.code, denied.enhanced], [554, '5.7.1']);
    const data = await c.command('DATA');
    assert.deepEqual([data.code, data.enhanced], [554, '5.5.1'], 'no valid recipients');
    c.close();
  });

  it('accepts UTF-8 addresses with SMTPUTF8, and the bare Postmaster', async () => {
    const c = await session();
    c.write(Buffer.from('MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\n', 'utf8'));
    assert.equal((await c.read()).code, 250);
    c.write(Buffer.from('RCPT TO:<пример@пример.example>\r\n', 'utf8'));
    assert.equal((await c.read()).code, 250);
    assert.equal((await c.command('RCPT TO:<Postmaster>')).code, 250);
    c.close();
  });

  it('answers 452 4.5.3 past maxRecipients and keeps the transaction usable', async () => {
    const c = await session();
    await c.command('MAIL FROM:<s@example.com>');
    for (let i = 0; i < 3; i++) assert.equal((await c.command(`RCPT TO:<r${i}@example.com>`)).code, 250);
    const over = await c.command('RCPT TO:<r3@example.com>');
    assert.deepEqual([over.code, over.enhanced], [452, '4.5.3']);
    assert.equal((await c.command('DATA')).code, 354);
    c.write('\r\n.\r\n');
    assert.equal((await c.read()).code, 250);
    assert.equal(t.received.at(-1)?.envelope.rcptTo.length, 3);
    c.close();
  });
});
