/**
 * The commit queue's two kinds of job: durable ones (intake) are answered only after their
 * fsynced commit; delivery bookkeeping (`durable: false`) commits first, in its own transaction
 * without waiting for the disk, and is answered before the durable commit of the same turn runs.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { CommitQueue } from '../../src/store/sqlite/commit-queue.ts';
import { tempDir } from '../support/temp-dir.ts';

function database() {
  const dir = tempDir();
  const db = new DatabaseSync(join(dir.path, 'q.db'));
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = FULL');
  db.exec('CREATE TABLE t (kind TEXT, n INTEGER)');
  return {
    db,
    rows: () =>
      db
        .prepare('SELECT kind, n FROM t ORDER BY rowid')
        .all()
        .map((r) => `${r.kind}${r.n}`),
    synchronous: () => Number(db.prepare('PRAGMA synchronous').get()?.synchronous),
    close: () => {
      db.close();
      dir.cleanup();
    },
  };
}

describe('commit queue: durable and lazy jobs', () => {
  it('answers lazy jobs before the durable commit of the same turn, commits both, and restores FULL', async () => {
    const d = database();
    const queue = new CommitQueue(d.db);
    const insert = (kind: string, n: number) => () =>
      d.db.prepare('INSERT INTO t VALUES (?, ?)').run(kind, n);
    const answered: string[] = [];
    const durable = queue.run(insert('durable', 1)).then(() => answered.push('durable'));
    const lazy = queue.run(insert('lazy', 1), { durable: false }).then(() => {
      answered.push('lazy');
      // When a lazy job is answered, the durable one of its turn has not been committed yet.
      assert.deepEqual(d.rows(), ['lazy1']);
    });
    await Promise.all([durable, lazy]);
    assert.deepEqual(answered, ['lazy', 'durable']);
    assert.deepEqual(d.rows(), ['lazy1', 'durable1']);
    assert.equal(d.synchronous(), 2, 'synchronous is FULL again after the lazy commit');
    d.close();
  });

  it('a failing lazy job fails alone and leaves FULL in place; a turn of lazy jobs only needs no durable commit', async () => {
    const d = database();
    const queue = new CommitQueue(d.db);
    const ok = queue.run(() => d.db.prepare('INSERT INTO t VALUES (?, ?)').run('lazy', 2), {
      durable: false,
    });
    const bad = queue.run(
      () => {
        throw new Error('boom');
      },
      { durable: false },
    );
    await ok;
    await assert.rejects(bad, /boom/);
    assert.deepEqual(d.rows(), ['lazy2']);
    assert.equal(d.synchronous(), 2);
    d.close();
  });
});
