import type { Pool, PoolClient } from 'pg';
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
 * The PostgreSQL side of the reputation guard, the audit trail, per-account retention and the
 * privacy salt (schema v14), as the SQLite one (sqlite/guard-store.ts). Each function is one
 * statement in autocommit unless it says otherwise.
 */

type Db = Pool | PoolClient;
type Row = Record<string, unknown>;

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** The account condition of a retention batch on messages `m`; its parameters start at `$first`. */
export function purgeScope(batch: PurgeBatch, first: number): { sql: string; params: unknown[] } {
  if (batch.accountId !== undefined)
    return { sql: ` AND m.account_id = $${first}`, params: [batch.accountId] };
  const except = batch.exceptAccountIds ?? [];
  if (except.length === 0) return { sql: '', params: [] };
  return { sql: ` AND m.account_id <> ALL($${first}::text[])`, params: [except] };
}

export async function recordAudit(db: Db, entries: NewAuditEntry[]): Promise<void> {
  await db.query(
    `INSERT INTO audit_log (at, actor, account_id, action, target, details)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])`,
    [
      entries.map((e) => e.at),
      entries.map((e) => e.actor),
      entries.map((e) => e.accountId),
      entries.map((e) => e.action),
      entries.map((e) => e.target),
      entries.map((e) => JSON.stringify(e.details ?? {})),
    ],
  );
}

export async function listAudit(db: Db, filter: AuditFilter): Promise<AuditEntry[]> {
  const where: string[] = [];
  const values: unknown[] = [];
  if (filter.accountId !== undefined) where.push(`account_id = $${values.push(filter.accountId)}`);
  if (filter.before !== undefined) where.push(`id < $${values.push(filter.before)}`);
  if (filter.since !== undefined) where.push(`at >= $${values.push(filter.since)}`);
  const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
  const { rows } = await db.query<Row>(
    `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY id DESC LIMIT $${values.push(limit)}`,
    values,
  );
  return rows.map((r) => ({
    id: num(r.id),
    at: num(r.at),
    actor: String(r.actor),
    accountId: String(r.account_id),
    action: String(r.action),
    target: String(r.target),
    details: (r.details ?? {}) as Record<string, unknown>,
  }));
}

export async function guardCounts(
  db: Db,
  input: { since: number; accountId?: string; stream?: string },
): Promise<GuardCount[]> {
  const values: unknown[] = [input.since];
  let extra = '';
  if (input.accountId !== undefined) extra += ` AND e.account_id = $${values.push(input.accountId)}`;
  if (input.stream !== undefined) extra += ` AND r.stream = $${values.push(input.stream)}`;
  const { rows } = await db.query<Row>(
    `SELECT e.account_id, r.stream, e.type, count(*) AS n
       FROM events e JOIN recipients r ON r.id = e.recipient_id
      WHERE e.type IN ('delivered', 'bounced', 'complained') AND e.at >= $1${extra}
      GROUP BY e.account_id, r.stream, e.type`,
    values,
  );
  return foldCounts(rows);
}

export async function listGuardStates(db: Db, accountId?: string): Promise<GuardState[]> {
  const { rows } =
    accountId === undefined
      ? await db.query<Row>('SELECT * FROM guard_state ORDER BY account_id, stream')
      : await db.query<Row>('SELECT * FROM guard_state WHERE account_id = $1 ORDER BY stream', [accountId]);
  return rows.map(toGuardState);
}

export async function saveGuardState(db: Db, s: GuardState): Promise<void> {
  // One statement: the state and, for an account-wide one, accounts.paused.
  await db.query(
    `WITH saved AS (
       INSERT INTO guard_state (account_id, stream, paused_at, paused_by, reason, resumed_at, warned_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (account_id, stream) DO UPDATE SET paused_at = excluded.paused_at,
         paused_by = excluded.paused_by, reason = excluded.reason, resumed_at = excluded.resumed_at,
         warned_at = excluded.warned_at
       RETURNING account_id
     )
     UPDATE accounts SET paused = ($3::bigint IS NOT NULL) WHERE id = $1 AND $2 = '' AND EXISTS (SELECT 1 FROM saved)`,
    [s.accountId, s.stream, s.pausedAt, s.pausedBy, s.reason, s.resumedAt, s.warnedAt],
  );
}

export async function releaseHeld(
  db: Db,
  input: { accountId: string; stream?: string; reason: HoldReason; now: number; note: string },
): Promise<number> {
  const values: unknown[] = [
    input.now,
    JSON.stringify({ reason: input.note }),
    input.accountId,
    input.reason,
  ];
  const extra = input.stream === undefined ? '' : ` AND stream = $${values.push(input.stream)}`;
  const { rows } = await db.query<Row>(
    `WITH changed AS (
       UPDATE recipients SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,
         hold_reason = '', next_attempt_at = $1, updated_at = $1
       WHERE state = 'held' AND account_id = $3 AND hold_reason = $4${extra}
       RETURNING id, message_id, account_id, address
     ), logged AS (
       INSERT INTO events (at, type, message_id, recipient_id, account_id, recipient, data)
       SELECT $1, 'retried', message_id, id, account_id, address, $2::jsonb FROM changed ORDER BY id
     )
     SELECT count(*) AS n FROM changed`,
    values,
  );
  return num(rows[0]?.n ?? 0);
}

export async function heldSummary(
  db: Db,
): Promise<{ accountId: string; stream: string; reason: string; count: number }[]> {
  const { rows } = await db.query<Row>(
    `SELECT account_id, stream, hold_reason, count(*) AS n FROM recipients WHERE state = 'held'
      GROUP BY account_id, stream, hold_reason`,
  );
  return rows.map((r) => ({
    accountId: String(r.account_id),
    stream: String(r.stream),
    reason: String(r.hold_reason),
    count: num(r.n),
  }));
}

export async function setAccountRetention(db: Db, r: AccountRetention): Promise<void> {
  if (r.bodiesMs === null && r.metadataMs === null) {
    await db.query('DELETE FROM account_retention WHERE account_id = $1', [r.accountId]);
    return;
  }
  await db.query(
    `INSERT INTO account_retention (account_id, bodies_ms, metadata_ms) VALUES ($1, $2, $3)
     ON CONFLICT (account_id) DO UPDATE SET bodies_ms = excluded.bodies_ms, metadata_ms = excluded.metadata_ms`,
    [r.accountId, r.bodiesMs, r.metadataMs],
  );
}

export async function listAccountRetention(db: Db): Promise<AccountRetention[]> {
  const { rows } = await db.query<Row>('SELECT * FROM account_retention ORDER BY account_id');
  return rows.map((r) => ({
    accountId: String(r.account_id),
    bodiesMs: numOrNull(r.bodies_ms),
    metadataMs: numOrNull(r.metadata_ms),
  }));
}

export async function privacySecret(db: Db, name: string, candidate: string): Promise<string> {
  const { rows } = await db.query<Row>(
    `WITH ins AS (
       INSERT INTO privacy_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value
     )
     SELECT value FROM ins UNION ALL SELECT value FROM privacy_secrets WHERE name = $1`,
    [name, candidate],
  );
  return String(rows[0]?.value ?? candidate);
}
