/** Thrown by `migrate()` when the database schema is newer than this code understands. */
export class SchemaTooNewError extends Error {
  constructor(found: number, known: number) {
    super(
      `the database schema is version ${found}, but this Postbote knows only up to ${known}: ` +
        'it was written by a newer Postbote; upgrade this node instead of downgrading the data',
    );
    this.name = 'SchemaTooNewError';
  }
}

/** SQLite result codes (the primary code, low byte) that mean "not now", not "never". */
const SQLITE_TRANSIENT = new Set([
  5, // SQLITE_BUSY
  6, // SQLITE_LOCKED
  7, // SQLITE_NOMEM
  8, // SQLITE_READONLY (the file or its directory became read-only)
  10, // SQLITE_IOERR
  13, // SQLITE_FULL (disk full, or max_page_count reached)
  14, // SQLITE_CANTOPEN
]);
/** The same, by message: the threaded store passes on the message and node's code, not errcode. */
const SQLITE_TRANSIENT_TEXT =
  /database or disk is full|database is locked|database table is locked|disk I\/O error|unable to open database|attempt to write a readonly database|out of memory/i;
/** The threaded store's own failures (store thread gone, port closed). */
const STORE_GONE_TEXT = /^the store is closed$|the SQLite store thread|the store port was closed/;
/** The code of a failed flush of the SQLite WAL (sqlite/commit-queue.ts): the disk failed. */
export const STORE_FLUSH_FAILED = 'POSTBOTE_STORE_FLUSH_FAILED';
/** Node and pg client errors of a database connection that is gone or never came. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOSPC',
]);
const PG_CONNECTION_TEXT =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|the database system is (starting up|shutting down|in recovery mode)/i;

/**
 * Whether a store call failed because the store cannot take writes or answer right now (disk
 * full, database down or restarting, connection dropped, the store thread gone), as opposed to
 * a bug or bad data. Front ends answer these "try again later" (SMTP 451 4.3.0, HTTP 503):
 * nothing was stored, and the same request will succeed once the store is back.
 */
export function isStoreUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (typeof e !== 'object') return false;
    const { code, errcode, message } = e as { code?: unknown; errcode?: unknown; message?: unknown };
    const text = typeof message === 'string' ? message : '';
    if (typeof errcode === 'number' && SQLITE_TRANSIENT.has(errcode & 0xff)) return true;
    if (code === 'ERR_SQLITE_ERROR' && SQLITE_TRANSIENT_TEXT.test(text)) return true;
    if (typeof code === 'string') {
      if (CONNECTION_CODES.has(code) || code === STORE_FLUSH_FAILED) return true;
      // PostgreSQL SQLSTATE: 08 connection exception, 53 insufficient resources (53100 disk
      // full), 57P01-57P03 the server shutting down, crashed or not yet accepting connections.
      if (/^08...$|^53...$|^57P0[123]$/.test(code)) return true;
    }
    if (STORE_GONE_TEXT.test(text) || PG_CONNECTION_TEXT.test(text)) return true;
  }
  return false;
}
