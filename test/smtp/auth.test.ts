import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { replies } from '../../src/smtp/replies.ts';
import type { AuthCredentials } from '../../src/smtp/server/types.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startTestServer, type TestServer } from '../support/smtp-test-server.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('AUTH', () => {
  let t: TestServer;
  const attempts: AuthCredentials[] = [];
  const users: unknown[] = [];
  before(async () => {
    t = await startTestServer({
      authMethods: ['PLAIN', 'LOGIN'],
      allowPlaintextAuth: () => true,
      handlers: {
        onAuth: async (_session, credentials) => {
          attempts.push(credentials);
          if (credentials.username === 'locked') return { ok: false, reply: replies.authLockedOut };
          if (credentials.username === 'boom') throw new Error('credential store down');
          if (credentials.password !== 'sécret pass') return { ok: false, reply: replies.authFailed };
          return { ok: true, user: { name: credentials.username } };
        },
        onMailFrom: (session) => {
          users.push(session.user);
          return session.user ? undefined : replies.authRequired;
        },
      },
    });
  });
  after(() => t.close());

  it('advertises AUTH PLAIN LOGIN where plaintext AUTH is allowed', async () => {
    const c = await SmtpTestClient.connect(t.port);
    const ehlo = await c.hello();
    assert.ok(ehlo.lines.includes('AUTH PLAIN LOGIN'));
    c.close();
  });

  it('PLAIN with an initial response authenticates and sets session.user', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    const r = await c.command(`AUTH PLAIN ${b64('\0alice\0sécret pass')}`);
    assert.deepEqual([r.code, r.enhanced], [235, '2.7.0']);
    assert.deepEqual(attempts.at(-1), { method: 'PLAIN', username: 'alice', password: 'sécret pass' });
    assert.equal((await c.command('MAIL FROM:<alice@example.com>')).code, 250);
    assert.deepEqual(users.at(-1), { name: 'alice' });
    const again = await c.command(`AUTH PLAIN ${b64('\0alice\0sécret pass')}`);
    assert.equal(again.code, 503, 'AUTH during a transaction / twice is a sequence error');
    await c.command('RSET');
    assert.equal((await c.command(`AUTH PLAIN ${b64('\0alice\0sécret pass')}`)).code, 503);
    c.close();
  });

  it('PLAIN without initial response uses a 334 continuation', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    const cont = await c.command('AUTH PLAIN');
    assert.deepEqual([cont.code, cont.text], [334, '']);
    const r = await c.command(b64('bob\0bob\0sécret pass'));
    assert.equal(r.code, 235);
    c.close();
  });

  it('LOGIN prompts for username and password in base64', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    const user = await c.command('AUTH LOGIN');
    assert.deepEqual([user.code, user.text], [334, 'VXNlcm5hbWU6']);
    const pass = await c.command(b64('carol'));
    assert.deepEqual([pass.code, pass.text], [334, 'UGFzc3dvcmQ6']);
    assert.equal((await c.command(b64('sécret pass'))).code, 235);
    assert.deepEqual(attempts.at(-1), { method: 'LOGIN', username: 'carol', password: 'sécret pass' });
    c.close();
  });

  it('LOGIN accepts the username as initial response', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    const pass = await c.command(`AUTH LOGIN ${b64('dave')}`);
    assert.equal(pass.text, 'UGFzc3dvcmQ6');
    assert.equal((await c.command(b64('sécret pass'))).code, 235);
    c.close();
  });

  it('"*" cancels the exchange with 501 5.0.0', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    await c.command('AUTH LOGIN');
    const r = await c.command('*');
    assert.deepEqual([r.code, r.enhanced], [501, '5.0.0']);
    assert.equal((await c.command('NOOP')).code, 250, 'back to command mode');
    c.close();
  });

  it('refuses responses that are not strict base64 with 501 5.5.2', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    const r = await c.command('AUTH PLAIN not*base64!');
    assert.deepEqual([r.code, r.enhanced], [501, '5.5.2']);
    c.close();
  });

  it('passes the handler refusal through: wrong password, lockout', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    const wrong = await c.command(`AUTH PLAIN ${b64('\0alice\0wrong')}`);
    assert.deepEqual([wrong.code, wrong.enhanced], [535, '5.7.8']);
    const locked = await c.command(`AUTH PLAIN ${b64('\0locked\0x')}`);
    assert.deepEqual([locked.code, locked.enhanced], [454, '4.7.0']);
    const mail = await c.command('MAIL FROM:<a@example.com>');
    assert.deepEqual([mail.code, mail.enhanced], [530, '5.7.0'], 'still unauthenticated');
    c.close();
  });

  it('a throwing onAuth becomes 451 4.3.0', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    const r = await c.command(`AUTH PLAIN ${b64('\0boom\0x')}`);
    assert.deepEqual([r.code, r.enhanced], [451, '4.3.0']);
    c.close();
  });

  it('refuses acting for another identity (authzid ≠ authcid) and malformed PLAIN', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.hello();
    const count = attempts.length;
    assert.equal((await c.command(`AUTH PLAIN ${b64('admin\0alice\0sécret pass')}`)).code, 535);
    assert.equal((await c.command(`AUTH PLAIN ${b64('alice\0sécret pass')}`)).code, 535);
    assert.equal((await c.command('AUTH PLAIN =')).code, 535);
    assert.equal(attempts.length, count, 'the handler never saw them');
    c.close();
  });

  it('checks sequence: EHLO first, known mechanism only', async () => {
    const c = await SmtpTestClient.connect(t.port);
    await c.read();
    assert.equal((await c.command(`AUTH PLAIN ${b64('\0alice\0sécret pass')}`)).code, 503);
    await c.command('HELO old.example');
    assert.equal((await c.command(`AUTH PLAIN ${b64('\0alice\0sécret pass')}`)).code, 503, 'AUTH needs EHLO');
    await c.command('EHLO new.example');
    const mech = await c.command('AUTH CRAM-MD5');
    assert.deepEqual([mech.code, mech.enhanced], [504, '5.5.4']);
    c.close();
  });
});

describe('AUTH without TLS', () => {
  it('is hidden and refused with 538 5.7.11 when plaintext AUTH is not allowed', async () => {
    let called = false;
    const t = await startTestServer({
      authMethods: ['PLAIN'],
      handlers: {
        onAuth: () => {
          called = true;
          return { ok: true, user: 'x' };
        },
      },
    });
    try {
      const c = await SmtpTestClient.connect(t.port);
      const ehlo = await c.hello();
      assert.ok(!ehlo.lines.some((l) => l.startsWith('AUTH')));
      const r = await c.command(`AUTH PLAIN ${b64('\0alice\0secret')}`);
      assert.deepEqual([r.code, r.enhanced], [538, '5.7.11']);
      assert.equal(called, false);
      c.close();
    } finally {
      await t.close();
    }
  });

  it('answers 503 when AUTH is not enabled at all', async () => {
    const t = await startTestServer();
    try {
      const c = await SmtpTestClient.connect(t.port);
      await c.hello();
      assert.equal((await c.command(`AUTH PLAIN ${b64('\0a\0b')}`)).code, 503);
      c.close();
    } finally {
      await t.close();
    }
  });
});
