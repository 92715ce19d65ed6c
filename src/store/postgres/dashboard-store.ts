import type { Pool } from 'pg';
import type { DashboardRole, DashboardSession, DashboardUser } from '../types.ts';

/**
 * The PostgreSQL side of the dashboard's users and sessions (schema v15), as the SQLite one
 * (sqlite/dashboard-store.ts). Each function is one statement in autocommit unless it says
 * otherwise.
 */

type Row = Record<string, unknown>;

function toUser(r: Row): DashboardUser {
  return {
    id: String(r.id),
    accountId: String(r.account_id),
    email: String(r.email),
    role: String(r.role) as DashboardRole,
    passwordHash: String(r.password_hash),
    createdAt: Number(r.created_at),
    passwordChangedAt: Number(r.password_changed_at),
  };
}

function toSession(r: Row): DashboardSession {
  return {
    id: String(r.id),
    userId: String(r.user_id),
    csrfToken: String(r.csrf_token),
    createdAt: Number(r.created_at),
    lastSeenAt: Number(r.last_seen_at),
  };
}

export async function createUser(db: Pool, u: DashboardUser): Promise<DashboardUser> {
  await db.query(
    `INSERT INTO dashboard_users (id, account_id, email, role, password_hash, created_at, password_changed_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [u.id, u.accountId, u.email, u.role, u.passwordHash, u.createdAt, u.passwordChangedAt],
  );
  return u;
}

export async function getUser(db: Pool, id: string): Promise<DashboardUser | undefined> {
  const { rows } = await db.query<Row>('SELECT * FROM dashboard_users WHERE id = $1', [id]);
  return rows[0] && toUser(rows[0]);
}

export async function findUser(db: Pool, email: string): Promise<DashboardUser | undefined> {
  const { rows } = await db.query<Row>('SELECT * FROM dashboard_users WHERE email = $1', [email]);
  return rows[0] && toUser(rows[0]);
}

export async function listUsers(db: Pool, accountId?: string): Promise<DashboardUser[]> {
  const { rows } =
    accountId === undefined
      ? await db.query<Row>('SELECT * FROM dashboard_users ORDER BY email')
      : await db.query<Row>('SELECT * FROM dashboard_users WHERE account_id = $1 ORDER BY email', [
          accountId,
        ]);
  return rows.map(toUser);
}

/** One transaction: the sessions go with the user. */
export async function deleteUser(db: Pool, id: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `WITH s AS (DELETE FROM dashboard_sessions WHERE user_id = $1)
     DELETE FROM dashboard_users WHERE id = $1`,
    [id],
  );
  return (rowCount ?? 0) > 0;
}

/** One statement: the new hash and the end of every session of the user. */
export async function setPassword(db: Pool, id: string, hash: string, at: number): Promise<boolean> {
  const { rowCount } = await db.query(
    `WITH s AS (DELETE FROM dashboard_sessions WHERE user_id = $1)
     UPDATE dashboard_users SET password_hash = $2, password_changed_at = $3 WHERE id = $1`,
    [id, hash, at],
  );
  return (rowCount ?? 0) > 0;
}

export async function createSession(db: Pool, s: DashboardSession): Promise<void> {
  await db.query(
    'INSERT INTO dashboard_sessions (id, user_id, csrf_token, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5)',
    [s.id, s.userId, s.csrfToken, s.createdAt, s.lastSeenAt],
  );
}

export async function getSession(db: Pool, id: string): Promise<DashboardSession | undefined> {
  const { rows } = await db.query<Row>('SELECT * FROM dashboard_sessions WHERE id = $1', [id]);
  return rows[0] && toSession(rows[0]);
}

export async function touchSession(db: Pool, id: string, at: number): Promise<void> {
  await db.query('UPDATE dashboard_sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2', [
    id,
    at,
  ]);
}

export async function deleteSession(db: Pool, id: string): Promise<void> {
  await db.query('DELETE FROM dashboard_sessions WHERE id = $1', [id]);
}

export async function purgeSessions(db: Pool, idleBefore: number, createdBefore: number): Promise<number> {
  const { rowCount } = await db.query(
    'DELETE FROM dashboard_sessions WHERE last_seen_at < $1 OR created_at < $2',
    [idleBefore, createdBefore],
  );
  return rowCount ?? 0;
}
