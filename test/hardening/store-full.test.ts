/**
 * Disk full at the SQLite layer (issue 11), in-process and exact: `PRAGMA max_page_count` on
 * the connection the commit queue writes through makes SQLite fail with SQLITE_FULL the moment
 * a write needs one page more, at any statement of any job. What must hold:
 *
 * - a group commit where one job hits SQLITE_FULL stores nothing of any job (SQLite rolls the
 *   whole transaction back on its own; no later job may then run in autocommit mode and leave
 *   a message without its recipients), and every job is told, with the SQLITE_FULL error;
 * - once there is room again, the same queue commits without a restart;
 * - the error is recognised as "store unavailable" (HTTP 503, SMTP 451 4.3.0), as are the
 *   threaded store's revived errors and PostgreSQL's connection failures; bugs are not.
 */
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { toApiError } from '../../src/api/errors.ts';
import { isStoreUnavailable } from '../../src/store/errors.ts';
import { CommitQueue } from '../../src/store/sqlite/commit-queue.ts';
import type { Store } from '../../src/store/store.ts';
import { type ApiApp, startApiApp } from '../support/api-app.ts';

function database(): DatabaseSync {
  const db = new DatabaseSync(':memory:');
  db.exec(`CREATE TABLE messages (id TEXT PRIMARY KEY, body BLOB);
           CREATE TABLE recipients (message_id TEXT, address TEXT)`);
  return db;
}

/** Writes a message and its recipients the way the store does: several statements in one job. */
function insertMessage(db: DatabaseSync, id: string, bodyBytes: number, recipients: number): () => void {
  return () => {
    db.prepare('INSERT INTO messages VALUES (?, ?)').run(id, Buffer.alloc(bodyBytes, 1));
    for (let i = 0; i < recipients; i++)
      db.prepare('INSERT INTO recipients VALUES (?, ?)').run(id, `r${i}@example.com`);
  };
}

const count = (db: DatabaseSync, table: string) =>
  Number((db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n);

/** Limits the database to its current size plus `extra` pages (SQLITE_FULL beyond). */
function limitPages(db: DatabaseSync, extra: number): void {
  const pages = Number((db.prepare('PRAGMA page_count').get() as { page_count: number }).page_count);
  db.exec(`PRAGMA max_page_count = ${pages + extra}`);
}

describe('store full: the SQLite commit queue', () => {
  it('stores nothing of a group when one job hits SQLITE_FULL, and every job is told', async () => {
    const db = database();
    const queue = new CommitQueue(db);
    limitPages(db, 3);
    // Three jobs in one event-loop turn share one transaction: small, too big, small.
    const results = await Promise.allSettled([
      queue.run(insertMessage(db, 'm1', 100, 2)),
      queue.run(insertMessage(db, 'm2', 200_000, 2)),
      queue.run(insertMessage(db, 'm3', 100, 3)),
    ]);
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 'rejected', `job ${i + 1} must fail with the group`);
      const err = (r as PromiseRejectedResult).reason as { errcode?: number; message?: string };
      assert.equal(err.errcode, 13, `job ${i + 1}: SQLITE_FULL, not ${err.message}`);
      assert.ok(isStoreUnavailable(err), `job ${i + 1}: recognised as unavailable`);
    }
    assert.equal(count(db, 'messages'), 0, 'no message stored');
    assert.equal(count(db, 'recipients'), 0, 'no recipient stored');
    assert.equal(db.isTransaction, false, 'no transaction left open');
  });

  it('a lone job that hits SQLITE_FULL fails with SQLITE_FULL (not a rollback error)', async () => {
    const db = database();
    const queue = new CommitQueue(db);
    limitPages(db, 1);
    await assert.rejects(queue.run(insertMessage(db, 'm1', 200_000, 1)), (err: { errcode?: number }) => {
      assert.equal(err.errcode, 13);
      return true;
    });
    assert.equal(count(db, 'messages'), 0);
  });

  it('recovers by itself once there is room again', async () => {
    const db = database();
    const queue = new CommitQueue(db);
    limitPages(db, 2);
    await assert.rejects(queue.run(insertMessage(db, 'big', 200_000, 1)));
    // Room again (on a real disk: a file deleted): the same queue, no restart.
    db.exec('PRAGMA max_page_count = 1000000');
    await Promise.all([
      queue.run(insertMessage(db, 'm1', 200_000, 2)),
      queue.run(insertMessage(db, 'm2', 100, 1)),
    ]);
    assert.equal(count(db, 'messages'), 2);
    assert.equal(count(db, 'recipients'), 3);
    assert.equal(
      Number(
        (
          db
            .prepare('SELECT count(*) AS n FROM messages WHERE id NOT IN (SELECT message_id FROM recipients)')
            .get() as { n: number }
        ).n,
      ),
      0,
    );
  });
});

describe('store unavailable: which errors mean "try again later"', () => {
  const revived = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});
  it('recognises disk full, I/O errors, a locked database, a store thread gone, a database down', () => {
    for (const err of [
      Object.assign(new Error('database or disk is full'), { code: 'ERR_SQLITE_ERROR', errcode: 13 }),
      // What the threaded store revives: message and node's code, no errcode.
      revived('database or disk is full', 'ERR_SQLITE_ERROR'),
      revived('disk I/O error', 'ERR_SQLITE_ERROR'),
      revived('database is locked', 'ERR_SQLITE_ERROR'),
      revived('the SQLite store thread exited (code 1)'),
      revived('the store is closed'),
      revived('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
      revived('terminating connection due to administrator command', '57P01'),
      revived('could not extend file: No space left on device', '53100'),
      revived('Connection terminated unexpectedly'),
      new Error('insert failed', { cause: revived('read ECONNRESET', 'ECONNRESET') }),
    ]) {
      assert.ok(isStoreUnavailable(err), err.message);
      const api = toApiError(err);
      assert.equal(api.status, 503, err.message);
      assert.equal(api.code, 'unavailable');
      assert.equal(api.headers['retry-after'], '5');
    }
  });

  it('does not call bugs and bad data "unavailable"', () => {
    for (const err of [
      revived('UNIQUE constraint failed: messages.id', 'ERR_SQLITE_ERROR'),
      revived('no such table: messages', 'ERR_SQLITE_ERROR'),
      revived('duplicate key value violates unique constraint', '23505'),
      new TypeError("Cannot read properties of undefined (reading 'id')"),
      'a string',
      undefined,
    ]) {
      assert.equal(isStoreUnavailable(err), false, String(err));
      if (err instanceof Error) assert.equal(toApiError(err).status, 500);
    }
  });
});

describe('store full under the HTTP API', () => {
  let api: ApiApp;
  before(async () => {
    api = await startApiApp();
  });
  after(() => api.close());

  const full = () =>
    Object.assign(new Error('database or disk is full'), { code: 'ERR_SQLITE_ERROR', errcode: 13 });
  const send = (key: string) =>
    api.app.inject({
      method: 'POST',
      url: '/v1/messages',
      headers: { authorization: `Bearer ${api.keys.all}`, 'idempotency-key': key },
      payload: { from: 'a@acme.test', to: ['b@example.com'], subject: 'hi', text: 'hello' },
    });

  it('503 with Retry-After; a retry with the same key succeeds once there is room, even if the claim could not be released', async () => {
    // The claim is written, then the disk fills: the mail cannot be stored and neither can the
    // claim be released (both are writes).
    const store = api.store as Store & Record<string, unknown>;
    const insert = store.insertMessages;
    const release = store.releaseIdempotencyKey;
    store.insertMessages = async () => {
      throw full();
    };
    store.releaseIdempotencyKey = async () => {
      throw full();
    };
    try {
      const refused = await send('order-1');
      assert.equal(refused.statusCode, 503, refused.body);
      assert.equal(refused.json().error.code, 'unavailable');
      assert.equal(refused.headers['retry-after'], '5');
    } finally {
      store.insertMessages = insert;
      store.releaseIdempotencyKey = release;
    }
    // Room again. The client retries at once with the same key: its request ended, so its
    // claim is not "in use"; the mail is stored now, once.
    const retried = await send('order-1');
    assert.equal(retried.statusCode, 202, retried.body);
    const replayed = await send('order-1');
    assert.equal(replayed.statusCode, 202);
    assert.equal(replayed.json().id, retried.json().id, 'the third call replays the second');
    const listed = await api.app.inject({
      method: 'GET',
      url: '/v1/messages',
      headers: { authorization: `Bearer ${api.keys.all}` },
    });
    assert.equal((listed.json() as { data: unknown[] }).data.length, 1, 'stored once');
  });
});
