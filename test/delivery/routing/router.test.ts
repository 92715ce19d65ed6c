import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FailoverEvent } from '../../../src/delivery/routing/failover.ts';
import {
  createRouter,
  DEFAULT_ROUTE,
  decisionSummary,
  type RouteDecision,
  type RouteRequest,
  routerInput,
} from '../../../src/delivery/routing/router.ts';
import { fakeClock } from '../../support/fake-clock.ts';
import { load } from './load.ts';

const HOUR = 3_600_000;

/** A small seeded PRNG (mulberry32), so distributions are checked without flakiness. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const mail = (over: Partial<RouteRequest> = {}): RouteRequest => ({
  domain: 'example.com',
  stream: 'outbound',
  kind: 'transactional',
  streamPool: '',
  account: 'acme',
  ...over,
});

const sources = [
  { name: 'ip-1', address: '127.0.0.2', ehlo: 'mta1.example.net' },
  { name: 'ip-2', address: '127.0.0.3' },
  { name: 'ip-3', address: '127.0.0.4' },
  { name: 'ip-4', address: '::1' },
];

function router(overrides: Record<string, unknown>, options: { random?: () => number; start?: number } = {}) {
  const clock = fakeClock(options.start);
  const events: FailoverEvent[] = [];
  const r = createRouter(routerInput(load(overrides)), {
    clock,
    random: options.random ?? seeded(1),
    onEvent: (e) => events.push(e),
  });
  return { router: r, clock, events };
}

function deliver(decision: RouteDecision) {
  assert.equal(decision.action, 'deliver', JSON.stringify(decisionSummary(decision)));
  return decision as Extract<RouteDecision, { action: 'deliver' }>;
}

describe('router: routes', () => {
  const routes = [
    {
      name: 'bank',
      match: { domains: ['bank.test'], streams: ['outbound'] },
      via: 'smarthost',
      smarthost: { host: 'secure.relay.test', tls: 'tls' },
    },
    {
      name: 'de',
      match: { domains: ['*.de', 'example.de'] },
      via: 'smarthost',
      smarthost: { host: 'eu.relay.test' },
    },
    { name: 'quarantine', match: { accounts: ['Suspect'] }, via: 'hold' },
    { name: 'news', match: { streams: ['newsletter'] }, via: 'mx' },
    { name: 'bank-other', match: { domains: ['bank.test'] }, via: 'mx' },
  ];
  const { router: r } = router({ routes });
  const routeOf = (over: Partial<RouteRequest>) => r.route(mail(over)).route.name;

  it('matches exact domains, wildcards, streams and accounts; the first match wins', () => {
    assert.equal(routeOf({ domain: 'BANK.test.' }), 'bank');
    assert.equal(routeOf({ domain: 'bank.test', stream: 'broadcast', kind: 'broadcast' }), 'bank-other');
    assert.equal(routeOf({ domain: 'example.de' }), 'de');
    assert.equal(routeOf({ domain: 'mail.example.de' }), 'de');
    assert.equal(routeOf({ domain: 'example.de', account: 'SUSPECT' }), 'de'); // de comes first
    assert.equal(routeOf({ domain: 'example.com', account: 'suspect' }), 'quarantine');
    assert.equal(routeOf({ domain: 'example.com', stream: 'Newsletter' }), 'news');
    assert.equal(routeOf({ domain: 'example.com' }), DEFAULT_ROUTE);
  });

  it('returns the route’s smarthost, a hold decision, or MX', () => {
    const bank = deliver(r.route(mail({ domain: 'bank.test' })));
    assert.deepEqual(bank.route, {
      name: 'bank',
      via: 'smarthost',
      smarthost: { host: 'secure.relay.test', port: 25, tls: 'tls' },
    });
    assert.deepEqual(r.route(mail({ account: 'suspect' })), {
      action: 'hold',
      route: { name: 'quarantine', via: 'hold' },
      matched: 'quarantine',
    });
    assert.deepEqual(deliver(r.route(mail())).route, { name: DEFAULT_ROUTE, via: 'mx' });
  });
});

describe('router: pools and sources', () => {
  const egress = {
    sources,
    pools: {
      default: ['ip-1'],
      bulk: ['ip-2', 'ip-3'],
      vip: ['ip-4'],
      draining: [{ source: 'ip-1', weight: 0 }, 'ip-2'],
    },
    transactional_pool: 'default',
    broadcast_pool: 'bulk',
    account_pools: { bigco: 'vip' },
  };

  it('chooses the stream’s pool, else the account’s, else the kind’s default, and only its sources', () => {
    const { router: r } = router({ egress });
    const sourcesOf = (request: RouteRequest) => {
      const seen = new Set<string>();
      for (let i = 0; i < 200; i++) seen.add(deliver(r.route(request)).source.address);
      return [...seen].sort();
    };
    assert.deepEqual(sourcesOf(mail()), ['127.0.0.2']);
    assert.deepEqual(sourcesOf(mail({ stream: 'broadcast', kind: 'broadcast' })), ['127.0.0.3', '127.0.0.4']);
    assert.deepEqual(sourcesOf(mail({ account: 'BigCo' })), ['::1']);
    assert.deepEqual(sourcesOf(mail({ account: 'bigco', streamPool: 'bulk' })), ['127.0.0.3', '127.0.0.4']);
    assert.deepEqual(sourcesOf(mail({ streamPool: 'draining' })), ['127.0.0.3']);
  });

  it('gives the source’s address and EHLO name, the global one when it names none', () => {
    const { router: r } = router({ egress, delivery: { ehlo_name: '' } });
    assert.deepEqual(deliver(r.route(mail())).source, {
      name: 'ip-1',
      address: '127.0.0.2',
      ehlo: 'mta1.example.net',
    });
    assert.deepEqual(deliver(r.route(mail({ account: 'bigco' }))).source, {
      name: 'ip-4',
      address: '::1',
      ehlo: 'node1.example.net',
    });
    const { router: r2 } = router({ egress, delivery: { ehlo_name: 'out.example.net' } });
    assert.equal(deliver(r2.route(mail({ account: 'bigco' }))).source.ehlo, 'out.example.net');
  });

  it('defers mail of a pool the config does not have, prototype names included', () => {
    const { router: r } = router({ egress });
    for (const pool of ['nope', 'constructor', '__proto__']) {
      const decision = r.route(mail({ streamPool: pool }));
      assert.deepEqual(
        { action: decision.action, reason: 'reason' in decision && decision.reason },
        { action: 'defer', reason: 'unknown_pool' },
        pool,
      );
    }
    assert.equal(r.hasPool('bulk'), true);
    assert.equal(r.hasPool('toString'), false);
  });

  it('spreads mail by weight', () => {
    const { router: r } = router(
      {
        egress: {
          sources,
          pools: { default: [{ source: 'ip-1', weight: 3 }, { source: 'ip-2', weight: 1 }, 'ip-3'] },
        },
      },
      { random: seeded(42) },
    );
    const counts = new Map<string, number>();
    const n = 50_000;
    for (let i = 0; i < n; i++) {
      const name = deliver(r.route(mail())).source.name;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    const share = (name: string) => (counts.get(name) ?? 0) / n;
    assert.ok(Math.abs(share('ip-1') - 0.6) < 0.01, `ip-1 ${share('ip-1')}`);
    assert.ok(Math.abs(share('ip-2') - 0.2) < 0.01, `ip-2 ${share('ip-2')}`);
    assert.ok(Math.abs(share('ip-3') - 0.2) < 0.01, `ip-3 ${share('ip-3')}`);
  });

  it('maps the random draw onto cumulative weights', () => {
    let next = 0;
    const { router: r } = router(
      {
        egress: {
          sources,
          pools: {
            default: [
              { source: 'ip-1', weight: 3 },
              { source: 'ip-2', weight: 1 },
            ],
          },
        },
      },
      { random: () => next },
    );
    const pick = (x: number) => {
      next = x;
      return deliver(r.route(mail())).source.name;
    };
    assert.deepEqual([0, 0.74, 0.75, 0.999999, 1].map(pick), ['ip-1', 'ip-1', 'ip-2', 'ip-2', 'ip-2']);
  });
});

describe('router: warm-up', () => {
  const day1 = Date.UTC(2026, 11, 1, 9); // 2026-12-01 09:00Z, warm-up day 1
  const warm = (overflow: 'spill' | 'wait', extra: Record<string, unknown> = {}) => ({
    egress: {
      sources: [
        {
          name: 'new',
          address: '127.0.0.2',
          warmup: { start: '2026-12-01', daily: [10, 20], overflow, ...extra },
        },
        { name: 'old', address: '127.0.0.3' },
      ],
      pools: { default: ['new', 'old'] },
    },
  });

  /** Routes `n` single-recipient mails at the clock's time, sending each at once. */
  function send(r: ReturnType<typeof router>, n: number) {
    const out = { by: {} as Record<string, number>, deferred: [] as number[] };
    for (let i = 0; i < n; i++) {
      const d = r.router.route(mail());
      if (d.action === 'defer' && d.reason === 'warmup') {
        out.deferred.push(d.until);
        continue;
      }
      const decision = deliver(d);
      out.by[decision.source.name] = (out.by[decision.source.name] ?? 0) + 1;
      if (decision.reserved > 0) r.router.recordSent(decision.source.name, decision.reserved, r.clock.now());
    }
    return out;
  }

  it('spill: the daily cap holds and the rest leaves from the other sources; the next day the next cap', () => {
    const r = router(warm('spill'), { start: day1 });
    const first = send(r, 200);
    assert.deepEqual(first.by, { new: 10, old: 190 });
    assert.deepEqual(first.deferred, []);
    const status = r.router.capsStatus(r.clock.now())[0]!;
    assert.deepEqual(
      { source: status.source, day: status.day, sentToday: status.sentToday, capped: status.capped },
      { source: 'new', day: 1, sentToday: 10, capped: true },
    );
    r.clock.set(Date.UTC(2026, 11, 2, 0, 0, 0)); // UTC midnight: day 2
    assert.equal(send(r, 200).by.new, 20);
    r.clock.set(Date.UTC(2026, 11, 3, 0, 0, 0)); // past the schedule: no cap
    assert.ok(send(r, 200).by.new! > 60);
  });

  it('wait: the capped source’s share waits for the next day instead of spilling', () => {
    const r = router(warm('wait'), { start: day1 });
    const result = send(r, 200);
    const old = result.by.old ?? 0;
    assert.equal(result.by.new, 10);
    assert.ok(old > 80 && old < 120, `old ${old}`); // its own half, no more
    assert.equal(result.deferred.length, 200 - 10 - old);
    assert.ok(result.deferred.every((t) => t === Date.UTC(2026, 11, 2)));
  });

  it('holds hourly caps with spill and defers when every source is capped', () => {
    const r = router(
      {
        egress: {
          sources: [
            {
              name: 'a',
              address: '127.0.0.2',
              warmup: { start: '2026-12-01', daily: [100], hourly: [5], overflow: 'spill' },
            },
            {
              name: 'b',
              address: '127.0.0.3',
              warmup: { start: '2026-12-01', daily: [100], hourly: [3], overflow: 'spill' },
            },
          ],
          pools: { default: ['a', 'b'] },
        },
      },
      { start: day1 + 15 * 60_000 },
    );
    const result = send(r, 20);
    assert.deepEqual(result.by, { a: 5, b: 3 });
    const sent = r.router.capsStatus(r.clock.now()).map((s) => [s.source, s.sentThisHour]);
    assert.deepEqual(sent, [
      ['a', 5],
      ['b', 3],
    ]);
    assert.equal(result.deferred.length, 12);
    assert.ok(result.deferred.every((t) => t === day1 + HOUR));
    r.clock.set(day1 + HOUR);
    assert.equal(send(r, 20).deferred.length, 12);
  });

  it('hands out only the room left under the caps and holds it until reported', () => {
    const r = router(warm('wait'), { random: () => 0, start: day1 });
    const first = deliver(r.router.route(mail({ recipients: 7 })));
    assert.deepEqual([first.source.name, first.recipients, first.reserved], ['new', 7, 7]);
    const second = deliver(r.router.route(mail({ recipients: 7 })));
    assert.deepEqual([second.recipients, second.reserved], [3, 3]); // 10 - 7 in flight
    const third = r.router.route(mail({ recipients: 7 }));
    assert.equal(third.action, 'defer');
    // 5 of the first were sent, 2 deferred before DATA: those 2 may go again.
    r.router.recordSent('new', 5, r.clock.now());
    r.router.release('new', 2, r.clock.now());
    assert.equal(deliver(r.router.route(mail({ recipients: 7 }))).recipients, 2);
  });

  it('does not apply warm-up caps through a smarthost', () => {
    const r = router(
      {
        ...warm('wait'),
        routes: [
          {
            name: 'relay',
            match: { domains: ['*'] },
            via: 'smarthost',
            smarthost: { host: '127.0.0.1', port: 2526, tls: 'none' },
          },
        ],
      },
      { random: () => 0, start: day1 },
    );
    for (let i = 0; i < 50; i++) {
      const d = deliver(r.router.route(mail({ recipients: 100 })));
      assert.deepEqual([d.source.name, d.recipients, d.reserved], ['new', 100, 0]);
    }
  });
});

describe('router: failover', () => {
  const relays = {
    routes: [
      {
        name: 'primary',
        match: { domains: ['*'] },
        via: 'smarthost',
        smarthost: { host: '127.0.0.1', port: 2601, tls: 'none', user: 'u', password: 'top-secret' },
        fallback: ['secondary'],
        failover_after: '1m',
        probe_every: '20s',
      },
      {
        name: 'secondary',
        via: 'smarthost',
        smarthost: { host: '127.0.0.1', port: 2602, tls: 'none' },
        fallback: ['parked'],
      },
      { name: 'parked', via: 'hold' },
    ],
  };

  it('moves mail to the fallback while the primary is down and back when it recovers', () => {
    const { router: r, clock, events } = router(relays);
    const portOf = (d: RouteDecision) => d.route.smarthost?.port;
    for (let i = 0; i < 6; i++) {
      assert.equal(portOf(r.route(mail())), 2601);
      r.failover.recordFailure('primary', i % 2 ? '421' : 'connection', clock.now());
      clock.advance(10_000);
    }
    // 1m after the first failure with no success since: down.
    const moved = deliver(r.route(mail()));
    assert.deepEqual(
      [moved.route.name, moved.matched, moved.route.smarthost?.port],
      ['secondary', 'primary', 2602],
    );
    assert.deepEqual(
      events.map((e) => [e.type, e.route, e.type === 'down' ? e.fallback : '']),
      [['down', 'primary', 'secondary']],
    );
    clock.advance(20_000);
    const probe = deliver(r.route(mail()));
    assert.deepEqual([probe.route.name, probe.probe], ['primary', true]);
    assert.equal(portOf(r.route(mail())), 2602);
    r.failover.recordSuccess('primary', clock.now());
    assert.equal(portOf(r.route(mail())), 2601);
    assert.deepEqual(events.at(-1)?.type, 'recovered');
  });

  it('holds the mail when every relay is down and the last fallback is hold', () => {
    const { router: r, clock } = router(relays);
    for (let t = 0; t <= 120_000; t += 10_000) {
      r.failover.recordFailure('primary', 'connection', clock.now());
      r.failover.recordFailure('secondary', 'connection', clock.now());
      if (t < 120_000) clock.advance(10_000);
    }
    assert.equal(r.failover.isDown('secondary', clock.now()), true);
    clock.advance(30_000); // both probes due
    const decisions = [1, 2, 3].map(() => r.route(mail()));
    assert.deepEqual(
      decisions.map((d) => `${d.action} ${d.route.name}`),
      ['deliver primary', 'deliver secondary', 'hold parked'], // the two probes, then hold
    );
  });

  it('never puts the smarthost password in a decision summary', () => {
    const { router: r } = router(relays);
    const summary = decisionSummary(r.route(mail()));
    assert.deepEqual(summary, {
      action: 'deliver',
      route: 'primary',
      via: 'smarthost',
      smarthost: '127.0.0.1:2601',
      pool: 'default',
      source: 'default',
    });
    assert.ok(!JSON.stringify(summary).includes('top-secret'));
  });
});
