import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  hostHasSuffix,
  normalizeHost,
  normalizeSuffix,
  type Provider,
  providerOfHost,
  siteFromKey,
  siteOf,
  smarthostSite,
} from '../../../src/delivery/shaping/site.ts';

const providers: Provider[] = [
  { name: 'google', mx: ['google.com', 'googlemail.com'] },
  { name: 'yahoo', mx: ['yahoodns.net'] },
  { name: 'outlook', mx: ['olc.protection.outlook.com'] },
  { name: 'microsoft365', mx: ['mail.protection.outlook.com', 'mx.microsoft'] },
];

describe('siteOf', () => {
  it('rolls every Google-hosted domain into one provider site, whatever the case or trailing dot', () => {
    const gmail = siteOf(['gmail-smtp-in.l.google.com', 'alt1.gmail-smtp-in.l.google.com.'], providers);
    const workspace = siteOf(
      ['ASPMX.L.GOOGLE.COM.', 'alt2.aspmx.l.google.com', 'aspmx2.googlemail.com'],
      providers,
    );
    assert.equal(gmail.key, 'provider:google');
    assert.equal(gmail.provider, 'google');
    assert.equal(workspace.key, 'provider:google');
    assert.deepEqual(workspace.hosts, [
      'alt2.aspmx.l.google.com',
      'aspmx.l.google.com',
      'aspmx2.googlemail.com',
    ]);
  });

  it('matches suffixes at a dot boundary only', () => {
    assert.equal(siteOf(['mx.evilgoogle.com'], providers).provider, undefined);
    assert.equal(siteOf(['google.com.evil.test'], providers).provider, undefined);
    assert.equal(siteOf(['google.com'], providers).provider, 'google');
    assert.equal(hostHasSuffix('aspmx.l.google.com', 'google.com'), true);
    assert.equal(hostHasSuffix('evilgoogle.com', 'google.com'), false);
  });

  it('keeps Microsoft consumer and Microsoft 365 apart, and the longest suffix wins', () => {
    assert.equal(siteOf(['hotmail-com.olc.protection.outlook.com'], providers).key, 'provider:outlook');
    assert.equal(siteOf(['contoso-com.mail.protection.outlook.com'], providers).key, 'provider:microsoft365');
    assert.equal(siteOf(['contoso-com.l-v1.mx.microsoft'], providers).key, 'provider:microsoft365');
    const nested: Provider[] = [...providers, { name: 'all-outlook', mx: ['outlook.com'] }];
    assert.equal(providerOfHost('x.olc.protection.outlook.com', nested), 'outlook');
    assert.equal(providerOfHost('smtp.outlook.com', nested), 'all-outlook');
  });

  it('makes any other domain a site of its sorted, deduplicated, lower-cased MX hosts', () => {
    const a = siteOf(['MX2.a.test', 'mx1.a.test', 'mx1.a.test.'], providers);
    const b = siteOf(['mx1.a.test', 'mx2.a.test'], providers);
    assert.deepEqual(a, { key: 'mx1.a.test,mx2.a.test', hosts: ['mx1.a.test', 'mx2.a.test'] });
    assert.equal(b.key, a.key);
  });

  it('does not roll up a domain whose MX hosts are only partly the provider’s', () => {
    const site = siteOf(['aspmx.l.google.com', 'backup.mx.example'], providers);
    assert.equal(site.provider, undefined);
    assert.equal(site.key, 'aspmx.l.google.com,backup.mx.example');
    // Two different providers: no single owner either.
    assert.equal(siteOf(['aspmx.l.google.com', 'mta5.am0.yahoodns.net'], providers).provider, undefined);
  });

  it('represents an implicit MX (the domain itself) and smarthost routes', () => {
    assert.deepEqual(siteOf(['b.test'], providers), { key: 'b.test', hosts: ['b.test'] });
    assert.deepEqual(smarthostSite('Relay.Example.', 587), {
      key: 'host:relay.example:587',
      hosts: ['relay.example'],
    });
    assert.throws(() => smarthostSite('relay.example', 0), TypeError);
    assert.throws(() => smarthostSite('bad host', 25), TypeError);
  });

  it('refuses what is not a host list: empty, blanks, commas, spaces, overlong labels, non-strings', () => {
    assert.throws(() => siteOf([], providers), /at least one host/);
    assert.throws(() => siteOf([''], providers), /not a host name/);
    assert.throws(() => siteOf(['mx.a.test,mx.b.test'], providers), /not a host name/);
    assert.throws(() => siteOf(['mx a.test'], providers), /not a host name/);
    assert.throws(() => siteOf([`${'a'.repeat(64)}.test`], providers), /not a host name/);
    assert.throws(() => siteOf([`${'a.'.repeat(130)}test`], providers), /not a host name/);
    assert.throws(() => siteOf([42 as unknown as string], providers), /not a host name/);
  });

  it('normalises names and suffixes; a suffix needs two labels', () => {
    assert.equal(normalizeHost(' MX.Example.COM. '), 'mx.example.com');
    assert.equal(normalizeHost('_dmarc-ish.example'), '_dmarc-ish.example');
    assert.equal(normalizeHost('-bad.example'), undefined);
    assert.equal(normalizeSuffix('.google.com'), 'google.com');
    assert.equal(normalizeSuffix('com'), undefined);
    assert.equal(normalizeSuffix('..google.com'), undefined);
  });
});

describe('siteFromKey', () => {
  it('gives back what a key of siteOf or smarthostSite says: the provider, or the hosts', () => {
    const google = siteOf(['aspmx.l.google.com', 'alt1.aspmx.l.google.com'], providers);
    assert.deepEqual(siteFromKey(google.key), { key: 'provider:google', provider: 'google', hosts: [] });
    const set = siteOf(['mx2.a.test', 'mx1.a.test'], providers);
    assert.deepEqual(siteFromKey(set.key), set);
    const relay = smarthostSite('relay.example', 587);
    assert.deepEqual(siteFromKey(relay.key), relay);
    assert.equal(siteFromKey(''), undefined);
  });
});
