import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createDsnSender } from '../../src/delivery/dsn-sender.ts';
import type { FinalFailure } from '../../src/delivery/scheduler.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { DsnNotify } from '../../src/store/types.ts';

const T0 = Date.parse('2026-11-28T12:00:00Z');

async function setup(options: { mailFrom?: string; notify?: DsnNotify[]; dsnOnFailure?: boolean } = {}) {
  const store = new SqliteStore(':memory:');
  await store.migrate();
  await store.createAccount({ id: 'acct', name: 'acct', createdAt: T0 });
  await store.insertMessages([
    {
      id: 'm1',
      accountId: 'acct',
      credentialId: null,
      mailFrom: options.mailFrom ?? 'app@shop.example',
      recipients: [{ address: 'gone@example.net', domain: 'example.net', dsn: { notify: options.notify } }],
      body: Buffer.from('Subject: Your order\r\nMessage-ID: <o1@shop.example>\r\n\r\nThanks!\r\n'),
      messageIdHeader: '<o1@shop.example>',
      subject: 'Your order',
      source: 'smtp',
      clientIp: '127.0.0.1',
      dsn: { envid: 'order-1' },
      dsnOnFailure: options.dsnOnFailure ?? true,
      receivedAt: T0,
    },
  ]);
  const [leased] = await store.leaseDue({ owner: 'n', now: T0, limit: 1, leaseUntil: T0 + 1000 });
  assert.ok(leased);
  const failure: FinalFailure = {
    recipient: leased,
    outcome: {
      at: T0 + 5000,
      recipientId: leased.id,
      messageId: 'm1',
      accountId: 'acct',
      recipient: leased.address,
      state: 'bounced',
      attempted: true,
      reply: { code: 550, enhanced: '5.1.1', text: 'No such user' },
      event: null,
    },
    remoteMta: 'mx.example.net',
  };
  const sender = createDsnSender({
    store,
    clock: () => T0 + 6000,
    hostname: 'relay.test',
    logger: silentLogger(),
  });
  const dsns = async () => (await store.listMessages({})).filter((m) => m.source === 'dsn');
  return { store, sender, failure, dsns };
}

describe('DSN sender', () => {
  it('queues one RFC 3464 report from the null sender to the envelope sender', async () => {
    const t = await setup();
    assert.equal(await t.sender.send([t.failure]), 1);
    const [dsn] = await t.dsns();
    assert.ok(dsn);
    assert.equal(dsn.mailFrom, '');
    assert.deepEqual(
      dsn.recipients.map((r) => r.address),
      ['app@shop.example'],
    );
    const body = (await t.store.getBody(dsn.id))?.toString() ?? '';
    assert.match(body, /Content-Type: multipart\/report; report-type=delivery-status/i);
    assert.match(body, /Final-Recipient: rfc822; ?gone@example\.net/i);
    assert.match(body, /Status: 5\.1\.1/);
    assert.match(body, /Diagnostic-Code: smtp; 550 5\.1\.1 No such user/);
    assert.match(body, /Original-Envelope-Id: order-1/);
    assert.match(body, /Subject: Your order/, 'the original headers are returned');
    await t.store.close();
  });

  it('sends nothing for NOTIFY=NEVER, for NOTIFY without FAILURE, for the null sender, or when turned off', async () => {
    for (const options of [
      { notify: ['NEVER'] as DsnNotify[] },
      { notify: ['SUCCESS', 'DELAY'] as DsnNotify[] },
      { mailFrom: '' },
      { dsnOnFailure: false },
    ]) {
      const t = await setup(options);
      assert.equal(await t.sender.send([t.failure]), 0, JSON.stringify(options));
      assert.equal((await t.dsns()).length, 0);
      await t.store.close();
    }
  });
});
