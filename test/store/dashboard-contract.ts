import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Store } from '../../src/store/store.ts';
import { type DashboardUser, HOLD_REASON } from '../../src/store/types.ts';
import { withStoreOf } from './adapters.ts';
import { sampleMessage, T0 } from './contract.ts';

/** The store's part of the dashboard (schema SQLite v14 / PostgreSQL v15), on every adapter. */
export function dashboardContract(
  name: string,
  open: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
): void {
  const withStore = withStoreOf(open);
  const user = (id: string, accountId: string, email: string): DashboardUser => ({
    id,
    accountId,
    email,
    role: 'admin',
    passwordHash: 'scrypt$x',
    createdAt: T0,
    passwordChangedAt: T0,
  });

  describe(`Store contract, dashboard users and sessions: ${name}`, () => {
    it('users: unique e-mail, per account listing, password change and delete end sessions', async () => {
      await withStore(async (store) => {
        await store.createAccount({ id: 'a1', name: 'one', createdAt: T0 });
        await store.createAccount({ id: 'a2', name: 'two', createdAt: T0 });
        await store.createDashboardUser(user('u1', 'a1', 'b@x.test'));
        await store.createDashboardUser(user('u2', 'a1', 'a@x.test'));
        await store.createDashboardUser(user('u3', 'a2', 'c@x.test'));
        await assert.rejects(store.createDashboardUser(user('u4', 'a2', 'a@x.test')));
        assert.deepEqual(
          (await store.listDashboardUsers('a1')).map((u) => u.email),
          ['a@x.test', 'b@x.test'],
        );
        assert.equal((await store.listDashboardUsers()).length, 3);
        assert.deepEqual(await store.findDashboardUser('a@x.test'), user('u2', 'a1', 'a@x.test'));
        const session = { id: 's1', userId: 'u2', csrfToken: 't', createdAt: T0, lastSeenAt: T0 };
        await store.createDashboardSession(session);
        assert.deepEqual(await store.getDashboardSession('s1'), session);
        await store.touchDashboardSession('s1', T0 + 5);
        assert.equal((await store.getDashboardSession('s1'))?.lastSeenAt, T0 + 5);
        assert.equal(await store.setDashboardPassword('u2', 'scrypt$y', T0 + 10), true);
        assert.equal(await store.getDashboardSession('s1'), undefined, 'a new password ends the sessions');
        assert.equal((await store.getDashboardUser('u2'))?.passwordHash, 'scrypt$y');
        await store.createDashboardSession({ ...session, id: 's2' });
        assert.equal(await store.deleteDashboardUser('u2'), true);
        assert.equal(await store.getDashboardSession('s2'), undefined);
        assert.equal(await store.deleteDashboardUser('u2'), false);
        assert.equal(await store.setDashboardPassword('u2', 'h', T0), false);
      });
    });

    it('sessions: delete one, purge the idle and the too old', async () => {
      await withStore(async (store) => {
        await store.createAccount({ id: 'a1', name: 'one', createdAt: T0 });
        await store.createDashboardUser(user('u1', 'a1', 'a@x.test'));
        const s = (id: string, createdAt: number, lastSeenAt: number) =>
          store.createDashboardSession({ id, userId: 'u1', csrfToken: 't', createdAt, lastSeenAt });
        await s('idle', T0, T0);
        await s('old', T0 - 1000, T0 + 500);
        await s('live', T0, T0 + 500);
        await s('gone', T0, T0 + 500);
        await store.deleteDashboardSession('gone');
        assert.equal(await store.purgeDashboardSessions(T0 + 100, T0 - 10), 2);
        assert.ok(await store.getDashboardSession('live'));
        assert.equal(await store.getDashboardSession('idle'), undefined);
        assert.equal(await store.getDashboardSession('old'), undefined);
        assert.equal(await store.getDashboardSession('gone'), undefined);
      });
    });
    it('the queue of one account: summaries by domain and site, hold and release (retryNow)', async () => {
      await withStore(async (store) => {
        await store.createAccount({ id: 'a1', name: 'one', createdAt: T0 });
        await store.createAccount({ id: 'a2', name: 'two', createdAt: T0 });
        const mine = sampleMessage('a1', ['a@slow.test', 'b@slow.test', 'c@other.test']);
        const theirs = sampleMessage('a2', ['d@slow.test', 'e@theirs.test']);
        await store.insertMessages([mine, theirs]);
        const domains = (rows: { domain: string; queued: number }[]) =>
          rows.map((r) => `${r.domain}:${r.queued}`).sort();
        assert.deepEqual(domains(await store.queueSummary(T0, 'a1')), ['other.test:1', 'slow.test:2']);
        assert.deepEqual(domains(await store.queueSummary(T0, 'a2')), ['slow.test:1', 'theirs.test:1']);
        assert.deepEqual(domains(await store.queueSummary(T0)), [
          'other.test:1',
          'slow.test:3',
          'theirs.test:1',
        ]);
        const sites = await store.queueSiteSummary(T0, 'a1');
        assert.deepEqual(
          sites.map((s) => [s.site, s.ready, s.domains]),
          [['', 3, 2]],
        );
        assert.equal((await store.queueSiteSummary(T0))[0]?.ready, 5);

        // Hold by domain within the account: the other account's recipient at that domain stays.
        assert.equal(await store.hold({ domain: 'slow.test', accountId: 'a1' }, T0 + 10), 2);
        assert.equal(await store.hold({ domain: 'slow.test', accountId: 'a1' }, T0 + 11), 0, 'held already');
        assert.equal(await store.hold({ messageId: theirs.id, accountId: 'a1' }, T0 + 12), 0);
        const states = async (id: string) => (await store.getRecipients(id)).map((r) => r.state);
        assert.deepEqual(await states(mine.id), ['held', 'held', 'queued']);
        assert.deepEqual(await states(theirs.id), ['queued', 'queued']);
        const held = (await store.getEvents(mine.id)).filter((e) => e.type === 'held');
        assert.deepEqual(
          held.map((e) => [e.recipient, e.data.reason, e.data.details]),
          [
            ['a@slow.test', 'operator', HOLD_REASON],
            ['b@slow.test', 'operator', HOLD_REASON],
          ],
        );
        assert.deepEqual(await store.heldSummary(), [
          { accountId: 'a1', stream: 'outbound', reason: 'operator', count: 2 },
        ]);
        assert.deepEqual(domains(await store.queueSummary(T0 + 20, 'a1')), ['other.test:1']);
        // Nothing leases held mail.
        const leased = await store.leaseDue({
          owner: 'n1',
          now: T0 + 20,
          limit: 10,
          leaseUntil: T0 + 60_000,
        });
        assert.deepEqual(leased.map((r) => r.address).sort(), [
          'c@other.test',
          'd@slow.test',
          'e@theirs.test',
        ]);
        // Release = retry now: queued again and due.
        assert.equal(await store.retryNow({ messageId: mine.id, accountId: 'a1' }, T0 + 30), 2);
        assert.deepEqual(await states(mine.id), ['queued', 'queued', 'delivering']);
        assert.equal((await store.getRecipients(mine.id))[0]?.nextAttemptAt, T0 + 30);
      });
    });
  });
}
