/**
 * GET /v1/stats: read scope, one account's figures only, grouping and day sums, and parameters
 * refused with the parameter named.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RollupIncrement } from '../../src/store/types.ts';
import { type ApiApp, call, startApiApp } from '../support/api-app.ts';

const HOUR = 3_600_000;

describe('statistics API', () => {
  let api: ApiApp;
  let acme: string;
  let other: string;
  // The app's clock: 2026-11-28T10:00:00Z.
  const h9 = Date.parse('2026-11-28T09:00:00Z');
  before(async () => {
    api = await startApiApp();
    acme = (await api.store.getAccountByName('acme'))?.id ?? '';
    other = (await api.store.getAccountByName('other'))?.id ?? '';
    const row = (o: Partial<RollupIncrement>): RollupIncrement => ({
      accountId: acme,
      bucket: h9,
      stream: 'outbound',
      tag: '',
      domain: 'shop.test',
      provider: 'gmail',
      counter: 'delivered',
      n: 1,
      ...o,
    });
    await api.store.applyRollup({
      cursor: 'stats',
      fromId: 0,
      toId: 100,
      at: h9,
      increments: [
        row({ counter: 'accepted', n: 10 }),
        row({ n: 8 }),
        row({ counter: 'hard_bounced', n: 2 }),
        row({ counter: 'hard_bounced:unknown_user', n: 2 }),
        row({ counter: 'complained', n: 1 }),
        row({ provider: 'outlook', n: 4 }),
        row({ bucket: h9 - 5 * HOUR, stream: 'broadcast', n: 6 }),
        row({ tag: 'welcome', n: 3 }),
        row({ tag: 'receipt', n: 5 }),
        row({ accountId: other, n: 1000 }),
      ],
    });
  });
  after(() => api.close());

  const get = (url: string, key = api.keys.read) => call(api, key, 'GET', url);

  it('answers the last 24 hours by hour with counters, categories and rates (read scope)', async () => {
    const res = await get('/v1/stats');
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.from, '2026-11-27T10:00:00.000Z');
    assert.equal(body.to, '2026-11-28T10:00:00.000Z');
    assert.deepEqual(
      body.data.map((e: { start: string; counters: { delivered: number } }) => [
        e.start,
        e.counters.delivered,
      ]),
      [
        ['2026-11-28T04:00:00.000Z', 6],
        ['2026-11-28T09:00:00.000Z', 12],
      ],
    );
    const [total] = body.totals;
    assert.equal(total.counters.delivered, 18, 'tag rows are not added to the totals');
    assert.equal(total.counters.accepted, 10);
    assert.deepEqual(total.hard_bounces_by_category, { unknown_user: 2 });
    assert.equal(total.rates.bounce_rate, 0.1);
    assert.equal(total.rates.delivery_rate, 0.9);
    assert.equal(total.rates.complaint_rate, 0.055556);
    assert.equal((await get('/v1/stats', api.keys.send)).statusCode, 403);
    assert.equal((await api.app.inject({ method: 'GET', url: '/v1/stats' })).statusCode, 401);
  });

  it('shows an account only its own figures', async () => {
    const res = await get('/v1/stats?interval=day', api.keys.other);
    assert.equal(res.statusCode, 200);
    assert.deepEqual(
      res.json().totals.map((e: { counters: { delivered: number } }) => e.counters.delivered),
      [1000],
    );
    const mine = await get('/v1/stats?interval=day');
    assert.equal(mine.json().totals[0].counters.delivered, 18);
  });

  it('groups by the dimensions asked for, by tag only in tag rows, filters', async () => {
    const byProvider = (await get('/v1/stats?group_by=provider,stream&interval=day&from=2026-11-28')).json();
    assert.deepEqual(byProvider.group_by, ['provider', 'stream']);
    assert.deepEqual(
      byProvider.totals.map((e: { provider: string; stream: string; counters: { delivered: number } }) => [
        e.provider,
        e.stream,
        e.counters.delivered,
      ]),
      [
        ['gmail', 'broadcast', 6],
        ['gmail', 'outbound', 8],
        ['outlook', 'outbound', 4],
      ],
    );
    const byTag = (await get('/v1/stats?group_by=tag&interval=day')).json();
    assert.deepEqual(
      byTag.totals.map((e: { tag: string; counters: { delivered: number } }) => [
        e.tag,
        e.counters.delivered,
      ]),
      [
        ['receipt', 5],
        ['welcome', 3],
      ],
    );
    const oneProvider = (await get('/v1/stats?provider=outlook&interval=day')).json();
    assert.equal(oneProvider.totals[0].counters.delivered, 4);
    const nothing = (await get('/v1/stats?stream=nope')).json();
    assert.deepEqual(nothing.data, []);
    assert.deepEqual(nothing.totals, []);
  });

  it('refuses bad parameters, naming them', async () => {
    const cases: [string, string][] = [
      ['/v1/stats?group_by=stream,account', 'group_by'],
      ['/v1/stats?interval=week', 'interval'],
      ['/v1/stats?from=yesterday', 'from'],
      ['/v1/stats?to=2026-13-45T99:00:00Z', 'to'],
      ['/v1/stats?from=2026-11-28T10:00:00Z&to=2026-11-28T09:00:00Z', 'from'],
      ['/v1/stats?from=2020-01-01&interval=hour', 'from'],
      ['/v1/stats?provider=hotmail', 'provider'],
      ['/v1/stats?interval=day&interval=hour', 'interval'],
      ['/v1/stats?limit=5', 'limit'],
      [`/v1/stats?tag=${'x'.repeat(300)}`, 'tag'],
    ];
    for (const [url, field] of cases) {
      const res = await get(url);
      assert.equal(res.statusCode, 400, `${url}: ${res.body}`);
      assert.equal(res.json().error.code, 'invalid_request', url);
      assert.equal(res.json().error.field, field, url);
    }
  });

  it('is in the OpenAPI document', async () => {
    const doc = (await api.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    assert.ok(doc.paths['/v1/stats']?.get, 'documented');
  });
});
