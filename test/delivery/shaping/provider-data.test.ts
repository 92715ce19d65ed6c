import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  loadProviderData,
  ProviderDataError,
  SHIPPED_PROVIDERS_FILE,
  shippedProviderData,
} from '../../../src/delivery/shaping/provider-data.ts';
import { siteOf } from '../../../src/delivery/shaping/site.ts';
import { tempDir } from '../../support/temp-dir.ts';

function problemsIn(yaml: string): readonly string[] {
  const dir = tempDir();
  const file = join(dir.path, 'shaping.yaml');
  writeFileSync(file, yaml);
  try {
    loadProviderData(file);
  } catch (err) {
    if (!(err instanceof ProviderDataError)) throw err;
    assert.ok(err.message.startsWith(`invalid shaping data in ${file}:\n`));
    return err.problems;
  } finally {
    dir.cleanup();
  }
  assert.fail('expected a ProviderDataError');
}

describe('shipped providers.yaml', () => {
  it('is valid and names the big providers with their MX suffixes', () => {
    const data = loadProviderData(SHIPPED_PROVIDERS_FILE);
    const mx = Object.fromEntries(Object.entries(data.providers).map(([name, p]) => [name, p.mx]));
    assert.deepEqual(mx, {
      google: ['google.com', 'googlemail.com'],
      yahoo: ['yahoodns.net'],
      outlook: ['olc.protection.outlook.com'],
      microsoft365: ['mail.protection.outlook.com', 'mx.microsoft'],
      apple: ['icloud.com'],
      gmx: ['gmx.net'],
      webde: ['web.de'],
      't-online': ['t-online.de'],
    });
    assert.equal(data.providers.yahoo?.limits.maxMessagesPerConnection, 20);
  });

  it('keeps its limits conservative: never above the generic defaults, no guessed rates', () => {
    for (const [name, provider] of Object.entries(shippedProviderData().providers)) {
      assert.ok((provider.limits.maxConnections ?? 0) <= 20, name);
      assert.ok((provider.limits.maxMessagesPerConnection ?? 0) <= 100, name);
      assert.equal(provider.limits.rates, undefined, name);
    }
  });

  it('rolls the real MX hosts of the big mailbox domains into their provider sites', () => {
    const providers = Object.entries(shippedProviderData().providers).map(([name, p]) => ({
      name,
      mx: p.mx,
    }));
    const cases: [string[], string][] = [
      [['gmail-smtp-in.l.google.com', 'alt4.gmail-smtp-in.l.google.com'], 'google'],
      [['aspmx.l.google.com', 'alt1.aspmx.l.google.com', 'aspmx2.googlemail.com'], 'google'],
      [['smtp.google.com'], 'google'],
      [['mta5.am0.yahoodns.net', 'mta7.am0.yahoodns.net'], 'yahoo'],
      [['mx-aol.mail.gm0.yahoodns.net'], 'yahoo'],
      [['hotmail-com.olc.protection.outlook.com'], 'outlook'],
      [['contoso-com.mail.protection.outlook.com'], 'microsoft365'],
      [['mx01.mail.icloud.com', 'mx02.mail.icloud.com'], 'apple'],
      [['mx00.emig.gmx.net', 'mx01.emig.gmx.net'], 'gmx'],
      [['mx-ha02.web.de', 'mx-ha03.web.de'], 'webde'],
      [['mx00.t-online.de', 'mx03.t-online.de'], 't-online'],
    ];
    for (const [hosts, provider] of cases)
      assert.equal(siteOf(hosts, providers).provider, provider, hosts.join());
  });

  it('ships rules that all name known providers, with durations between 30 minutes and 4 hours', () => {
    const { rules, providers } = shippedProviderData();
    assert.ok(rules.length >= 8);
    for (const rule of rules) {
      for (const name of rule.providers ?? []) assert.ok(name in providers, `${rule.name}: ${name}`);
      assert.ok(rule.durationMs >= 30 * 60_000 && rule.durationMs <= 4 * 3_600_000, rule.name);
    }
  });

  it('is read once per process', () => {
    assert.equal(shippedProviderData(), shippedProviderData());
  });
});

describe('loadProviderData on a broken file', () => {
  it('names the file and the path of every problem', () => {
    const problems = problemsIn(`
providers:
  google: { max_connections: 10 }
  yahoo: { mx: [yahoodns.net], max_connections: -1 }
  dupe: { mx: [yahoodns.net] }
rules:
  - { name: r1, match: { code: 421 }, action: suspend_site, duration: 1h }
  - { name: r2, match: { text: '[' }, action: throttle, rate: 1/min, duration: 1h }
  - { name: r3, enabled: false }
extra: true
`);
    assert.deepEqual(
      [...problems].sort(),
      [
        'extra: unknown key (known: providers, rules)',
        'providers.google.mx: required for a new provider',
        'providers.yahoo.max_connections: must be a whole number ≥ 1, got -1',
        'rules[1] (rule "r2").match.text: not a valid regular expression: Invalid regular expression: /[/i: Unterminated character class',
        'rules[2] (rule "r3").enabled: false is for switching a shipped rule off in the config',
      ].sort(),
    );
  });

  it('checks that rules name providers of the file', () => {
    assert.deepEqual(
      problemsIn(`
providers: { a: { mx: [a.test] } }
rules: [{ name: r, provider: [a, nobody], match: { code: 421 }, action: suspend_site, duration: 1h }]
`),
      ['rules[0].provider: no provider named nobody'],
    );
  });

  it('reports claimed suffixes, bad YAML, a missing file and a non-mapping', () => {
    assert.deepEqual(problemsIn('providers:\n  a: { mx: [x.test] }\n  b: { mx: [.X.TEST.] }\n'), [
      'providers.b.mx: x.test is already claimed by provider a',
    ]);
    assert.match(problemsIn('providers: [unclosed\n')[0]!, /^not valid YAML: /);
    assert.deepEqual(problemsIn('- a\n- b\n'), ['must be a mapping with providers and rules']);
    assert.throws(() => loadProviderData('/nonexistent/providers.yaml'), /cannot read the file/);
  });
});
