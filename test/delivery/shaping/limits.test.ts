import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';
import { shareOfRates as share } from '../../../src/delivery/shaping/limits.ts';
import { createShapingPolicy } from '../../../src/delivery/shaping/policy.ts';
import { tempDir } from '../../support/temp-dir.ts';

function policyWith(overrides: Record<string, unknown>) {
  const dir = tempDir();
  try {
    return createShapingPolicy(loadConfig({ env: {}, cwd: dir.path, overrides }));
  } finally {
    dir.cleanup();
  }
}

describe('effective limits of a (source, site)', () => {
  it('uses delivery.max_connections_per_host and max_messages_per_connection for an unknown site', () => {
    const policy = policyWith({ delivery: { max_connections_per_host: 7, max_messages_per_connection: 30 } });
    assert.deepEqual(policy.limitsFor(policy.siteOf(['mx.small.test']), 'ip-a'), {
      maxConnections: 7,
      maxMessagesPerConnection: 30,
      rates: {},
    });
  });

  it('takes a provider’s shipped limits, falling back to the defaults for what it leaves out', () => {
    const policy = policyWith({ delivery: { max_connections_per_host: 7 } });
    const yahoo = policy.siteOf(['mta5.am0.yahoodns.net', 'mta6.am0.yahoodns.net']);
    assert.equal(yahoo.key, 'provider:yahoo');
    assert.deepEqual(policy.limitsFor(yahoo, 'ip-a'), {
      maxConnections: 10,
      maxMessagesPerConnection: 20,
      rates: {},
    });
  });

  it('lets the operator override a provider field by field, per source too', () => {
    const policy = policyWith({
      shaping: {
        providers: {
          google: {
            max_message_rate: ['20/s', '50000/h'],
            tls: 'required',
            sources: { 'ip-b': { max_connections: 2, max_message_rate: '5/s' } },
          },
        },
      },
    });
    const google = policy.siteOf(['aspmx.l.google.com']);
    assert.deepEqual(policy.limitsFor(google, 'ip-a'), {
      maxConnections: 10,
      maxMessagesPerConnection: 50,
      rates: { perSecond: 20, perHour: 50000 },
      tls: 'required',
    });
    // The source layer replaces the rates as a whole.
    assert.deepEqual(policy.limitsFor(google, 'ip-b'), {
      maxConnections: 2,
      maxMessagesPerConnection: 50,
      rates: { perSecond: 5 },
      tls: 'required',
    });
  });

  it('adds operator providers that roll their domains up like shipped ones', () => {
    const policy = policyWith({
      shaping: {
        providers: {
          'mailbox-org': { mx: ['mailbox.org'], max_connections: 3, max_new_connections_per_minute: 6 },
        },
      },
    });
    const site = policy.siteOf(['mxext1.mailbox.org', 'mxext2.mailbox.org']);
    assert.equal(site.key, 'provider:mailbox-org');
    assert.deepEqual(policy.limitsFor(site), {
      maxConnections: 3,
      maxMessagesPerConnection: 100,
      rates: {},
      maxNewConnectionsPerMinute: 6,
    });
  });

  it('applies site entries from the broadest suffix to the exact host set, each with its source layer', () => {
    const policy = policyWith({
      shaping: {
        sites: {
          'example.net': { max_connections: 4, max_messages_per_connection: 10 },
          'eu.example.net': { max_connections: 3, sources: { 'ip-a': { max_message_rate: '1/s' } } },
          'MX2.eu.example.net, mx1.eu.example.net': { max_messages_per_connection: 5 },
        },
      },
    });
    const exact = policy.siteOf(['mx1.eu.example.net', 'mx2.eu.example.net']);
    assert.deepEqual(policy.limitsFor(exact, 'ip-a'), {
      maxConnections: 3,
      maxMessagesPerConnection: 5,
      rates: { perSecond: 1 },
    });
    assert.deepEqual(policy.limitsFor(exact, 'ip-b'), {
      maxConnections: 3,
      maxMessagesPerConnection: 5,
      rates: {},
    });
    // Only the broad suffix: one host under example.net, the other elsewhere.
    const mixed = policy.siteOf(['mx.us.example.net', 'backup.other.test']);
    assert.deepEqual(policy.limitsFor(mixed), { maxConnections: 4, maxMessagesPerConnection: 10, rates: {} });
    // Dot boundary: notexample.net is not under example.net.
    assert.deepEqual(policy.limitsFor(policy.siteOf(['mx.notexample.net'])).maxConnections, 20);
  });

  it('gives a smarthost route only the limits of its exact host:port entry', () => {
    const policy = policyWith({
      shaping: {
        sites: {
          'host:relay.example:587': { max_connections: 50, tls: 'required' },
          'relay.example': { max_connections: 1 },
        },
      },
    });
    assert.deepEqual(policy.limitsFor(policy.smarthostSite('relay.example', 587)), {
      maxConnections: 50,
      maxMessagesPerConnection: 100,
      rates: {},
      tls: 'required',
    });
    assert.equal(policy.limitsFor(policy.smarthostSite('relay.example', 25)).maxConnections, 20);
    // The same host as an MX takes the suffix entry.
    assert.equal(policy.limitsFor(policy.siteOf(['relay.example'])).maxConnections, 1);
  });

  it('merges rules: shipped, replaced by name, switched off, added', () => {
    const policy = policyWith({
      shaping: {
        rules: [
          { name: 'generic-421-try-again-later', enabled: false },
          {
            name: 'gmail-unusual-rate',
            provider: 'google',
            match: { enhanced: '4\\.7\\.28' },
            action: 'suspend_site',
            duration: '2h',
          },
          {
            name: 'busy',
            match: { code: 421, text: 'busy' },
            action: 'throttle',
            rate: '10/min',
            duration: '15m',
          },
        ],
      },
    });
    const names = policy.rules.map((rule) => rule.name);
    assert.ok(!names.includes('generic-421-try-again-later'));
    assert.equal(names.at(-1), 'busy');
    assert.equal(policy.rules.find((rule) => rule.name === 'gmail-unusual-rate')?.action, 'suspend_site');
    assert.ok(names.includes('yahoo-tss04'));
    assert.deepEqual(policy.circuit, { failures: 5, backoffMs: 300_000, jitter: 0.2 });
  });
});

describe("shareOfRates: one node's share of a cluster-wide rate", () => {
  it('divides each window by the nodes, rounding down, moving a share under one to a longer window', () => {
    assert.deepEqual(share({ perSecond: 20 }, 1), { perSecond: 20 });
    assert.deepEqual(share({ perSecond: 20 }, 2), { perSecond: 10 });
    assert.deepEqual(share({ perSecond: 20, perHour: 5000 }, 3), { perSecond: 6, perHour: 1666 });
    assert.deepEqual(share({ perSecond: 2 }, 3), { perMinute: 40 });
    assert.deepEqual(share({ perMinute: 1 }, 2), { perHour: 30 });
    assert.deepEqual(share({ perHour: 1 }, 5), { perHour: 1 });
    // Moved to a window that already has a limit: the tighter one holds.
    assert.deepEqual(share({ perSecond: 1, perMinute: 20 }, 2), { perMinute: 10 });
    assert.deepEqual(share({}, 4), {});
  });
});
