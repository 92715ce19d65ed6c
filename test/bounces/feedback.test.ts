/**
 * What bounces do to suppression lists: a hard bounce of the mailbox suppresses at once, soft
 * ones after the configured count within the window, sender-side refusals never.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createBounceFeedback } from '../../src/bounces/feedback.ts';
import { createSuppressions } from '../../src/bounces/suppressions.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../support/temp-dir.ts';

describe('bounce feedback', () => {
  const dir = tempDir();
  const store = new SqliteStore(join(dir.path, 'postbote.db'));
  let now = 1_800_000_000_000;
  const clock = () => now;
  const suppressions = createSuppressions({ store, clock, transactionalIgnoresUnsubscribes: true });
  const feedback = createBounceFeedback({
    store,
    suppressions,
    clock,
    logger: silentLogger(),
    softLimit: 3,
    softWindowMs: 7 * 86_400_000,
  });
  const listed = async (address: string) =>
    (await store.listSuppressions({ accountId: 'a1', address }))[0]?.reason;

  before(async () => {
    await store.migrate();
    await store.createAccount({ id: 'a1', name: 'shop', createdAt: now });
  });
  after(async () => {
    await store.close();
    dir.cleanup();
  });

  const bounce = (address: string, category: string, permanent: boolean) =>
    feedback.bounce({ accountId: 'a1', address, category, permanent, source: 'm1', details: '550 5.1.1 no' });

  it('a permanent unknown user suppresses at once (hard_bounce, with its category)', async () => {
    await bounce('gone@example.org', 'unknown_user', true);
    const [entry] = await store.listSuppressions({ accountId: 'a1', address: 'gone@example.org' });
    assert.deepEqual([entry?.reason, entry?.category, entry?.source], ['hard_bounce', 'unknown_user', 'm1']);
  });

  it('refusals about the sender (reputation, policy, content) never suppress the recipient', async () => {
    for (const category of ['reputation_block', 'policy', 'content_rejected', 'rate_limited', 'network']) {
      await bounce('fine@example.org', category, true);
    }
    assert.equal(await listed('fine@example.org'), undefined);
  });

  it('soft bounces suppress after the limit within the window, not before, not when spread out', async () => {
    await bounce('full@example.org', 'mailbox_full', false);
    await bounce('full@example.org', 'mailbox_full', false);
    assert.equal(await listed('full@example.org'), undefined);
    await bounce('full@example.org', 'mailbox_full', false);
    assert.equal(await listed('full@example.org'), 'soft_bounces');

    for (let i = 0; i < 3; i++) {
      await bounce('slow@example.org', 'mailbox_full', false);
      now += 8 * 86_400_000;
    }
    assert.equal(await listed('slow@example.org'), undefined, 'three in three weeks is not three in a week');
  });

  it('a complaint suppresses', async () => {
    await feedback.complaint({
      accountId: 'a1',
      address: 'angry@example.org',
      source: 'm2',
      details: 'abuse',
    });
    assert.equal(await listed('angry@example.org'), 'complaint');
  });
});
