import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
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
 * Privacy export and erasure on SQLite (privacy/privacy.ts). Tables and columns are read from
 * the schema itself (sqlite_master, table_info), so a table another module adds later is
 * searched and erased too without a change here: every TEXT or BLOB column is matched with a
 * case-insensitive substring test. That is a scan of every such table: erasure is rare and
 * correctness matters more than speed.
 */

type Row = Record<string, SQLInputValue>;

interface TableInfo {
  name: string;
  /** TEXT, BLOB or untyped columns: where an address can be. */
  textColumns: string[];
  hasAccountId: boolean;
  hasMessageId: boolean;
}

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

function tables(db: DatabaseSync): TableInfo[] {
  const names = (
    db
      .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
      .all() as Row[]
  ).map((r) => String(r.name));
  return names.map((name) => {
    const cols = db.prepare(`PRAGMA table_info(${quote(name)})`).all() as Row[];
    const colNames = cols.map((c) => String(c.name));
    return {
      name,
      textColumns: cols
        .filter(
          (c) => /^(TEXT|BLOB|)$/i.test(String(c.type ?? '')) || /CHAR|CLOB|TEXT|BLOB/i.test(String(c.type)),
        )
        .map((c) => String(c.name)),
      hasAccountId: colNames.includes('account_id'),
      hasMessageId: colNames.includes('message_id'),
    };
  });
}

/** `(col1 contains ? OR col2 contains ? …)` with one parameter per column. */
function mentions(t: TableInfo, address: string): { sql: string; params: SQLInputValue[] } {
  const parts = t.textColumns.map((c) => `instr(lower(CAST(${quote(c)} AS TEXT)), ?) > 0`);
  return { sql: `(${parts.join(' OR ')})`, params: t.textColumns.map(() => address) };
}

/** The ids of messages naming the address: a recipient row, a column of the message, a copy, or any row with a message_id. */
function namingMessages(
  db: DatabaseSync,
  all: TableInfo[],
  address: string,
  accountId: string | undefined,
): string[] {
  const ids = new Set<string>();
  for (const t of all) {
    if (!t.hasMessageId && t.name !== 'messages') continue;
    if (t.textColumns.length === 0) continue;
    const idColumn = t.name === 'messages' ? 'id' : 'message_id';
    const m = mentions(t, address);
    const rows = db
      .prepare(`SELECT DISTINCT ${idColumn} AS id FROM ${quote(t.name)} WHERE ${m.sql}`)
      .all(...m.params) as Row[];
    for (const r of rows) if (r.id !== null && String(r.id) !== '') ids.add(String(r.id));
  }
  if (accountId === undefined || ids.size === 0) return [...ids];
  const owned = db.prepare('SELECT account_id FROM messages WHERE id = ?');
  return [...ids].filter((id) => String((owned.get(id) as Row | undefined)?.account_id ?? '') === accountId);
}

function toMessage(r: Row): MessageRow {
  return {
    id: String(r.id),
    accountId: String(r.account_id),
    credentialId: r.credential_id === null ? null : String(r.credential_id),
    mailFrom: String(r.mail_from),
    messageIdHeader: String(r.message_id_header),
    subject: String(r.subject),
    size: Number(r.size),
    source: String(r.source),
    clientIp: String(r.client_ip),
    dsn: JSON.parse(String(r.dsn ?? '{}')),
    dsnOnFailure: Number(r.dsn_on_failure) === 1,
    receivedAt: Number(r.received_at),
    stream: String(r.stream),
    bodyPurged: r.body === null,
    tags: JSON.parse(String(r.tags ?? '[]')),
    metadata: JSON.parse(String(r.metadata ?? '{}')),
    template: String(r.template ?? ''),
  };
}

/** A row as JSON-able data: blobs become their size (an export never carries message bodies). */
function plain(r: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) {
    out[k] = v instanceof Uint8Array ? { bytes: v.byteLength } : typeof v === 'bigint' ? Number(v) : v;
  }
  return out;
}

export function exportAddress(
  db: DatabaseSync,
  input: { address: string; accountId?: string; limit: number },
): AddressExport {
  const address = input.address.toLowerCase();
  const all = tables(db);
  const ids = namingMessages(db, all, address, input.accountId).sort();
  const truncated = ids.length > input.limit;
  const messages: AddressExport['messages'] = [];
  for (const id of ids.slice(0, input.limit)) {
    const m = db
      .prepare(
        `SELECT id, account_id, credential_id, mail_from, message_id_header, subject, size, source, client_ip, dsn,
           dsn_on_failure, received_at, stream, tags, metadata, template, CASE WHEN body IS NULL THEN NULL ELSE 1 END AS body
         FROM messages WHERE id = ?`,
      )
      .get(id) as Row | undefined;
    if (!m) continue;
    // Only the address's own recipient rows and events: the other recipients are other people.
    const recipients = (
      db
        .prepare('SELECT * FROM recipients WHERE message_id = ? AND lower(address) = ? ORDER BY id')
        .all(id, address) as Row[]
    ).map((r) => plain(r) as unknown as RecipientRow);
    const events = (
      db
        .prepare(
          'SELECT * FROM events WHERE message_id = ? AND (recipient IS NULL OR lower(recipient) = ?) ORDER BY id',
        )
        .all(id, address) as Row[]
    ).map((e) => ({ ...plain(e), data: JSON.parse(String(e.data ?? '{}')) }) as unknown as EventRow);
    messages.push({ ...toMessage(m), recipients, events });
  }
  const suppressionRows = db
    .prepare(
      `SELECT * FROM suppressions WHERE lower(address) = ?${input.accountId === undefined ? '' : ' AND account_id = ?'}`,
    )
    .all(...(input.accountId === undefined ? [address] : [address, input.accountId])) as Row[];
  const suppressions = suppressionRows.map(
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
    const m = mentions(t, address);
    let sql = `SELECT * FROM ${quote(t.name)} WHERE ${m.sql}`;
    const params = [...m.params];
    if (input.accountId !== undefined) {
      if (!t.hasAccountId) continue;
      sql += ' AND account_id = ?';
      params.push(input.accountId);
    }
    const rows = db.prepare(`${sql} LIMIT ?`).all(...params, input.limit) as Row[];
    if (rows.length > 0) other.push({ table: t.name, rows: rows.map(plain) });
  }
  return { messages, suppressions, other, truncated };
}

/**
 * Runs inside one CommitQueue job (one transaction): the messages naming the address go whole,
 * with their rows in every table that has a message_id; then every other row mentioning it,
 * except in configuration tables; suppressions become entries for the token; audit entries keep
 * their record with the address replaced by the token.
 */
export function eraseAddress(
  db: DatabaseSync,
  input: { address: string; accountId?: string; token: string; now: number },
): ErasureResult {
  const address = input.address.toLowerCase();
  const all = tables(db);
  const counted: Record<string, number> = {};
  const count = (table: string, n: number): void => {
    if (n > 0) counted[table] = (counted[table] ?? 0) + n;
  };
  const ids = namingMessages(db, all, address, input.accountId);
  const children = all.filter((t) => t.hasMessageId && t.name !== 'messages');
  // Children first (foreign keys to messages); recipients before the variants they point at does not matter.
  for (const id of ids) {
    for (const t of children) {
      count(t.name, Number(db.prepare(`DELETE FROM ${quote(t.name)} WHERE message_id = ?`).run(id).changes));
    }
    count('messages', Number(db.prepare('DELETE FROM messages WHERE id = ?').run(id).changes));
  }
  // Suppressions: the same entries, keyed by the token, so the address stays suppressed.
  const scoped = input.accountId === undefined ? '' : ' AND account_id = ?';
  const scopeParams: SQLInputValue[] = input.accountId === undefined ? [] : [input.accountId];
  const entries = db
    .prepare(`SELECT * FROM suppressions WHERE lower(address) = ?${scoped}`)
    .all(address, ...scopeParams) as Row[];
  for (const e of entries) {
    db.prepare(
      `INSERT INTO suppressions (account_id, address, scope, reason, category, source, details, created_at, expires_at)
       VALUES (?, ?, ?, ?, ?, 'erased', '', ?, ?)
       ON CONFLICT (account_id, address, scope) DO NOTHING`,
    ).run(
      e.account_id ?? '',
      input.token,
      e.scope ?? '',
      e.reason ?? 'manual',
      e.category ?? '',
      e.created_at ?? input.now,
      e.expires_at ?? null,
    );
  }
  count(
    'suppressions',
    Number(
      db.prepare(`DELETE FROM suppressions WHERE lower(address) = ?${scoped}`).run(address, ...scopeParams)
        .changes,
    ),
  );
  // The audit trail keeps its entries; the address in them becomes the token.
  for (const r of db
    .prepare(
      `SELECT id, target, details FROM audit_log WHERE (instr(lower(target), ?) > 0 OR instr(lower(details), ?) > 0)${scoped}`,
    )
    .all(address, address, ...scopeParams) as Row[]) {
    db.prepare('UPDATE audit_log SET target = ?, details = ? WHERE id = ?').run(
      replaceAll(String(r.target), address, input.token),
      replaceAll(String(r.details), address, input.token),
      Number(r.id),
    );
    count('audit_log', 1);
  }
  // Everything else that mentions it, wherever it is.
  for (const t of all) {
    if (CONFIGURATION_TABLES.has(t.name) || t.name === 'suppressions' || t.name === 'audit_log') continue;
    if (t.textColumns.length === 0) continue;
    const m = mentions(t, address);
    let sql = `DELETE FROM ${quote(t.name)} WHERE ${m.sql}`;
    const params = [...m.params];
    if (input.accountId !== undefined) {
      // Within one account only rows that say whose they are (messages of others were excluded above).
      if (!t.hasAccountId) continue;
      sql += ' AND account_id = ?';
      params.push(input.accountId);
    }
    count(t.name, Number(db.prepare(sql).run(...params).changes));
  }
  return { messages: ids.length, suppressionsHashed: entries.length, tables: counted };
}
