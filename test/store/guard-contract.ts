import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newId } from '../../src/store/ids.ts';
import type { Store } from '../../src/store/store.ts';
import type { GuardState } from '../../src/store/types.ts';
import { withStoreOf } from './adapters.ts';
import { sampleMessage, T0 } from './contract.ts';

/**
 * The store's part of the reputation guard, the audit trail, per-account retention and privacy
 * (schema SQLite v13 / PostgreSQL v14), run on every adapter like the main contract.
 */
export function guardContract(
  name: string,
  open: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
): void {
  const withStore = withStoreOf(open);

  async function seedAccount(store: Store, accountName = 'acme'): Promise<string> {
    const id = newId(T0);
    await store.createAccount({ id, name: accountName, createdAt: T0 });
    return id;
  }

  /** Delivers or bounces every recipient of the given addresses (one lease, one outcome each). */
  async function settle(store: Store, outcomes: Record<string, 'delivered' | 'bounced'>, at: number) {
    const leased = await store.leaseDue({ owner: 'n1', now: at, limit: 1000, leaseUntil: at + 60_000 });
    await store.recordOutcomes(
      'n1',
      leased.map((r) => {
        const state = outcomes[r.address] ?? 'delivered';
        return {
          at,
          recipientId: r.id,
          messageId: r.messageId,
          accountId: r.accountId,
          recipient: r.address,
          state,
          attempted: true,
          reply: { code: state === 'delivered' ? 250 : 550, text: 'x' },
          event: { type: state, data: {} },
        };
      }),
    );
  }

  describe(`Store contract, guard/audit/retention/privacy: ${name}`, () => {
    it('audit entries: recorded, listed newest first per account, paged by id', async () => {
      await withStore(async (store) => {
        const a = await seedAccount(store);
        const b = await seedAccount(store, 'other');
        for (let i = 0; i < 3; i++) {
          await store.recordAudit([
            {
              at: T0 + i,
              actor: 'cli:root',
              accountId: a,
              action: 'credential.create',
              target: `c${i}`,
              details: { i },
            },
          ]);
        }
        await store.recordAudit([
          { at: T0, actor: 'system:guard', accountId: b, action: 'account.pause', target: '', details: {} },
        ]);
        const mine = await store.listAudit({ accountId: a });
        assert.deepEqual(
          mine.map((e) => [e.target, e.actor, e.details.i]),
          [
            ['c2', 'cli:root', 2],
            ['c1', 'cli:root', 1],
            ['c0', 'cli:root', 0],
          ],
        );
        const page = await store.listAudit({ accountId: a, before: mine[0]?.id, limit: 1 });
        assert.deepEqual(
          page.map((e) => e.target),
          ['c1'],
        );
        assert.equal((await store.listAudit({})).length, 4);
      });
    });

    it('guard counts: sends, bounces and complaints per account and stream since a time', async () => {
      await withStore(async (store) => {
        const a = await seedAccount(store);
        await store.insertMessages([
          sampleMessage(a, ['a@x.test', 'b@x.test', 'c@x.test'], {
            id: newId(T0),
            stream: 'broadcast',
            kind: 'broadcast',
          }),
          sampleMessage(a, ['d@x.test'], { id: newId(T0) }),
        ]);
        await settle(store, { 'a@x.test': 'bounced', 'b@x.test': 'bounced' }, T0 + 1000);
        const counts = await store.guardCounts({ since: T0 });
        const byStream = Object.fromEntries(counts.map((c) => [c.stream, [c.sent, c.bounced, c.complained]]));
        assert.deepEqual(byStream, { broadcast: [3, 2, 0], outbound: [1, 0, 0] });
        assert.deepEqual(await store.guardCounts({ since: T0 + 1001 }), []);
        assert.equal((await store.guardCounts({ since: T0, accountId: a, stream: 'outbound' })).length, 1);
      });
    });

    it('held recipients: stored held with a held event, never leased, released by reason', async () => {
      await withStore(async (store) => {
        const a = await seedAccount(store);
        const m = sampleMessage(a, ['a@x.test', 'b@x.test'], { id: newId(T0) });
        m.recipients[0] = { ...m.recipients[0]!, held: { reason: 'paused', details: 'account paused' } };
        m.recipients[1] = { ...m.recipients[1]!, held: { reason: 'content', details: 'no text part' } };
        await store.insertMessages([m]);
        assert.deepEqual(
          (await store.getRecipients(m.id)).map((r) => r.state),
          ['held', 'held'],
        );
        assert.deepEqual(
          (await store.getEvents(m.id)).map((e) => [e.type, e.data.reason]),
          [
            ['held', 'paused'],
            ['held', 'content'],
          ],
        );
        assert.equal(
          (await store.leaseDue({ owner: 'n1', now: T0 + 10, limit: 10, leaseUntil: T0 + 99 })).length,
          0,
        );
        const summary = (await store.heldSummary()).map((h) => [h.reason, h.count]).sort();
        assert.deepEqual(summary, [
          ['content', 1],
          ['paused', 1],
        ]);
        assert.equal(
          await store.releaseHeld({ accountId: a, reason: 'paused', now: T0 + 20, note: 'resumed' }),
          1,
        );
        assert.deepEqual(
          (await store.getRecipients(m.id)).map((r) => r.state),
          ['queued', 'held'],
        );
        const leased = await store.leaseDue({ owner: 'n1', now: T0 + 20, limit: 10, leaseUntil: T0 + 99 });
        assert.deepEqual(
          leased.map((r) => r.address),
          ['a@x.test'],
        );
        // Another stream's or reason's held mail stays.
        assert.equal(
          await store.releaseHeld({
            accountId: a,
            stream: 'broadcast',
            reason: 'content',
            now: T0 + 30,
            note: 'x',
          }),
          0,
        );
      });
    });

    it('guard states: saved and listed; an account-wide pause shows on the account', async () => {
      await withStore(async (store) => {
        const a = await seedAccount(store);
        const paused: GuardState = {
          accountId: a,
          stream: '',
          pausedAt: T0,
          pausedBy: 'system:guard',
          reason: 'bounce rate 12 %',
          resumedAt: null,
          warnedAt: T0 - 5,
        };
        await store.saveGuardState(paused);
        await store.saveGuardState({ ...paused, stream: 'broadcast', pausedAt: null, reason: '' });
        assert.equal((await store.getAccount(a))?.paused, true);
        assert.deepEqual(await store.listGuardStates(a), [
          paused,
          { ...paused, stream: 'broadcast', pausedAt: null, reason: '' },
        ]);
        await store.saveGuardState({ ...paused, pausedAt: null, resumedAt: T0 + 9 });
        assert.equal((await store.getAccount(a))?.paused, false);
        assert.equal((await store.listGuardStates()).find((s) => s.stream === '')?.resumedAt, T0 + 9);
      });
    });

    it('retention per account: overrides stored; purges limited to or excluding accounts', async () => {
      await withStore(async (store) => {
        const a = await seedAccount(store);
        const b = await seedAccount(store, 'other');
        await store.setAccountRetention({ accountId: a, bodiesMs: 1000, metadataMs: null });
        assert.deepEqual(await store.listAccountRetention(), [
          { accountId: a, bodiesMs: 1000, metadataMs: null },
        ]);
        const ma = sampleMessage(a, ['a@x.test'], { id: newId(T0) });
        const mb = sampleMessage(b, ['b@x.test'], { id: newId(T0) });
        await store.insertMessages([ma, mb]);
        await settle(store, {}, T0 + 1);
        assert.equal(await store.purgeBodies({ before: T0 + 5, limit: 10, exceptAccountIds: [a] }), 1);
        assert.equal((await store.getMessage(ma.id))?.bodyPurged, false);
        assert.equal((await store.getMessage(mb.id))?.bodyPurged, true);
        assert.equal(await store.purgeMessages({ before: T0 + 5, limit: 10, accountId: a }), 1);
        assert.equal(await store.getMessage(ma.id), undefined);
        assert.notEqual(await store.getMessage(mb.id), undefined);
        await store.setAccountRetention({ accountId: a, bodiesMs: null, metadataMs: null });
        assert.deepEqual(await store.listAccountRetention(), []);
      });
    });

    it('privacy secret: the first stored value wins', async () => {
      await withStore(async (store) => {
        assert.equal(await store.privacySecret('salt', 'one'), 'one');
        assert.equal(await store.privacySecret('salt', 'two'), 'one');
      });
    });
  });
}
