import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { checkDomain } from '../../src/domains/checks/index.ts';
import { createCheckResolver } from '../../src/domains/checks/resolver.ts';
import type { CheckResult, DomainSetup, RecordKind, Resolve } from '../../src/domains/checks/types.ts';
import type { Zones } from '../support/dns-server.ts';
import { startDnsServer } from '../support/dns-server.ts';

const spki = (bits: number): string =>
  generateKeyPairSync('rsa', { modulusLength: bits })
    .publicKey.export({ format: 'der', type: 'spki' })
    .toString('base64');
const RSA_KEY = spki(2048);
const OTHER_RSA_KEY = spki(2048);
const WEAK_RSA_KEY = spki(1024);
// RFC 8463 §4.2: an Ed25519 p= is the bare 32-byte key, the tail of its SubjectPublicKeyInfo.
const ED_KEY = generateKeyPairSync('ed25519')
  .publicKey.export({ format: 'der', type: 'spki' })
  .subarray(-32)
  .toString('base64');

const V6_PTR = `${'0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2'}.ip6.arpa`;

const SETUP: DomainSetup = {
  domain: 'example.com',
  dkim: [
    { selector: 'pb1', algorithm: 'rsa', publicKey: RSA_KEY },
    { selector: 'pb2', algorithm: 'ed25519', publicKey: ED_KEY },
  ],
  returnPath: 'bounces.example.com',
  mxHost: 'mx.postbote.example',
  trackingHost: 'track.example.com',
  trackingTarget: 'track.postbote.example',
  egress: [
    { name: 'ip-1', ip: '192.0.2.10', ehlo: 'out1.postbote.example' },
    { name: 'ip-2', ip: '2001:db8::10', ehlo: 'out2.postbote.example' },
  ],
};

/** A domain whose setup is complete and right. */
function goodZones(): Zones {
  return {
    'example.com': { A: ['198.51.100.1'], TXT: ['v=spf1 mx -all', 'google-site-verification=abc'] },
    '_dmarc.example.com': { TXT: ['v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com'] },
    'pb1._domainkey.example.com': { TXT: [`v=DKIM1; k=rsa; p=${RSA_KEY}`] },
    'pb2._domainkey.example.com': { TXT: [`v=DKIM1; k=ed25519; p=${ED_KEY}`] },
    'bounces.example.com': {
      MX: [{ preference: 10, exchange: 'mx.postbote.example' }],
      TXT: ['v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ~all'],
    },
    'track.example.com': { CNAME: ['track.postbote.example'] },
    'track.postbote.example': { A: ['192.0.2.80'] },
    'mx.postbote.example': { A: ['192.0.2.25'], TXT: ['v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/64 -all'] },
    'out1.postbote.example': { A: ['192.0.2.10'] },
    'out2.postbote.example': { AAAA: ['2001:db8::10'] },
    '10.2.0.192.in-addr.arpa': { PTR: ['out1.postbote.example'] },
    [V6_PTR]: { PTR: ['out2.postbote.example'] },
  };
}

async function setup(t: TestContext, change: (zones: Zones) => void = () => {}) {
  const zones = goodZones();
  change(zones);
  const dns = await startDnsServer({ zones });
  t.after(() => dns.close());
  // Short timeouts: the failure tests wait for them.
  const resolve = createCheckResolver({ servers: [dns.address], timeoutMs: 250, tries: 1 });
  const run = (overrides: Partial<DomainSetup> = {}) => checkDomain({ ...SETUP, ...overrides }, resolve);
  return { dns, resolve, run };
}

function only(results: CheckResult[], record: RecordKind, name?: string): CheckResult {
  const found = results.filter((r) => r.record === record && (name === undefined || r.name === name));
  assert.equal(
    found.length,
    1,
    `one ${record} result${name ? ` for ${name}` : ''}: ${JSON.stringify(results)}`,
  );
  return found[0]!;
}

// --- the whole setup -------------------------------------------------------------------------

test('a complete setup: every record is ok, one result per record', async (t) => {
  const { run } = await setup(t);
  const results = await run();
  assert.deepEqual(
    results.map((r) => [r.record, r.name, r.status]),
    [
      ['spf', 'bounces.example.com', 'ok'],
      ['dkim', 'pb1._domainkey.example.com', 'ok'],
      ['dkim', 'pb2._domainkey.example.com', 'ok'],
      ['dmarc', '_dmarc.example.com', 'ok'],
      ['return_path', 'bounces.example.com', 'ok'],
      ['tracking', 'track.example.com', 'ok'],
      ['ptr', '10.2.0.192.in-addr.arpa', 'ok'],
      ['ptr', V6_PTR, 'ok'],
    ],
  );
  for (const r of results) {
    assert.equal(r.fix, undefined, `${r.record}: nothing to fix`);
    assert.ok(r.explanation.length > 20, `${r.record} explains itself`);
  }
});

test('one run asks each DNS question once, however many checks need it', async (t) => {
  const { dns, run } = await setup(t);
  await run();
  assert.equal(dns.count('bounces.example.com', 'TXT'), 1);
  assert.equal(dns.count('_dmarc.example.com', 'TXT'), 1);
});

test('a resolver that throws or rejects with junk yields "error" results, never a rejection', async () => {
  const throwing: Resolve = () => {
    throw new Error('boom');
  };
  const junk: Resolve = () => Promise.reject('not an error object');
  for (const resolve of [throwing, junk]) {
    const results = await checkDomain(SETUP, resolve);
    assert.equal(results.length, 8);
    for (const r of results) assert.equal(r.status, 'error', `${r.record} ${r.name}: ${r.explanation}`);
    assert.deepEqual(
      results.map((r) => r.name),
      [
        'bounces.example.com',
        'pb1._domainkey.example.com',
        'pb2._domainkey.example.com',
        '_dmarc.example.com',
        'bounces.example.com',
        'track.example.com',
        '10.2.0.192.in-addr.arpa',
        V6_PTR,
      ],
      'results keep their usual names',
    );
  }
});

// --- SPF -------------------------------------------------------------------------------------

test('SPF missing: the record to publish lists every egress address', async (t) => {
  const { run } = await setup(t, (z) => {
    z['bounces.example.com']!.TXT = ['some-other=verification'];
  });
  const spf = only(await run(), 'spf');
  assert.equal(spf.status, 'missing');
  assert.equal(spf.fix, 'v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ~all');
  assert.match(spf.explanation, /bounces\.example\.com has no SPF record/);
  assert.match(spf.explanation, /192\.0\.2\.10 and 2001:db8::10/);
});

test('SPF wrong: an egress address the policy does not allow, and the amended record', async (t) => {
  const { run } = await setup(t, (z) => {
    z['bounces.example.com']!.TXT = ['v=spf1 ip4:192.0.2.10 include:_spf.example.net -all'];
    z['_spf.example.net'] = { TXT: ['v=spf1 ip4:203.0.113.0/24 -all'] };
  });
  const spf = only(await run(), 'spf');
  assert.equal(spf.status, 'wrong');
  assert.match(
    spf.explanation,
    /Receivers cannot tell that 2001:db8::10 may send for bounces\.example\.com: add ip6:2001:db8::10 to the TXT record of bounces\.example\.com/,
  );
  assert.equal(spf.fix, 'v=spf1 ip6:2001:db8::10 ip4:192.0.2.10 include:_spf.example.net -all');
  assert.deepEqual(spf.details?.['results'], { '192.0.2.10': 'pass', '2001:db8::10': 'fail' });
});

test('SPF wrong: two SPF records are a permerror; the fix merges them', async (t) => {
  const { run } = await setup(t, (z) => {
    z['bounces.example.com']!.TXT = ['v=spf1 ip4:192.0.2.10 ~all', 'v=spf1 include:_spf.example.net -all'];
  });
  const spf = only(await run(), 'spf');
  assert.equal(spf.status, 'wrong');
  assert.match(spf.explanation, /has 2 SPF records/);
  assert.equal(spf.fix, 'v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 include:_spf.example.net ~all');
});

test('SPF warnings: +all lets anyone send, ptr is deprecated', async (t) => {
  const { run } = await setup(t, (z) => {
    z['bounces.example.com']!.TXT = ['v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ptr +all'];
  });
  const spf = only(await run(), 'spf');
  assert.equal(spf.status, 'warning');
  assert.match(spf.explanation, /"\+all" \(or a bare "all"\), which lets anyone on the internet send mail/);
  assert.match(spf.explanation, /"ptr" mechanism/);
  assert.equal(spf.fix, 'v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ~all');
});

test('SPF through an alias: the return path CNAMEs to the MX host, whose record is checked', async (t) => {
  const { run } = await setup(t, (z) => {
    z['bounces.example.com'] = { CNAME: ['mx.postbote.example'] };
  });
  const results = await run();
  assert.equal(only(results, 'spf').status, 'ok');
  assert.equal(only(results, 'return_path').status, 'ok');
});

test('SPF missing behind an alias: the fix names the alias target', async (t) => {
  const { run } = await setup(t, (z) => {
    z['bounces.example.com'] = { CNAME: ['mx.postbote.example'] };
    delete z['mx.postbote.example']!.TXT;
  });
  const spf = only(await run(), 'spf');
  assert.equal(spf.status, 'missing');
  assert.match(spf.explanation, /at mx\.postbote\.example \(bounces\.example\.com is an alias of it\)/);
  assert.deepEqual(spf.details?.['publish'], {
    name: 'mx.postbote.example',
    type: 'TXT',
    value: 'v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ~all',
  });
});

test('SPF wrong: a policy needing more than 10 lookups', async (t) => {
  const { run } = await setup(t, (z) => {
    const includes = Array.from({ length: 11 }, (_, i) => `include:s${i}.example.net`);
    z['bounces.example.com']!.TXT = [`v=spf1 ${includes.join(' ')} ip4:192.0.2.10 ip6:2001:db8::10 ~all`];
    for (let i = 0; i < 11; i++) z[`s${i}.example.net`] = { TXT: [`v=spf1 ip4:203.0.113.${i} -all`] };
  });
  const spf = only(await run(), 'spf');
  assert.equal(spf.status, 'wrong');
  assert.match(spf.explanation, /needs more than 10 DNS lookups/);
  assert.equal(spf.details?.['lookups'], 11);
  // Evaluated as receivers do: the limit is hit before our addresses are reached.
  assert.deepEqual(spf.details?.['results'], { '192.0.2.10': 'permerror', '2001:db8::10': 'permerror' });
});

test('SPF at the limit: 10 lookups is allowed', async (t) => {
  const { run } = await setup(t, (z) => {
    const includes = Array.from({ length: 10 }, (_, i) => `include:s${i}.example.net`);
    z['bounces.example.com']!.TXT = [`v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ${includes.join(' ')} ~all`];
    for (let i = 0; i < 10; i++) z[`s${i}.example.net`] = { TXT: [`v=spf1 ip4:203.0.113.${i} -all`] };
  });
  const spf = only(await run(), 'spf');
  assert.equal(spf.status, 'ok', spf.explanation);
  assert.match(spf.explanation, /needs 10 of the 10 DNS lookups/);
  assert.equal(spf.details?.['lookups'], 10);
});

test('SPF wrong: more than 2 void lookups', async (t) => {
  const { run } = await setup(t, (z) => {
    z['bounces.example.com']!.TXT = [
      'v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 a:gone1.example.com mx:gone2.example.com a:gone3.example.com ~all',
    ];
  });
  const spf = only(await run(), 'spf');
  assert.equal(spf.status, 'wrong');
  assert.match(spf.explanation, /3 names in the SPF policy of bounces\.example\.com do not exist/);
  assert.equal(spf.details?.['voidLookups'], 3);
});

test('SPF hostile: an include loop terminates and is reported', async (t) => {
  const { dns, run } = await setup(t, (z) => {
    z['bounces.example.com']!.TXT = ['v=spf1 include:loop1.example.net ip4:192.0.2.10 ip6:2001:db8::10 ~all'];
    z['loop1.example.net'] = { TXT: ['v=spf1 include:loop2.example.net -all'] };
    z['loop2.example.net'] = { TXT: ['v=spf1 include:loop1.example.net -all'] };
  });
  const spf = only(await run(), 'spf');
  assert.equal(spf.status, 'wrong');
  assert.match(
    spf.explanation,
    /loop \(bounces\.example\.com → loop1\.example\.net → loop2\.example\.net → loop1\.example\.net\)/,
  );
  assert.ok(dns.count('loop1.example.net', 'TXT') <= 1, 'each name asked once per run');
});

test('SPF hostile: 30 nested includes stop at the lookup limit', async (t) => {
  const { dns, run } = await setup(t, (z) => {
    z['bounces.example.com']!.TXT = ['v=spf1 include:n1.example.net ip4:192.0.2.10 ip6:2001:db8::10 ~all'];
    for (let i = 1; i <= 30; i++)
      z[`n${i}.example.net`] = { TXT: [`v=spf1 include:n${i + 1}.example.net -all`] };
  });
  const spf = only(await run(), 'spf');
  assert.equal(spf.status, 'wrong');
  assert.match(spf.explanation, /more than 10 DNS lookups/);
  const asked = new Set(dns.queries.filter((q) => q.name.endsWith('.example.net')).map((q) => q.name));
  assert.ok(asked.size <= 11, `stopped after the limit, asked ${asked.size} names`);
});

test('SPF hostile: a 30 KB record is evaluated, and flagged as too large', async (t) => {
  const filler = Array.from({ length: 1800 }, (_, i) => `ip4:10.${i >> 8}.${i & 255}.1`).join(' ');
  const { run } = await setup(t, (z) => {
    z['bounces.example.com']!.TXT = [`v=spf1 ${filler} ip4:192.0.2.10 ip6:2001:db8::10 ~all`];
  });
  const spf = only(await run(), 'spf');
  assert.equal(spf.status, 'warning');
  assert.match(spf.explanation, /add up to \d{5} bytes/);
  assert.deepEqual(spf.details?.['results'], { '192.0.2.10': 'pass', '2001:db8::10': 'pass' });
});

test('SPF error: a timeout or SERVFAIL is "could not check", not a verdict', async (t) => {
  const { dns, run } = await setup(t);
  dns.fail('bounces.example.com', 'TIMEOUT', 'TXT');
  let spf = only(await run(), 'spf');
  assert.equal(spf.status, 'error');
  assert.match(spf.explanation, /^Could not check bounces\.example\.com/);
  assert.equal(spf.fix, undefined);

  dns.clearFailure('bounces.example.com', 'TXT');
  dns.set('bounces.example.com', {
    MX: [{ preference: 10, exchange: 'mx.postbote.example' }],
    TXT: ['v=spf1 include:flaky.example.net ip4:192.0.2.10 ip6:2001:db8::10 ~all'],
  });
  dns.fail('flaky.example.net', 'SERVFAIL');
  spf = only(await run(), 'spf');
  assert.equal(spf.status, 'error');
  assert.match(spf.explanation, /Could not check whether 192\.0\.2\.10 and 2001:db8::10 may send/);
});

test('SPF hostile: a policy whose every include times out is cut off at the time limit', async (t) => {
  const { dns, resolve } = await setup(t, (z) => {
    const includes = [1, 2, 3, 4, 5, 6].map((i) => `include:slow${i}.example.net`);
    z['bounces.example.com']!.TXT = [`v=spf1 ${includes.join(' ')} ip4:192.0.2.10 ip6:2001:db8::10 ~all`];
  });
  for (let i = 1; i <= 6; i++) dns.fail(`slow${i}.example.net`, 'TIMEOUT');
  const results = await checkDomain(SETUP, resolve, { spfTimeLimitMs: 400 });
  const spf = only(results, 'spf');
  assert.equal(spf.status, 'error');
  assert.match(spf.explanation, /took too long/);
  const asked = new Set(dns.queries.filter((q) => q.name.startsWith('slow')).map((q) => q.name));
  assert.ok(asked.size < 6, `the walk stopped early, asked ${[...asked].join(', ')}`);
});

// --- DKIM ------------------------------------------------------------------------------------

test('DKIM missing: the record to publish carries our key', async (t) => {
  const { run } = await setup(t, (z) => {
    delete z['pb1._domainkey.example.com'];
  });
  const dkim = only(await run(), 'dkim', 'pb1._domainkey.example.com');
  assert.equal(dkim.status, 'missing');
  assert.equal(dkim.fix, `v=DKIM1; k=rsa; p=${RSA_KEY}`);
});

test('DKIM wrong: another key, the wrong key type, a revoked key, a bad version, two records', async (t) => {
  const cases: [string, string[], RegExp][] = [
    ['another key', [`v=DKIM1; k=rsa; p=${OTHER_RSA_KEY}`], /not the key Postbote signs with/],
    ['wrong type', [`v=DKIM1; k=ed25519; p=${RSA_KEY}`], /says the key is "ed25519"/],
    ['revoked', ['v=DKIM1; k=rsa; p='], /has been revoked/],
    ['bad version', [`v=DKIM2; k=rsa; p=${RSA_KEY}`], /must start with "v=DKIM1"/],
    ['two records', [`v=DKIM1; p=${RSA_KEY}`, `v=DKIM1; p=${OTHER_RSA_KEY}`], /has 2 DKIM key records/],
    ['not a key', ['hello world'], /not a DKIM key/],
    ['sha1 only', [`v=DKIM1; h=sha1; p=${RSA_KEY}`], /allows only the hash "sha1"/],
  ];
  for (const [label, txt, explanation] of cases) {
    const { run } = await setup(t, (z) => {
      z['pb1._domainkey.example.com'] = { TXT: txt };
    });
    const dkim = only(await run(), 'dkim', 'pb1._domainkey.example.com');
    assert.equal(dkim.status, 'wrong', label);
    assert.match(dkim.explanation, explanation, label);
    assert.equal(dkim.fix, `v=DKIM1; k=rsa; p=${RSA_KEY}`, label);
  }
});

test('DKIM ok: whitespace inside p=, no v= tag, implicit k=rsa, key split over strings', async (t) => {
  const spaced = RSA_KEY.replace(/(.{64})/g, '$1 ');
  const { run } = await setup(t, (z) => {
    z['pb1._domainkey.example.com'] = { TXT: [[`p=${spaced.slice(0, 200)}`, spaced.slice(200)]] };
  });
  const dkim = only(await run(), 'dkim', 'pb1._domainkey.example.com');
  assert.equal(dkim.status, 'ok', dkim.explanation);
  assert.match(dkim.explanation, /RSA, 2048 bits/);
});

test('DKIM warnings: a 1024-bit key, a record in test mode', async (t) => {
  const { run } = await setup(t, (z) => {
    z['weak._domainkey.example.com'] = { TXT: [`v=DKIM1; k=rsa; p=${WEAK_RSA_KEY}`] };
    z['pb2._domainkey.example.com'] = { TXT: [`v=DKIM1; k=ed25519; t=y; p=${ED_KEY}`] };
  });
  const results = await run({
    dkim: [
      { selector: 'weak', algorithm: 'rsa', publicKey: WEAK_RSA_KEY },
      { selector: 'pb2', algorithm: 'ed25519', publicKey: ED_KEY },
    ],
  });
  const weak = only(results, 'dkim', 'weak._domainkey.example.com');
  assert.equal(weak.status, 'warning');
  assert.match(weak.explanation, /1024 bits; 2048 bits is the recommended minimum/);
  const testing = only(results, 'dkim', 'pb2._domainkey.example.com');
  assert.equal(testing.status, 'warning');
  assert.match(testing.explanation, /t=y/);
  assert.equal(testing.fix, `v=DKIM1; k=ed25519; p=${ED_KEY}`);
});

test('DKIM error: a timed-out key lookup', async (t) => {
  const { dns, run } = await setup(t);
  dns.fail('pb2._domainkey.example.com', 'TIMEOUT');
  const dkim = only(await run(), 'dkim', 'pb2._domainkey.example.com');
  assert.equal(dkim.status, 'error');
  assert.match(dkim.explanation, /^Could not check/);
});

// --- DMARC -----------------------------------------------------------------------------------

test('DMARC ok: policy and alignment of DKIM and the return path, relaxed and strict', async (t) => {
  const { run } = await setup(t);
  const dmarc = only(await run(), 'dmarc');
  assert.equal(dmarc.status, 'ok');
  assert.match(dmarc.explanation, /The DMARC policy of example\.com is "quarantine"/);
  assert.match(dmarc.explanation, /same organization as example\.com \(relaxed alignment\)/);
  assert.deepEqual(dmarc.details?.['alignment'], {
    dkim: { domain: 'example.com', strict: true, relaxed: true },
    spf: { domain: 'bounces.example.com', strict: false, relaxed: true },
  });
  assert.equal(dmarc.details?.['aspf'], 'relaxed');
});

test('DMARC with aspf=s: SPF no longer aligns, DKIM still carries DMARC', async (t) => {
  const { run } = await setup(t, (z) => {
    z['_dmarc.example.com'] = { TXT: ['v=DMARC1; p=reject; aspf=s'] };
  });
  const dmarc = only(await run(), 'dmarc');
  assert.equal(dmarc.status, 'ok');
  assert.equal(dmarc.details?.['aspf'], 'strict');
  assert.deepEqual((dmarc.details?.['alignment'] as { spf: unknown } | undefined)?.spf, {
    domain: 'bounces.example.com',
    strict: false,
    relaxed: true,
  });
  assert.match(dmarc.explanation, /asks for exact SPF alignment \(aspf=s\), so SPF does not count for DMARC/);
});

test('DMARC missing: suggests p=none with reports', async (t) => {
  const { run } = await setup(t, (z) => {
    delete z['_dmarc.example.com'];
  });
  const dmarc = only(await run(), 'dmarc');
  assert.equal(dmarc.status, 'missing');
  assert.equal(dmarc.fix, 'v=DMARC1; p=none; rua=mailto:dmarc@example.com');
});

test('DMARC of a subdomain falls back to the organizational domain', async (t) => {
  const { run } = await setup(t, (z) => {
    z['pb1._domainkey.news.example.com'] = { TXT: [`v=DKIM1; p=${RSA_KEY}`] };
  });
  const results = await run({
    domain: 'news.example.com',
    dkim: [{ selector: 'pb1', algorithm: 'rsa', publicKey: RSA_KEY }],
  });
  const dmarc = only(results, 'dmarc');
  assert.equal(dmarc.status, 'ok', dmarc.explanation);
  assert.equal(dmarc.name, '_dmarc.news.example.com');
  assert.match(dmarc.explanation, /no DMARC record of its own; the policy of example\.com applies/);
  assert.equal(dmarc.details?.['organizationalDomain'], 'example.com');
  // bounces.example.com and news.example.com share the organizational domain example.com.
  assert.deepEqual((dmarc.details?.['alignment'] as { spf: unknown } | undefined)?.spf, {
    domain: 'bounces.example.com',
    strict: false,
    relaxed: true,
  });
});

test('DMARC wrong: two records, an unknown policy, a record without policy or reports', async (t) => {
  const cases: [string[], RegExp][] = [
    [['v=DMARC1; p=none', 'v=DMARC1; p=reject'], /has 2 DMARC records/],
    [['v=DMARC1; p=block'], /"p=block", which does not exist/],
    [['v=DMARC1; adkim=s'], /no policy \(p=\) and no report address/],
    [['v=dmarc1; p=reject'], /must start with "v=DMARC1" exactly/],
  ];
  for (const [txt, explanation] of cases) {
    const { run } = await setup(t, (z) => {
      z['_dmarc.example.com'] = { TXT: txt };
    });
    const dmarc = only(await run(), 'dmarc');
    assert.equal(dmarc.status, 'wrong', txt.join(' | '));
    assert.match(dmarc.explanation, explanation);
    assert.ok(dmarc.fix, 'says what to publish');
  }
});

test('DMARC wrong: no DKIM key and a return path of another organization', async (t) => {
  const { run } = await setup(t, (z) => {
    z['bounces.postbote.example'] = { MX: [{ preference: 10, exchange: 'mx.postbote.example' }] };
  });
  const dmarc = only(await run({ dkim: [], returnPath: 'bounces.postbote.example' }), 'dmarc');
  assert.equal(dmarc.status, 'wrong');
  assert.match(dmarc.explanation, /will fail DMARC/);
  assert.match(dmarc.explanation, /bounces\.postbote\.example is not part of example\.com/);
});

test('DMARC error: the policy lookup times out', async (t) => {
  const { dns, run } = await setup(t);
  dns.fail('_dmarc.example.com', 'TIMEOUT');
  const dmarc = only(await run(), 'dmarc');
  assert.equal(dmarc.status, 'error');
  assert.match(dmarc.explanation, /^Could not check/);
});

// --- return path -----------------------------------------------------------------------------

test('return path: missing, wrong MX, a null MX, a competing MX, a wrong alias', async (t) => {
  const cases: [string, Zones[string], string, RegExp][] = [
    ['missing', { TXT: ['v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 ~all'] }, 'missing', /has no MX record/],
    [
      'wrong MX',
      { MX: [{ preference: 10, exchange: 'mail.example.com' }] },
      'wrong',
      /point to mail\.example\.com/,
    ],
    ['null MX', { MX: [{ preference: 0, exchange: '.' }] }, 'wrong', /null MX/],
    [
      'competing MX',
      {
        MX: [
          { preference: 10, exchange: 'mx.postbote.example' },
          { preference: 5, exchange: 'mail.example.com' },
        ],
      },
      'warning',
      /also mail\.example\.com with the same or a better priority/,
    ],
    [
      'wrong alias',
      { CNAME: ['mx.elsewhere.example'] },
      'wrong',
      /alias of mx\.elsewhere\.example, not of mx\.postbote\.example/,
    ],
  ];
  for (const [label, records, status, explanation] of cases) {
    const { run } = await setup(t, (z) => {
      z['bounces.example.com'] = records;
      z['mx.elsewhere.example'] = { A: ['203.0.113.9'] };
    });
    const rp = only(await run(), 'return_path');
    assert.equal(rp.status, status, label);
    assert.match(rp.explanation, explanation, label);
    assert.equal(rp.fix, label === 'wrong alias' ? 'mx.postbote.example' : '10 mx.postbote.example', label);
  }
});

test('return path: a backup MX with a lower priority is fine', async (t) => {
  const { run } = await setup(t, (z) => {
    z['bounces.example.com']!.MX = [
      { preference: 10, exchange: 'mx.postbote.example' },
      { preference: 20, exchange: 'backup.example.com' },
    ];
  });
  assert.equal(only(await run(), 'return_path').status, 'ok');
});

test('return path error: SERVFAIL', async (t) => {
  const { dns, run } = await setup(t);
  dns.fail('bounces.example.com', 'SERVFAIL');
  const rp = only(await run(), 'return_path');
  assert.equal(rp.status, 'error');
  assert.match(rp.explanation, /^Could not check bounces\.example\.com/);
});

// --- tracking --------------------------------------------------------------------------------

test('tracking: missing, an alias elsewhere, an address instead of an alias, a timeout', async (t) => {
  const cases: [string, ((z: Zones) => void) | 'timeout', string, RegExp][] = [
    ['missing', (z) => delete z['track.example.com'], 'missing', /does not exist yet/],
    [
      'elsewhere',
      (z) => {
        z['track.example.com'] = { CNAME: ['links.other.example'] };
      },
      'wrong',
      /alias of links\.other\.example instead of track\.postbote\.example/,
    ],
    [
      'address',
      (z) => {
        z['track.example.com'] = { A: ['198.51.100.7'] };
      },
      'wrong',
      /points to the address 198\.51\.100\.7/,
    ],
    ['timeout', 'timeout', 'error', /^Could not check track\.example\.com/],
  ];
  for (const [label, change, status, explanation] of cases) {
    const { dns, run } = await setup(t, typeof change === 'function' ? change : undefined);
    if (change === 'timeout') dns.fail('track.example.com', 'TIMEOUT');
    const tracking = only(await run(), 'tracking');
    assert.equal(tracking.status, status, label);
    assert.match(tracking.explanation, explanation, label);
    if (status !== 'error') assert.equal(tracking.fix, 'track.postbote.example', label);
  }
});

// --- PTR -------------------------------------------------------------------------------------

test('PTR: missing, not forward-confirmed, a name other than the EHLO name', async (t) => {
  const { run } = await setup(t, (z) => {
    delete z['10.2.0.192.in-addr.arpa'];
    z[V6_PTR] = { PTR: ['host-10.provider.example'] };
  });
  let results = await run();
  const missing = only(results, 'ptr', '10.2.0.192.in-addr.arpa');
  assert.equal(missing.status, 'missing');
  assert.match(missing.fix ?? '', /set its reverse DNS \(PTR\) to out1\.postbote\.example/);
  const unconfirmed = only(results, 'ptr', V6_PTR);
  assert.equal(unconfirmed.status, 'wrong');
  assert.match(unconfirmed.explanation, /host-10\.provider\.example, but that name does not point back/);

  const other = await setup(t, (z) => {
    z[V6_PTR] = { PTR: ['host-10.provider.example'] };
    z['host-10.provider.example'] = { AAAA: ['2001:0db8:0000::0010'] };
  });
  results = await other.run();
  const mismatch = only(results, 'ptr', V6_PTR);
  assert.equal(mismatch.status, 'warning');
  assert.match(
    mismatch.explanation,
    /host-10\.provider\.example, but egress source ip-2 introduces itself as out2\.postbote\.example/,
  );
});

test('PTR error: the reverse lookup times out', async (t) => {
  const { dns, run } = await setup(t);
  dns.fail('10.2.0.192.in-addr.arpa', 'TIMEOUT');
  const ptr = only(await run(), 'ptr', '10.2.0.192.in-addr.arpa');
  assert.equal(ptr.status, 'error');
  assert.match(ptr.explanation, /^Could not check/);
});
