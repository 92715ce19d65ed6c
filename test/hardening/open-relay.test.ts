/**
 * Open relay (issue 11, "Hostile input"): the classic relay tricks against both listeners,
 * from a client that is not authorised. Submission relays only for an AUTH login or an IP
 * credential; the inbound MX takes only our VERP and feedback addresses and never relays. None
 * of the tricks may get a recipient accepted or anything stored; the genuine addresses still
 * work, so the refusals are the policy and not a broken listener. With a login, relaying is
 * what the client is authorised for: the tricks are then either refused as malformed or
 * stored for exactly the domain after their last `@`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { recipientDomain } from '../../src/intake/address.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { FEEDBACK, type Listeners, RETURN_PATH, startListeners, TRUSTED_IP } from './harness.ts';

const STRANGER = '127.0.0.2';

/** Relay tricks aimed at victim@evil.example through relay.test (our host) or bounce.test (our return path). */
function tricks(verp: string): string[] {
  const [verpLocal] = verp.split('@');
  return [
    'victim@evil.example',
    'victim%evil.example@relay.test',
    'victim%evil.example@bounce.test',
    'victim%evil.example@[127.0.0.1]',
    '@relay.test:victim@evil.example',
    '@relay.test,@bounce.test:victim@evil.example',
    '@bounce.test:victim@evil.example',
    '"victim@evil.example"@relay.test',
    '"victim@evil.example"@bounce.test',
    '"victim@evil.example"',
    'evil.example!victim@relay.test',
    'evil.example!victim@bounce.test',
    'evil.example!victim',
    'victim',
    'postmaster',
    'victim@[192.0.2.1]',
    'victim@[IPv6:2001:db8::1]',
    'victim@evil.example.',
    'victim@bounce.test.',
    'VICTIM@EVIL.EXAMPLE',
    'victim@EVIL.example',
    'victim@évil.example',
    'victim@xn--vil-bma.example',
    'victim@evil.example@relay.test',
    'victim@bounce.test@evil.example',
    'victim@relay.test',
    'victim@bounce.test',
    'victim@localhost',
    `${verpLocal}%evil.example@${RETURN_PATH}`,
    `${verp}@evil.example`,
    `"${verp}"@evil.example`,
    `@${RETURN_PATH}:${verpLocal}@evil.example`,
    `${verpLocal}@evil.example`,
    'b+zz-aaaaaaaaaaaaaaaa@bounce.test',
    `abuse%evil.example@${RETURN_PATH}`,
    `"${FEEDBACK}"@evil.example`,
    `${FEEDBACK}.evil.example`,
    'victim@evil.example\u0000@bounce.test',
    'victim@evil.example>@bounce.test',
  ];
}

/** RCPT TO with the address as written (angle brackets added unless the trick has its own). */
const rcpt = (address: string) => `RCPT TO:<${address}>`;

/** One SMTP session from `localAddress`: greeting and EHLO read, optionally logged in. */
async function session(
  port: number,
  localAddress: string,
  login?: { username: string; password: string },
): Promise<SmtpTestClient> {
  const c = await SmtpTestClient.connect(port, { localAddress });
  await c.hello();
  if (login) {
    const auth = Buffer.from(`\0${login.username}\0${login.password}`).toString('base64');
    const reply = await c.command(`AUTH PLAIN ${auth}`);
    if (reply.code !== 235 && login.password !== 'wrong-password') throw new Error(`login: ${reply.text}`);
  }
  return c;
}

describe('open relay: classic tricks', () => {
  let t: Listeners;
  before(async () => {
    t = await startListeners();
  });
  after(async () => {
    await t.close();
  });

  const storedCount = async () => Object.values(await t.store.countByState()).reduce((a, b) => a + b, 0);

  it('submission refuses every trick from an unauthorised client, with or without a failed login', async () => {
    for (const login of [undefined, { username: t.username, password: 'wrong-password' }]) {
      for (const from of ['<sender@shop.test>', '<>', '<postmaster>']) {
        const c = await session(t.submission.port, STRANGER, login);
        try {
          const mail = await c.command(`MAIL FROM:${from}`);
          assert.ok(mail.code >= 500, `MAIL FROM:${from} from a stranger: ${mail.code}`);
        } finally {
          c.close();
        }
      }
      // The server stops talking after a few errors: one session per trick, so each is heard.
      for (const address of tricks(t.verp)) {
        const c = await session(t.submission.port, STRANGER, login);
        try {
          assert.ok((await c.command('MAIL FROM:<sender@shop.test>')).code >= 500);
          const reply = await c.command(rcpt(address));
          assert.ok(reply.code >= 500, `${address}: ${reply.code} ${reply.text}`);
          assert.ok((await c.command('DATA')).code >= 500);
        } finally {
          c.close();
        }
      }
    }
    assert.equal(await storedCount(), 0, 'nothing was stored');
  });

  it('the inbound MX refuses every trick and takes only our own addresses', async () => {
    for (const address of tricks(t.verp)) {
      const c = await session(t.mx.port, STRANGER);
      try {
        assert.equal((await c.command('MAIL FROM:<>')).code, 250);
        const reply = await c.command(rcpt(address));
        assert.ok(reply.code >= 500, `${address}: ${reply.code} ${reply.text}`);
        assert.ok((await c.command('DATA')).code >= 500, 'DATA without a recipient');
      } finally {
        c.close();
      }
    }
    assert.equal(t.reports.length, 0);
    // The genuine addresses are accepted (a bounce, a complaint): the refusals are the policy.
    const c = await session(t.mx.port, STRANGER);
    try {
      assert.equal((await c.command('MAIL FROM:<>')).code, 250);
      assert.equal((await c.command(rcpt(t.verp))).code, 250);
      assert.equal((await c.command(rcpt(FEEDBACK.toUpperCase()))).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      assert.equal((await c.command('Subject: report\r\n\r\nbody\r\n.')).code, 250);
    } finally {
      c.close();
    }
    assert.equal(t.reports.length, 1);
    assert.deepEqual(t.reports[0]?.to, [t.verp, FEEDBACK.toUpperCase()]);
    assert.equal(await storedCount(), 0, 'the MX never queues mail for delivery');
  });

  it('with a login, a trick is refused as malformed or stored for the domain after its last @', async () => {
    const accepted: string[] = [];
    for (const address of tricks(t.verp)) {
      const c = await session(t.submission.port, STRANGER, { username: t.username, password: t.password });
      try {
        assert.equal((await c.command('MAIL FROM:<sender@shop.test>')).code, 250);
        const reply = await c.command(rcpt(address));
        if (reply.code === 250) {
          accepted.push(address);
          assert.equal((await c.command('DATA')).code, 354);
          const done = await c.command('Subject: t\r\n\r\nbody\r\n.');
          assert.equal(done.code, 250, `${address}: ${done.text}`);
        } else {
          assert.ok(reply.code >= 500, `${address}: ${reply.code} ${reply.text}`);
        }
      } finally {
        c.close();
      }
    }
    const ids = (await t.store.listMessages({ limit: 1000 })).map((m) => m.id);
    const stored = (await Promise.all(ids.map((id) => t.store.getRecipients(id)))).flat();
    assert.equal(stored.length, accepted.length);
    for (const r of stored) {
      assert.ok(accepted.includes(r.address), `${r.address} was stored as written`);
      assert.equal(r.domain, recipientDomain(r.address), `${r.address} goes to the domain after its last @`);
    }
    // Source routes, unqualified names, bare quoted strings and NULs never make it in.
    for (const refused of [
      '@relay.test:victim@evil.example',
      'victim',
      'postmaster',
      '"victim@evil.example"',
      'victim@evil.example\u0000@bounce.test',
    ]) {
      assert.ok(!accepted.includes(refused), `${refused} refused`);
    }
  });

  it('the IP credential relays only for its own address', async () => {
    const trusted = await session(t.submission.port, TRUSTED_IP);
    try {
      assert.equal((await trusted.command('MAIL FROM:<sender@shop.test>')).code, 250);
      assert.equal((await trusted.command(rcpt('someone@example.org'))).code, 250);
    } finally {
      trusted.close();
    }
    for (const neighbour of ['127.0.0.8', '127.0.0.10', '127.0.9.9']) {
      const c = await session(t.submission.port, neighbour);
      try {
        assert.equal((await c.command('MAIL FROM:<sender@shop.test>')).code, 530, neighbour);
      } finally {
        c.close();
      }
    }
  });
});
