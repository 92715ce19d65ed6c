import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type PeriodicTask, startPeriodicTasks } from '../../src/maintenance/periodic.ts';

const quiet = { info: () => {}, warn: () => {} };

/** Polls until `condition` holds; fails after `timeoutMs`. */
async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail('condition not reached in time');
    await sleep(5);
  }
}

describe('periodic tasks', () => {
  it('run only on the leader, each on its own interval, and afresh when leadership comes back', async () => {
    let now = 1_000_000;
    let leader = false;
    const runs: string[] = [];
    const task = (name: string, everyMs: number): PeriodicTask => ({
      name,
      everyMs,
      run: async () => {
        runs.push(name);
        return undefined;
      },
    });
    const periodic = startPeriodicTasks({
      tasks: [task('often', 1000), task('rare', 60_000)],
      isLeader: () => leader,
      clock: () => now,
      logger: quiet,
      tickMs: 5,
    });
    try {
      await sleep(30);
      assert.deepEqual(runs, [], 'a follower runs nothing');
      leader = true;
      await until(() => runs.length === 2);
      assert.deepEqual(runs, ['often', 'rare']);
      now += 1000;
      await until(() => runs.length === 3);
      await sleep(30);
      assert.deepEqual(runs, ['often', 'rare', 'often']);
      assert.equal(periodic.isLeader(), true);
      // Leadership lost and regained: every task runs at once in the new term.
      leader = false;
      await until(() => !periodic.isLeader());
      leader = true;
      await until(() => runs.length === 5);
      assert.deepEqual(runs.slice(3), ['often', 'rare']);
      assert.deepEqual(Object.keys(periodic.lastRuns()).sort(), ['often', 'rare']);
    } finally {
      await periodic.stop();
    }
  });

  it('a failing task does not stop the others and runs again at its next turn', async () => {
    let now = 0;
    let failures = 0;
    let okRuns = 0;
    const periodic = startPeriodicTasks({
      tasks: [
        {
          name: 'broken',
          everyMs: 100,
          run: async () => {
            failures++;
            throw new Error('database on fire');
          },
        },
        {
          name: 'fine',
          everyMs: 100,
          run: async () => {
            okRuns++;
            return undefined;
          },
        },
      ],
      isLeader: () => true,
      clock: () => now,
      logger: quiet,
      tickMs: 5,
    });
    try {
      await until(() => okRuns === 1);
      now += 100;
      await until(() => okRuns === 2);
      assert.equal(failures, 2);
      assert.deepEqual(periodic.lastRuns(), { broken: { at: 100, ok: false }, fine: { at: 100, ok: true } });
    } finally {
      await periodic.stop();
    }
  });

  it('losing leadership or stopping aborts a running task', async () => {
    let leader = true;
    let aborted = 0;
    const periodic = startPeriodicTasks({
      tasks: [
        {
          name: 'long',
          everyMs: 1000,
          run: (_now, signal) =>
            new Promise((resolve) =>
              signal.addEventListener('abort', () => {
                aborted++;
                resolve(undefined);
              }),
            ),
        },
      ],
      isLeader: () => leader,
      logger: quiet,
      tickMs: 5,
    });
    await sleep(20);
    leader = false;
    await until(() => aborted === 1);
    leader = true;
    await sleep(20);
    await periodic.stop();
    assert.equal(aborted, 2);
  });
});
