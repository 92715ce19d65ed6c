/**
 * GET /v1/delivery: the configured egress pools and routes the account's streams use, for the
 * dashboard's Streams page. Read scope; each account sees its own pools and routes only; no
 * smarthost user or password and no other account's name appears. Over fastify inject.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ApiApp, startApiApp } from '../support/api-app.ts';

describe('GET /v1/delivery', () => {
  let api: ApiApp;
  const get = async (key: string) => {
    const res = await api.app.inject({
      method: 'GET',
      url: '/v1/delivery',
      headers: { authorization: `Bearer ${key}` },
    });
    return { status: res.statusCode, text: res.body, body: res.json() as Record<string, unknown> };
  };

  before(async () => {
    api = await startApiApp({
      config: {
        egress: {
          sources: [
            { name: 'ip-1', address: '192.0.2.21', ehlo: 'mta1.relay.test' },
            { name: 'ip-2', address: '' },
            { name: 'ip-secret', address: '192.0.2.99', ehlo: 'other-only.relay.test' },
          ],
          pools: {
            default: ['ip-1'],
            bulk: [
              { source: 'ip-1', weight: 3 },
              { source: 'ip-2', weight: 1 },
            ],
            otherpool: ['ip-secret'],
          },
          transactional_pool: 'default',
          broadcast_pool: 'bulk',
          account_pools: { other: 'otherpool' },
        },
        routes: [
          {
            name: 'other-relay',
            match: { accounts: ['other'] },
            via: 'smarthost',
            smarthost: { host: 'other.smarthost.test', port: 25, tls: 'none' },
          },
          {
            name: 'de-relay',
            match: { domains: ['example.de', '*.example.de'] },
            via: 'smarthost',
            smarthost: {
              host: 'relay.example.net',
              port: 587,
              tls: 'starttls',
              user: 'relayuser-hidden',
              password: 'relaypass-hidden',
            },
            fallback: ['direct'],
          },
          { name: 'direct', via: 'mx' },
        ],
      },
    });
  });
  after(async () => {
    await api.close();
  });

  it('shows each stream’s pool and routes, the pools’ addresses and EHLO names, smarthost host:port only', async () => {
    const res = await get(api.keys.read);
    assert.equal(res.status, 200, res.text);
    const body = res.body as {
      streams: { name: string; pool: string; routes: string[] }[];
      pools: {
        name: string;
        sources: { name: string; weight: number; addresses: string[]; ehlo: string }[];
      }[];
      routes: { name: string; via: string; smarthost?: Record<string, unknown>; fallback: string[] }[];
    };
    const outbound = body.streams.find((s) => s.name === 'outbound');
    const broadcast = body.streams.find((s) => s.name === 'broadcast');
    assert.equal(outbound?.pool, 'default');
    assert.equal(broadcast?.pool, 'bulk');
    assert.deepEqual(outbound?.routes, ['de-relay']);
    assert.deepEqual(body.pools.map((p) => p.name).sort(), ['bulk', 'default']);
    assert.deepEqual(body.pools.find((p) => p.name === 'bulk')?.sources, [
      { name: 'ip-1', weight: 3, addresses: ['192.0.2.21'], ehlo: 'mta1.relay.test', warming_up: false },
      { name: 'ip-2', weight: 1, addresses: ['192.0.2.10'], ehlo: 'relay.test', warming_up: false },
    ]);
    assert.deepEqual(
      body.routes.map((r) => r.name),
      ['de-relay', 'direct'],
      'the matching route and its fallback; not the other account’s',
    );
    assert.deepEqual(body.routes[0]?.smarthost, {
      host: 'relay.example.net',
      port: 587,
      tls: 'starttls',
      authenticated: true,
    });
    for (const hidden of ['relayuser-hidden', 'relaypass-hidden', 'other', 'ip-secret', '192.0.2.99'])
      assert.ok(!res.text.includes(hidden), `${hidden} in ${res.text}`);
  });

  it('gives the other account its own pool and route, nothing of this one’s', async () => {
    const res = await get(api.keys.other);
    assert.equal(res.status, 200, res.text);
    const body = res.body as { streams: { pool: string }[]; routes: { name: string; match?: unknown }[] };
    assert.ok(body.streams.every((s) => s.pool === 'otherpool'));
    assert.deepEqual(
      body.routes.map((r) => r.name),
      ['other-relay', 'de-relay', 'direct'],
    );
    assert.deepEqual(body.routes[0]?.match, { accounts_only: true });
    assert.ok(!res.text.includes('mta1.relay.test') && !res.text.includes('relaypass'), res.text);
  });

  it('needs a key or session with the read scope', async () => {
    assert.equal((await get(api.keys.send)).status, 403);
    assert.equal((await api.app.inject({ method: 'GET', url: '/v1/delivery' })).statusCode, 401);
  });
});
