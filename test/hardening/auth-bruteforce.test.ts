/**
 * Password guessing against the three ways in (issue 11): SMTP AUTH (auth/authenticator.ts),
 * API keys (auth/api-keys.ts) and the dashboard login (dashboard/sessions.ts).
 *
 * - Lockout per client (IPv4 address, IPv6 /64) and per user name: the limit holds however the
 *   guesses are spread over user names, addresses of one network, or letter case.
 * - No user enumeration: an unknown user and a known user with a wrong password get the same
 *   answer (byte for byte on the wire) and take about as long. Timing is compared as medians
 *   over interleaved attempts within a generous factor, never as absolute times: both sides run
 *   one scrypt (the unknown side against a dummy hash), so a real difference would be a factor
 *   of 2 or more (no scrypt at all, or two).
 * - The lockout tables stay bounded under a spray from many networks.
 *
 * Secrets are compared with timingSafeEqual everywhere they are checked (scrypt hashes, CSRF
 * tokens, the metrics token, tracking/VERP/mailto MACs, webhook signatures): see docs/security.md.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, type TestContext } from 'node:test';
import { createAccount, createCredential } from '../../src/auth/accounts.ts';
import { ApiKeyVerifier } from '../../src/auth/api-keys.ts';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { clientKey, Lockout } from '../../src/auth/lockout.ts';
import { createSessions } from '../../src/dashboard/sessions.ts';
import { createDashboardUser } from '../../src/dashboard/users.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { type ApiApp, startApiApp } from '../support/api-app.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { type Listeners, startListeners } from './harness.ts';

/** Attempts per side for the timing comparison (interleaved, so load hits both alike). */
const ROUNDS = 15;
/** Medians within this factor of each other: generous for a loaded 2-core machine. */
const FACTOR = 2;

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/** Runs `a` and `b` alternately ROUNDS times each; their medians in ms. */
async function timeBoth(a: (i: number) => Promise<unknown>, b: (i: number) => Promise<unknown>) {
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    for (const [f, into] of i % 2 === 0
      ? ([
          [a, ta],
          [b, tb],
        ] as const)
      : ([
          [b, tb],
          [a, ta],
        ] as const)) {
      const start = performance.now();
      await f(i);
      into.push(performance.now() - start);
    }
  }
  return { a: median(ta), b: median(tb) };
}

function assertSimilar(times: { a: number; b: number }, what: string, t: TestContext): void {
  const ratio = Math.max(times.a, times.b) / Math.max(0.001, Math.min(times.a, times.b));
  t.diagnostic(
    `${what}: medians ${times.a.toFixed(1)} ms vs ${times.b.toFixed(1)} ms (×${ratio.toFixed(2)})`,
  );
  assert.ok(
    ratio < FACTOR,
    `${what}: medians ${times.a.toFixed(1)} ms vs ${times.b.toFixed(1)} ms (×${ratio.toFixed(2)})`,
  );
}

describe('lockout keys', () => {
  it('IPv4 per address, IPv4-mapped as IPv4, IPv6 per /64', () => {
    assert.equal(clientKey('192.0.2.7'), '192.0.2.7');
    assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
    for (const ip of [
      '2001:db8:a:b::1',
      '2001:db8:a:b:ffff:ffff:ffff:ffff',
      '2001:DB8:A:B:0:0:0:2',
      '2001:0db8:000a:000b::9',
    ])
      assert.equal(clientKey(ip), '2001:db8:a:b::/64', ip);
    assert.notEqual(clientKey('2001:db8:a:c::1'), clientKey('2001:db8:a:b::1'));
    assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(clientKey('not an address'), 'not an address');
  });

  it('lockouts stay bounded under a spray from many networks', () => {
    const clock = { now: 0 };
    const lockout = new Lockout({
      maxFailures: 1,
      windowMs: 60_000,
      lockoutMs: 60_000,
      clock: () => clock.now,
      maxKeys: 100,
    });
    for (let i = 0; i < 5_000; i++) lockout.fail(`10.0.${i >> 8}.${i & 255}`);
    assert.ok(lockout.lockedCount <= 100, `${lockout.lockedCount} lockouts kept`);
    // The newest are still locked.
    assert.equal(lockout.isLocked('10.0.19.135'), true);
  });
});

describe('SMTP AUTH: lockout and no user enumeration', () => {
  const clock = { now: Date.parse('2026-11-28T10:00:00Z') };
  const store = new SqliteStore(':memory:');
  let password = '';
  before(async () => {
    await store.migrate();
    const account = await createAccount(store, 'shop', clock.now);
    password =
      (await createCredential(store, account, { kind: 'smtp', username: 'app' }, clock.now)).secret ?? '';
    await createCredential(store, account, { kind: 'smtp', username: 'other' }, clock.now);
  });
  after(() => store.close());
  const authenticator = (maxFailures: number) =>
    new Authenticator({
      store,
      clock: () => clock.now,
      maxFailures,
      failureWindowMs: 60_000,
      lockoutMs: 600_000,
    });

  it('an unknown user and a wrong password: the same result, about the same time', async (t) => {
    const auth = authenticator(1_000_000);
    const results = new Set<string>();
    const times = await timeBoth(
      async (i) =>
        results.add(JSON.stringify(await auth.verifyPassword(`192.0.2.${i}`, `nobody${i}`, 'guess'))),
      async (i) =>
        results.add(JSON.stringify(await auth.verifyPassword(`198.51.100.${i}`, 'app', `guess${i}`))),
    );
    assert.deepEqual([...results], [JSON.stringify({ ok: false, reason: 'invalid' })]);
    assertSimilar(times, 'SMTP AUTH unknown user vs wrong password', t);
  });

  it('locks a client out after the limit, whatever user names it tries', async () => {
    const auth = authenticator(5);
    for (let i = 0; i < 5; i++) await auth.verifyPassword('192.0.2.1', `user${i}`, 'guess');
    assert.deepEqual(await auth.verifyPassword('192.0.2.1', 'app', password), {
      ok: false,
      reason: 'locked_out',
    });
    assert.equal(
      (await auth.verifyPassword('192.0.2.2', 'app', password)).ok,
      true,
      'another client is not locked',
    );
    clock.now += 600_001;
    assert.equal((await auth.verifyPassword('192.0.2.1', 'app', password)).ok, true, 'the lockout ends');
  });

  it('locks an IPv6 /64 out, not only the address that guessed', async () => {
    const auth = authenticator(5);
    for (let i = 0; i < 5; i++) await auth.verifyPassword(`2001:db8:1:2::${i + 1}`, `user${i}`, 'guess');
    assert.deepEqual(await auth.verifyPassword('2001:db8:1:2:aaaa::99', 'app', password), {
      ok: false,
      reason: 'locked_out',
    });
    assert.equal(
      (await auth.verifyPassword('2001:db8:1:3::1', 'app', password)).ok,
      true,
      'the next /64 is not',
    );
  });

  it('locks a user name out after the limit, whichever clients guess and in any letter case', async () => {
    const auth = authenticator(5);
    const names = ['app', 'APP', 'App', 'aPp', 'apP'];
    for (let i = 0; i < 5; i++) await auth.verifyPassword(`203.0.113.${i}`, names[i] ?? 'app', 'guess');
    // Even the right password, from a client that never failed.
    assert.deepEqual(await auth.verifyPassword('203.0.113.200', 'app', password), {
      ok: false,
      reason: 'locked_out',
    });
    // Locking an unknown name looks the same as locking a known one (no enumeration by lockout).
    for (let i = 0; i < 5; i++) await auth.verifyPassword(`203.0.113.${50 + i}`, 'nobody', 'guess');
    assert.deepEqual(await auth.verifyPassword('203.0.113.201', 'nobody', 'guess'), {
      ok: false,
      reason: 'locked_out',
    });
    clock.now += 600_001;
    assert.equal((await auth.verifyPassword('203.0.113.200', 'app', password)).ok, true);
  });

  describe('on the wire', () => {
    let listeners: Listeners;
    before(async () => {
      listeners = await startListeners();
    });
    after(() => listeners.close());

    async function authPlain(user: string, pass: string): Promise<string> {
      const client = await SmtpTestClient.connect(listeners.submission.port);
      try {
        await client.read(5_000);
        await client.command('EHLO client.test', 5_000);
        const token = Buffer.from(`\0${user}\0${pass}`).toString('base64');
        const reply = await client.command(`AUTH PLAIN ${token}`, 10_000);
        return `${reply.code} ${reply.text}`;
      } finally {
        client.close();
      }
    }

    it('answers an unknown user and a wrong password with the same bytes', async () => {
      const unknown = await authPlain('nobody', 'guess');
      const wrong = await authPlain(listeners.username, 'guess');
      assert.match(unknown, /^535 /);
      assert.equal(unknown, wrong);
      assert.match(await authPlain(listeners.username, listeners.password), /^235 /);
    });
  });
});

describe('API keys: lockout and no key enumeration', () => {
  const clock = { now: Date.parse('2026-11-28T10:00:00Z') };
  const store = new SqliteStore(':memory:');
  let key = '';
  before(async () => {
    await store.migrate();
    const account = await createAccount(store, 'shop', clock.now);
    key = (await createCredential(store, account, { kind: 'api', scopes: ['send'] }, clock.now)).secret ?? '';
  });
  after(() => store.close());
  const verifier = (maxFailures: number) =>
    new ApiKeyVerifier({
      store,
      clock: () => clock.now,
      maxFailures,
      failureWindowMs: 60_000,
      lockoutMs: 600_000,
    });

  it('an unknown key and a known key id with a wrong secret: the same result, about the same time', async (t) => {
    const v = verifier(1_000_000);
    const prefix = key.split('.')[0] ?? '';
    const results = new Set<string>();
    const times = await timeBoth(
      async (i) =>
        results.add(
          JSON.stringify(await v.verify(`pb_00000000000${i % 10}.${'A'.repeat(32)}`, `192.0.2.${i}`)),
        ),
      async (i) =>
        results.add(
          JSON.stringify(await v.verify(`${prefix}.${'B'.repeat(31)}${i % 10}`, `198.51.100.${i}`)),
        ),
    );
    assert.deepEqual([...results], [JSON.stringify({ ok: false, reason: 'invalid' })]);
    assertSimilar(times, 'API key unknown vs wrong secret', t);
  });

  it('locks a client (and its IPv6 /64) out after the limit', async () => {
    const v = verifier(5);
    for (let i = 0; i < 5; i++) await v.verify(`pb_000000000000.${'A'.repeat(32)}`, `2001:db8:5:6::${i + 1}`);
    assert.deepEqual(await v.verify(key, '2001:db8:5:6::ffff'), { ok: false, reason: 'locked_out' });
    assert.equal((await v.verify(key, '192.0.2.9')).ok, true);
  });

  describe('over HTTP', () => {
    let api: ApiApp;
    before(async () => {
      api = await startApiApp({ full: true });
    });
    after(() => api.close());

    it('answers an unknown key and a wrong secret with the same 401 body', async () => {
      const prefix = api.keys.all.split('.')[0] ?? '';
      const unknown = await api.app.inject({
        method: 'GET',
        url: '/v1/messages',
        headers: { authorization: `Bearer pb_000000000000.${'A'.repeat(32)}` },
      });
      const wrong = await api.app.inject({
        method: 'GET',
        url: '/v1/messages',
        headers: { authorization: `Bearer ${prefix}.${'A'.repeat(32)}` },
      });
      assert.equal(unknown.statusCode, 401);
      assert.equal(wrong.statusCode, 401);
      assert.equal(unknown.body, wrong.body);
    });

    it('dashboard login: an unknown e-mail and a wrong password get the same answer, about as fast', async (t) => {
      const account = await api.store.getAccountByName('acme');
      assert.ok(account);
      await createDashboardUser(
        api.store,
        { account, email: 'ops@acme.test', password: 'correct horse battery' },
        api.clock.now,
      );
      const login = (email: string, password: string, ip: string) =>
        api.app.inject({
          method: 'POST',
          url: '/auth/login',
          payload: { email, password },
          remoteAddress: ip,
        });
      const bodies = new Set<string>();
      const times = await timeBoth(
        async (i) => {
          const res = await login(`nobody${i}@acme.test`, 'wrong password!', `192.0.2.${i}`);
          bodies.add(`${res.statusCode} ${res.body}`);
        },
        async (i) => {
          const res = await login('ops@acme.test', `wrong password ${i}`, `198.51.100.${i}`);
          bodies.add(`${res.statusCode} ${res.body}`);
        },
      );
      assert.equal(bodies.size, 1, [...bodies].join('\n'));
      assert.match([...bodies][0] ?? '', /^401 /);
      assertSimilar(times, 'dashboard unknown e-mail vs wrong password', t);
    });
  });
});

describe('dashboard login: lockout per client and per e-mail', () => {
  const clock = { now: Date.parse('2026-11-28T10:00:00Z') };
  const store = new SqliteStore(':memory:');
  const password = 'correct horse battery';
  before(async () => {
    await store.migrate();
    const account = await createAccount(store, 'shop', clock.now);
    await createDashboardUser(store, { account, email: 'ops@shop.test', password }, clock.now);
  });
  after(() => store.close());
  const sessions = () =>
    createSessions({
      store,
      clock: () => clock.now,
      idleMs: 3_600_000,
      maxMs: 86_400_000,
      maxFailures: 5,
      failureWindowMs: 60_000,
      lockoutMs: 600_000,
    });

  it('a client that guessed too often is locked out, for every e-mail, until the lockout ends', async () => {
    const s = sessions();
    for (let i = 0; i < 5; i++) await s.login(`user${i}@shop.test`, 'guess guess guess', '2001:db8:9:9::1');
    assert.equal((await s.login('ops@shop.test', password, '2001:db8:9:9::2')).ok, false, 'same /64');
    assert.equal((await s.login('ops@shop.test', password, '192.0.2.1')).ok, true);
    clock.now += 600_001;
    assert.equal((await s.login('ops@shop.test', password, '2001:db8:9:9::2')).ok, true);
  });

  it('an e-mail guessed at from many clients is locked out, in any letter case', async () => {
    const s = sessions();
    for (let i = 0; i < 5; i++)
      await s.login(i % 2 ? 'OPS@shop.test' : 'ops@SHOP.test', 'guess guess guess', `203.0.113.${i}`);
    assert.deepEqual(await s.login('ops@shop.test', password, '203.0.113.99'), {
      ok: false,
      reason: 'locked_out',
    });
    clock.now += 600_001;
    assert.equal((await s.login('ops@shop.test', password, '203.0.113.99')).ok, true);
  });
});
