import type { DatabaseSync } from 'node:sqlite';

interface Job {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  durable: boolean;
}

/** How long a job's commit waits for the disk (CommitQueue.run). */
export interface CommitOptions {
  /**
   * True (default): answered only once the commit is fsynced (synchronous=FULL): intake, every
   * promise to a client. False: delivery bookkeeping (leases, outcomes, heartbeats), committed
   * without waiting for the fsync (synchronous=NORMAL) in a transaction of its own before the
   * durable jobs of the same turn, whose fsync then covers it too; a turn of lazy jobs only
   * (most turns of delivery traffic) waits for no fsync at all. A process crash (kill -9)
   * loses none of it: the WAL is written, only not yet flushed. A power loss can lose the last
   * moments' outcomes: those deliveries are repeated (at least once), nothing is lost.
   */
  durable?: boolean;
}

/**
 * Group commit: writes queued during one event-loop turn share one transaction and so one
 * fsync (WAL + synchronous=FULL). Each job runs inside its own savepoint so a failing job
 * (a constraint violation) fails alone; a failing COMMIT (disk full, I/O error) fails them all,
 * and nothing of theirs is visible. A job that fails with disk full, an I/O error or out of
 * memory may make SQLite roll back the whole transaction on its own: then every job of the
 * group fails with that error (none of them is stored), and none runs outside a transaction.
 */
export class CommitQueue {
  readonly #db: DatabaseSync;
  #jobs: Job[] = [];
  #scheduled = false;
  readonly #flushNow = (): void => this.#flush();

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  run<T>(work: () => T, options: CommitOptions = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#jobs.push({
        work,
        resolve: resolve as (v: unknown) => void,
        reject,
        durable: options.durable ?? true,
      });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // No gathering delay: with SMTP and delivery on other threads the commit is on the path
        // of every 250, and a 1-3 ms wait cost more throughput than its fsyncs saved (measured in
        // bench/relay.ts: 2,405 msgs/s without, 2,315 with 1 ms, 2,075 with 3 ms). Jobs still
        // batch: those arriving while a commit runs share the next one.
        setImmediate(this.#flushNow);
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const jobs = this.#jobs;
    this.#jobs = [];
    if (jobs.length === 0) return;
    const lazy = jobs.filter((j) => !j.durable);
    const durable = lazy.length === 0 ? jobs : jobs.filter((j) => j.durable);
    if (lazy.length === 0) {
      this.#commit(durable);
      return;
    }
    this.#commit(lazy, 'NORMAL');
    if (durable.length === 0) return;
    // The durable jobs follow in a transaction of their own, whose fsync also covers the lazy
    // one. In-process the lazy jobs' callers resume before it; on the store thread the replies
    // of a turn leave together after both. (Deferring the durable commit until the lazy
    // replies were out was measured slower: intake waits for it, and intake is the bottleneck.)
    queueMicrotask(() => setImmediate(() => this.#commit(durable)));
  }

  /** One transaction for `jobs`: savepoints, then COMMIT (without waiting for the disk: NORMAL). */
  #commit(jobs: Job[], synchronous: 'FULL' | 'NORMAL' = 'FULL'): void {
    const db = this.#db;
    if (synchronous === 'NORMAL') db.exec('PRAGMA synchronous = NORMAL');
    try {
      this.#transaction(jobs);
    } finally {
      if (synchronous === 'NORMAL') db.exec('PRAGMA synchronous = FULL');
    }
  }

  #transaction(jobs: Job[]): void {
    const db = this.#db;
    const results: { job: Job; ok: boolean; value: unknown }[] = [];
    // A lone job needs no savepoint: if it fails, the whole transaction is rolled back anyway.
    const isolate = jobs.length > 1;
    try {
      db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      for (const job of jobs) job.reject(err);
      return;
    }
    for (const job of jobs) {
      if (isolate) db.exec('SAVEPOINT job');
      try {
        const value = job.work();
        if (isolate) db.exec('RELEASE job');
        results.push({ job, ok: true, value });
      } catch (err) {
        if (!db.isTransaction) {
          // SQLite undid the transaction itself (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM):
          // the jobs before this one are gone too, and the ones after must not run in
          // autocommit mode (each statement its own commit: a message without recipients).
          for (const j of jobs) j.reject(err);
          return;
        }
        if (isolate) {
          try {
            db.exec('ROLLBACK TO job');
            db.exec('RELEASE job');
          } catch {
            // the outer ROLLBACK below still undoes everything
          }
        }
        results.push({ job, ok: false, value: err });
      }
    }
    const failedAlone = !isolate && results[0]?.ok === false;
    try {
      db.exec(failedAlone ? 'ROLLBACK' : 'COMMIT');
    } catch (err) {
      try {
        db.exec('ROLLBACK');
      } catch {
        // nothing left to undo
      }
      for (const job of jobs) job.reject(err);
      return;
    }
    for (const r of results) {
      if (r.ok) r.job.resolve(r.value);
      else r.job.reject(r.value);
    }
  }
}
