import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { replies } from '../../src/smtp/replies.ts';
import { startTestServer, testSecureContext } from '../support/smtp-test-server.ts';

const SWAKS = '/usr/bin/swaks';
const installed = existsSync(SWAKS);
/** `swaks --support` lists missing Perl modules on stderr. */
function swaksSupportsTls(): boolean {
  const out = spawnSync(SWAKS, ['--support'], { encoding: 'utf8', timeout: 10_000 });
  return !/TLS not available/.test(`${out.stdout}${out.stderr}`);
}
const tlsSupported = installed && swaksSupportsTls();
const skipAll = installed ? false : `${SWAKS} not installed (Debian package swaks)`;
const skipTls =
  skipAll || (tlsSupported ? false : 'swaks has no TLS support here (needs libnet-ssleay-perl)');
if (skipAll) console.log(`# skipping swaks tests: ${skipAll}`);
else if (skipTls) console.log(`# skipping swaks STARTTLS test: ${skipTls}`);

function swaks(port: number, extra: string[]): Promise<{ stdout: string }> {
  return promisify(execFile)(
    SWAKS,
    [
      '--server',
      `127.0.0.1:${port}`,
      '--auth',
      'PLAIN',
      '--auth-user',
      'alice',
      '--auth-password',
      's3cret',
      '--from',
      'alice@example.com',
      '--to',
      'bob@example.net',
      '--pipeline',
      '--header',
      'Subject: swaks test',
      '--body',
      '.leading dot\nline two',
      ...extra,
    ],
    { timeout: 15_000 },
  );
}

async function serverFor(tls: boolean) {
  const context = tls ? testSecureContext() : undefined;
  return startTestServer({
    ...(context ? { tls: () => context } : { allowPlaintextAuth: () => true }),
    authMethods: ['PLAIN', 'LOGIN'],
    handlers: {
      onAuth: (_s, { username, password }) =>
        username === 'alice' && password === 's3cret'
          ? { ok: true, user: username }
          : { ok: false, reply: replies.authFailed },
      onMailFrom: (session) => (session.user ? undefined : replies.authRequired),
    },
  });
}

describe('swaks end to end', { skip: skipAll }, () => {
  it('AUTH PLAIN (trusted plaintext) + pipelined message with a leading dot', async () => {
    const t = await serverFor(false);
    try {
      const { stdout } = await swaks(t.port, []);
      assert.match(stdout, /250 2\.0\.0 Ok: queued as Q1/);
      const got = t.received[0];
      assert.ok(got);
      assert.equal(got.session.user, 'alice');
      assert.deepEqual(
        got.envelope.rcptTo.map((r) => r.address),
        ['bob@example.net'],
      );
      assert.match(got.message.toString(), /\r\n\.leading dot\r\nline two\r\n/);
    } finally {
      await t.close();
    }
  });

  it('STARTTLS + AUTH PLAIN', { skip: skipTls }, async () => {
    const t = await serverFor(true);
    try {
      const { stdout } = await swaks(t.port, ['--tls']);
      assert.match(stdout, /250 2\.0\.0 Ok: queued as Q1/);
      assert.equal(t.received[0]?.session.secure, true);
    } finally {
      await t.close();
    }
  });
});
