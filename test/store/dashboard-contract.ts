import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Store } from '../../src/store/store.ts';
import type { DashboardUser } from '../../src/store/types.ts';
import { T0 } from './contract.ts';

/** The store's part of the dashboard (schema SQLite v14 / PostgreSQL v15), on every adapter. */
export function dashboardContract(
  name: string,
  open: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
): void {
  async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
    const { store, cleanup } = await open();
    try {
      await fn(store);
    } finally {
      await cleanup();
    }
  }
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
  });
}
