/**
 * MTA-STS (RFC 8461) when delivering: policies found through a fake DNS server, fetched from a
 * local HTTPS server whose certificate a test CA signed, enforced against scripted MX sinks
 * (verified TLS, plaintext only, a self-signed certificate). Also: policy parsing and caching,
 * hostile policy responses, and what opportunistic TLS does with a TLS 1.0/1.1-only MX.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMxDestination, type DestinationResult } from '../../src/delivery/destination.ts';
import {
  createMtaSts,
  httpsPolicyFetch,
  MAX_POLICY_BYTES,
  type MtaStsLookup,
  mxMatches,
  parsePolicy,
  parseStsRecord,
} from '../../src/delivery/mta-sts.ts';
import { createSessionPool } from '../../src/delivery/session-pool.ts';
import { createResolver } from '../../src/dns/resolver.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import {
  generateSelfSignedCert,
  type ScriptedSink,
  startScriptedSink,
  unusedPort,
} from '../support/scripted-sink.ts';
import { testPki } from '../support/test-pki.ts';

const policy = (mode: string, ...mx: string[]) =>
  `version: STSv1\r\nmode: ${mode}\r\n${mx.map((m) => `mx: ${m}\r\n`).join('')}max_age: 86400\r\n`;

describe('MTA-STS policy text and records', () => {
  it('parses a policy (CRLF or LF, unknown keys ignored) and refuses broken ones', () => {
    assert.deepEqual(
      parsePolicy(
        'version: STSv1\nmode: enforce\nmx: mx1.Example.com.\nmx: *.example.net\nmax_age: 604800\next: 1\n',
        'a1',
      ),
      {
        id: 'a1',
        mode: 'enforce',
        mx: ['mx1.example.com', '*.example.net'],
        maxAgeSeconds: 604800,
      },
    );
    assert.equal(
      (
        parsePolicy(policy('testing', 'mx.a.test').replace('86400', '99999999999'), 'x') as {
          maxAgeSeconds: number;
        }
      ).maxAgeSeconds,
      31_557_600,
    );
    for (const bad of [
      '',
      'version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1',
      'version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1',
      'version: STSv1\nmode: enforce\nmax_age: 1',
      'version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1',
      'version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1',
      '<html><body>not found</body></html>',
    ]) {
      assert.ok('error' in parsePolicy(bad, 'x'), bad);
    }
  });

  it('reads exactly one v=STSv1 TXT record with a valid id', () => {
    assert.equal(parseStsRecord([['v=STSv1; id=20260101T000000;']]), '20260101T000000');
    assert.equal(parseStsRecord([['v=STSv1; ', 'id=abc']]), 'abc', 'chunks are joined');
    assert.equal(parseStsRecord([['v=spf1 -all'], ['v=STSv1; id=one']]), 'one');
    assert.equal(parseStsRecord([['v=STSv1; id=one'], ['v=STSv1; id=two']]), undefined, 'two records: none');
    assert.equal(parseStsRecord([['v=STSv1; id=not-alnum']]), undefined);
    assert.equal(parseStsRecord([]), undefined);
  });

  it('matches MX patterns: exact names and one leftmost label for *.', () => {
    assert.ok(mxMatches('mx.example.com', 'MX.example.com.'));
    assert.ok(mxMatches('*.example.com', 'mx1.example.com'));
    assert.ok(!mxMatches('*.example.com', 'a.b.example.com'));
    assert.ok(!mxMatches('*.example.com', 'example.com'));
    assert.ok(!mxMatches('mx.example.com', 'mx.example.com.evil.test'));
  });
});

describe('MTA-STS policy cache', () => {
  it('fetches once per id, honours max_age, refetches on a new id, keeps a cached policy through failures', async () => {
    let now = 1_000_000;
    let txt: string[][] = [['v=STSv1; id=one']];
    let body = policy('enforce', 'mx.a.test');
    let fetches = 0;
    const lookup: MtaStsLookup = {
      txt: async () => {
        if (txt.length === 0) throw Object.assign(new Error('no data'), { code: 'ENODATA' });
        return txt;
      },
      a: async () => [],
      aaaa: async () => [],
    };
    const sts = createMtaSts({
      resolver: lookup,
      clock: () => now,
      logger: silentLogger(),
      fetch: async () => {
        fetches++;
        if (body === 'fail') throw new Error('connection refused');
        return body;
      },
    });
    assert.equal((await sts.policyFor('a.test'))?.mode, 'enforce');
    await Promise.all([sts.policyFor('a.test'), sts.policyFor('A.test.')]);
    assert.equal(fetches, 1, 'cached under the same id');
    txt = [];
    assert.equal((await sts.policyFor('a.test'))?.id, 'one', 'TXT gone: the cached policy still applies');
    txt = [['v=STSv1; id=two']];
    body = 'fail';
    assert.equal((await sts.policyFor('a.test'))?.id, 'one', 'new id, fetch failed: cached one applies');
    await sts.policyFor('a.test');
    assert.equal(fetches, 2, 'a failed fetch is not retried at once');
    body = policy('testing', 'mx.a.test');
    now += 6 * 60_000;
    assert.equal((await sts.policyFor('a.test'))?.mode, 'testing', 'the new id is fetched later');
    assert.equal(fetches, 3);
    now += 86_400_000 + 1;
    txt = [];
    assert.equal(await sts.policyFor('a.test'), undefined, 'max_age passed and no TXT: no policy');
    // A DNS server that fails TXT lookups is asked once a minute, not on every delivery.
    let txtQueries = 0;
    const flaky = createMtaSts({
      resolver: {
        ...lookup,
        txt: async () => {
          txtQueries++;
          throw Object.assign(new Error('timeout'), { kind: 'temporary' });
        },
      },
      clock: () => now,
      logger: silentLogger(),
      fetch: async () => body,
    });
    assert.equal(await flaky.policyFor('b.test'), undefined);
    assert.equal(await flaky.policyFor('b.test'), undefined);
    assert.equal(txtQueries, 1);
    now += 61_000;
    await flaky.policyFor('b.test');
    assert.equal(txtQueries, 2);
    body = '<html>broken</html>';
    txt = [['v=STSv1; id=three']];
    assert.equal(await sts.policyFor('a.test'), undefined, 'a broken policy file is no policy');
  });
});

describe('MTA-STS when delivering', () => {
  let pki: { ca: string; key: string; cert: string };
  let dns: TestDnsServer;
  let web: https.Server;
  let webPort: number;
  const policies = new Map<string, { status?: number; type?: string; body: string }>();
  const fetched: string[] = [];
  let good: ScriptedSink;
  let plain: ScriptedSink;
  let selfSigned: ScriptedSink;
  let legacy: ScriptedSink;
  let deliver: (domain: string, body?: string) => Promise<DestinationResult>;
  let closePool: () => Promise<void>;

  before(async () => {
    const domains = [
      'enforce.test',
      'notls.test',
      'mismatch.test',
      'testing.test',
      'badcert.test',
      'junk.test',
    ];
    pki = await testPki([
      ...domains.map((d) => `mta-sts.${d}`),
      'mta-sts.hostile.test',
      'mx.enforce.test',
      'mx.other.test',
      'mx.mismatch.test',
    ]);
    const port = await unusedPort();
    const sinkTls = { key: pki.key, cert: pki.cert };
    good = await startScriptedSink({ host: '127.0.0.9', port, tls: sinkTls });
    plain = await startScriptedSink({ host: '127.0.0.10', port });
    selfSigned = await startScriptedSink({ host: '127.0.0.11', port, tls: await generateSelfSignedCert() });
    legacy = await startScriptedSink({
      host: '127.0.0.12',
      port,
      tls: { ...sinkTls, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' },
    });
    web = https.createServer({ key: pki.key, cert: pki.cert }, (req, res) => {
      const host = String(req.headers.host);
      fetched.push(`${host}${req.url}`);
      const answer = policies.get(host.replace(/^mta-sts\./, ''));
      if (!answer || req.url !== '/.well-known/mta-sts.txt') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(answer.status ?? 200, { 'content-type': answer.type ?? 'text/plain' }).end(answer.body);
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', () => resolve()));
    webPort = (web.address() as AddressInfo).port;
    const zones: Record<string, { ip: string; mx?: string; mode?: string; mxPattern?: string }> = {
      'enforce.test': { ip: '127.0.0.9', mode: 'enforce' },
      'notls.test': { ip: '127.0.0.10', mode: 'enforce' },
      'mismatch.test': { ip: '127.0.0.9', mode: 'enforce', mxPattern: 'mx.other.test' },
      'testing.test': { ip: '127.0.0.10', mode: 'testing', mxPattern: 'mx.other.test' },
      'badcert.test': { ip: '127.0.0.11', mode: 'enforce' },
      'junk.test': { ip: '127.0.0.10', mode: 'junk' },
      'legacy.test': { ip: '127.0.0.12' },
      'nopolicy.test': { ip: '127.0.0.10' },
    };
    dns = await startDnsServer();
    for (const [domain, z] of Object.entries(zones)) {
      dns.set(domain, { MX: [{ preference: 10, exchange: `mx.${domain}` }] });
      dns.set(`mx.${domain}`, { A: [z.ip] });
      if (!z.mode) continue;
      dns.set(`_mta-sts.${domain}`, { TXT: ['v=STSv1; id=20261128'] });
      dns.set(`mta-sts.${domain}`, { A: ['127.0.0.1'] });
      policies.set(domain, {
        body: z.mode === 'junk' ? 'this is not a policy' : policy(z.mode, z.mxPattern ?? `mx.${domain}`),
      });
    }
    const resolver = createResolver({ servers: [dns.address], timeoutMs: 2000 });
    const pool = createSessionPool({
      maxConnectionsPerKey: 2,
      ehloName: 'relay.postbote.test',
      connectTimeoutMs: 2000,
      greetingTimeoutMs: 2000,
      trustedCa: pki.ca,
    });
    closePool = () => pool.close();
    const destination = createMxDestination({
      resolver,
      pool,
      port,
      allowPrivate: true,
      starttls: 'opportunistic',
      mtaSts: createMtaSts({
        resolver,
        clock: Date.now,
        logger: silentLogger(),
        fetch: httpsPolicyFetch({ resolver, timeoutMs: 2000, allowPrivate: true, ca: pki.ca, port: webPort }),
      }),
      logger: silentLogger(),
    });
    deliver = (domain, body = 'Subject: sts\r\n\r\nhello\r\n') =>
      destination.deliver({
        domain,
        mailFrom: 'app@sender.test',
        recipients: [`someone@${domain}`],
        dsn: {},
        body: Buffer.from(body),
      });
  });
  after(async () => {
    await closePool();
    await Promise.all([good, plain, selfSigned, legacy].map((s) => s.close()));
    await new Promise<void>((resolve) => web.close(() => resolve()));
    await dns.close();
  });

  const toSink = (sink: ScriptedSink, domain: string) =>
    sink.transactions.filter((t) => t.recipients.some((r) => r.address === `someone@${domain}`)).length;

  it('enforce + an MX with a valid certificate: delivered over verified TLS; the policy is cached', async () => {
    const first = await deliver('enforce.test');
    assert.equal(first.recipients[0]?.outcome, 'delivered', JSON.stringify(first.recipients[0]?.reply));
    assert.ok(first.connection?.tls, 'over TLS');
    await deliver('enforce.test');
    assert.equal(toSink(good, 'enforce.test'), 2);
    assert.equal(
      fetched.filter((f) => f.startsWith('mta-sts.enforce.test')).length,
      1,
      'one fetch for two messages',
    );
  });

  it('enforce + an MX without STARTTLS: deferred with the policy named, nothing sent', async () => {
    const result = await deliver('notls.test');
    assert.equal(result.recipients[0]?.outcome, 'temporary');
    assert.match(result.recipients[0]!.reply.text, /MTA-STS policy 20261128 of notls\.test \(enforce\)/);
    assert.equal(toSink(plain, 'notls.test'), 0);
  });

  it('enforce + a certificate no trusted CA signed: deferred, nothing sent', async () => {
    const result = await deliver('badcert.test');
    assert.equal(result.recipients[0]?.outcome, 'temporary');
    assert.match(result.recipients[0]!.reply.text, /MTA-STS/);
    assert.equal(selfSigned.transactions.length, 0);
  });

  it('enforce + an MX the policy does not list: deferred (4.7.5) without connecting', async () => {
    const connections = good.connections.length;
    const result = await deliver('mismatch.test');
    assert.equal(result.recipients[0]?.outcome, 'temporary');
    assert.equal(result.recipients[0]?.reply.enhanced, '4.7.5');
    assert.match(result.recipients[0]!.reply.text, /lists none of its MX hosts \(mx\.mismatch\.test\)/);
    assert.equal(good.connections.length, connections);
  });

  it('TLS-Required: No (RFC 8689 §4) lifts an enforce policy for that message', async () => {
    const result = await deliver('notls.test', 'TLS-Required: No\r\nSubject: sts\r\n\r\nhello\r\n');
    assert.equal(result.recipients[0]?.outcome, 'delivered');
    assert.equal(toSink(plain, 'notls.test'), 1);
  });

  it('testing mode and a policy file that is not a policy: delivered as usual', async () => {
    assert.equal((await deliver('testing.test')).recipients[0]?.outcome, 'delivered');
    assert.equal((await deliver('junk.test')).recipients[0]?.outcome, 'delivered');
    assert.equal((await deliver('nopolicy.test')).recipients[0]?.outcome, 'delivered');
  });

  it('opportunistic TLS to an MX with only TLS 1.0/1.1: plaintext, never a deprecated protocol', async () => {
    const result = await deliver('legacy.test');
    assert.equal(result.recipients[0]?.outcome, 'delivered');
    assert.equal(result.connection?.tls, null);
    assert.equal(toSink(legacy, 'legacy.test'), 1);
    assert.ok(
      legacy.connections.some((c) => c.commands.includes('STARTTLS')),
      'STARTTLS was tried first',
    );
    assert.ok(
      legacy.connections.every((c) => !c.tls),
      'no TLS session with the legacy MX',
    );
  });

  it('the HTTPS fetch refuses redirects, other media types, oversized bodies and untrusted certificates', async () => {
    const resolver = { a: async () => ['127.0.0.1'], aaaa: async () => [] };
    const fetchWith = (ca?: string) =>
      httpsPolicyFetch({
        resolver,
        timeoutMs: 2000,
        allowPrivate: true,
        port: webPort,
        ...(ca ? { ca } : {}),
      });
    const trusted = fetchWith(pki.ca);
    policies.set('hostile.test', { status: 301, body: '' });
    await assert.rejects(trusted('hostile.test'), /HTTP 301/);
    policies.set('hostile.test', { type: 'text/html', body: policy('enforce', 'mx.hostile.test') });
    await assert.rejects(trusted('hostile.test'), /not text\/plain/);
    policies.set('hostile.test', { body: 'x'.repeat(MAX_POLICY_BYTES + 1) });
    await assert.rejects(trusted('hostile.test'), /larger than/);
    policies.set('enforce.test', { body: policy('enforce', 'mx.enforce.test') });
    assert.match(await trusted('enforce.test'), /mode: enforce/);
    await assert.rejects(
      fetchWith()('enforce.test'),
      /certificate/i,
      'the system CAs alone do not trust the test CA',
    );
    const noPrivate = httpsPolicyFetch({
      resolver,
      timeoutMs: 2000,
      allowPrivate: false,
      ca: pki.ca,
      port: webPort,
    });
    await assert.rejects(noPrivate('enforce.test'), /no usable address/);
  });
});
