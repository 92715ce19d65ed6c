import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { tempDir } from '../support/temp-dir.ts';

function load(options: { yaml?: string; env?: Record<string, string>; overrides?: Record<string, unknown> }) {
  const dir = tempDir();
  try {
    if (options.yaml !== undefined) writeFileSync(join(dir.path, 'postbote.yaml'), options.yaml);
    return loadConfig({
      env: options.env ?? {},
      cwd: dir.path,
      ...(options.overrides ? { overrides: options.overrides } : {}),
    });
  } finally {
    dir.cleanup();
  }
}

function problemsOf(shaping: Record<string, unknown>): readonly string[] {
  try {
    load({ overrides: { shaping } });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  assert.fail('expected a ConfigError');
}

/** Asserts one problem line matches each pattern, in any order. */
function assertProblems(problems: readonly string[], ...patterns: RegExp[]): void {
  for (const pattern of patterns) {
    assert.ok(
      problems.some((p) => pattern.test(p)),
      `no problem matches ${pattern}:\n${problems.join('\n')}`,
    );
  }
}

describe('config: shaping', () => {
  it('defaults to no overrides and a 5-failure, 5-minute, ±20 % circuit', () => {
    const config = load({});
    assert.deepEqual(config.shaping.providers, {});
    assert.deepEqual(config.shaping.sites, []);
    assert.deepEqual(config.shaping.rules, []);
    assert.deepEqual(config.shaping.circuit, { failures: 5, backoff: 300_000, jitter: 0.2 });
  });

  it('reads the shaping section from postbote.yaml', () => {
    const config = load({
      yaml: `
shaping:
  providers:
    google: { max_connections: 5 }
    mailbox-org: { mx: [mailbox.org], max_message_rate: 10/s }
  sites:
    example.net: { max_messages_per_connection: 10 }
    'host:relay.example:587': { max_connections: 50, tls: required }
  rules:
    - name: busy
      match: { code: 421, text: 'too busy' }
      action: throttle
      rate: 10/min
      duration: 30m
      threshold: 3/h
  circuit: { failures: 3, backoff: 10m, jitter: 10% }
`,
    });
    assert.deepEqual(config.shaping.providers.google, { limits: { maxConnections: 5 } });
    assert.deepEqual(config.shaping.providers['mailbox-org'], {
      mx: ['mailbox.org'],
      limits: { rates: { perSecond: 10 } },
    });
    assert.deepEqual(config.shaping.sites, [
      {
        match: 'suffix',
        site: 'example.net',
        written: 'example.net',
        limits: { maxMessagesPerConnection: 10 },
      },
      {
        match: 'key',
        site: 'host:relay.example:587',
        written: 'host:relay.example:587',
        limits: { maxConnections: 50, tls: 'required' },
      },
    ]);
    assert.deepEqual(config.shaping.rules, [
      {
        name: 'busy',
        match: { code: '421', text: 'too busy' },
        action: 'throttle',
        rate: { count: 10, perMs: 60_000 },
        durationMs: 1_800_000,
        threshold: { count: 3, perMs: 3_600_000 },
      },
    ]);
    assert.deepEqual(config.shaping.circuit, { failures: 3, backoff: 600_000, jitter: 0.1 });
    assert.ok(Object.isFrozen(config.shaping.providers.google?.limits));
  });

  it('takes structured values from the environment as YAML', () => {
    const config = load({
      env: {
        POSTBOTE_SHAPING__PROVIDERS: '{yahoo: {max_connections: 4}}',
        POSTBOTE_SHAPING__RULES:
          "[{name: x, match: {enhanced: '4\\.7\\.1'}, action: suspend_stream, duration: 1h}]",
        POSTBOTE_SHAPING__CIRCUIT__FAILURES: '8',
        POSTBOTE_SHAPING__CIRCUIT__JITTER: '0.05',
      },
    });
    assert.deepEqual(config.shaping.providers.yahoo, { limits: { maxConnections: 4 } });
    assert.equal(config.shaping.rules[0]?.name, 'x');
    assert.equal(config.shaping.circuit.failures, 8);
    assert.equal(config.shaping.circuit.jitter, 0.05);
  });

  it('refuses zero, negative, fractional and huge limits, naming the place', () => {
    assertProblems(
      problemsOf({
        providers: {
          google: { max_connections: 0, max_messages_per_connection: -5 },
          yahoo: { max_connections: 2.5, max_new_connections_per_minute: 1e21 },
        },
        sites: { 'example.net': { max_connections: 99999999, max_message_rate: '0/s' } },
      }),
      /^shaping\.providers\.google\.max_connections: must be a whole number ≥ 1, got 0 \(from override\)$/,
      /^shaping\.providers\.google\.max_messages_per_connection: must be a whole number ≥ 1, got -5/,
      /^shaping\.providers\.yahoo\.max_connections: must be a whole number ≥ 1, got 2\.5/,
      /^shaping\.providers\.yahoo\.max_new_connections_per_minute: must be at most 1000000, got 1e\+21/,
      /^shaping\.sites\.example\.net\.max_connections: must be at most 10000/,
      /^shaping\.sites\.example\.net\.max_message_rate: must allow at least 1 per window/,
    );
  });

  it('refuses unknown keys and wrong shapes', () => {
    assertProblems(
      problemsOf({
        providers: { google: { max_conections: 5, mx: 'com' }, Bad_Name: {}, yahoo: 'fast' },
        sites: ['example.net'],
        rules: { name: 'x' },
      }),
      /^shaping\.providers\.google\.max_conections: unknown key \(known: max_connections,/,
      /^shaping\.providers\.google\.mx\[0\]: must be a host name suffix with at least two labels/,
      /^shaping\.providers\.Bad_Name: provider names are lower-case/,
      /^shaping\.providers\.yahoo: must be a mapping \(mx and limits\), got "fast"/,
      /^shaping\.sites: must be a mapping of site → limits/,
      /^shaping\.rules: must be a list of rules/,
    );
    assertProblems(
      problemsOf({ sites: { 'example.net': { tls: 'none', sources: { 'bad source': {} }, speed: 1 } } }),
      /^shaping\.sites\.example\.net\.tls: must be required or opportunistic, got "none"/,
      /^shaping\.sites\.example\.net\.sources\.bad source: not an egress source name/,
      /^shaping\.sites\.example\.net\.speed: unknown key/,
    );
  });

  it('names the rule whose regex is broken, and every other rule problem', () => {
    assertProblems(
      problemsOf({
        rules: [
          { name: 'broken', match: { text: '([unclosed' }, action: 'suspend_site', duration: '1h' },
          { name: 'nomatch', match: {}, action: 'suspend_site', duration: '1h' },
          { name: 'noaction', match: { code: 421 }, action: 'explode', duration: '1h' },
          { name: 'norate', match: { code: 999 }, action: 'throttle', duration: 'soon' },
          {
            name: 'ratewrong',
            match: { code: '4\\d\\d' },
            action: 'suspend_site',
            rate: '1/s',
            duration: '60d',
          },
          {
            name: 'thresh',
            match: { enhanced: '(' },
            action: 'suspend_account',
            duration: '1h',
            threshold: '0/h',
          },
          { match: { code: 421 } },
          { name: 'broken', match: { code: 421 }, action: 'suspend_site', duration: '1h' },
          { name: 'typo', match: { code: 421, txt: 'x' }, action: 'suspend_site', duration: '1h', extra: 1 },
        ],
      }),
      /^shaping\.rules\[0\] \(rule "broken"\)\.match\.text: not a valid regular expression: .*\(from override\)$/,
      /^shaping\.rules\[1\] \(rule "nomatch"\)\.match: must give at least one of code, enhanced, text/,
      /^shaping\.rules\[2\] \(rule "noaction"\)\.action: must be one of throttle, suspend_site, suspend_stream, suspend_account/,
      /^shaping\.rules\[3\] \(rule "norate"\)\.match\.code: must be a reply code 200–599 or a regex, got 999/,
      /^shaping\.rules\[3\] \(rule "norate"\)\.rate: required for action throttle/,
      /^shaping\.rules\[3\] \(rule "norate"\)\.duration: must be a duration like 30m/,
      /^shaping\.rules\[4\] \(rule "ratewrong"\)\.rate: only action throttle takes a rate/,
      /^shaping\.rules\[4\] \(rule "ratewrong"\)\.duration: must be at most 30d/,
      /^shaping\.rules\[5\] \(rule "thresh"\)\.match\.enhanced: not a valid regular expression/,
      /^shaping\.rules\[5\] \(rule "thresh"\)\.threshold: matches per window/,
      /^shaping\.rules\[6\]\.name: required/,
      /^shaping\.rules\[7\] \(rule "broken"\): a second rule with this name/,
      /^shaping\.rules\[8\] \(rule "typo"\)\.match\.txt: unknown key/,
      /^shaping\.rules\[8\] \(rule "typo"\)\.extra: unknown key/,
    );
  });

  it('checks the written forms of rates, sites and durations', () => {
    assertProblems(
      problemsOf({
        providers: { google: { max_message_rate: ['10/s', '20/sec', 'lots'] } },
        sites: {
          'provider:google': { max_connections: 1 },
          'mx1.a.test,,mx2.a.test': {},
          'mx2.a.test,mx1.a.test': {},
          'MX1.A.TEST, mx2.a.test': {},
          'host:relay.example:99999': {},
          com: {},
        },
      }),
      /^shaping\.providers\.google\.max_message_rate\[1\]: a second rate for the same window/,
      /^shaping\.providers\.google\.max_message_rate\[2\]: must be a rate like 10\/s, 600\/min or 5000\/h, got "lots"/,
      /^shaping\.sites\.provider:google: configure provider sites under shaping\.providers\.google/,
      /^shaping\.sites\.mx1\.a\.test,,mx2\.a\.test: a site key is a comma-separated list of MX hosts/,
      /^shaping\.sites\.MX1\.A\.TEST, mx2\.a\.test: the same site as mx2\.a\.test,mx1\.a\.test/,
      /^shaping\.sites\.host:relay\.example:99999: a smarthost site is host:<host name>:<port>/,
      /^shaping\.sites\.com: must be an MX host name or suffix/,
    );
  });

  it('catches conflicts with the shipped providers and between keys', () => {
    assertProblems(
      problemsOf({
        providers: { newcomer: { max_connections: 2 }, gmail2: { mx: ['google.com'] } },
        rules: [
          { name: 'no-such-shipped-rule', enabled: false },
          { name: 'r', provider: 'nobody', match: { code: 421 }, action: 'suspend_site', duration: '1h' },
        ],
      }),
      /^shaping\.providers\.newcomer\.mx: required for a new provider \(shipped providers: google, yahoo,/,
      /^shaping\.rules\[0\] \(rule "no-such-shipped-rule"\)\.enabled: no shipped rule has this name/,
    );
    assertProblems(
      problemsOf({ providers: { gmail2: { mx: ['google.com'] } } }),
      /^shaping\.providers\.gmail2\.mx: google\.com is already claimed by provider google/,
    );
    // Between keys (checked once each key is valid on its own).
    assertProblems(
      problemsOf({
        sites: { 'l.google.com': { max_connections: 1 } },
        rules: [
          { name: 'r', provider: 'nobody', match: { code: 421 }, action: 'suspend_site', duration: '1h' },
        ],
      }),
      /shaping\.sites\.l\.google\.com: MX hosts under l\.google\.com belong to provider google; set its limits under shaping\.providers\.google/,
      /shaping\.rules\[0\]\.provider: no provider named nobody \(known: google,/,
    );
    // A provider the operator adds can be named by a rule.
    const config = load({
      overrides: {
        shaping: {
          providers: { 'mailbox-org': { mx: ['mailbox.org'] } },
          rules: [
            {
              name: 'r',
              provider: 'mailbox-org',
              match: { code: 421 },
              action: 'suspend_site',
              duration: '1h',
            },
          ],
        },
      },
    });
    assert.equal(config.shaping.rules.length, 1);
  });

  it('validates the circuit settings', () => {
    assertProblems(
      problemsOf({ circuit: { failures: 0, backoff: '2d', jitter: '150%' } }),
      /^shaping\.circuit\.failures: must be between 1 and 1000/,
      /^shaping\.circuit\.backoff: must be greater than 0 and at most 1d/,
      /^shaping\.circuit\.jitter: must be a fraction below 1 like 0\.2 or a percentage like 20%, got "150%"/,
    );
    assert.throws(
      () => load({ yaml: 'shaping:\n  circuit: { backoff: 0, unknown: 1 }\n  speed: fast\n' }),
      (err: ConfigError) =>
        err.problems.includes('shaping.circuit.unknown: unknown key') &&
        err.problems.includes('shaping.speed: unknown key') &&
        err.problems.some((p) => p.startsWith('shaping.circuit.backoff: must be greater than 0')),
    );
  });
});
