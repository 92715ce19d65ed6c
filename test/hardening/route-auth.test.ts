/**
 * Authentication and tenant isolation on every HTTP route (issue 11). The routes are not listed
 * by hand: the app records each one as it is registered (`app.routeTable`, api/server.ts), so a
 * route added tomorrow without authentication, or with an id that is not checked against the
 * caller's account, fails here until it is either protected or consciously added to one of the
 * lists below with its reason.
 *
 * - Every route outside PUBLIC answers 401 without credentials and with a wrong key.
 * - Account A ("acme") gets one resource of each kind; account B ("other", a key with every
 *   scope, and separately a dashboard session) asks every route that takes an id with A's id:
 *   404 or 403, and A's resource is unchanged afterwards. Every list route, called by B, shows
 *   nothing of A.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createDashboardUser } from '../../src/dashboard/users.ts';
import { type ApiApp, startApiApp } from '../support/api-app.ts';

/**
 * Routes anyone may call, each with why. Matched on `METHOD url` as fastify registered it
 * (HEAD routes are fastify's automatic twins of GET routes and follow them).
 */
const PUBLIC: Record<string, string> = {
  'GET /healthz': 'liveness for load balancers and orchestrators: says only "alive"',
  'GET /readyz': 'readiness probe: says only whether listeners, store and delivery thread answer',
  'GET /metrics':
    'Prometheus scrape; protected by http.metrics_token when one is set (open by default, counts only, no addresses)',
  'GET /openapi.json': 'the public API description (no data)',
  'GET /docs': 'rendered API documentation (static)',
  'GET /docs/static/index.html': 'rendered API documentation (static)',
  'GET /docs/static/swagger-initializer.js': 'rendered API documentation (static)',
  'GET /docs/static/*': 'rendered API documentation (static)',
  'GET /docs/json': 'the API description again (swagger-ui)',
  'GET /docs/yaml': 'the API description again (swagger-ui)',
  'HEAD /docs/': 'rendered API documentation (static)',
  'POST /auth/login': 'the dashboard login itself (lockout per e-mail and IP, no user enumeration)',
  'POST /auth/logout':
    'clears the cookie; ends a session only with its CSRF token (a forged logout does nothing)',
  'GET /': 'the dashboard SPA shell (static; its data comes from /v1 with a session)',
  'GET /assets/*': 'the dashboard build (static, hashed names)',
  'GET /o/*': 'open pixel: the HMAC-signed token in the path is the credential',
  'GET /c/*': 'click redirect: the HMAC-signed token in the path is the credential (no open redirect)',
  'GET /u/*': 'unsubscribe page: the HMAC-signed token in the path is the credential',
  'POST /u/*': 'RFC 8058 one-click unsubscribe: the HMAC-signed token in the path is the credential',
};

/** A route's key in PUBLIC: HEAD follows its GET, built asset names collapse to /assets/*. */
function publicKey(method: string, url: string): string {
  const m = method === 'HEAD' && !PUBLIC[`HEAD ${url}`] ? 'GET' : method;
  const u = url.startsWith('/assets/') ? '/assets/*' : url;
  return `${m} ${u}`;
}

/** Fills a route's parameters with harmless values (the 401 check never reaches a lookup). */
function concrete(url: string, values: Record<string, string> = {}): string {
  return url
    .replace(/:([A-Za-z_]+)/g, (_m, name: string) => encodeURIComponent(values[name] ?? 'x'))
    .replace(/\*$/, values['*'] ?? 'x');
}

describe('HTTP: authentication on every route', () => {
  let api: ApiApp;
  before(async () => {
    api = await startApiApp({ full: true });
  });
  after(() => api.close());

  it('knows every route (the table is filled) and every PUBLIC entry still exists', () => {
    const table = api.app.routeTable;
    assert.ok(table.length > 60, `only ${table.length} routes recorded`);
    const keys = new Set(table.map((r) => publicKey(r.method, r.url)));
    for (const entry of Object.keys(PUBLIC))
      assert.ok(keys.has(entry), `PUBLIC lists ${entry}, no such route`);
  });

  it('answers 401 without credentials and with a wrong key on every route not in PUBLIC', async () => {
    const checked: string[] = [];
    for (const { method, url } of api.app.routeTable) {
      if (PUBLIC[publicKey(method, url)] !== undefined) continue;
      const path = concrete(url);
      const m = method as 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
      const body = m === 'GET' || m === 'HEAD' || m === 'DELETE' ? {} : { payload: {} };
      const anonymous = await api.app.inject({ method: m, url: path, ...body });
      assert.equal(anonymous.statusCode, 401, `${method} ${url} without credentials: ${anonymous.body}`);
      // Each front end's own way of sending a key, with a key that does not exist.
      const wrong = 'pb_live_0000000000000000000000000000000000000000';
      const headers: Record<string, string> = url.startsWith('/email')
        ? { 'x-postmark-server-token': wrong, accept: 'application/json' }
        : url.startsWith('/v3/')
          ? { authorization: `Basic ${Buffer.from(`api:${wrong}`).toString('base64')}` }
          : url.startsWith('/auth/')
            ? { cookie: 'postbote_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }
            : { authorization: `Bearer ${wrong}` };
      const badKey = await api.app.inject({ method: m, url: path, headers, ...body });
      assert.equal(badKey.statusCode, 401, `${method} ${url} with a wrong key: ${badKey.body}`);
      checked.push(`${method} ${url}`);
    }
    assert.ok(checked.length > 40, `only ${checked.length} protected routes`);
  });

  it('the public routes hand out nothing of an account', async () => {
    for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/']) {
      const res = await api.app.inject({ method: 'GET', url });
      assert.ok(res.statusCode < 500, `${url}: ${res.statusCode}`);
      assert.doesNotMatch(res.body, /acme|@acme\.test|pb_live_/, url);
    }
    // A forged tracking token is not honoured: no suppression appears.
    const forged = await api.app.inject({
      method: 'POST',
      url: '/u/not-a-token',
      payload: 'List-Unsubscribe=One-Click',
    });
    assert.ok(
      forged.statusCode >= 400 && forged.statusCode < 500,
      `forged unsubscribe: ${forged.statusCode}`,
    );
  });
});

interface Seeded {
  accountId: string;
  messageId: string;
  templateId: string;
  keyId: string;
  /** A's SMTP login (GET/POST/DELETE /v1/credentials). */
  smtpId: string;
  webhookId: string;
  domain: string;
  suppressed: string;
  recipient: string;
  /** Strings that only account A's data contains. */
  markers: string[];
}

/** Fills the route parameters of A's resource per route; a new route with a parameter must be added. */
function paramsFor(url: string, a: Seeded): Record<string, string> | undefined {
  if (url.startsWith('/v1/messages/:id')) return { id: a.messageId };
  if (url.startsWith('/v1/templates/:id')) return { id: a.templateId };
  if (url.startsWith('/v1/suppressions/:address')) return { address: a.suppressed };
  if (url.startsWith('/v1/domains/:domain')) return { domain: a.domain };
  if (url.startsWith('/v1/keys/:id')) return { id: a.keyId };
  if (url.startsWith('/v1/credentials/:id')) return { id: a.smtpId };
  if (url.startsWith('/v1/webhooks/:id')) return { id: a.webhookId };
  if (url.startsWith('/v1/accounts/:id')) return { id: a.accountId };
  if (url.startsWith('/v1/privacy/:email')) return { email: a.recipient };
  if (url.startsWith('/v3/:domain/')) return { domain: a.domain };
  if (url.startsWith('/v1/streams/:name')) return { name: 'acmemark-stream' };
  return undefined;
}

/**
 * Routes with a parameter where B's call is answered within B's own account rather than
 * refused: the parameter is not an id of a stored resource but an address or a domain name,
 * which two accounts may both use. B's answer must still show nothing of A, and A's data must
 * be intact afterwards.
 */
const SCOPED_TO_CALLER: Record<string, string> = {
  'GET /v1/privacy/:email': "exports what B's account stores about the address (nothing)",
  'DELETE /v1/privacy/:email': "erases the address from B's account only",
  'DELETE /v1/suppressions/:address': "removes the address from B's own list (404: not on it)",
  'POST /v3/:domain/messages': "sends as B; the From domain is checked by B's sender policy",
  'POST /v3/:domain/messages.mime': "sends as B; the From domain is checked by B's sender policy",
};

describe('HTTP: tenant isolation on every route', () => {
  let api: ApiApp;
  let a: Seeded;
  let cookie = '';
  let csrf = '';

  before(async () => {
    api = await startApiApp({ full: true });
    const acme = await api.store.getAccountByName('acme');
    const other = await api.store.getAccountByName('other');
    assert.ok(acme && other);
    // B sends only from its own verified domains, as an account is set up by default.
    await api.store.setAccountSenderPolicy(other.id, 'verified');
    const A = api.keys.all;
    const ok = async (res: { statusCode: number; body: string }, what: string) => {
      assert.ok(res.statusCode >= 200 && res.statusCode < 300, `${what}: ${res.statusCode} ${res.body}`);
      return JSON.parse(res.body) as Record<string, unknown>;
    };
    const inject = (method: 'POST' | 'GET', url: string, payload?: unknown) =>
      api.app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${A}` },
        ...(payload ? { payload: payload as object } : {}),
      });
    const recipient = 'rcpt.acmemark@example.com';
    const message = await ok(
      await inject('POST', '/v1/messages', {
        from: 'a@acmemark.test',
        to: [recipient],
        subject: 'acmemark-subject',
        text: 'acmemark body',
        metadata: { acmemark: 'acmemark-meta' },
      }),
      'message',
    );
    const template = await ok(
      await inject('POST', '/v1/templates', {
        name: 'acmemark-template',
        alias: 'acmemark-alias',
        subject: 'acmemark {{x}}',
        text: 'hi',
      }),
      'template',
    );
    await ok(await inject('POST', '/v1/domains', { domain: 'acmemark.test' }), 'domain');
    await ok(
      await inject('POST', '/v1/suppressions', {
        suppressions: [{ address: 'supp.acmemark@example.org', details: 'acmemark-details' }],
      }),
      'suppression',
    );
    const key = await ok(await inject('POST', '/v1/keys', { scopes: ['read'] }), 'key');
    const smtp = await ok(
      await inject('POST', '/v1/credentials', { kind: 'smtp', username: 'acmemark-smtp' }),
      'smtp login',
    );
    const webhook = await ok(
      await inject('POST', '/v1/webhooks', { url: 'https://hooks.acme.test/acmemark-hook' }),
      'webhook',
    );
    await api.store.createStream({
      accountId: acme.id,
      name: 'acmemark-stream',
      kind: 'transactional',
      pool: '',
      createdAt: api.clock.now,
    });
    await createDashboardUser(
      api.store,
      { account: other, email: 'ops@other.test', password: 'correct horse battery' },
      api.clock.now,
    );
    a = {
      accountId: acme.id,
      messageId: String(message.id),
      templateId: String(template.id),
      keyId: String(key.id),
      smtpId: String(smtp.id),
      webhookId: String(webhook.id),
      domain: 'acmemark.test',
      suppressed: 'supp.acmemark@example.org',
      recipient,
      markers: [
        acme.id,
        String(message.id),
        String(template.id),
        String(key.id),
        String(smtp.id),
        String(webhook.id),
        'acmemark',
      ],
    };
    const login = await api.app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { email: 'ops@other.test', password: 'correct horse battery' },
    });
    assert.equal(login.statusCode, 200, login.body);
    cookie = String(login.headers['set-cookie']).split(';')[0] ?? '';
    csrf = String(login.json().csrfToken ?? login.json().csrf_token ?? '');
    assert.ok(csrf !== '', `a CSRF token in the login answer: ${login.body}`);
  });
  after(() => api.close());

  /** B's two ways in: its API key (every scope) and its dashboard session. */
  const asB = (via: 'key' | 'session'): Record<string, string> =>
    via === 'key' ? { authorization: `Bearer ${api.keys.other}` } : { cookie, 'x-csrf-token': csrf };

  /** Account A's resources, read with A's key: all still there. */
  async function assertAIntact(after: string): Promise<void> {
    const get = (url: string) =>
      api.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${api.keys.all}` } });
    for (const url of [
      `/v1/messages/${a.messageId}`,
      `/v1/messages/${a.messageId}/content`,
      `/v1/templates/${a.templateId}`,
      `/v1/domains/${a.domain}`,
      `/v1/webhooks/${a.webhookId}`,
    ]) {
      const res = await get(url);
      assert.equal(res.statusCode, 200, `after ${after}: A's ${url} is gone (${res.body})`);
    }
    assert.match((await get('/v1/suppressions')).body, /supp\.acmemark@example\.org/, `after ${after}`);
    assert.match((await get('/v1/keys')).body, new RegExp(a.keyId), `after ${after}: A's key`);
    assert.match((await get('/v1/credentials')).body, new RegExp(a.smtpId), `after ${after}: A's login`);
    const status = (await get(`/v1/accounts/${a.accountId}/status`)).json() as { paused: boolean };
    assert.equal(status.paused, false, `after ${after}: A was paused`);
    const stream = await api.store.getStream(a.accountId, 'acmemark-stream');
    assert.ok(stream, `after ${after}: A's stream is gone`);
    assert.deepEqual(stream.settings ?? {}, {}, `after ${after}: A's stream was changed`);
    const message = (await get(`/v1/messages/${a.messageId}`)).json() as { status?: string };
    assert.notEqual(message.status, 'cancelled', `after ${after}: A's message was cancelled`);
  }

  function assertNothingOfA(body: string, what: string): void {
    for (const marker of a.markers)
      assert.ok(!body.includes(marker), `${what} shows A's ${marker}: ${body.slice(0, 300)}`);
  }

  for (const via of ['key', 'session'] as const) {
    it(`B's ${via} gets 404/403 on every route that takes one of A's ids, and changes nothing`, async () => {
      let checked = 0;
      for (const { method, url } of api.app.routeTable) {
        if (!url.includes(':') || method === 'HEAD') continue;
        const params = paramsFor(url, a);
        assert.ok(params, `${method} ${url} takes a parameter: add it to paramsFor with account A's value`);
        const path = concrete(url, params);
        const m = method as 'GET' | 'POST' | 'PUT' | 'DELETE';
        const headers = url.startsWith('/v3/')
          ? { authorization: `Basic ${Buffer.from(`api:${api.keys.other}`).toString('base64')}` }
          : asB(via);
        if (url.startsWith('/v3/') && via === 'session') continue; // Mailgun's front end takes keys only.
        const payload =
          m === 'GET' || m === 'DELETE'
            ? undefined
            : url.startsWith('/v3/')
              ? 'from=a%40acmemark.test&to=x%40example.com&subject=acmemark-b&text=b'
              : url.startsWith('/v1/streams/')
                ? { tracking: { opens: true } }
                : {};
        const res = await api.app.inject({
          method: m,
          url: path,
          headers: {
            ...headers,
            ...(url.startsWith('/v3/') ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
          },
          ...(payload === undefined ? {} : { payload }),
        });
        const key = `${method} ${url}`;
        // The answer may repeat what B asked for ("no message <id>"), nothing else of A.
        let answer = res.body;
        for (const value of Object.values(params)) answer = answer.replaceAll(value, '');
        if (SCOPED_TO_CALLER[key] !== undefined) {
          assert.ok(res.statusCode < 500, `${key}: ${res.statusCode} ${res.body}`);
          if (url.startsWith('/v3/'))
            assert.ok(res.statusCode >= 400, `${key}: B sent as A's domain (${res.statusCode} ${res.body})`);
        } else {
          assert.ok(
            res.statusCode === 404 || res.statusCode === 403,
            `${key} with A's id by B's ${via}: ${res.statusCode} ${res.body}`,
          );
        }
        // The session got past its CSRF check: the refusal is about A's resource.
        assert.doesNotMatch(res.body, /X-CSRF-Token|another site/, `${key} by B's ${via}`);
        assertNothingOfA(answer, key);
        await assertAIntact(`${via} ${key}`);
        checked++;
      }
      assert.ok(checked >= 20, `only ${checked} id routes`);
    });

    it(`B's ${via} lists nothing of A on any list route`, async () => {
      let checked = 0;
      for (const { method, url } of api.app.routeTable) {
        if (method !== 'GET' || url.includes(':') || !url.startsWith('/v1/')) continue;
        const res = await api.app.inject({ method: 'GET', url, headers: asB(via) });
        assert.ok(res.statusCode < 500, `${url}: ${res.statusCode}`);
        assertNothingOfA(res.body, `GET ${url} by B's ${via}`);
        if (url === '/v1/queue') {
          // Counts carry no marker: B has sent nothing, so B's queue is empty (A's is not).
          const totals = (res.json() as { totals?: Record<string, number> }).totals ?? {};
          assert.deepEqual(
            Object.entries(totals).filter(([, n]) => n !== 0),
            [],
            `B's queue shows A's mail: ${res.body.slice(0, 300)}`,
          );
        }
        // Query parameters that name another account are not a way around it.
        const sneaky = await api.app.inject({
          method: 'GET',
          url: `${url}?account=${a.accountId}&account_id=${a.accountId}&accountId=${a.accountId}`,
          headers: asB(via),
        });
        assertNothingOfA(sneaky.body, `GET ${url}?account=A by B's ${via}`);
        checked++;
      }
      assert.ok(checked >= 9, `only ${checked} list routes`);
    });
  }

  it("A's own key sees A's data on the list routes (the markers are real)", async () => {
    const shown: string[] = [];
    const without: string[] = [];
    for (const { method, url } of api.app.routeTable) {
      if (method !== 'GET' || url.includes(':') || !url.startsWith('/v1/')) continue;
      const res = await api.app.inject({
        method: 'GET',
        url,
        headers: { authorization: `Bearer ${api.keys.all}` },
      });
      (a.markers.some((m) => res.body.includes(m)) ? shown : without).push(url);
    }
    // Stats come from rollups (none in this test) and the queue from counts (checked above).
    assert.ok(shown.length >= 9, `A's markers on only ${shown.join(', ')}; none on ${without.join(', ')}`);
    assert.ok(shown.includes('/v1/events'), "A's events are listed (the isolation check on them is real)");
    await assertAIntact('the whole run');
  });
});
