import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertProblems, load, problemsOf } from './load.ts';

const relay = { host: 'relay.example.net', port: 587, tls: 'starttls' };

describe('config: egress', () => {
  it('defaults to one OS-chosen source in one default pool for both kinds', () => {
    const { egress, routes } = load({});
    assert.deepEqual(egress.sources, [{ name: 'default', address: '', ehlo: '' }]);
    assert.deepEqual(egress.pools, { default: [{ source: 'default', weight: 1 }] });
    assert.equal(egress.transactional_pool, 'default');
    assert.equal(egress.broadcast_pool, 'default');
    assert.deepEqual(egress.account_pools, {});
    assert.deepEqual(routes, []);
  });

  it('reads sources with IPv4 and IPv6 literals, warm-up, weighted pools and account pools', () => {
    const { egress } = load({
      egress: {
        sources: [
          { name: 'ip-1', address: '192.0.2.10', ehlo: 'MTA1.example.com.' },
          {
            name: 'ip-2',
            address: '2001:DB8::10',
            warmup: { start: '2026-12-01', daily: [50, 100], hourly: [10], overflow: 'wait' },
          },
          { name: 'ip-3', address: '[::1]' },
          { name: 'ip-4', address: '' },
        ],
        pools: { default: ['ip-1'], bulk: [{ source: 'ip-1', weight: 3 }, { source: 'ip-2' }, 'ip-3'] },
        transactional_pool: 'default',
        broadcast_pool: 'bulk',
        account_pools: { Acme: 'bulk' },
      },
    });
    assert.deepEqual(egress.sources[0], { name: 'ip-1', address: '192.0.2.10', ehlo: 'mta1.example.com' });
    assert.deepEqual(egress.sources[1], {
      name: 'ip-2',
      address: '2001:db8::10',
      ehlo: '',
      warmup: {
        start: '2026-12-01',
        startDay: Date.UTC(2026, 11, 1) / 86_400_000,
        daily: [50, 100],
        hourly: [10],
        overflow: 'wait',
      },
    });
    assert.equal(egress.sources[2]?.address, '::1');
    assert.deepEqual(egress.pools.bulk, [
      { source: 'ip-1', weight: 3 },
      { source: 'ip-2', weight: 1 },
      { source: 'ip-3', weight: 1 },
    ]);
    assert.deepEqual(egress.account_pools, { acme: 'bulk' });
    assert.ok(Object.isFrozen(egress.sources[1]?.warmup?.daily));
  });

  it('takes structured values from the environment as YAML', () => {
    const { egress } = load(
      {},
      {
        POSTBOTE_EGRESS__SOURCES: '[{ name: a, address: 127.0.0.2 }, { name: b, address: 127.0.0.3 }]',
        POSTBOTE_EGRESS__POOLS: '{ default: [a], bulk: [b] }',
        POSTBOTE_EGRESS__BROADCAST_POOL: 'bulk',
      },
    );
    assert.deepEqual(
      egress.sources.map((s) => s.address),
      ['127.0.0.2', '127.0.0.3'],
    );
    assert.equal(egress.broadcast_pool, 'bulk');
  });

  it('names the key path of every bad source', () => {
    const problems = problemsOf({
      egress: {
        sources: [
          { name: '', address: '192.0.2.1' },
          { name: 'b', address: '192.0.2.300' },
          { name: 'c', address: 'mail.example.com' },
          { name: 'd', address: '0.0.0.0' },
          { name: 'e', address: 'ff02::1' },
          { name: 'f', address: '192.0.2.1', ehlo: 'not a host' },
          { name: 'b', address: '192.0.2.9', colour: 'red' },
          'ip-9',
        ],
        pools: { default: ['b'] },
      },
    });
    assertProblems(
      problems,
      /^egress\.sources\[0\]\.name: must be a source name .*got ""/,
      /^egress\.sources\[1\]\.address: "192\.0\.2\.300" is not an IPv4 or IPv6 address/,
      /^egress\.sources\[2\]\.address: .*a host name cannot be bound/,
      /^egress\.sources\[3\]\.address: 0\.0\.0\.0 is the unspecified address; write '' to let the OS choose/,
      /^egress\.sources\[4\]\.address: ff02::1 is a multicast address/,
      /^egress\.sources\[5\]\.address: 192\.0\.2\.1 is already the address of \[0\]/,
      /^egress\.sources\[5\]\.ehlo: must be a fully qualified host name/,
      /^egress\.sources\[6\]\.name: "b" is already the name of \[1\]/,
      /^egress\.sources\[6\]\.colour: unknown key/,
      /^egress\.sources\[7\]: must be a mapping/,
    );
    assert.ok(problems.every((p) => p.endsWith('(from override)')));
  });

  it('validates warm-up schedules', () => {
    const source = (warmup: unknown) => ({ egress: { sources: [{ name: 'default', warmup }] } });
    assertProblems(
      problemsOf(source({ start: '2026-02-30', daily: [1], overflow: 'spill' })),
      /^egress\.sources\[0\]\.warmup\.start: 2026-02-30 is not a calendar date/,
    );
    assertProblems(
      problemsOf(source({ start: 'tomorrow', daily: [], overflow: 'later' })),
      /^egress\.sources\[0\]\.warmup\.start: must be a date YYYY-MM-DD/,
      /^egress\.sources\[0\]\.warmup\.daily: must be a non-empty list/,
      /^egress\.sources\[0\]\.warmup\.overflow: must be spill or wait, got "later"/,
    );
    assertProblems(
      problemsOf(source({ start: '2026-12-01', daily: [10, -1, 2.5, '7'] })),
      /^egress\.sources\[0\]\.warmup\.daily\[1\]: must be a whole number from 0/,
      /^egress\.sources\[0\]\.warmup\.daily\[2\]: must be a whole number/,
      /^egress\.sources\[0\]\.warmup\.daily\[3\]: must be a whole number/,
      /^egress\.sources\[0\]\.warmup\.overflow: required/,
    );
    assertProblems(
      problemsOf(source({ start: '2026-12-01', daily: [10, 20], hourly: [5, 30, 40], overflow: 'wait' })),
      /^egress\.sources\[0\]\.warmup\.hourly: 3 days, longer than daily \(2\)/,
      /^egress\.sources\[0\]\.warmup\.hourly\[1\]: 30 per hour is more than day 2's daily cap \(20\)/,
    );
    assertProblems(
      problemsOf(source({ start: '2026-12-01', daily: new Array(400).fill(10), overflow: 'wait' })),
      /^egress\.sources\[0\]\.warmup\.daily: at most 366 days, got 400/,
    );
  });

  it('validates pools and their names', () => {
    const problems = problemsOf({
      egress: {
        sources: [{ name: 'a' }, { name: 'b', address: '127.0.0.2' }],
        pools: {
          default: ['a'],
          Bulk: ['a'],
          empty: [],
          zero: [{ source: 'a', weight: 0 }],
          twice: ['a', { source: 'a', weight: 2 }],
          heavy: [
            { source: 'b', weight: 1.5 },
            { source: 'b ', weight: 1 },
          ],
        },
      },
    });
    assertProblems(
      problems,
      /^egress\.pools\.Bulk: pool names are lower case/,
      /^egress\.pools\.empty: must be a non-empty list/,
      /^egress\.pools\.zero: every weight is 0/,
      /^egress\.pools\.twice\[1\]: a is already in the pool \(\.twice\[0\]\)/,
      /^egress\.pools\.heavy\[0\]\.weight: must be a whole number from 0 to 1000000, got 1\.5/,
      /^egress\.pools\.heavy\[1\]\.source: must be a source name, got "b "/,
    );
  });

  it('refuses pools naming unknown sources and unknown default or account pools', () => {
    const problems = problemsOf({
      egress: {
        sources: [{ name: 'a' }],
        pools: { default: ['a', 'ghost'] },
        broadcast_pool: 'bulk',
        account_pools: { acme: 'missing', 'Bad name!': 'default' },
      },
    });
    // account_pools' name problem is its own key's; the existence checks come once keys parse.
    assertProblems(problems, /^egress\.account_pools\.Bad name!: not an account name/);
    const cross = problemsOf({
      egress: {
        sources: [{ name: 'a' }],
        pools: { default: ['a', 'ghost'] },
        broadcast_pool: 'bulk',
        account_pools: { acme: 'missing' },
      },
    });
    assert.equal(cross.length, 1, 'cross-key problems come as one relation line');
    assertProblems(
      cross,
      /egress\.pools\.default\[1\]: no egress source named "ghost" \(egress\.sources: a\)/,
      /egress\.broadcast_pool: no pool named "bulk" \(egress\.pools: default\)/,
      /egress\.account_pools\.acme: no pool named "missing"/,
    );
  });

  it('explains the default pool when the sources are the operator’s own', () => {
    assertProblems(
      problemsOf({ egress: { sources: [{ name: 'ip-1', address: '127.0.0.2' }] } }),
      /^egress\.pools: the default pool lists source "default", which egress\.sources does not define; define egress\.pools for your sources \(e\.g\. default: \[ip-1\]\)/,
    );
  });

  it('answers a hostile list with a bounded number of lines', () => {
    const sources = Array.from({ length: 5000 }, (_, i) => ({ name: `s${i}`, address: 'nope' }));
    const problems = problemsOf({ egress: { sources } });
    assert.ok(problems.length <= 25, `${problems.length} lines`);
    assertProblems(problems, /^egress\.sources: … and 4980 more problems/);
    assertProblems(
      problemsOf({ egress: { sources: Array.from({ length: 10_001 }, (_, i) => ({ name: `s${i}` })) } }),
      /^egress\.sources: at most 10000 sources, got 10001/,
    );
  });

  it('accepts many valid sources and names built-in properties as ordinary names', () => {
    const sources = Array.from({ length: 2000 }, (_, i) => ({
      name: `ip-${i}`,
      address: `10.${Math.floor(i / 256)}.${i % 256}.1`,
    }));
    const { egress } = load({
      egress: { sources, pools: { default: sources.map((s) => s.name), constructor: ['ip-1'] } },
    });
    assert.equal(egress.pools.default?.length, 2000);
    assert.deepEqual(egress.pools.constructor, [{ source: 'ip-1', weight: 1 }]);
  });
});

describe('config: routes', () => {
  it('reads routes with defaults filled in', () => {
    const { routes } = load({
      routes: [
        {
          name: 'relay',
          match: {
            domains: ['Example.DE', '*.example.de', 'bücher.example'],
            streams: ['Outbound'],
            accounts: ['Acme'],
          },
          via: 'smarthost',
          smarthost: { host: 'Relay.Example.NET', user: 'postbote', password: 's3cret' },
          fallback: 'direct',
        },
        { name: 'direct', via: 'mx', failover_after: '5m', probe_every: 10 },
        { name: 'all', match: { domains: '*' }, via: 'mx' },
      ],
    });
    assert.deepEqual(routes[0], {
      name: 'relay',
      match: {
        domains: ['example.de', '*.example.de', 'xn--bcher-kva.example'],
        streams: ['outbound'],
        accounts: ['acme'],
      },
      via: 'smarthost',
      smarthost: {
        host: 'relay.example.net',
        port: 25,
        tls: 'starttls',
        user: 'postbote',
        password: 's3cret',
      },
      fallback: ['direct'],
      failoverAfter: 120_000,
      probeEvery: 30_000,
    });
    assert.deepEqual(routes[1], {
      name: 'direct',
      via: 'mx',
      fallback: [],
      failoverAfter: 300_000,
      probeEvery: 10_000,
    });
    assert.deepEqual(routes[2]?.match, { domains: ['*'] });
  });

  it('accepts IP literals as smarthost hosts', () => {
    const { routes } = load({
      routes: [
        {
          name: 'v4',
          match: { domains: ['a.test'] },
          via: 'smarthost',
          smarthost: { host: '127.0.0.1', port: 2526, tls: 'none' },
        },
        {
          name: 'v6',
          match: { domains: ['b.test'] },
          via: 'smarthost',
          smarthost: { host: '[2001:DB8::25]', tls: 'tls' },
        },
      ],
    });
    assert.equal(routes[0]?.smarthost?.host, '127.0.0.1');
    assert.equal(routes[1]?.smarthost?.host, '2001:db8::25');
  });

  it('names the route and key of each problem', () => {
    const problems = problemsOf({
      routes: [
        { name: 'a', match: { domains: ['ex*.com', '.example.com', 'com', '*.*.example.com'] }, via: 'mx' },
        { name: 'b', match: {}, via: 'relay' },
        { name: 'c', match: { domains: [] }, via: 'smarthost' },
        { name: 'd', match: { streams: ['Bad Stream'] }, via: 'mx', smarthost: relay },
        { name: 'e', match: { domains: ['e.test'] }, via: 'hold', fallback: ['a'] },
        {
          name: 'f',
          match: { domains: ['f.test'] },
          via: 'smarthost',
          smarthost: { ...relay, host: 'relay:25', port: 0, tls: 'ssl' },
        },
        { name: 'g', match: { domains: ['g.test'] }, via: 'mx', failover_after: 'soon', probe_every: '2h' },
        { match: { domains: ['h.test'] }, via: 'mx' },
      ],
    });
    assertProblems(
      problems,
      /^routes\[0\] \(route a\)\.match\.domains\[0\]: a wildcard is '\*' alone or a leading '\*\.'/,
      /^routes\[0\] \(route a\)\.match\.domains\[1\]: write \*\.example\.com for subdomains/,
      /^routes\[0\] \(route a\)\.match\.domains\[2\]: a domain has at least two labels/,
      /^routes\[0\] \(route a\)\.match\.domains\[3\]: a wildcard is/,
      /^routes\[1\] \(route b\)\.match: name at least one of domains, streams, accounts/,
      /^routes\[1\] \(route b\)\.via: must be mx, smarthost or hold, got "relay"/,
      /^routes\[2\] \(route c\)\.match\.domains: must be a non-empty list/,
      /^routes\[2\] \(route c\)\.smarthost: required with via: smarthost/,
      /^routes\[3\] \(route d\)\.match\.streams\[0\]: must be a stream name/,
      /^routes\[3\] \(route d\)\.smarthost: only for via: smarthost/,
      /^routes\[4\] \(route e\)\.fallback: a hold route never fails/,
      /^routes\[5\] \(route f\)\.smarthost\.host: must be a host name or IP address \(the port goes in port\)/,
      /^routes\[5\] \(route f\)\.smarthost\.port: must be a port number/,
      /^routes\[5\] \(route f\)\.smarthost\.tls: must be none, starttls or tls, got "ssl"/,
      /^routes\[6\] \(route g\)\.failover_after: must be a duration/,
      /^routes\[6\] \(route g\)\.probe_every: must be a duration from 1s to 1h/,
      /^routes\[7\]\.name: required/,
    );
  });

  it('refuses fallbacks that do not exist, point at themselves or form a cycle', () => {
    assertProblems(
      problemsOf({
        routes: [
          { name: 'a', match: { domains: ['a.test'] }, via: 'mx', fallback: ['a', 'ghost'] },
          { name: 'b', match: { domains: ['b.test'] }, via: 'mx', fallback: ['c', 'c'] },
        ],
      }),
      /^routes\[1\] \(route b\)\.fallback\[1\]: c is listed twice/,
    );
    assertProblems(
      problemsOf({
        routes: [{ name: 'a', match: { domains: ['a.test'] }, via: 'mx', fallback: ['a', 'ghost'] }],
      }),
      /^routes\[0\] \(route a\)\.fallback\[0\]: a route cannot fall back to itself/,
      /^routes\[0\] \(route a\)\.fallback\[1\]: no route named "ghost" \(routes: a\)/,
    );
    assertProblems(
      problemsOf({
        routes: [
          { name: 'a', match: { domains: ['a.test'] }, via: 'smarthost', smarthost: relay, fallback: ['b'] },
          { name: 'b', via: 'smarthost', smarthost: relay, fallback: ['c'] },
          { name: 'c', via: 'mx', fallback: ['a'] },
        ],
      }),
      /^routes\[0\] \(route a\)\.fallback: fallbacks form a cycle a → b → c → a/,
    );
  });

  it('refuses routes that can never be used', () => {
    const problems = problemsOf({
      routes: [
        { name: 'orphan', via: 'mx' },
        { name: 'all', match: { domains: ['*'] }, via: 'mx' },
        { name: 'late', match: { domains: ['late.test'] }, via: 'hold' },
        { name: 'dup', match: { domains: ['x.test'] }, via: 'mx' },
        { name: 'dup', match: { domains: ['y.test'] }, via: 'mx' },
      ],
    });
    assertProblems(problems, /^routes\[4\] \(route dup\)\.name: "dup" is already the name of \[3\]/);
    assertProblems(
      problemsOf({
        routes: [
          { name: 'orphan', via: 'mx' },
          { name: 'all', match: { domains: ['*'] }, via: 'mx' },
          { name: 'late', match: { domains: ['late.test'] }, via: 'hold' },
        ],
      }),
      /^routes\[0\] \(route orphan\)\.match: a route without match is only used as a fallback, and no route names it/,
      /^routes\[2\] \(route late\)\.match: never matched: \[1\] \(route all\) before it takes all mail/,
    );
  });

  it('never shows a smarthost password, wherever it is written', () => {
    const secret = 'hunter2-Very-Secret';
    const cases: unknown[] = [
      { host: 'relay.example.net', password: secret },
      { host: 'relay.example.net', user: 'u', password: secret, tls: 'none' },
      { host: 'relay.example.net', user: 'u', password: 1234567 },
      { host: 'relay.example.net', user: 'u', [`password ${secret}`]: null },
      { host: 'relay.example.net', user: secret },
      secret,
    ];
    for (const smarthost of cases) {
      const problems = problemsOf({
        routes: [{ name: 'r', match: { domains: ['a.test'] }, via: 'smarthost', smarthost }],
      });
      assert.ok(problems.length > 0);
      for (const p of problems) {
        assert.ok(!p.includes(secret) && !p.includes('1234567'), `leaks the secret: ${p}`);
      }
    }
    assertProblems(
      problemsOf({
        routes: [{ name: 'r', match: { domains: ['a.test'] }, via: 'smarthost', smarthost: cases[0] }],
      }),
      /^routes\[0\] \(route r\)\.smarthost\.password: given without user/,
    );
    assertProblems(
      problemsOf({
        routes: [{ name: 'r', match: { domains: ['a.test'] }, via: 'smarthost', smarthost: cases[1] }],
      }),
      /^routes\[0\] \(route r\)\.smarthost\.tls: none would send the AUTH password in clear to relay\.example\.net/,
    );
    assertProblems(
      problemsOf({
        routes: [
          {
            name: 'r',
            match: { domains: ['a.test'] },
            via: 'smarthost',
            smarthost: { host: 'relay.example.net', user: 'u' },
          },
        ],
      }),
      /^routes\[0\] \(route r\)\.smarthost\.user: given without password/,
    );
  });

  it('allows AUTH without TLS to a loopback smarthost only', () => {
    const { routes } = load({
      routes: [
        {
          name: 'local',
          match: { domains: ['*'] },
          via: 'smarthost',
          smarthost: { host: '127.0.0.1', port: 2526, tls: 'none', user: 'u', password: 'p' },
        },
      ],
    });
    assert.equal(routes[0]?.smarthost?.user, 'u');
  });

  it('bounds hostile route lists', () => {
    const domains = Array.from({ length: 100_001 }, (_, i) => `d${i}.test`);
    assertProblems(
      problemsOf({ routes: [{ name: 'big', match: { domains }, via: 'mx' }] }),
      /^routes\[0\] \(route big\)\.match\.domains: at most 100000 entries, got 100001/,
    );
    const routes = Array.from({ length: 300 }, () => ({ name: '', via: 'x' }));
    const problems = problemsOf({ routes });
    assert.ok(problems.length <= 21, `${problems.length} lines`);
    assertProblems(problems, /^routes: … and \d+ more problems/);
  });

  it('accepts a large valid routing table', () => {
    const routes = Array.from({ length: 2000 }, (_, i) => ({
      name: `r${i}`,
      match: { domains: [`d${i}.test`, `*.d${i}.test`] },
      via: 'mx',
      ...(i > 0 ? { fallback: [`r${i - 1}`] } : {}),
    }));
    assert.equal(load({ routes }).routes.length, 2000);
  });
});
