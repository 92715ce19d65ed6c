import { closeSync, fdatasync, openSync } from 'node:fs';
import type { DatabaseSync } from 'node:sqlite';
import { STORE_FLUSH_FAILED } from '../errors.ts';

interface Job {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  durable: boolean;
}

/** A job whose transaction committed, and what its work returned. */
interface Done {
  job: Job;
  value: unknown;
}

/**
 * A failed flush: the commit is in the WAL and visible, but whether it survives a power loss is
 * unknown, so the caller is told it failed (SMTP 451, HTTP 503: isStoreUnavailable knows its
 * code). A retry may then store the message a second time: at least once, never lost.
 */
function flushError(cause: Error): Error {
  const err = new Error(`the store's log could not be flushed to disk: ${cause.message}`, { cause });
  return Object.assign(err, { code: STORE_FLUSH_FAILED });
}

/** How long a job's commit waits for the disk (CommitQueue.run). */
export interface CommitOptions {
  /**
   * True (default): answered only once the commit is on disk: intake, every promise to a
   * client. False: delivery bookkeeping (leases, outcomes, heartbeats), answered as soon as it
   * is committed; the next durable job's flush covers it too. A process crash (kill -9) loses
   * none of it: the WAL is written, only not yet flushed. A power loss can lose the last
   * moments' outcomes: those deliveries are repeated (at least once), nothing is lost.
   */
  durable?: boolean;
}

/** Makes every commit made before the call durable, then calls `done`. */
export interface Flusher {
  flush(done: (err: Error | null) => void): void;
}

/**
 * Flushes a WAL file to disk off the thread that commits (SqliteStore): the connection runs
 * with synchronous=NORMAL, so a COMMIT writes its frames to the WAL without waiting for the
 * disk, and a flush started after that COMMIT returned makes it (and every commit before it)
 * durable. `fdatasync` runs on libuv's thread pool, so the store thread goes on with the next
 * statements while the disk works; with synchronous=FULL it sat in every COMMIT's fsync (about
 * a third of its time under the relay bench).
 */
export class WalFlusher implements Flusher {
  readonly #path: string;
  #fd: number | undefined;

  constructor(walPath: string) {
    this.#path = walPath;
  }

  flush(done: (err: Error | null) => void): void {
    let fd: number;
    try {
      // Opened on first use: SQLite creates the WAL with the first transaction. The descriptor
      // stays open until close(): closing a descriptor of a file drops the process's POSIX locks
      // on it, and SQLite must never lose those by surprise. (It locks the -shm and database
      // files, not the WAL; keeping ours open costs nothing either way.)
      this.#fd ??= openSync(this.#path, 'r+');
      fd = this.#fd;
    } catch (err) {
      done(err as Error);
      return;
    }
    fdatasync(fd, (err) => done(err));
  }

  /** After the database is closed. */
  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/**
 * Group commit: writes queued during one event-loop turn share one transaction. Each job runs
 * inside its own savepoint so a failing job (a constraint violation) fails alone; a failing
 * COMMIT (disk full, I/O error) fails them all, and nothing of theirs is visible. A job that
 * fails with disk full, an I/O error or out of memory may make SQLite roll back the whole
 * transaction on its own: then every job of the group fails with that error (none of them is
 * stored), and none runs outside a transaction.
 *
 * With a WalFlusher (a database file in WAL mode, synchronous=NORMAL), durable jobs are answered
 * once a flush that started after their COMMIT has finished, and the thread runs other work
 * meanwhile (reads, bookkeeping commits). One flush runs at a time; durable jobs arriving during
 * it are held, then committed in one transaction and flushed together when it ends: the same
 * batching as an fsync inside COMMIT gave, without the thread waiting for the disk. Without a
 * flusher (an in-memory database) every job is answered after its COMMIT.
 */
export class CommitQueue {
  readonly #db: DatabaseSync;
  readonly #flusher: Flusher | undefined;
  #jobs: Job[] = [];
  #scheduled = false;
  readonly #runNow = (): void => this.#run();
  /** Durable jobs that arrived while a flush ran: committed together once it is done. */
  #held: Job[] = [];
  #flushing = false;

  constructor(db: DatabaseSync, flusher?: Flusher) {
    this.#db = db;
    this.#flusher = flusher;
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
        setImmediate(this.#runNow);
      }
    });
  }

  #run(): void {
    this.#scheduled = false;
    let jobs = this.#jobs;
    this.#jobs = [];
    if (this.#flushing) {
      // Durable jobs could not be answered before the next flush anyway: they wait uncommitted
      // and join the transaction that runs when the flush is done, with everything that arrives
      // meanwhile (fewer, larger transactions write fewer pages). Bookkeeping commits now.
      for (const job of jobs) if (job.durable) this.#held.push(job);
      jobs = jobs.filter((job) => !job.durable);
    } else if (this.#held.length > 0) {
      jobs = this.#held.concat(jobs);
      this.#held = [];
    }
    if (jobs.length === 0) return;
    const committed = this.#transaction(jobs);
    if (!this.#flusher) {
      for (const { job, value } of committed) job.resolve(value);
      return;
    }
    const durable: Done[] = [];
    for (const c of committed) {
      if (c.job.durable) durable.push(c);
      else c.job.resolve(c.value);
    }
    if (durable.length > 0) this.#flush(this.#flusher, durable);
  }

  /** Answers `durable` (committed) once the WAL is on disk; then commits what was held. */
  #flush(flusher: Flusher, durable: Done[]): void {
    this.#flushing = true;
    flusher.flush((err) => {
      this.#flushing = false;
      for (const { job, value } of durable) {
        if (err) job.reject(flushError(err));
        else job.resolve(value);
      }
      if (this.#held.length > 0 && !this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#runNow);
      }
    });
  }

  /** Runs `jobs` in one transaction; rejects the ones that failed, returns the ones committed. */
  #transaction(jobs: Job[]): Done[] {
    const db = this.#db;
    const results: { job: Job; ok: boolean; value: unknown }[] = [];
    // A lone job needs no savepoint: if it fails, the whole transaction is rolled back anyway.
    const isolate = jobs.length > 1;
    try {
      db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      for (const job of jobs) job.reject(err);
      return [];
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
          return [];
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
      return [];
    }
    const committed: Done[] = [];
    for (const r of results) {
      if (r.ok) committed.push({ job: r.job, value: r.value });
      else r.job.reject(r.value);
    }
    return committed;
  }
}
