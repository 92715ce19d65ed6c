import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { foldCounts, toGuardState } from '../guard-rows.ts';
import type {
  AccountRetention,
  AuditEntry,
  AuditFilter,
  GuardCount,
  GuardState,
  HoldReason,
  NewAuditEntry,
  PurgeBatch,
} from '../types.ts';

/**
 * The SQLite side of the reputation guard, the audit trail, per-account retention and the
 * privacy salt (schema v13). Plain functions over the adapter's connection, so the adapter
 * itself only forwards; writes run inside its CommitQueue job (one transaction).
 */

type Row = Record<string, SQLInputValue>;

const all = (db: DatabaseSync, sql: string, ...params: SQLInputValue[]): Row[] =>
  db.prepare(sql).all(...params) as Row[];

/** The account condition of a retention batch (PurgeBatch.accountId / exceptAccountIds) on messages `m`. */
export function purgeScope(batch: PurgeBatch): { sql: string; params: SQLInputValue[] } {
  if (batch.accountId !== undefined) return { sql: ' AND m.account_id = ?', params: [batch.accountId] };
  const except = batch.exceptAccountIds ?? [];
  if (except.length === 0) return { sql: '', params: [] };
  return { sql: ` AND m.account_id NOT IN (${except.map(() => '?').join(', ')})`, params: except };
}

export function recordAudit(db: DatabaseSync, entries: NewAuditEntry[]): void {
  const stmt = db.prepare(
    'INSERT INTO audit_log (at, actor, account_id, action, target, details) VALUES (?, ?, ?, ?, ?, ?)',
  );
  for (const e of entries) {
    stmt.run(e.at, e.actor, e.accountId, e.action, e.target, JSON.stringify(e.details ?? {}));
  }
}

export function listAudit(db: DatabaseSync, filter: AuditFilter): AuditEntry[] {
  const where: string[] = [];
  const params: SQLInputValue[] = [];
  if (filter.accountId !== undefined) {
    where.push('account_id = ?');
    params.push(filter.accountId);
  }
  if (filter.before !== undefined) {
    where.push('id < ?');
    params.push(filter.before);
  }
  if (filter.since !== undefined) {
    where.push('at >= ?');
    params.push(filter.since);
  }
  const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
  const rows = all(
    db,
    `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
    ...params,
    limit,
  );
  return rows.map((r) => ({
    id: Number(r.id),
    at: Number(r.at),
    actor: String(r.actor),
    accountId: String(r.account_id),
    action: String(r.action),
    target: String(r.target),
    details: JSON.parse(String(r.details ?? '{}')) as Record<string, unknown>,
  }));
}

/**
 * Sends (delivered + bounced events), bounces and complaints per account and stream since
 * `since`: a range of events_guard per type, joined to the recipient for its stream.
 */
export function guardCounts(
  db: DatabaseSync,
  input: { since: number; accountId?: string; stream?: string },
): GuardCount[] {
  const params: SQLInputValue[] = [input.since];
  let extra = '';
  if (input.accountId !== undefined) {
    extra += ' AND e.account_id = ?';
    params.push(input.accountId);
  }
  if (input.stream !== undefined) {
    extra += ' AND r.stream = ?';
    params.push(input.stream);
  }
  const rows = all(
    db,
    `SELECT e.account_id, r.stream, e.type, count(*) AS n
       FROM events e JOIN recipients r ON r.id = e.recipient_id
      WHERE e.type IN ('delivered', 'bounced', 'complained') AND e.at >= ?${extra}
      GROUP BY e.account_id, r.stream, e.type`,
    ...params,
  );
  return foldCounts(rows.map((r) => ({ ...r, n: Number(r.n) })));
}

export function listGuardStates(db: DatabaseSync, accountId?: string): GuardState[] {
  const rows =
    accountId === undefined
      ? all(db, 'SELECT * FROM guard_state ORDER BY account_id, stream')
      : all(db, 'SELECT * FROM guard_state WHERE account_id = ? ORDER BY stream', accountId);
  return rows.map(toGuardState);
}

/** Stores the state; an account-wide pause (stream '') is mirrored in accounts.paused. */
export function saveGuardState(db: DatabaseSync, s: GuardState): void {
  db.prepare(
    `INSERT INTO guard_state (account_id, stream, paused_at, paused_by, reason, resumed_at, warned_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (account_id, stream) DO UPDATE SET paused_at = excluded.paused_at,
       paused_by = excluded.paused_by, reason = excluded.reason, resumed_at = excluded.resumed_at,
       warned_at = excluded.warned_at`,
  ).run(s.accountId, s.stream, s.pausedAt, s.pausedBy, s.reason, s.resumedAt, s.warnedAt);
  if (s.stream === '') {
    db.prepare('UPDATE accounts SET paused = ? WHERE id = ?').run(s.pausedAt === null ? 0 : 1, s.accountId);
  }
}

/**
 * Makes held recipients of the account (one stream, or all) held for `reason` due now: queued,
 * or deferred when they were attempted before. Writes a `retried` event each. Returns how many.
 */
export function releaseHeld(
  db: DatabaseSync,
  input: { accountId: string; stream?: string; reason: HoldReason; now: number; note: string },
): number {
  const params: SQLInputValue[] = [input.accountId, input.reason];
  let extra = '';
  if (input.stream !== undefined) {
    extra = ' AND stream = ?';
    params.push(input.stream);
  }
  const rows = all(
    db,
    `UPDATE recipients SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,
        hold_reason = '', next_attempt_at = ?, updated_at = ?
      WHERE state = 'held' AND account_id = ? AND hold_reason = ?${extra}
      RETURNING id, message_id, account_id, address`,
    input.now,
    input.now,
    ...params,
  );
  const event = db.prepare(
    'INSERT INTO events (at, type, message_id, recipient_id, account_id, recipient, data) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const data = JSON.stringify({ reason: input.note });
  for (const r of rows) {
    event.run(
      input.now,
      'retried',
      String(r.message_id),
      Number(r.id),
      String(r.account_id),
      String(r.address),
      data,
    );
  }
  return rows.length;
}

/** Held recipients by account, stream and hold reason (the guard's release sweep, `accounts list`). */
export function heldSummary(
  db: DatabaseSync,
): { accountId: string; stream: string; reason: string; count: number }[] {
  return all(
    db,
    `SELECT account_id, stream, hold_reason, count(*) AS n FROM recipients WHERE state = 'held'
      GROUP BY account_id, stream, hold_reason`,
  ).map((r) => ({
    accountId: String(r.account_id),
    stream: String(r.stream),
    reason: String(r.hold_reason),
    count: Number(r.n),
  }));
}

/** Stores an account's retention; both null removes it (the defaults apply). */
export function setAccountRetention(db: DatabaseSync, r: AccountRetention): void {
  if (r.bodiesMs === null && r.metadataMs === null) {
    db.prepare('DELETE FROM account_retention WHERE account_id = ?').run(r.accountId);
    return;
  }
  db.prepare(
    `INSERT INTO account_retention (account_id, bodies_ms, metadata_ms) VALUES (?, ?, ?)
     ON CONFLICT (account_id) DO UPDATE SET bodies_ms = excluded.bodies_ms, metadata_ms = excluded.metadata_ms`,
  ).run(r.accountId, r.bodiesMs, r.metadataMs);
}

export function listAccountRetention(db: DatabaseSync): AccountRetention[] {
  return all(db, 'SELECT * FROM account_retention ORDER BY account_id').map((r) => ({
    accountId: String(r.account_id),
    bodiesMs: r.bodies_ms === null ? null : Number(r.bodies_ms),
    metadataMs: r.metadata_ms === null ? null : Number(r.metadata_ms),
  }));
}

/** The stored secret `name`, storing `candidate` first when there is none (the first caller wins). */
export function privacySecret(db: DatabaseSync, name: string, candidate: string): string {
  db.prepare('INSERT INTO privacy_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING').run(
    name,
    candidate,
  );
  const row = db.prepare('SELECT value FROM privacy_secrets WHERE name = ?').get(name) as Row | undefined;
  return String(row?.value ?? candidate);
}
