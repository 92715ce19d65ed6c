import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { MxError, resolveMxTargets } from '../../src/dns/mx.ts';
import { createResolver } from '../../src/dns/resolver.ts';
import type { Zones } from '../support/dns-server.ts';
import { startDnsServer } from '../support/dns-server.ts';

async function setup(t: TestContext, zones: Zones) {
  const dns = await startDnsServer({ zones });
  t.after(() => dns.close());
  const resolver = createResolver({ servers: [dns.address], timeoutMs: 100, tries: 1 });
  return { dns, resolver };
}

async function mxError(promise: Promise<unknown>): Promise<MxError> {
  const error = await promise.then(
    () => assert.fail('expected MX resolution to fail'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof MxError, `expected an MxError, got ${String(error)}`);
  return error;
}

const names = (result: { hosts: Array<{ name: string }> }) => result.hosts.map((h) => h.name);

test('MX hosts come in order of preference, each with its IPv4 then IPv6 addresses', async (t) => {
  const { resolver } = await setup(t, {
    'example.test': {
      MX: [
        { preference: 30, exchange: 'mx3.example.test' },
        { preference: 10, exchange: 'mx1.example.test' },
        { preference: 20, exchange: 'mx2.example.test.' },
      ],
    },
    'mx1.example.test': { A: ['192.0.2.1'], AAAA: ['2001:db8::1'] },
    'mx2.example.test': { AAAA: ['2001:db8::2'] },
    'mx3.example.test': { A: ['192.0.2.3', '192.0.2.33'] },
  });
  const result = await resolveMxTargets(resolver, 'example.test');
  assert.equal(result.implicit, false);
  assert.deepEqual(result.hosts, [
    { name: 'mx1.example.test', preference: 10, addresses: ['192.0.2.1', '2001:db8::1'] },
    { name: 'mx2.example.test', preference: 20, addresses: ['2001:db8::2'] },
    { name: 'mx3.example.test', preference: 30, addresses: ['192.0.2.3', '192.0.2.33'] },
  ]);
});

test('hosts of equal preference are shuffled with the injected random source', async (t) => {
  const { resolver } = await setup(t, {
    'example.test': {
      MX: [
        { preference: 20, exchange: 'backup.example.test' },
        { preference: 10, exchange: 'a.example.test' },
        { preference: 10, exchange: 'b.example.test' },
      ],
    },
    'a.example.test': { A: ['192.0.2.1'] },
    'b.example.test': { A: ['192.0.2.2'] },
    'backup.example.test': { A: ['192.0.2.9'] },
  });
  const low = await resolveMxTargets(resolver, 'example.test', { random: () => 0 });
  const high = await resolveMxTargets(resolver, 'example.test', { random: () => 0.999 });
  assert.deepEqual(names(low), ['b.example.test', 'a.example.test', 'backup.example.test']);
  assert.deepEqual(names(high), ['a.example.test', 'b.example.test', 'backup.example.test']);
  assert.deepEqual(names(await resolveMxTargets(resolver, 'example.test', { random: () => 0 })), names(low));
});

test('a domain without MX records is its own mail host (implicit MX)', async (t) => {
  const { resolver } = await setup(t, { 'example.test': { A: ['192.0.2.7'], TXT: ['hello'] } });
  const result = await resolveMxTargets(resolver, 'example.test');
  assert.equal(result.implicit, true);
  assert.deepEqual(result.hosts, [{ name: 'example.test', preference: 0, addresses: ['192.0.2.7'] }]);
});

test('no MX and no address is a permanent failure', async (t) => {
  const { resolver } = await setup(t, { 'example.test': { TXT: ['hello'] } });
  const error = await mxError(resolveMxTargets(resolver, 'example.test'));
  assert.equal(error.permanent, true);
  assert.equal(error.enhancedCode, '5.4.4');
  assert.match(error.reason, /no MX record and no A\/AAAA address/);
});

for (const exchange of ['.', '']) {
  test(`a null MX (exchange ${JSON.stringify(exchange)}) is a permanent failure, RFC 7505`, async (t) => {
    const { dns, resolver } = await setup(t, {
      'example.test': { MX: [{ preference: 0, exchange }], A: ['192.0.2.7'] },
    });
    const error = await mxError(resolveMxTargets(resolver, 'example.test'));
    assert.equal(error.permanent, true);
    assert.equal(error.enhancedCode, '5.1.10');
    assert.equal(error.reason, 'example.test publishes a null MX (RFC 7505): it accepts no mail');
    assert.equal(dns.count('example.test', 'A'), 0, 'no fallback to the address of the domain');
  });
}

test('a null MX mixed with real MX records is ignored', async (t) => {
  const { resolver } = await setup(t, {
    'example.test': {
      MX: [
        { preference: 0, exchange: '.' },
        { preference: 10, exchange: 'mx.example.test' },
      ],
    },
    'mx.example.test': { A: ['192.0.2.1'] },
  });
  assert.deepEqual(names(await resolveMxTargets(resolver, 'example.test')), ['mx.example.test']);
});

test('a domain that does not exist is a permanent failure', async (t) => {
  const { resolver } = await setup(t, {});
  const error = await mxError(resolveMxTargets(resolver, 'nowhere.test'));
  assert.equal(error.permanent, true);
  assert.equal(error.enhancedCode, '5.1.2');
  assert.match(error.reason, /nowhere\.test does not exist/);
});

test('SERVFAIL on the MX lookup is a temporary failure and is asked again next time', async (t) => {
  const { dns, resolver } = await setup(t, {
    'example.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }] },
    'mx.example.test': { A: ['192.0.2.1'] },
  });
  dns.fail('example.test', 'SERVFAIL');
  const error = await mxError(resolveMxTargets(resolver, 'example.test'));
  assert.equal(error.permanent, false);
  assert.equal(error.enhancedCode, '4.4.3');
  dns.clearFailure('example.test');
  assert.deepEqual(names(await resolveMxTargets(resolver, 'example.test')), ['mx.example.test']);
  assert.equal(dns.count('example.test', 'MX'), 2);
});

test('an MX host that does not resolve is skipped', async (t) => {
  const { resolver } = await setup(t, {
    'example.test': {
      MX: [
        { preference: 10, exchange: 'gone.example.test' },
        { preference: 20, exchange: 'mx2.example.test' },
      ],
    },
    'mx2.example.test': { A: ['192.0.2.2'] },
  });
  const result = await resolveMxTargets(resolver, 'example.test');
  assert.deepEqual(names(result), ['mx2.example.test']);
  assert.deepEqual(
    result.skipped.map((s) => s.name),
    ['gone.example.test'],
  );
});

test('when no MX host resolves: permanent if every lookup was definite', async (t) => {
  const { resolver } = await setup(t, {
    'example.test': { MX: [{ preference: 10, exchange: 'gone.example.test' }] },
  });
  const error = await mxError(resolveMxTargets(resolver, 'example.test'));
  assert.equal(error.permanent, true);
  assert.equal(error.enhancedCode, '5.4.4');
  assert.match(error.reason, /gone\.example\.test/);
});

test('when no MX host resolves: temporary if any lookup failed temporarily', async (t) => {
  const { dns, resolver } = await setup(t, {
    'example.test': {
      MX: [
        { preference: 10, exchange: 'gone.example.test' },
        { preference: 20, exchange: 'flaky.example.test' },
      ],
    },
    'flaky.example.test': { A: ['192.0.2.2'] },
  });
  dns.fail('flaky.example.test', 'SERVFAIL');
  const error = await mxError(resolveMxTargets(resolver, 'example.test'));
  assert.equal(error.permanent, false);
  assert.equal(error.enhancedCode, '4.4.3');
});

test('domain literals are used as is, without DNS', async (t) => {
  const { dns, resolver } = await setup(t, {});
  assert.deepEqual((await resolveMxTargets(resolver, '[192.0.2.5]')).hosts, [
    { name: '[192.0.2.5]', preference: 0, addresses: ['192.0.2.5'] },
  ]);
  assert.deepEqual((await resolveMxTargets(resolver, '[IPv6:2001:DB8::5]')).hosts[0]?.addresses, [
    '2001:db8::5',
  ]);
  assert.equal(dns.queries.length, 0);
  const error = await mxError(resolveMxTargets(resolver, '[192.0.2.999]'));
  assert.equal(error.permanent, true);
  assert.equal(error.enhancedCode, '5.1.3');
});

test('a trailing dot and upper case are normalised', async (t) => {
  const { resolver } = await setup(t, {
    'example.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }] },
    'mx.example.test': { A: ['192.0.2.1'] },
  });
  const result = await resolveMxTargets(resolver, 'Example.TEST.');
  assert.equal(result.domain, 'example.test');
  assert.deepEqual(names(result), ['mx.example.test']);
});

test('an internationalised domain is looked up as punycode', async (t) => {
  const { dns, resolver } = await setup(t, {
    'xn--bcher-kva.test': { MX: [{ preference: 10, exchange: 'mx.xn--bcher-kva.test' }] },
    'mx.xn--bcher-kva.test': { A: ['192.0.2.1'] },
  });
  const result = await resolveMxTargets(resolver, 'bücher.test');
  assert.equal(result.domain, 'xn--bcher-kva.test');
  assert.deepEqual(names(result), ['mx.xn--bcher-kva.test']);
  assert.equal(dns.count('xn--bcher-kva.test', 'MX'), 1);
});

test('an MX that names an IP address is tolerated and used as the address', async (t) => {
  const { dns, resolver } = await setup(t, {
    'example.test': { MX: [{ preference: 10, exchange: '192.0.2.8' }] },
  });
  const result = await resolveMxTargets(resolver, 'example.test');
  assert.deepEqual(result.hosts, [{ name: '192.0.2.8', preference: 10, addresses: ['192.0.2.8'] }]);
  assert.equal(dns.count('192.0.2.8'), 0);
});

for (const domain of ['', 'exa mple.test', 'ex%41mple.test', '0x7f.1', 'a..test', `${'a'.repeat(64)}.test`]) {
  test(`an invalid domain ${JSON.stringify(domain)} fails permanently without DNS`, async (t) => {
    const { dns, resolver } = await setup(t, {});
    const error = await mxError(resolveMxTargets(resolver, domain));
    assert.equal(error.permanent, true);
    assert.equal(error.enhancedCode, '5.1.3');
    assert.equal(dns.queries.length, 0);
  });
}
