/**
 * The commit queue: one transaction per turn, durable jobs answered after the WAL's flush (run
 * off the thread), bookkeeping (`durable: false`) right after its COMMIT, durable jobs arriving
 * during a flush held for the next transaction.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { isStoreUnavailable } from '../../src/store/errors.ts';
import { CommitQueue, type Flusher, WalFlusher } from '../../src/store/sqlite/commit-queue.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { tempDir } from '../support/temp-dir.ts';

function database() {
  const dir = tempDir();
  const path = join(dir.path, 'q.db');
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('CREATE TABLE t (kind TEXT, n INTEGER)');
  // A second connection sees only what is committed.
  const reader = new DatabaseSync(path, { readOnly: true });
  return {
    db,
    path,
    insert: (kind: string, n: number) => () => db.prepare('INSERT INTO t VALUES (?, ?)').run(kind, n),
    committed: () =>
      reader
        .prepare('SELECT kind, n FROM t ORDER BY rowid')
        .all()
        .map((r) => `${r.kind}${r.n}`),
    close: () => {
      reader.close();
      db.close();
      dir.cleanup();
    },
  };
}

/** A flusher the test finishes by hand; counts the flushes it was asked for. */
function manualFlusher() {
  const pending: ((err: Error | null) => void)[] = [];
  const flusher: Flusher & { started: number } = {
    started: 0,
    flush(done) {
      flusher.started++;
      pending.push(done);
    },
  };
  return {
    flusher,
    finish(err: Error | null = null) {
      const done = pending.shift();
      assert.ok(done, 'a flush is running');
      done(err);
    },
    running: () => pending.length,
  };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('commit queue', () => {
  it('without a flusher answers every job of a turn after their one COMMIT', async () => {
    const d = database();
    const queue = new CommitQueue(d.db);
    const answered: string[] = [];
    await Promise.all([
      queue.run(d.insert('durable', 1)).then(() => answered.push(`durable ${d.committed().length}`)),
      queue
        .run(d.insert('lazy', 1), { durable: false })
        .then(() => answered.push(`lazy ${d.committed().length}`)),
    ]);
    assert.deepEqual(answered.sort(), ['durable 2', 'lazy 2']);
    d.close();
  });

  it('answers bookkeeping after its COMMIT and durable jobs only after the flush that follows it', async () => {
    const d = database();
    const m = manualFlusher();
    const queue = new CommitQueue(d.db, m.flusher);
    let durableDone = false;
    const durable = queue.run(d.insert('durable', 1)).then(() => {
      durableDone = true;
    });
    await queue.run(d.insert('lazy', 1), { durable: false });
    // One transaction held both; the durable job waits for the disk.
    assert.deepEqual(d.committed(), ['durable1', 'lazy1']);
    assert.equal(m.running(), 1);
    await turn();
    assert.equal(durableDone, false);
    m.finish();
    await durable;
    assert.equal(m.flusher.started, 1);
    d.close();
  });

  it('holds durable jobs that arrive during a flush and commits them together when it ends; bookkeeping goes on meanwhile', async () => {
    const d = database();
    const m = manualFlusher();
    const queue = new CommitQueue(d.db, m.flusher);
    const first = queue.run(d.insert('durable', 1));
    await turn();
    assert.equal(m.running(), 1);
    const answered: string[] = [];
    const second = queue.run(d.insert('durable', 2)).then(() => answered.push('durable2'));
    const third = queue.run(d.insert('durable', 3)).then(() => answered.push('durable3'));
    await turn();
    await queue.run(d.insert('lazy', 1), { durable: false });
    const fourth = queue.run(d.insert('durable', 4)).then(() => answered.push('durable4'));
    await turn();
    // Not committed while the first flush runs: no second flush was started.
    assert.deepEqual(d.committed(), ['durable1', 'lazy1']);
    assert.equal(m.flusher.started, 1);
    m.finish();
    await first;
    await turn();
    assert.deepEqual(d.committed(), ['durable1', 'lazy1', 'durable2', 'durable3', 'durable4']);
    assert.equal(m.flusher.started, 2, 'the three held jobs share one transaction and one flush');
    assert.deepEqual(answered, []);
    m.finish();
    await Promise.all([second, third, fourth]);
    assert.deepEqual(answered, ['durable2', 'durable3', 'durable4']);
    d.close();
  });

  it('a failed flush fails its durable jobs as "store unavailable" and leaves the next ones alone', async () => {
    const d = database();
    const m = manualFlusher();
    const queue = new CommitQueue(d.db, m.flusher);
    const lost = queue.run(d.insert('durable', 1));
    await turn();
    const next = queue.run(d.insert('durable', 2));
    await turn();
    m.finish(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    await assert.rejects(lost, (err: Error & { code?: string }) => {
      assert.match(err.message, /could not be flushed to disk: EIO/);
      assert.equal(isStoreUnavailable(err), true);
      return true;
    });
    await turn();
    m.finish();
    await next;
    d.close();
  });

  it('a failing job fails alone; a turn of bookkeeping only starts no flush', async () => {
    const d = database();
    const m = manualFlusher();
    const queue = new CommitQueue(d.db, m.flusher);
    const ok = queue.run(d.insert('lazy', 2), { durable: false });
    const bad = queue.run(
      () => {
        throw new Error('boom');
      },
      { durable: false },
    );
    await ok;
    await assert.rejects(bad, /boom/);
    assert.deepEqual(d.committed(), ['lazy2']);
    assert.equal(m.flusher.started, 0);
    d.close();
  });

  it('WalFlusher flushes the WAL file, and reports a WAL that is not there', async () => {
    const d = database();
    d.insert('x', 1)();
    const wal = new WalFlusher(`${d.path}-wal`);
    await new Promise<void>((resolve, reject) => wal.flush((err) => (err ? reject(err) : resolve())));
    wal.close();
    const missing = new WalFlusher(join(d.path, 'nowhere-wal'));
    const err = await new Promise<Error | null>((resolve) => missing.flush(resolve));
    assert.equal((err as NodeJS.ErrnoException | null)?.code, 'ENOTDIR');
    d.close();
  });

  it('SqliteStore answers its writes on a file (flushed) and in memory (no flusher)', async () => {
    const dir = tempDir();
    const path = join(dir.path, 'store.db');
    const store = new SqliteStore(path);
    await store.migrate();
    await store.createAccount({ id: 'a1', name: 'acme', createdAt: 1 });
    assert.ok(existsSync(`${path}-wal`));
    await store.close();
    const again = new SqliteStore(path);
    assert.equal((await again.getAccount('a1'))?.name, 'acme');
    await again.close();
    const memory = new SqliteStore(':memory:');
    await memory.migrate();
    await memory.createAccount({ id: 'a2', name: 'mem', createdAt: 1 });
    assert.equal((await memory.getAccount('a2'))?.name, 'mem');
    await memory.close();
    dir.cleanup();
  });
});
