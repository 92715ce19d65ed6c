/**
 * What a failed webhook attempt leads to over time (issue 9: "retries … for at least 24 h",
 * "an endpoint failing for a day is disabled with an event"): driven by a fake clock against a
 * real receiver on loopback that answers 503, then 200.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { WebhookBatch, WebhookEndpoint } from '../../src/store/types.ts';
import { attemptBatch } from '../../src/webhooks/attempt.ts';
import type { WebhookSettings } from '../../src/webhooks/settings.ts';

const HOUR = 3_600_000;
const T0 = Date.parse('2026-11-28T10:00:00Z');

describe('webhook attempts over a day', () => {
  let server: Server;
  let status = 503;
  let url = '';
  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(status).end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const settings: WebhookSettings = {
    batchSize: 100,
    batchWaitMs: 1000,
    timeoutMs: 2000,
    retryFirstMs: 30_000,
    retryForMs: 25 * HOUR,
    disableAfterMs: 24 * HOUR,
    concurrency: 2,
    policy: { allowPrivate: true, allowHosts: [] },
  };

  async function setup() {
    const store = new SqliteStore(':memory:');
    await store.migrate();
    await store.createAccount({ id: 'acct', name: 'acme', createdAt: T0 });
    const endpoint: WebhookEndpoint = {
      id: 'wh1',
      accountId: 'acct',
      url,
      secret: 'whsec_c2VjcmV0c2VjcmV0c2VjcmV0',
      eventTypes: [],
      enabled: true,
      disabledReason: '',
      disabledAt: null,
      failingSince: null,
      createdAt: T0,
    };
    await store.createWebhook(endpoint);
    const batch = (id: string, createdAt: number): WebhookBatch => ({
      id,
      webhookId: 'wh1',
      accountId: 'acct',
      kind: 'events',
      firstEventId: 1,
      lastEventId: 1,
      count: 1,
      body: '{"events":[]}',
      state: 'pending',
      attempts: 0,
      nextAttemptAt: createdAt,
      createdAt,
      updatedAt: createdAt,
      lastError: '',
    });
    return { store, endpoint, batch };
  }

  it('keeps retrying a failing endpoint, disables it after a day of failures with an event, and fails its batches', async () => {
    const { store, endpoint, batch } = await setup();
    let now = T0;
    const deps = { store, settings, clock: () => now, random: () => 0.5 };
    await store.enqueueWebhookBatches([batch('b1', T0), batch('b2', T0)]);
    status = 503;
    await attemptBatch(deps, endpoint, batch('b1', T0));
    const [b1] = (await store.listWebhookBatches('wh1', 10)).filter((b) => b.id === 'b1');
    assert.equal(b1?.state, 'pending', 'a 503 is retried');
    assert.ok((b1?.nextAttemptAt ?? 0) - now <= 60_000, 'the first retry within a minute');
    assert.equal((await store.getWebhook('wh1'))?.failingSince, T0);

    // Twenty-three hours of failures later it is still enabled.
    now = T0 + 23 * HOUR;
    await attemptBatch(deps, endpoint, { ...batch('b1', T0), attempts: 10 });
    assert.equal((await store.getWebhook('wh1'))?.enabled, true);

    // A day after the first failure: disabled, with a webhook_disabled event, batches failed.
    now = T0 + 24 * HOUR + 1;
    await attemptBatch(deps, endpoint, { ...batch('b1', T0), attempts: 11 });
    const disabled = await store.getWebhook('wh1');
    assert.deepEqual([disabled?.enabled, disabled?.disabledReason], [false, 'failing']);
    assert.ok((await store.listWebhookBatches('wh1', 10)).every((b) => b.state === 'failed'));
    const events = await store.listEvents({ accountId: 'acct', limit: 10 });
    assert.equal(events[0]?.type, 'webhook_disabled');
    assert.equal(events[0]?.data.reason, 'failing');
    await store.close();
  });

  it('a success clears the failing streak; a batch older than retry_for is given up', async () => {
    const { store, endpoint, batch } = await setup();
    let now = T0;
    const deps = { store, settings, clock: () => now, random: () => 0.5 };
    await store.enqueueWebhookBatches([batch('b1', T0), batch('old', T0 - 26 * HOUR)]);
    status = 503;
    await attemptBatch(deps, endpoint, batch('b1', T0));
    assert.equal((await store.getWebhook('wh1'))?.failingSince, T0);
    status = 200;
    now = T0 + HOUR;
    await attemptBatch(deps, endpoint, { ...batch('b1', T0), attempts: 1 });
    assert.equal((await store.getWebhook('wh1'))?.failingSince, null);
    status = 503;
    await attemptBatch(deps, endpoint, batch('old', T0 - 26 * HOUR));
    const old = (await store.listWebhookBatches('wh1', 10)).find((b) => b.id === 'old');
    assert.equal(old?.state, 'failed', 'retried for 25 h, then dropped');
    await store.close();
  });
});
