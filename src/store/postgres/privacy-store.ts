import { escapeIdentifier, type Pool, type PoolClient } from 'pg';
import { CONFIGURATION_TABLES, MESSAGE_TABLES, replaceAll } from '../privacy-tables.ts';
import type {
  AddressExport,
  ErasureResult,
  EventRow,
  MessageRow,
  RecipientRow,
  Suppression,
} from '../types.ts';

/**
 * Privacy export and erasure on PostgreSQL, as sqlite/privacy-store.ts: tables and columns come
 * from information_schema (the deployment's schema), so tables added later are covered. Text
 * and JSON columns are matched lower-cased; bytea through `encode(…, 'escape')`, which keeps
 * ASCII bytes as they are.
 */

type Db = Pool | PoolClient;
type Row = Record<string, unknown>;

interface TableInfo {
  name: string;
  /** Column name → how to read it as lower-case text. */
  textColumns: { name: string; expr: string }[];
  hasAccountId: boolean;
  hasMessageId: boolean;
}

async function tables(db: Db, schema: string): Promise<TableInfo[]> {
  const { rows } = await db.query<Row>(
    `SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = $1 AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position`,
    [schema],
  );
  const out = new Map<string, TableInfo>();
  for (const r of rows) {
    const name = String(r.table_name);
    let t = out.get(name);
    if (!t) {
      t = { name, textColumns: [], hasAccountId: false, hasMessageId: false };
      out.set(name, t);
    }
    const column = String(r.column_name);
    const type = String(r.data_type);
    const id = escapeIdentifier(column);
    if (column === 'account_id') t.hasAccountId = true;
    if (column === 'message_id') t.hasMessageId = true;
    if (type === 'bytea') t.textColumns.push({ name: column, expr: `lower(encode(${id}, 'escape'))` });
    else if (type === 'text' || type === 'character varying' || type === 'json' || type === 'jsonb') {
      t.textColumns.push({ name: column, expr: `lower(${id}::text)` });
    }
  }
  return [...out.values()];
}

/** `(expr1 contains $n OR …)`: one parameter, appended to `values`. */
function mentions(t: TableInfo, values: unknown[], address: string): string {
  const p = `$${values.push(address)}`;
  return `(${t.textColumns.map((c) => `strpos(${c.expr}, ${p}) > 0`).join(' OR ')})`;
}

async function namingMessages(
  db: Db,
  all: TableInfo[],
  address: string,
  accountId: string | undefined,
): Promise<string[]> {
  const ids = new Set<string>();
  for (const t of all) {
    if ((!t.hasMessageId && t.name !== 'messages') || t.textColumns.length === 0) continue;
    const idColumn = t.name === 'messages' ? 'id' : 'message_id';
    const values: unknown[] = [];
    const { rows } = await db.query<Row>(
      `SELECT DISTINCT ${idColumn}::text AS id FROM ${escapeIdentifier(t.name)} WHERE ${mentions(t, values, address)}`,
      values,
    );
    for (const r of rows) if (r.id !== null && String(r.id) !== '') ids.add(String(r.id));
  }
  if (accountId === undefined || ids.size === 0) return [...ids];
  const { rows } = await db.query<Row>(
    'SELECT id FROM messages WHERE id = ANY($1::text[]) AND account_id = $2',
    [[...ids], accountId],
  );
  return rows.map((r) => String(r.id));
}

function plain(r: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) out[k] = Buffer.isBuffer(v) ? { bytes: v.byteLength } : v;
  return out;
}

export async function exportAddress(
  db: Db,
  schema: string,
  input: { address: string; accountId?: string; limit: number },
): Promise<AddressExport> {
  const address = input.address.toLowerCase();
  const all = await tables(db, schema);
  const ids = (await namingMessages(db, all, address, input.accountId)).sort();
  const messages: AddressExport['messages'] = [];
  for (const id of ids.slice(0, input.limit)) {
    const m = (
      await db.query<Row>(
        `SELECT id, account_id, credential_id, mail_from, message_id_header, subject, size, source, client_ip, dsn,
           dsn_on_failure, received_at, stream, tags, metadata, template, body IS NULL AS body_purged
         FROM messages WHERE id = $1`,
        [id],
      )
    ).rows[0];
    if (!m) continue;
    const recipients = (
      await db.query<Row>(
        'SELECT * FROM recipients WHERE message_id = $1 AND lower(address) = $2 ORDER BY id',
        [id, address],
      )
    ).rows.map((r) => plain(r) as unknown as RecipientRow);
    const events = (
      await db.query<Row>(
        'SELECT * FROM events WHERE message_id = $1 AND (recipient IS NULL OR lower(recipient) = $2) ORDER BY id',
        [id, address],
      )
    ).rows.map((e) => plain(e) as unknown as EventRow);
    const message: MessageRow = {
      id: String(m.id),
      accountId: String(m.account_id),
      credentialId: m.credential_id === null ? null : String(m.credential_id),
      mailFrom: String(m.mail_from),
      messageIdHeader: String(m.message_id_header),
      subject: String(m.subject),
      size: Number(m.size),
      source: String(m.source),
      clientIp: String(m.client_ip),
      dsn: (m.dsn ?? {}) as MessageRow['dsn'],
      dsnOnFailure: Boolean(m.dsn_on_failure),
      receivedAt: Number(m.received_at),
      stream: String(m.stream),
      bodyPurged: Boolean(m.body_purged),
      tags: (m.tags ?? []) as string[],
      metadata: (m.metadata ?? {}) as Record<string, string>,
      template: String(m.template ?? ''),
    };
    messages.push({ ...message, recipients, events });
  }
  const values: unknown[] = [address];
  const scoped = input.accountId === undefined ? '' : ` AND account_id = $${values.push(input.accountId)}`;
  const suppressions = (
    await db.query<Row>(`SELECT * FROM suppressions WHERE lower(address) = $1${scoped}`, values)
  ).rows.map(
    (r) =>
      ({
        accountId: String(r.account_id),
        address: String(r.address),
        scope: String(r.scope),
        reason: String(r.reason),
        category: String(r.category),
        source: String(r.source),
        details: String(r.details),
        createdAt: Number(r.created_at),
        expiresAt: r.expires_at === null ? null : Number(r.expires_at),
      }) as Suppression,
  );
  const other: AddressExport['other'] = [];
  for (const t of all) {
    if (MESSAGE_TABLES.has(t.name) || t.name === 'suppressions' || CONFIGURATION_TABLES.has(t.name)) continue;
    if (t.textColumns.length === 0) continue;
    if (input.accountId !== undefined && !t.hasAccountId) continue;
    const v: unknown[] = [];
    let sql = `SELECT * FROM ${escapeIdentifier(t.name)} WHERE ${mentions(t, v, address)}`;
    if (input.accountId !== undefined) sql += ` AND account_id = $${v.push(input.accountId)}`;
    const { rows } = await db.query<Row>(`${sql} LIMIT $${v.push(input.limit)}`, v);
    if (rows.length > 0) other.push({ table: t.name, rows: rows.map(plain) });
  }
  return { messages, suppressions, other, truncated: ids.length > input.limit };
}

/** As the SQLite one; `db` is a client inside the caller's transaction. */
export async function eraseAddress(
  db: PoolClient,
  schema: string,
  input: { address: string; accountId?: string; token: string; now: number },
): Promise<ErasureResult> {
  const address = input.address.toLowerCase();
  const all = await tables(db, schema);
  const counted: Record<string, number> = {};
  const count = (table: string, n: number | null): void => {
    if (n) counted[table] = (counted[table] ?? 0) + n;
  };
  const ids = await namingMessages(db, all, address, input.accountId);
  if (ids.length > 0) {
    for (const t of all) {
      if (!t.hasMessageId || t.name === 'messages') continue;
      const r = await db.query(
        `DELETE FROM ${escapeIdentifier(t.name)} WHERE message_id::text = ANY($1::text[])`,
        [ids],
      );
      count(t.name, r.rowCount);
    }
    count('messages', (await db.query('DELETE FROM messages WHERE id = ANY($1::text[])', [ids])).rowCount);
  }
  const values: unknown[] = [address];
  const scoped = input.accountId === undefined ? '' : ` AND account_id = $${values.push(input.accountId)}`;
  const hashed = await db.query(
    `INSERT INTO suppressions (account_id, address, scope, reason, category, source, details, created_at, expires_at)
     SELECT account_id, $${values.push(input.token)}, scope, reason, category, 'erased', '', created_at, expires_at
       FROM suppressions WHERE lower(address) = $1${scoped}
     ON CONFLICT (account_id, address, scope) DO NOTHING`,
    values,
  );
  const removed = await db.query(
    `DELETE FROM suppressions WHERE lower(address) = $1${scoped}`,
    values.slice(0, -1),
  );
  count('suppressions', removed.rowCount);
  const audit = await db.query<Row>(
    `SELECT id, target, details::text AS details FROM audit_log
      WHERE (strpos(lower(target), $1) > 0 OR strpos(lower(details::text), $1) > 0)${scoped}`,
    values.slice(0, -1),
  );
  for (const r of audit.rows) {
    await db.query('UPDATE audit_log SET target = $1, details = $2::jsonb WHERE id = $3', [
      replaceAll(String(r.target), address, input.token),
      replaceAll(String(r.details), address, input.token),
      r.id,
    ]);
    count('audit_log', 1);
  }
  for (const t of all) {
    if (CONFIGURATION_TABLES.has(t.name) || t.name === 'suppressions' || t.name === 'audit_log') continue;
    if (t.textColumns.length === 0) continue;
    if (input.accountId !== undefined && !t.hasAccountId) continue;
    const v: unknown[] = [];
    let sql = `DELETE FROM ${escapeIdentifier(t.name)} WHERE ${mentions(t, v, address)}`;
    if (input.accountId !== undefined) sql += ` AND account_id = $${v.push(input.accountId)}`;
    count(t.name, (await db.query(sql, v)).rowCount);
  }
  return { messages: ids.length, suppressionsHashed: hashed.rowCount ?? 0, tables: counted };
}
