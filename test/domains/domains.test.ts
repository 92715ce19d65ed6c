/**
 * The sending-domain service over a real SQLite store and a DNS server on loopback: the records
 * it asks for, verification when they are published, DKIM rotation, trust, and the refusals.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAccount } from '../../src/auth/accounts.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createCheckResolver } from '../../src/domains/checks/resolver.ts';
import type { DnsRecord } from '../../src/domains/dns-records.ts';
import { createDomains, DomainError } from '../../src/domains/domains.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { Account } from '../../src/store/types.ts';
import { startDnsServer, type TestDnsServer, type ZoneRecords } from '../support/dns-server.ts';
import { tempDir } from '../support/temp-dir.ts';

/** Publishes records in the test DNS server (TXT strings as given, MX, CNAME). */
function publish(dns: TestDnsServer, records: DnsRecord[]): void {
  const byName = new Map<string, ZoneRecords>();
  for (const r of records) {
    const zone = byName.get(r.name) ?? {};
    if (r.type === 'TXT') zone.TXT = [...(zone.TXT ?? []), r.value];
    if (r.type === 'CNAME') zone.CNAME = [r.value];
    if (r.type === 'MX') zone.MX = [{ preference: r.priority, exchange: r.value }];
    byName.set(r.name, zone);
  }
  for (const [name, zone] of byName) dns.set(name, zone);
}

describe('sending domains', () => {
  const dir = tempDir();
  const store = new SqliteStore(join(dir.path, 'postbote.db'));
  let dns: TestDnsServer;
  let now = Date.parse('2026-11-28T10:00:00Z');
  let shop: Account;
  let other: Account;
  let domains: ReturnType<typeof createDomains>;
  let resolve: ReturnType<typeof createCheckResolver>;

  before(async () => {
    await store.migrate();
    shop = await createAccount(store, 'shop', now);
    other = await createAccount(store, 'other', now);
    dns = await startDnsServer({
      zones: {
        'mx.relay.test': { A: ['192.0.2.25'] },
        'relay.test': { A: ['192.0.2.80'] },
        '10.2.0.192.in-addr.arpa': { PTR: ['relay.test'] },
        'mail.relay.test': { A: ['192.0.2.10'] },
      },
    });
    const config = loadConfig({
      env: {},
      cwd: dir.path,
      overrides: {
        hostname: 'relay.test',
        domains: { mx_host: 'mx.relay.test', public_ips: ['192.0.2.10'] },
      },
    });
    domains = createDomains({ store, clock: () => now, config });
    resolve = createCheckResolver({ servers: [dns.address], timeoutMs: 2000 });
  });
  after(async () => {
    await dns.close();
    await store.close();
    dir.cleanup();
  });

  it('add: an RSA-2048 key and every record to publish, on the configured names', async () => {
    const view = await domains.add(shop, 'Shop.Test.');
    assert.equal(view.domain.domain, 'shop.test');
    assert.equal(view.domain.returnPath, 'pb-bounces.shop.test');
    assert.equal(view.domain.trackingHost, 'pb-track.shop.test');
    assert.equal(view.domain.verifiedAt, null);
    assert.deepEqual(
      view.keys.map((k) => [k.algorithm, k.state]),
      [['rsa', 'active']],
    );
    const records = await domains.records(view);
    const find = (purpose: string) => records.filter((r) => r.purpose === purpose);
    assert.equal(find('dkim')[0]?.name, `${view.keys[0]?.selector}._domainkey.shop.test`);
    assert.match(find('dkim')[0]?.value ?? '', /^v=DKIM1; k=rsa; p=/);
    assert.equal(find('spf')[0]?.name, 'pb-bounces.shop.test');
    assert.match(find('spf')[0]?.value ?? '', /^v=spf1 ip4:192\.0\.2\.10 ~all$/);
    assert.equal(find('dmarc')[0]?.name, '_dmarc.shop.test');
    assert.equal(find('return_path')[0]?.value, 'mx.relay.test');
    assert.equal(find('tracking')[0]?.value, 'relay.test');
  });

  it('refuses a bad name, a domain of another account, and unknown domains', async () => {
    await assert.rejects(
      domains.add(shop, 'not a domain'),
      (e: unknown) => (e as DomainError).code === 'invalid_domain',
    );
    await assert.rejects(
      domains.add(other, 'shop.test'),
      (e: unknown) => (e as DomainError).code === 'domain_taken',
    );
    await assert.rejects(domains.add(shop, 'shop.test'), /already has/);
    await assert.rejects(
      domains.get('nothing.test'),
      (e: unknown) => (e as DomainError).code === 'domain_not_found',
    );
    await assert.rejects(
      domains.get('shop.test', other.id),
      (e: unknown) => (e as DomainError).code === 'domain_not_found',
    );
  });

  it('check: missing records are explained and nothing is verified; published, the domain verifies', async () => {
    const view = await domains.get('shop.test');
    const before = await domains.check(view, resolve);
    assert.equal(before.verified, false);
    const dkim = before.results.find((r) => r.record === 'dkim');
    assert.equal(dkim?.status, 'missing');
    assert.ok(dkim?.fix, 'a missing record comes with what to publish');
    assert.equal(before.results.find((r) => r.record === 'spf')?.status, 'missing');

    publish(dns, await domains.records(view));
    now += 60_000;
    const after = await domains.check(await domains.get('shop.test'), resolve);
    assert.equal(after.verified, true);
    assert.ok(after.changes.includes('verified'));
    const statuses = Object.fromEntries(after.results.map((r) => [r.record, r.status]));
    assert.deepEqual(
      {
        spf: statuses.spf,
        dkim: statuses.dkim,
        dmarc: statuses.dmarc,
        return_path: statuses.return_path,
        tracking: statuses.tracking,
      },
      { spf: 'ok', dkim: 'ok', dmarc: 'ok', return_path: 'ok', tracking: 'ok' },
    );
    assert.ok(
      after.changes.some((c) => c.startsWith('dkim ') && c.endsWith('missing → ok')),
      after.changes.join('; '),
    );
    const stored = await domains.get('shop.test');
    assert.equal(stored.domain.verifiedBy, 'dns');
    assert.equal(stored.domain.checkedAt, now);
    // What changed is an event of the account, whoever ran the check.
    const [event] = await store.listEvents({
      accountId: shop.id,
      types: ['domain_status_changed'],
      limit: 1,
    });
    assert.equal(event?.data.domain, 'shop.test');
    assert.ok(((event?.data.changes ?? []) as string[]).includes('verified'));
  });

  it('a wrong DKIM record is reported with the expected value', async () => {
    const view = await domains.get('shop.test');
    const name = `${view.keys[0]?.selector}._domainkey.shop.test`;
    dns.set(name, { TXT: ['v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwrong'] });
    const result = await domains.check(view, resolve);
    const dkim = result.results.find((r) => r.record === 'dkim');
    assert.equal(dkim?.status, 'wrong');
    assert.match(dkim?.fix ?? '', /p=/);
    assert.equal(result.verified, true, 'verification, once earned, stays');
    publish(
      dns,
      (await domains.records(view)).filter((r) => r.purpose === 'dkim'),
    );
  });

  it('rotate-dkim: a pending key, then the new one active and the old retired once its record verifies', async () => {
    const view = await domains.get('shop.test');
    const old = view.keys[0]?.selector;
    now += 1000;
    const [pending] = await domains.rotate(view);
    assert.equal(pending?.state, 'pending');
    assert.notEqual(pending?.selector, old);
    const signing = await store.signingDomains();
    assert.deepEqual(
      signing.find((d) => d.domain === 'shop.test')?.keys.map((k) => k.state),
      ['active', 'pending'],
      'both keys sign during the rotation',
    );
    // Not published yet: nothing changes.
    await domains.check(await domains.get('shop.test'), resolve);
    assert.deepEqual(
      (await domains.get('shop.test')).keys.map((k) => k.state),
      ['active', 'pending'],
    );
    publish(
      dns,
      (await domains.records(await domains.get('shop.test'))).filter((r) => r.purpose === 'dkim'),
    );
    const done = await domains.check(await domains.get('shop.test'), resolve);
    assert.ok(done.changes.includes(`key ${old} retired`), done.changes.join('; '));
    assert.deepEqual(
      (await domains.get('shop.test')).keys.map((k) => [k.selector, k.state]),
      [
        [old, 'retired'],
        [pending?.selector, 'active'],
      ],
    );
    const records = await domains.records(await domains.get('shop.test'));
    assert.deepEqual(
      records.filter((r) => r.purpose === 'dkim').map((r) => r.name),
      [`${pending?.selector}._domainkey.shop.test`],
      'a retired key is no longer asked for',
    );
  });

  it('trust: an administrator verifies a domain without DNS; it gets keys all the same', async () => {
    const view = await domains.trust(other, 'other.test');
    assert.equal(view.domain.verifiedBy, 'admin');
    assert.equal(view.keys.length, 1);
    await assert.rejects(domains.trust(other, 'shop.test'), /another account/);
    assert.deepEqual(
      (await domains.list(other.id)).map((d) => d.domain),
      ['other.test'],
    );
    await domains.remove(view);
    assert.deepEqual(await domains.list(other.id), []);
  });

  it('a node that does not know the addresses it sends from: add is refused (no SPF record to write), trust works without SPF', async () => {
    const bare = createDomains({
      store,
      clock: () => now,
      config: loadConfig({ env: {}, cwd: dir.path, overrides: { hostname: 'relay.test' } }),
    });
    await assert.rejects(
      bare.add(other, 'unsure.test'),
      (err: unknown) =>
        err instanceof DomainError &&
        err.code === 'sending_addresses_unknown' &&
        /public_ips/.test(err.message),
    );
    assert.equal(await store.getDomain('unsure.test'), undefined, 'nothing was stored');
    const trusted = await bare.trust(other, 'unsure.test');
    const records = await bare.records(trusted);
    assert.ok(records.some((r) => r.purpose === 'dkim'));
    assert.ok(!records.some((r) => r.purpose === 'spf'), 'no SPF record without a sending address');
    await bare.remove(trusted);
  });
});
