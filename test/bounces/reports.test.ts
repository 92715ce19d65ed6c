/**
 * Reports from the inbound MX: the recipient a complaint or a late bounce names, by VERP token
 * or, without one, by the enclosed Message-ID; and what is recorded.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createBounceFeedback } from '../../src/bounces/feedback.ts';
import { createReportHandler } from '../../src/bounces/reports.ts';
import { createSuppressions } from '../../src/bounces/suppressions.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { sampleMessage } from '../store/contract.ts';
import { tempDir } from '../support/temp-dir.ts';

describe('inbound reports', () => {
  const dir = tempDir();
  const store = new SqliteStore(join(dir.path, 'postbote.db'));
  const clock = () => 1_800_000_000_000;
  const suppressions = createSuppressions({ store, clock, transactionalIgnoresUnsubscribes: true });
  const record = createReportHandler({
    store,
    clock,
    logger: silentLogger(),
    feedback: createBounceFeedback({
      store,
      suppressions,
      clock,
      logger: silentLogger(),
      softLimit: 3,
      softWindowMs: 1e9,
    }),
  });
  const origin = { recipientIds: [], to: ['fbl@postbote.test'], clientIp: '192.0.2.1' };

  before(async () => {
    await store.migrate();
    await store.createAccount({ id: 'a1', name: 'shop', createdAt: clock() });
    await store.insertMessages([
      sampleMessage('a1', ['ann@example.org', 'bob@example.org'], {
        id: 'm1',
        messageIdHeader: '<orig-1@shop.test>',
      }),
    ]);
  });
  after(async () => {
    await store.close();
    dir.cleanup();
  });

  it('a complaint without a VERP token finds its recipient by the enclosed Message-ID', async () => {
    await record(
      {
        kind: 'complaint',
        format: 'arf',
        feedbackType: 'abuse',
        originalMessageId: '<orig-1@shop.test>',
        recipients: [
          { email: 'Bob@Example.org', status: '', category: 'other', permanent: false, diagnostic: '' },
        ],
      },
      origin,
    );
    const events = await store.getEvents('m1');
    const complained = events.filter((e) => e.type === 'complained');
    assert.deepEqual(
      complained.map((e) => e.recipient),
      ['bob@example.org'],
    );
    assert.equal(
      (await store.listSuppressions({ accountId: 'a1', address: 'bob@example.org' }))[0]?.reason,
      'complaint',
    );
    assert.equal((await store.listSuppressions({ accountId: 'a1', address: 'ann@example.org' })).length, 0);
  });

  it('a report that names nothing of ours changes nothing', async () => {
    await record(
      {
        kind: 'bounce',
        format: 'dsn',
        originalMessageId: '<unknown@elsewhere.test>',
        recipients: [
          {
            email: 'x@example.org',
            status: '5.1.1',
            category: 'unknown_user',
            permanent: true,
            diagnostic: '',
          },
        ],
      },
      origin,
    );
    assert.equal((await store.listSuppressions({ accountId: 'a1', address: 'x@example.org' })).length, 0);
  });
});
