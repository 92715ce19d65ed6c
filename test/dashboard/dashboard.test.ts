/**
 * Dashboard login, sessions and CSRF over HTTP (fastify inject) on a real SQLite store: the
 * session cookie stands in for a Bearer key on /v1, state-changing requests need the CSRF
 * token, failures do not tell unknown users from wrong passwords, lockouts, timeouts, and the
 * static files' headers. Also /v1/keys, account-isolated.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import pino from 'pino';
import { installErrorHandler } from '../../src/api/errors.ts';
import { registerKeyRoutes } from '../../src/api/key-routes.ts';
import { authorize, createKeyGate } from '../../src/api/keys.ts';
import { RateLimiter } from '../../src/api/rate-limit.ts';
import { createAccount, createCredential } from '../../src/auth/accounts.ts';
import { ApiKeyVerifier } from '../../src/auth/api-keys.ts';
import { registerDashboard } from '../../src/dashboard/routes.ts';
import { createSessions } from '../../src/dashboard/sessions.ts';
import { loadAssets } from '../../src/dashboard/static.ts';
import { createDashboardUser } from '../../src/dashboard/users.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../support/temp-dir.ts';

const PASSWORD = 'correct horse battery';

describe('dashboard sessions over HTTP', () => {
  const dir = tempDir('postbote-dashboard-');
  const store = new SqliteStore(':memory:');
  const clock = { now: Date.parse('2026-11-28T10:00:00Z') };
  let app: FastifyInstance;
  let otherKey = '';
  let acmeKey = '';

  before(async () => {
    await store.migrate();
    const acme = await createAccount(store, 'acme', clock.now);
    const other = await createAccount(store, 'other', clock.now);
    await createDashboardUser(
      store,
      { account: acme, email: 'Ops@Acme.test', password: PASSWORD },
      clock.now,
    );
    await createDashboardUser(
      store,
      { account: acme, email: 'viewer@acme.test', role: 'viewer', password: PASSWORD },
      clock.now,
    );
    acmeKey =
      (await createCredential(store, acme, { kind: 'api', scopes: ['read'] }, clock.now)).secret ?? '';
    otherKey =
      (await createCredential(store, other, { kind: 'api', scopes: ['send', 'read', 'admin'] }, clock.now))
        .secret ?? '';
    // A tiny "build": an index and one hashed asset.
    mkdirSync(join(dir.path, 'assets'));
    writeFileSync(join(dir.path, 'index.html'), '<!doctype html><title>t</title>');
    writeFileSync(join(dir.path, 'assets', 'index-abc123.js'), 'console.log(1)');
    const now = () => clock.now;
    app = Fastify({ loggerInstance: pino({ level: 'silent' }) as FastifyBaseLogger });
    installErrorHandler(app, pino({ level: 'silent' }));
    const keys = createKeyGate({
      verifier: new ApiKeyVerifier({
        store,
        clock: now,
        maxFailures: 100,
        failureWindowMs: 60_000,
        lockoutMs: 60_000,
      }),
      limiter: new RateLimiter({ rate: 1000, burst: 1000, clock: now }),
    });
    registerKeyRoutes(app, { store, keys, clock: now });
    app.get('/v1/probe', async (request) => authorize(keys, request, 'read'));
    app.post('/v1/probe', async (request) => authorize(keys, request, 'read'));
    registerDashboard(app, {
      store,
      assets: loadAssets(dir.path),
      secureCookie: false,
      sessions: createSessions({
        store,
        clock: now,
        idleMs: 30 * 60_000,
        maxMs: 12 * 3600_000,
        maxFailures: 3,
        failureWindowMs: 15 * 60_000,
        lockoutMs: 15 * 60_000,
      }),
    });
  });

  after(async () => {
    await app.close();
    await store.close();
    dir.cleanup();
  });

  async function login(email: string, password: string, ip = '127.0.0.1') {
    const response = await app.inject({
      method: 'POST',
      url: '/auth/login',
      remoteAddress: ip,
      headers: { 'content-type': 'application/json' },
      payload: { email, password },
    });
    const cookie = /postbote_session=([^;]*)/.exec(String(response.headers['set-cookie'] ?? ''))?.[1] ?? '';
    return {
      response,
      cookie,
      body: response.json() as { csrf_token?: string; error?: { code: string; message: string } },
    };
  }

  it('logs in: an httpOnly SameSite=Strict cookie and the CSRF token; the session speaks for its account on /v1', async () => {
    const { response, cookie, body } = await login('ops@acme.test', PASSWORD);
    assert.equal(response.statusCode, 200);
    const setCookie = String(response.headers['set-cookie']);
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    assert.doesNotMatch(setCookie, /Secure/, 'plain HTTP: no Secure (the browser would drop the cookie)');
    assert.equal(response.headers['cache-control'], 'no-store');
    const probe = await app.inject({
      method: 'GET',
      url: '/v1/probe',
      headers: { cookie: `postbote_session=${cookie}` },
    });
    assert.equal(probe.statusCode, 200);
    const principal = probe.json() as { accountId: string; scopes: string[] };
    assert.equal(principal.accountId, (await store.getAccountByName('acme'))?.id);
    assert.deepEqual(principal.scopes, ['send', 'read', 'admin']);
    const session = await app.inject({
      method: 'GET',
      url: '/auth/session',
      headers: { cookie: `postbote_session=${cookie}` },
    });
    assert.equal((session.json() as { csrf_token: string }).csrf_token, body.csrf_token);
  });

  it('requests that change something need the session’s X-CSRF-Token; Bearer keys do not', async () => {
    const { cookie, body } = await login('ops@acme.test', PASSWORD);
    const headers = { cookie: `postbote_session=${cookie}`, 'content-type': 'application/json' };
    const none = await app.inject({ method: 'POST', url: '/v1/probe', headers, payload: {} });
    assert.equal(none.statusCode, 403);
    const wrong = await app.inject({
      method: 'POST',
      url: '/v1/probe',
      headers: { ...headers, 'x-csrf-token': 'x'.repeat(32) },
      payload: {},
    });
    assert.equal(wrong.statusCode, 403);
    const foreign = await app.inject({
      method: 'POST',
      url: '/v1/probe',
      headers: {
        ...headers,
        'x-csrf-token': body.csrf_token ?? '',
        origin: 'https://evil.test',
        host: 'localhost:80',
      },
      payload: {},
    });
    assert.equal(foreign.statusCode, 403, 'a foreign Origin is refused');
    const right = await app.inject({
      method: 'POST',
      url: '/v1/probe',
      headers: { ...headers, 'x-csrf-token': body.csrf_token ?? '' },
      payload: {},
    });
    assert.equal(right.statusCode, 200);
    const bearer = await app.inject({
      method: 'POST',
      url: '/v1/probe',
      headers: { authorization: `Bearer ${acmeKey}`, 'content-type': 'application/json' },
      payload: {},
    });
    assert.equal(bearer.statusCode, 200);
  });

  it('an unknown e-mail and a wrong password get the same answer', async () => {
    const unknown = await login('nobody@acme.test', PASSWORD, '10.0.0.1');
    const wrong = await login('viewer@acme.test', 'wrong password!', '10.0.0.2');
    assert.equal(unknown.response.statusCode, 401);
    assert.equal(wrong.response.statusCode, 401);
    assert.deepEqual(unknown.body, wrong.body);
    assert.equal(unknown.cookie, '');
  });

  it('locks out an address after 3 failures (from any IP), and an IP after 3 failures (any address)', async () => {
    // The viewer has one failure already (the test above); two more lock the address.
    assert.equal((await login('viewer@acme.test', 'wrong password!', '10.1.0.1')).response.statusCode, 401);
    assert.equal((await login('viewer@acme.test', 'wrong password!', '10.1.0.2')).response.statusCode, 429);
    const locked = await login('viewer@acme.test', PASSWORD, '10.1.0.4');
    assert.equal(locked.response.statusCode, 429, 'even the right password waits out the lockout');
    for (const email of ['a@x.test', 'b@x.test', 'c@x.test']) await login(email, 'nope', '10.2.0.1');
    assert.equal((await login('ops@acme.test', PASSWORD, '10.2.0.1')).response.statusCode, 429);
    clock.now += 16 * 60_000;
    assert.equal((await login('viewer@acme.test', PASSWORD, '10.1.0.4')).response.statusCode, 200);
  });

  it('a viewer only reads; an idle session ends; logout ends it', async () => {
    const { cookie, body } = await login('viewer@acme.test', PASSWORD, '10.3.0.1');
    const headers = { cookie: `postbote_session=${cookie}` };
    assert.equal((await app.inject({ method: 'GET', url: '/v1/keys', headers })).statusCode, 403);
    clock.now += 31 * 60_000;
    assert.equal((await app.inject({ method: 'GET', url: '/v1/probe', headers })).statusCode, 401);
    const again = await login('viewer@acme.test', PASSWORD, '10.3.0.1');
    const h2 = { cookie: `postbote_session=${again.cookie}`, 'x-csrf-token': again.body.csrf_token ?? '' };
    assert.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: h2 })).statusCode, 204);
    assert.equal((await app.inject({ method: 'GET', url: '/v1/probe', headers: h2 })).statusCode, 401);
    void body;
  });

  it('/v1/keys: create shows the secret once, list hides it, revoke is account-isolated', async () => {
    const { cookie, body } = await login('ops@acme.test', PASSWORD, '10.4.0.1');
    const headers = {
      cookie: `postbote_session=${cookie}`,
      'x-csrf-token': body.csrf_token ?? '',
      'content-type': 'application/json',
    };
    const created = await app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers,
      payload: { scopes: ['read'] },
    });
    assert.equal(created.statusCode, 201);
    const key = created.json() as { id: string; prefix: string; secret: string };
    assert.ok(key.secret.startsWith(`${key.prefix}.`));
    const list = await app.inject({ method: 'GET', url: '/v1/keys', headers });
    assert.ok(!list.body.includes(key.secret.split('.')[1] ?? '?'), 'the secret is never listed');
    const foreign = await app.inject({
      method: 'DELETE',
      url: `/v1/keys/${key.id}`,
      headers: { authorization: `Bearer ${otherKey}` },
    });
    assert.equal(foreign.statusCode, 404, "another account's key is not found");
    const works = await app.inject({
      method: 'GET',
      url: '/v1/probe',
      headers: { authorization: `Bearer ${key.secret}` },
    });
    assert.equal(works.statusCode, 200);
    const { 'content-type': _json, ...noBody } = headers;
    assert.equal(
      (await app.inject({ method: 'DELETE', url: `/v1/keys/${key.id}`, headers: noBody })).statusCode,
      204,
    );
    const revoked = await app.inject({
      method: 'GET',
      url: '/v1/probe',
      headers: { authorization: `Bearer ${key.secret}` },
    });
    assert.equal(revoked.statusCode, 401);
    const bad = await app.inject({ method: 'POST', url: '/v1/keys', headers, payload: { scopes: ['root'] } });
    assert.equal(bad.statusCode, 400);
  });

  it('serves the SPA: index revalidated with a CSP, hashed assets cached for a year, nothing else', async () => {
    const index = await app.inject({ method: 'GET', url: '/' });
    assert.equal(index.statusCode, 200);
    assert.equal(index.headers['cache-control'], 'no-cache');
    assert.match(
      String(index.headers['content-security-policy']),
      /default-src 'self'.*frame-ancestors 'none'/,
    );
    assert.equal(index.headers['x-content-type-options'], 'nosniff');
    const asset = await app.inject({ method: 'GET', url: '/assets/index-abc123.js' });
    assert.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.match(String(asset.headers['content-type']), /text\/javascript/);
    for (const url of ['/assets/../index.html', '/assets/%2e%2e/package.json', '/package.json']) {
      assert.equal((await app.inject({ method: 'GET', url })).statusCode, 404, url);
    }
  });
});
