import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Batcher } from '../../src/store/postgres/batcher.ts';

describe('Batcher (group commit for PostgreSQL writes)', () => {
  it('flushes a lone call at once and merges the calls that arrive while a flush runs', async () => {
    const flushes: number[][] = [];
    let release: (() => void) | undefined;
    const batcher = new Batcher<number, string>(async (items) => {
      flushes.push(items);
      if (flushes.length === 1) await new Promise<void>((r) => (release = r));
      return `flush ${flushes.length}`;
    }, 100);
    const first = batcher.add([1]);
    assert.deepEqual(flushes, [[1]], 'the first call is not delayed');
    const later = [batcher.add([2, 3]), batcher.add([4])];
    release?.();
    assert.equal(await first, 'flush 1');
    assert.deepEqual(await Promise.all(later), ['flush 2', 'flush 2']);
    assert.deepEqual(flushes, [[1], [2, 3, 4]]);
  });

  it('keeps a flush within maxItems, but never splits one call', async () => {
    const flushes: number[][] = [];
    let release: (() => void) | undefined;
    const batcher = new Batcher<number, void>(async (items) => {
      flushes.push(items);
      if (flushes.length === 1) await new Promise<void>((r) => (release = r));
    }, 3);
    const calls = [batcher.add([0]), batcher.add([1, 2]), batcher.add([3, 4]), batcher.add([5, 6, 7, 8])];
    release?.();
    await Promise.all(calls);
    assert.deepEqual(flushes, [[0], [1, 2], [3, 4], [5, 6, 7, 8]]);
  });

  it('when a merged flush fails, retries each call alone so only the bad one fails', async () => {
    let release: (() => void) | undefined;
    let calls = 0;
    const batcher = new Batcher<string, number>(async (items) => {
      calls++;
      if (calls === 1) await new Promise<void>((r) => (release = r));
      if (items.includes('bad')) throw new Error(`refused ${items.join(',')}`);
      return items.length;
    }, 100);
    const first = batcher.add(['a']);
    const good = batcher.add(['b', 'c']);
    const bad = batcher.add(['bad']);
    release?.();
    assert.equal(await first, 1);
    assert.equal(await good, 2);
    await assert.rejects(bad, /refused bad$/);
  });

  it('lingers before a flush only when calls waited through the last one, and never past a full batch', async () => {
    const flushes: { items: number[]; at: number }[] = [];
    let release: (() => void) | undefined;
    const started = performance.now();
    const batcher = new Batcher<number, void>(
      async (items) => {
        flushes.push({ items, at: performance.now() - started });
        if (flushes.length === 1) await new Promise<void>((r) => (release = r));
      },
      4,
      { lingerMs: 40 },
    );
    const first = batcher.add([1]);
    assert.equal(flushes.length, 1, 'an idle batcher flushes at once');
    const waited = batcher.add([2]);
    release?.();
    await first;
    // 2 waited through the first flush: the batcher gathers, and 3 arriving meanwhile joins it.
    await new Promise((r) => setTimeout(r, 5));
    const joined = batcher.add([3]);
    await Promise.all([waited, joined]);
    assert.deepEqual(
      flushes.map((f) => f.items),
      [[1], [2, 3]],
    );
    assert.ok((flushes[1]?.at ?? 0) >= 35, `the second flush lingered (${flushes[1]?.at} ms)`);

    // Idle again: the next lone call goes at once.
    const lone = performance.now();
    await batcher.add([4]);
    assert.ok(performance.now() - lone < 30, 'an idle batcher does not linger');

    // A backlog that fills a batch goes without lingering.
    flushes.length = 0;
    let hold: (() => void) | undefined;
    const busy = new Batcher<number, void>(
      async (items) => {
        flushes.push({ items, at: performance.now() });
        if (flushes.length === 1) await new Promise<void>((r) => (hold = r));
      },
      2,
      { lingerMs: 10_000 },
    );
    const head = busy.add([0]);
    const full = busy.add([1, 2]);
    hold?.();
    await Promise.all([head, full]);
    assert.deepEqual(
      flushes.map((f) => f.items),
      [[0], [1, 2]],
    );
    assert.ok((flushes[1]?.at ?? 0) - (flushes[0]?.at ?? 0) < 1000, 'a full batch does not linger');
  });
});
