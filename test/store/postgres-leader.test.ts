import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startLeaderLock } from '../../src/store/postgres/leader-lock.ts';
import type { LeaderLock } from '../../src/store/store.ts';
import { freshSchemaName, postgresOrSkip, testDatabaseUrl as url } from '../support/postgres.ts';

const admin = await postgresOrSkip('the leader lock tests');

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail('condition not reached in time');
    await sleep(10);
  }
}

if (admin) {
  after(() => admin.end());

  describe('leader lock (PostgreSQL advisory lock)', () => {
    it('elects exactly one of three nodes, per schema; the next takes over when the leader stops', async () => {
      const schema = freshSchemaName('postbote_leader');
      const other = freshSchemaName('postbote_leader');
      const locks: LeaderLock[] = [];
      try {
        for (let i = 0; i < 3; i++) locks.push(await startLeaderLock({ url, schema, checkMs: 20 }));
        const elsewhere = await startLeaderLock({ url, schema: other, checkMs: 20 });
        locks.push(elsewhere);
        assert.equal(elsewhere.isLeader(), true, 'another deployment has its own leader');
        const leaders = () => locks.slice(0, 3).filter((l) => l.isLeader());
        assert.equal(leaders().length, 1);
        await leaders()[0]!.stop();
        await until(() => leaders().length === 1);
        await sleep(100);
        assert.equal(leaders().length, 1);
      } finally {
        for (const lock of locks) await lock.stop();
      }
    });

    it('a leader whose session dies steps down, and one node leads again', async () => {
      const schema = freshSchemaName('postbote_leader');
      const changes: boolean[] = [];
      const a = await startLeaderLock({ url, schema, checkMs: 20, onChange: (v) => changes.push(v) });
      const b = await startLeaderLock({ url, schema, checkMs: 20 });
      try {
        assert.equal(a.isLeader(), true);
        assert.equal(b.isLeader(), false);
        // As if the leader's process were killed: the server ends its session, and with it the lock.
        await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND objid = hashtext($1)::oid`,
          [schema],
        );
        await until(() => changes.includes(false));
        assert.deepEqual(changes.slice(0, 2), [true, false]);
        // Whichever node tries first after that (A reconnects too) is the one leader.
        await until(() => a.isLeader() !== b.isLeader());
        await sleep(100);
        assert.notEqual(a.isLeader(), b.isLeader());
      } finally {
        await a.stop();
        await b.stop();
      }
    });
  });
}
