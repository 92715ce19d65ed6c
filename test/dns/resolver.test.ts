import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import type { ResolverOptions } from '../../src/dns/resolver.ts';
import { createResolver, DnsError } from '../../src/dns/resolver.ts';
import type { Zones } from '../support/dns-server.ts';
import { startDnsServer } from '../support/dns-server.ts';

const zones: Zones = {
  'example.test': {
    MX: [{ preference: 10, exchange: 'mx1.example.test' }],
    A: [{ value: '192.0.2.10', ttl: 30 }],
    AAAA: ['2001:db8::10'],
    TXT: ['v=spf1 -all'],
  },
  'mx1.example.test': { A: ['192.0.2.1'] },
  'alias.example.test': { CNAME: ['mx1.example.test'] },
  '1.2.0.192.in-addr.arpa': { PTR: ['mx1.example.test'] },
  '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa': { PTR: ['v6.example.test'] },
};

async function setup(t: TestContext, options: Partial<ResolverOptions> = {}) {
  const dns = await startDnsServer({ zones });
  t.after(() => dns.close());
  let now = 1_700_000_000_000;
  const clock = {
    advance: (seconds: number) => {
      now += seconds * 1000;
    },
  };
  const resolver = createResolver({
    servers: [dns.address],
    timeoutMs: 500,
    tries: 1,
    clock: () => now,
    ...options,
  });
  return { dns, resolver, clock };
}

async function rejectsWith(promise: Promise<unknown>, expected: Partial<DnsError>): Promise<DnsError> {
  const error = await promise.then(
    () => assert.fail('expected the lookup to fail'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof DnsError, `expected a DnsError, got ${String(error)}`);
  for (const [key, value] of Object.entries(expected)) {
    assert.equal(error[key as keyof DnsError], value, `DnsError.${key}`);
  }
  return error;
}

test('answers A, AAAA, MX, TXT, PTR and follows CNAMEs', async (t) => {
  const { resolver } = await setup(t);
  assert.deepEqual(await resolver.a('example.test'), ['192.0.2.10']);
  assert.deepEqual(await resolver.aaaa('example.test'), ['2001:db8::10']);
  const mx = await resolver.mx('example.test');
  assert.deepEqual(
    mx.map((r) => [r.priority, r.exchange]),
    [[10, 'mx1.example.test']],
  );
  assert.deepEqual(await resolver.txt('example.test'), [['v=spf1 -all']]);
  assert.deepEqual(await resolver.ptr('192.0.2.1'), ['mx1.example.test']);
  assert.deepEqual(await resolver.ptr('2001:db8::1'), ['v6.example.test']);
  assert.deepEqual(await resolver.a('alias.example.test'), ['192.0.2.1']);
});

test('generic resolve(name, rrtype) behaves like dns.promises.resolve, for mailauth', async (t) => {
  const { resolver } = await setup(t);
  assert.deepEqual(await resolver.resolve('example.test', 'TXT'), [['v=spf1 -all']]);
  assert.deepEqual(await resolver.resolve('EXAMPLE.test.', 'A'), ['192.0.2.10']);
  const mx = await resolver.resolve('example.test', 'MX');
  assert.equal(mx[0]?.exchange, 'mx1.example.test');
  assert.equal(mx[0]?.priority, 10);
  const missing = await rejectsWith(resolver.resolve('nowhere.test', 'TXT'), { code: 'ENOTFOUND' });
  assert.equal(missing.kind, 'nxdomain');
  await rejectsWith(resolver.resolve('mx1.example.test', 'TXT'), { code: 'ENODATA', kind: 'nodata' });
  await assert.rejects(resolver.resolve('example.test', 'SOAP'), TypeError);
});

test('long TXT answers are fetched over TCP after a truncated UDP answer', async (t) => {
  const { dns, resolver } = await setup(t);
  const key = `v=DKIM1; k=rsa; p=${'A'.repeat(1800)}`;
  dns.set('sel._domainkey.example.test', { TXT: [key] });
  const [record] = await resolver.txt('sel._domainkey.example.test');
  assert.equal(record?.join(''), key);
  assert.deepEqual(
    dns.queries.filter((q) => q.name === 'sel._domainkey.example.test').map((q) => q.transport),
    ['udp', 'tcp'],
  );
});

test('an A answer is cached for its TTL, then asked again', async (t) => {
  const { dns, resolver, clock } = await setup(t);
  await resolver.a('example.test');
  clock.advance(29);
  assert.deepEqual(await resolver.a('example.test'), ['192.0.2.10']);
  assert.equal(dns.count('example.test', 'A'), 1, 'second lookup within the TTL is served from the cache');
  dns.set('example.test', { A: ['192.0.2.11'] });
  clock.advance(2);
  assert.deepEqual(await resolver.a('example.test'), ['192.0.2.11']);
  assert.equal(dns.count('example.test', 'A'), 2);
});

test('MX answers carry no TTL from node, so they are cached for defaultTtlSeconds', async (t) => {
  const { dns, resolver, clock } = await setup(t, { defaultTtlSeconds: 120 });
  await resolver.mx('example.test');
  clock.advance(119);
  await resolver.mx('example.test');
  assert.equal(dns.count('example.test', 'MX'), 1);
  clock.advance(2);
  await resolver.mx('example.test');
  assert.equal(dns.count('example.test', 'MX'), 2);
});

test('TTLs are capped at maxTtlSeconds', async (t) => {
  const { dns, resolver, clock } = await setup(t, { maxTtlSeconds: 10 });
  dns.set('long.example.test', { A: [{ value: '192.0.2.20', ttl: 604800 }] });
  await resolver.a('long.example.test');
  clock.advance(11);
  await resolver.a('long.example.test');
  assert.equal(dns.count('long.example.test', 'A'), 2);
});

test('a cached answer cannot be altered by the caller', async (t) => {
  const { resolver } = await setup(t);
  const first = await resolver.mx('example.test');
  first.pop();
  assert.equal((await resolver.mx('example.test')).length, 1);
});

test('NXDOMAIN and NODATA are cached for negativeTtlSeconds', async (t) => {
  const { dns, resolver, clock } = await setup(t, { negativeTtlSeconds: 60 });
  await rejectsWith(resolver.mx('nowhere.test'), {
    kind: 'nxdomain',
    hostname: 'nowhere.test',
    rrtype: 'MX',
  });
  await rejectsWith(resolver.mx('mx1.example.test'), {
    kind: 'nodata',
    hostname: 'mx1.example.test',
    rrtype: 'MX',
  });
  dns.set('nowhere.test', { MX: [{ preference: 5, exchange: 'mx1.example.test' }] });
  clock.advance(59);
  await rejectsWith(resolver.mx('nowhere.test'), { kind: 'nxdomain' });
  await rejectsWith(resolver.mx('mx1.example.test'), { kind: 'nodata' });
  assert.equal(dns.count('nowhere.test', 'MX'), 1);
  assert.equal(dns.count('mx1.example.test', 'MX'), 1);
  clock.advance(2);
  assert.equal((await resolver.mx('nowhere.test'))[0]?.exchange, 'mx1.example.test');
});

test('SERVFAIL is a temporary error and is never cached', async (t) => {
  const { dns, resolver } = await setup(t);
  dns.fail('example.test', 'SERVFAIL', 'MX');
  const error = await rejectsWith(resolver.mx('example.test'), { kind: 'temporary', code: 'ESERVFAIL' });
  assert.match(error.message, /example\.test/);
  assert.equal((error.cause as { code?: string }).code, 'ESERVFAIL');
  dns.clearFailure('example.test', 'MX');
  assert.equal((await resolver.mx('example.test')).length, 1);
  assert.equal(dns.count('example.test', 'MX'), 2);
});

test('REFUSED and timeouts are temporary errors', async (t) => {
  const { dns, resolver } = await setup(t, { timeoutMs: 100, tries: 1 });
  dns.fail('refused.test', 'REFUSED');
  await rejectsWith(resolver.a('refused.test'), { kind: 'temporary', code: 'EREFUSED' });
  dns.fail('slow.test', 'TIMEOUT');
  const started = Date.now();
  await rejectsWith(resolver.a('slow.test'), { kind: 'temporary', code: 'ETIMEOUT' });
  assert.ok(Date.now() - started < 2000, 'the timeout option bounds the wait');
});

test('concurrent lookups of the same name share one query', async (t) => {
  const { dns, resolver } = await setup(t);
  const answers = await Promise.all([resolver.a('mx1.example.test'), resolver.a('mx1.example.test')]);
  assert.deepEqual(answers, [['192.0.2.1'], ['192.0.2.1']]);
  assert.equal(dns.count('mx1.example.test', 'A'), 1);
});

test('the cache holds at most maxCacheEntries answers, dropping the least recently used', async (t) => {
  const { dns, resolver } = await setup(t, { maxCacheEntries: 2 });
  await resolver.a('example.test');
  await resolver.a('mx1.example.test');
  await resolver.a('example.test'); // hit: now the most recently used
  await resolver.aaaa('example.test'); // evicts mx1's A
  await resolver.a('example.test');
  await resolver.a('mx1.example.test');
  assert.equal(dns.count('example.test', 'A'), 1);
  assert.equal(dns.count('mx1.example.test', 'A'), 2);
});

test('with no servers the system resolver configuration is used', () => {
  const resolver = createResolver({ servers: [] });
  assert.equal(typeof resolver.mx, 'function');
});

test('an invalid server entry is refused at construction', () => {
  assert.throws(() => createResolver({ servers: ['not a server'] }), TypeError);
});

test('ptr() refuses something that is not an IP address', async (t) => {
  const { resolver } = await setup(t);
  await assert.rejects(resolver.ptr('example.test'), TypeError);
});
