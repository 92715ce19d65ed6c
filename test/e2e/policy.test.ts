/**
 * Who may relay and what is refused, end to end against a running `postbote start` with the
 * production defaults for delivery (private MX addresses refused), a 100 KB size limit and a
 * lockout after 3 failed logins.
 *
 * Clients are told apart by their source address on loopback:
 *   127.0.0.1  the application: AUTH (plaintext AUTH is allowed on loopback)
 *   127.0.0.5  a stranger: no AUTH, no IP credential
 *   127.0.0.8  a trusted host: covered by an IP credential
 *   127.0.0.9  a password guesser
 * private.test's MX is 127.0.0.2, where a scripted sink records any connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import {
  authPlain,
  listMessages,
  queuedId,
  SmtpSession,
  showMessage,
  simpleMessage,
  stopPostbote,
  submit,
  waitForEvent,
} from '../support/e2e-harness.ts';
import { type PostboteProcess, runCli, startPostboteProcess } from '../support/postbote-process.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

const MAX_SIZE = 100 * 1024;

describe('relay policy: authentication, open relay, limits', { timeout: 120_000 }, () => {
  const dir = tempDir('postbote-e2e-policy-');
  let dns: TestDnsServer;
  let privateMx: ScriptedSink;
  let postbote: PostboteProcess;
  let appPassword = '';
  let guessedPassword = '';
  let ipCredentialId = '';

  before(async () => {
    privateMx = await startScriptedSink({ host: '127.0.0.2', hostname: 'mx.private.test' });
    dns = await startDnsServer({
      zones: {
        'private.test': { MX: [{ preference: 10, exchange: 'mx.private.test' }] },
        'mx.private.test': { A: ['127.0.0.2'] },
        // Senders' domain: no MX, so DSNs for the bounces here bounce quietly (to <>, no DSN).
        'sender.test': { MX: [{ preference: 0, exchange: '.' }] },
      },
    });
    const env = {
      POSTBOTE_DATA_DIR: dir.path,
      POSTBOTE_DNS__SERVERS: dns.address,
      POSTBOTE_DNS__TIMEOUT: '2s',
      POSTBOTE_DELIVERY__PORT: String(privateMx.port),
      POSTBOTE_DELIVERY__CONNECT_TIMEOUT: '2s',
      POSTBOTE_DELIVERY__GREETING_TIMEOUT: '2s',
      POSTBOTE_SMTP__SUBMISSION__MAX_MESSAGE_SIZE: '100KB',
      POSTBOTE_SMTP__AUTH__MAX_FAILURES: '3',
    };
    await runCli(['accounts', 'create', 'shop', '--sender-policy', 'any'], env);
    const create = async (args: string[]) =>
      (
        JSON.parse(await runCli(['credentials', 'create', '--account', 'shop', ...args, '--json'], env)) as {
          id: string;
          secret?: string;
        }[]
      )[0];
    const [app, guessed, trusted] = await Promise.all([
      create(['--smtp', 'app']),
      create(['--smtp', 'guessed']),
      create(['--ip', '127.0.0.8/32']),
    ]);
    appPassword = app?.secret ?? '';
    guessedPassword = guessed?.secret ?? '';
    ipCredentialId = trusted?.id ?? '';
    assert.ok(appPassword && guessedPassword && ipCredentialId, 'credentials were not created');
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
  });

  after(async () => {
    await stopPostbote(postbote);
    await Promise.all([privateMx?.close(), dns?.close()]);
    dir.cleanup();
  });

  it('an MX on a private address is refused while delivery.allow_private_mx is off: bounced, never contacted', async () => {
    const id = await submit(postbote.submissionPort, {
      auth: { user: 'app', password: appPassword },
      from: 'shop@sender.test',
      to: ['frank@private.test'],
      message: simpleMessage({ from: 'shop@sender.test', to: 'frank@private.test', subject: 'private MX' }),
    });
    const shown = await waitForEvent(postbote, id, 'bounced');
    const reply = shown.recipients[0]?.lastReply;
    assert.equal(shown.recipients[0]?.state, 'bounced');
    assert.equal(reply?.code, 550);
    assert.match(reply?.text ?? '', /mx\.private\.test/);
    assert.match(reply?.text ?? '', /127\.0\.0\.2/);
    assert.match(reply?.text ?? '', /delivery\.allow_private_mx/, 'the bounce names the setting to change');
    assert.equal(privateMx.connections.length, 0, 'the private address was never connected to');
  });

  it('no open relay: a stranger without AUTH gets 530 5.7.0 at MAIL FROM and nothing is stored', async () => {
    const stranger = await SmtpSession.open(postbote.submissionPort, { localAddress: '127.0.0.5' });
    try {
      const ehlo = await stranger.command('EHLO stranger.example');
      assert.equal(ehlo.code, 250);
      assert.ok(ehlo.lines.includes('STARTTLS'), `EHLO offers STARTTLS: ${ehlo.lines.join(' | ')}`);
      assert.ok(ehlo.lines.includes('AUTH PLAIN LOGIN'), `EHLO offers AUTH: ${ehlo.lines.join(' | ')}`);
      const mail = await stranger.command('MAIL FROM:<spammer@elsewhere.test>');
      assert.deepEqual([mail.code, mail.enhanced], [530, '5.7.0'], mail.text);
      const rcpt = await stranger.command('RCPT TO:<victim@private.test>');
      assert.ok(rcpt.code >= 500, `RCPT after a refused MAIL: ${rcpt.code} ${rcpt.text}`);
      const data = await stranger.command('DATA');
      assert.ok(data.code >= 500, `DATA after a refused MAIL: ${data.code} ${data.text}`);
    } finally {
      stranger.close();
    }
    const stored = await listMessages(postbote, ['--limit', '1000']);
    assert.ok(!stored.some((m) => m.mailFrom === 'spammer@elsewhere.test'), 'the stranger’s mail was stored');
  });

  it('a host covered by an IP credential relays without AUTH', async () => {
    const id = await submit(postbote.submissionPort, {
      localAddress: '127.0.0.8',
      from: 'cron@sender.test',
      to: ['ops@private.test'],
      message: simpleMessage({ from: 'cron@sender.test', to: 'ops@private.test', subject: 'nightly report' }),
    });
    const shown = await showMessage(postbote, id);
    assert.equal(shown.message.clientIp, '127.0.0.8');
    assert.equal(shown.message.credentialId, ipCredentialId, 'accounted to the IP credential');
    assert.equal(shown.message.source, 'smtp');
    assert.equal(shown.message.subject, 'nightly report');
    assert.deepEqual(
      shown.recipients.map((r) => r.address),
      ['ops@private.test'],
    );
  });

  it('a message over max_message_size gets 552 5.3.4 after DATA; the connection stays usable', async () => {
    const session = await SmtpSession.open(postbote.submissionPort);
    try {
      const ehlo = await session.command('EHLO app.sender.test');
      assert.ok(ehlo.lines.includes(`SIZE ${MAX_SIZE}`), `EHLO: ${ehlo.lines.join(' | ')}`);
      assert.equal((await session.command(`AUTH PLAIN ${authPlain('app', appPassword)}`)).code, 235);

      // Declared too large: refused before any data (RFC 1870).
      const declared = await session.command(`MAIL FROM:<shop@sender.test> SIZE=${MAX_SIZE + 1}`);
      assert.deepEqual([declared.code, declared.enhanced], [552, '5.3.4'], declared.text);

      // Not declared: the whole message is read, then refused.
      assert.equal((await session.command('MAIL FROM:<shop@sender.test>')).code, 250);
      assert.equal((await session.command('RCPT TO:<big@private.test>')).code, 250);
      const line = `${'x'.repeat(76)}\r\n`;
      const big = simpleMessage({
        from: 'shop@sender.test',
        to: 'big@private.test',
        subject: 'too big',
        body: line.repeat(Math.ceil((MAX_SIZE * 1.5) / line.length)),
      });
      const refused = await session.data(big, 15_000);
      assert.deepEqual([refused.code, refused.enhanced], [552, '5.3.4'], refused.text);

      assert.equal(
        (await session.command('MAIL FROM:<shop@sender.test>')).code,
        250,
        'same connection, next transaction',
      );
      assert.equal((await session.command('RCPT TO:<small@private.test>')).code, 250);
      const accepted = await session.data(
        simpleMessage({ from: 'shop@sender.test', to: 'small@private.test', subject: 'small after big' }),
      );
      assert.equal(accepted.code, 250, accepted.text);
      queuedId(`250 ${accepted.text}`);
      await session.command('QUIT');
    } finally {
      session.close();
    }
    const stored = await listMessages(postbote, ['--limit', '1000']);
    assert.ok(stored.some((m) => m.subject === 'small after big'));
    assert.ok(!stored.some((m) => m.subject === 'too big'), 'the oversize message was stored');
  });

  it('after 3 wrong passwords (smtp.auth.max_failures) from one client even the right one gets 454 4.7.0', async () => {
    // The right password works at first.
    const first = await SmtpSession.open(postbote.submissionPort, { localAddress: '127.0.0.9' });
    try {
      await first.command('EHLO guesser.example');
      const ok = await first.command(`AUTH PLAIN ${authPlain('guessed', guessedPassword)}`);
      assert.equal(ok.code, 235, ok.text);
    } finally {
      first.close();
    }

    const guesser = await SmtpSession.open(postbote.submissionPort, { localAddress: '127.0.0.9' });
    try {
      await guesser.command('EHLO guesser.example');
      const replies = [];
      for (const guess of ['123456', 'password', 'letmein']) {
        const r = await guesser.command(`AUTH PLAIN ${authPlain('guessed', guess)}`);
        replies.push(`${r.code} ${r.enhanced}`);
      }
      assert.deepEqual(replies.slice(0, 2), ['535 5.7.8', '535 5.7.8']);
      const right = await guesser.command(`AUTH PLAIN ${authPlain('guessed', guessedPassword)}`);
      assert.deepEqual([right.code, right.enhanced], [454, '4.7.0'], right.text);
    } finally {
      guesser.close();
    }

    // Locked out on a new connection too.
    const again = await SmtpSession.open(postbote.submissionPort, { localAddress: '127.0.0.9' });
    try {
      await again.command('EHLO guesser.example');
      const right = await again.command(`AUTH PLAIN ${authPlain('guessed', guessedPassword)}`);
      assert.deepEqual([right.code, right.enhanced], [454, '4.7.0'], right.text);
    } finally {
      again.close();
    }

    // Another client with another login is not affected.
    const app = await SmtpSession.open(postbote.submissionPort);
    try {
      await app.command('EHLO app.sender.test');
      const ok = await app.command(`AUTH PLAIN ${authPlain('app', appPassword)}`);
      assert.equal(ok.code, 235, ok.text);
    } finally {
      app.close();
    }
  });
});
