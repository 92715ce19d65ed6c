import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import type { DashboardRole, DashboardSession, DashboardUser } from '../types.ts';

/**
 * The SQLite side of the dashboard's users and sessions (schema v14). Plain functions over the
 * adapter's connection; writes run inside the adapter's CommitQueue job (one transaction).
 */

type Row = Record<string, SQLInputValue>;

const get = (db: DatabaseSync, sql: string, ...params: SQLInputValue[]): Row | undefined =>
  db.prepare(sql).get(...params) as Row | undefined;
const all = (db: DatabaseSync, sql: string, ...params: SQLInputValue[]): Row[] =>
  db.prepare(sql).all(...params) as Row[];
const run = (db: DatabaseSync, sql: string, ...params: SQLInputValue[]): number =>
  Number(db.prepare(sql).run(...params).changes);

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

export function createUser(db: DatabaseSync, u: DashboardUser): DashboardUser {
  run(
    db,
    `INSERT INTO dashboard_users (id, account_id, email, role, password_hash, created_at, password_changed_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
    u.id,
    u.accountId,
    u.email,
    u.role,
    u.passwordHash,
    u.createdAt,
    u.passwordChangedAt,
  );
  return u;
}

export function getUser(db: DatabaseSync, id: string): DashboardUser | undefined {
  const r = get(db, 'SELECT * FROM dashboard_users WHERE id = ?', id);
  return r && toUser(r);
}

export function findUser(db: DatabaseSync, email: string): DashboardUser | undefined {
  const r = get(db, 'SELECT * FROM dashboard_users WHERE email = ?', email);
  return r && toUser(r);
}

export function listUsers(db: DatabaseSync, accountId?: string): DashboardUser[] {
  const rows =
    accountId === undefined
      ? all(db, 'SELECT * FROM dashboard_users ORDER BY email')
      : all(db, 'SELECT * FROM dashboard_users WHERE account_id = ? ORDER BY email', accountId);
  return rows.map(toUser);
}

export function deleteUser(db: DatabaseSync, id: string): boolean {
  run(db, 'DELETE FROM dashboard_sessions WHERE user_id = ?', id);
  return run(db, 'DELETE FROM dashboard_users WHERE id = ?', id) > 0;
}

export function setPassword(db: DatabaseSync, id: string, hash: string, at: number): boolean {
  run(db, 'DELETE FROM dashboard_sessions WHERE user_id = ?', id);
  return (
    run(
      db,
      'UPDATE dashboard_users SET password_hash = ?, password_changed_at = ? WHERE id = ?',
      hash,
      at,
      id,
    ) > 0
  );
}

export function createSession(db: DatabaseSync, s: DashboardSession): void {
  run(
    db,
    'INSERT INTO dashboard_sessions (id, user_id, csrf_token, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)',
    s.id,
    s.userId,
    s.csrfToken,
    s.createdAt,
    s.lastSeenAt,
  );
}

export function getSession(db: DatabaseSync, id: string): DashboardSession | undefined {
  const r = get(db, 'SELECT * FROM dashboard_sessions WHERE id = ?', id);
  return r && toSession(r);
}

export function touchSession(db: DatabaseSync, id: string, at: number): void {
  run(db, 'UPDATE dashboard_sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?', at, id, at);
}

export function deleteSession(db: DatabaseSync, id: string): void {
  run(db, 'DELETE FROM dashboard_sessions WHERE id = ?', id);
}

export function purgeSessions(db: DatabaseSync, idleBefore: number, createdBefore: number): number {
  return run(
    db,
    'DELETE FROM dashboard_sessions WHERE last_seen_at < ? OR created_at < ?',
    idleBefore,
    createdBefore,
  );
}
