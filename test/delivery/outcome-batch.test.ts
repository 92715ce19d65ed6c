import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Applied, OutcomeBatch } from '../../src/delivery/outcome-batch.ts';
import type { Outcome } from '../../src/store/types.ts';
import { sampleOutcome as outcome } from '../support/outcomes.ts';

/** A store write the test answers by hand; records what each write carried. */
function handWrites() {
  const writes: { ids: number[]; answer: (applied: Applied | Error) => void }[] = [];
  const write = (outcomes: Outcome[]): Promise<Applied> =>
    new Promise((resolve, reject) => {
      writes.push({
        ids: outcomes.map((o) => o.recipientId),
        answer: (applied) => (applied instanceof Error ? reject(applied) : resolve(applied)),
      });
    });
  return { writes, write };
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe('outcome batch', () => {
  it('gathers the parts of a few milliseconds into one write; each part gets its result', async () => {
    const { writes, write } = handWrites();
    const batch = new OutcomeBatch(write, { gatherMs: 30, max: 100 });
    const a = batch.add([outcome(1), outcome(2)], false);
    const b = batch.add([outcome(3)], false);
    await tick(5);
    assert.equal(writes.length, 0, 'nothing written before the gathering time');
    await tick(60);
    assert.deepEqual(
      writes.map((w) => w.ids),
      [[1, 2, 3]],
    );
    writes[0]?.answer(new Set([1, 3]));
    assert.deepEqual([...((await a) ?? [])], [1, 3]);
    assert.deepEqual([...((await b) ?? [])], [1, 3]);
  });

  it('an urgent part goes at once, with whatever waits; a full batch too', async () => {
    const { writes, write } = handWrites();
    const batch = new OutcomeBatch(write, { gatherMs: 10_000, max: 3 });
    void batch.add([outcome(1)], false);
    void batch.add([outcome(2)], true);
    assert.deepEqual(
      writes.map((w) => w.ids),
      [[1, 2]],
    );
    writes[0]?.answer(new Set([1, 2]));
    await tick();
    void batch.add([outcome(3), outcome(4), outcome(5)], false);
    assert.deepEqual(
      writes.map((w) => w.ids),
      [
        [1, 2],
        [3, 4, 5],
      ],
    );
    writes[1]?.answer(new Set());
    await batch.flush();
  });

  it('an urgent part does not wait for a write in flight; gathering parts go along with it', async () => {
    const { writes, write } = handWrites();
    const batch = new OutcomeBatch(write, { gatherMs: 10_000, max: 100 });
    const first = batch.add([outcome(1)], true);
    const gathering = batch.add([outcome(2)], false);
    assert.deepEqual(
      writes.map((w) => w.ids),
      [[1]],
    );
    // The first write is still unanswered: the urgent part goes now, with the gathering one.
    const urgent = batch.add([outcome(3)], true);
    assert.deepEqual(
      writes.map((w) => w.ids),
      [[1], [2, 3]],
    );
    writes[1]?.answer(new Set([2, 3]));
    assert.deepEqual([...((await urgent) ?? [])], [2, 3]);
    assert.deepEqual([...((await gathering) ?? [])], [2, 3]);
    writes[0]?.answer(new Set([1]));
    assert.deepEqual([...((await first) ?? [])], [1]);
  });

  it('a write that fails answers its parts with undefined, and the next write goes on', async () => {
    const { writes, write } = handWrites();
    const batch = new OutcomeBatch(write, { gatherMs: 0, max: 100 });
    const failed = batch.add([outcome(1)], true);
    const next = batch.add([outcome(2)], true);
    writes[0]?.answer(new Error('store gone'));
    assert.equal(await failed, undefined);
    await tick();
    writes[1]?.answer(new Set([2]));
    assert.deepEqual([...((await next) ?? [])], [2]);
  });

  it('flush() writes what is gathering and waits for every write in flight', async () => {
    const { writes, write } = handWrites();
    const batch = new OutcomeBatch(write, { gatherMs: 10_000, max: 100 });
    void batch.add([outcome(1)], false);
    let flushed = false;
    const flushing = batch.flush().then(() => {
      flushed = true;
    });
    await tick();
    assert.deepEqual(
      writes.map((w) => w.ids),
      [[1]],
    );
    assert.equal(flushed, false, 'not before the write is answered');
    // Added while the flush waits: written too before the flush ends.
    void batch.add([outcome(2)], false);
    writes[0]?.answer(new Set([1]));
    await tick();
    assert.deepEqual(
      writes.map((w) => w.ids),
      [[1], [2]],
    );
    assert.equal(flushed, false);
    writes[1]?.answer(new Set([2]));
    await flushing;
    await batch.flush();
  });
});
