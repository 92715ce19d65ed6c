/** A site's `tls: required` (shaping.sites) overrides delivery.starttls: no plaintext to that site. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createMxDestination } from '../../src/delivery/destination.ts';
import { createSessionPool } from '../../src/delivery/session-pool.ts';
import { createShapingPolicy } from '../../src/delivery/shaping/policy.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startScriptedSink } from '../support/scripted-sink.ts';
import { load } from './routing/load.ts';

it("a site with tls: required gets nothing in plaintext; other sites keep delivery.starttls' opportunistic TLS", async (t) => {
  const sink = await startScriptedSink({ host: '127.0.0.8' });
  const pool = createSessionPool({
    maxConnectionsPerKey: 1,
    ehloName: 'relay.postbote.test',
    connectTimeoutMs: 2000,
  });
  t.after(async () => {
    await pool.close();
    await sink.close();
  });
  const config = load({ shaping: { sites: { 'mx.strict.test': { tls: 'required' } } } });
  const destination = createMxDestination({
    resolver: {
      mx: async (domain: string) => [{ exchange: `mx.${domain}`, priority: 10 }],
      a: async () => ['127.0.0.8'],
      aaaa: async () => [],
    },
    pool,
    port: sink.port,
    allowPrivate: true,
    starttls: 'opportunistic',
    shaping: createShapingPolicy(config),
    logger: silentLogger(),
  });
  const send = (domain: string) =>
    destination.deliver({
      domain,
      mailFrom: 'app@sender.test',
      recipients: [`someone@${domain}`],
      dsn: {},
      body: Buffer.from('Subject: tls\r\n\r\nhello\r\n'),
    });
  const strict = await send('strict.test');
  assert.equal(strict.recipients[0]?.outcome, 'temporary');
  assert.equal(sink.transactions.length, 0, 'nothing sent in plaintext to the strict site');
  const relaxed = await send('relaxed.test');
  assert.equal(relaxed.recipients[0]?.outcome, 'delivered');
  assert.equal(sink.transactions.length, 1);
});
