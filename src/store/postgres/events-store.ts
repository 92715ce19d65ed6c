import type { PoolClient } from 'pg';
import { EVENT_WITH_LABELS, enrichedEventsSql } from '../enriched-events.ts';
import type {
  EnrichedEventRow,
  EventFilter,
  NewEvent,
  WebhookAttempt,
  WebhookBatch,
  WebhookEndpoint,
} from '../types.ts';
import { EVENT_WRITE_SLACK_MS } from '../types.ts';
import { clean, json, num, type Row, toEvent } from './rows.ts';

/**
 * The event log's queries, its feed cursors and the webhook tables on PostgreSQL (schema v12),
 * kept out of postgres-store.ts, which delegates here. See docs/architecture.md "Events and
 * webhooks" for the indexes each query ranges over.
 */
export interface PgQueries {
  all(text: string, values?: unknown[]): Promise<Row[]>;
  get(text: string, values?: unknown[]): Promise<Row | undefined>;
  run(text: string, values?: unknown[]): Promise<number>;
  transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T>;
}

const parsedText = <T>(value: unknown, empty: T): T =>
  value === null || value === undefined ? empty : (JSON.parse(String(value)) as T);

function toEnrichedEvent(r: Row): EnrichedEventRow {
  return {
    ...toEvent(r),
    recipientOrdinal: r.rcpt_ordinal === null || r.rcpt_ordinal === undefined ? null : num(r.rcpt_ordinal),
    stream: String(r.stream ?? ''),
    tags: parsedText<string[]>(r.m_tags, []),
    metadata: parsedText<Record<string, string>>(r.m_metadata, {}),
  };
}

function toWebhook(r: Row): WebhookEndpoint {
  return {
    id: String(r.id),
    accountId: String(r.account_id),
    url: String(r.url),
    secret: String(r.secret),
    eventTypes: parsedText<string[]>(r.event_types, []),
    enabled: r.enabled === true,
    disabledReason: String(r.disabled_reason),
    disabledAt: r.disabled_at === null ? null : num(r.disabled_at),
    failingSince: r.failing_since === null ? null : num(r.failing_since),
    createdAt: num(r.created_at),
  };
}

function toWebhookBatch(r: Row): WebhookBatch {
  return {
    id: String(r.id),
    webhookId: String(r.webhook_id),
    accountId: String(r.account_id),
    kind: String(r.kind),
    firstEventId: num(r.first_event_id),
    lastEventId: num(r.last_event_id),
    count: num(r.count),
    body: String(r.body),
    state: String(r.state) as WebhookBatch['state'],
    attempts: num(r.attempts),
    nextAttemptAt: num(r.next_attempt_at),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    lastError: String(r.last_error),
  };
}

export async function appendEvents(db: PgQueries, events: NewEvent[]): Promise<number[]> {
  if (events.length === 0) return [];
  const rows = await db.all(
    `INSERT INTO events (at, type, message_id, recipient_id, account_id, recipient, data)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::jsonb[])
     RETURNING id`,
    [
      events.map((e) => e.at),
      events.map((e) => e.type),
      events.map((e) => clean(e.messageId ?? '')),
      events.map((e) => e.recipientId ?? null),
      events.map((e) => e.accountId),
      events.map((e) => (e.recipient == null ? null : clean(e.recipient))),
      events.map((e) => json(e.data)),
    ],
  );
  return rows.map((r) => num(r.id));
}

export async function listEvents(db: PgQueries, filter: EventFilter): Promise<EnrichedEventRow[]> {
  const values: unknown[] = [];
  const p = (v: unknown): string => `$${values.push(v)}`;
  const tagged = filter.tag !== undefined;
  const idCol = tagged ? 't.event_id' : 'e.id';
  const where: string[] = [];
  let from = 'events e';
  if (tagged) {
    from = 'event_tags t JOIN events e ON e.id = t.event_id';
    where.push(`t.account_id = ${p(filter.accountId)} AND t.tag = ${p(filter.tag)}`);
  }
  where.push(`e.account_id = ${p(filter.accountId)}`);
  // Time bounds become id bounds (ids grow with write time; events are written within
  // EVENT_WRITE_SLACK_MS of their time), so a time window is an id range of any index below.
  let above = filter.afterId ?? 0;
  let below = filter.beforeId ?? Number.MAX_SAFE_INTEGER;
  if (filter.from !== undefined) {
    const r = await db.get('SELECT id FROM events WHERE at < $1 ORDER BY at DESC LIMIT 1', [
      filter.from - EVENT_WRITE_SLACK_MS,
    ]);
    if (r) above = Math.max(above, num(r.id));
    where.push(`e.at >= ${p(filter.from)}`);
  }
  if (filter.to !== undefined) {
    const r = await db.get('SELECT id FROM events WHERE at >= $1 ORDER BY at LIMIT 1', [
      filter.to + EVENT_WRITE_SLACK_MS,
    ]);
    if (r) below = Math.min(below, num(r.id));
    where.push(`e.at < ${p(filter.to)}`);
  }
  if (above > 0) where.push(`${idCol} > ${p(above)}`);
  if (below < Number.MAX_SAFE_INTEGER) where.push(`${idCol} < ${p(below)}`);
  if (filter.types !== undefined && filter.types.length > 0)
    where.push(`e.type = ANY(${p(filter.types)}::text[])`);
  if (filter.recipient !== undefined) where.push(`e.recipient = ${p(clean(filter.recipient))}`);
  if (filter.messageId !== undefined) where.push(`e.message_id = ${p(clean(filter.messageId))}`);
  if (filter.stream !== undefined) where.push(`e.stream = ${p(clean(filter.stream))}`);
  const limit = p(Math.min(Math.max(filter.limit ?? 100, 1), 1000));
  const direction = filter.ascending ? 'ASC' : 'DESC';
  const rows = await db.all(
    enrichedEventsSql(
      `SELECT ${EVENT_WITH_LABELS} FROM ${from} LEFT JOIN messages m ON m.id = e.message_id
       WHERE ${where.join(' AND ')} ORDER BY ${idCol} ${direction} LIMIT ${limit}`,
      direction,
    ),
    values,
  );
  return rows.map(toEnrichedEvent);
}

export async function eventsAfter(
  db: PgQueries,
  afterId: number,
  limit: number,
): Promise<EnrichedEventRow[]> {
  const rows = await db.all(
    enrichedEventsSql(
      `SELECT ${EVENT_WITH_LABELS} FROM events e LEFT JOIN messages m ON m.id = e.message_id
       WHERE e.id > $1 ORDER BY e.id LIMIT $2`,
      'ASC',
    ),
    [afterId, Math.min(Math.max(limit, 1), 10_000)],
  );
  return rows.map(toEnrichedEvent);
}

export async function lastEventId(db: PgQueries): Promise<number> {
  return num((await db.get('SELECT COALESCE(MAX(id), 0) AS id FROM events'))?.id ?? 0);
}

export async function getEventCursor(db: PgQueries, name: string): Promise<number | undefined> {
  const r = await db.get('SELECT position FROM event_cursors WHERE name = $1', [name]);
  return r ? num(r.position) : undefined;
}

const SET_CURSOR = `INSERT INTO event_cursors (name, position, updated_at) VALUES ($1, $2, $3)
  ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`;

export async function setEventCursor(
  db: PgQueries,
  name: string,
  position: number,
  now: number,
): Promise<void> {
  await db.run(SET_CURSOR, [clean(name), position, now]);
}

export async function createWebhook(db: PgQueries, w: WebhookEndpoint): Promise<void> {
  await db.run(
    `INSERT INTO webhooks (id, account_id, url, secret, event_types, enabled, disabled_reason, disabled_at,
       failing_since, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      w.id,
      w.accountId,
      clean(w.url),
      w.secret,
      JSON.stringify(w.eventTypes),
      w.enabled,
      w.disabledReason,
      w.disabledAt,
      w.failingSince,
      w.createdAt,
    ],
  );
}

export async function getWebhook(db: PgQueries, id: string): Promise<WebhookEndpoint | undefined> {
  const r = await db.get('SELECT * FROM webhooks WHERE id = $1 AND deleted_at IS NULL', [clean(id)]);
  return r && toWebhook(r);
}

export async function listWebhooks(db: PgQueries, accountId?: string): Promise<WebhookEndpoint[]> {
  const rows =
    accountId === undefined
      ? await db.all('SELECT * FROM webhooks WHERE deleted_at IS NULL ORDER BY id')
      : await db.all('SELECT * FROM webhooks WHERE account_id = $1 AND deleted_at IS NULL ORDER BY id', [
          accountId,
        ]);
  return rows.map(toWebhook);
}

const FAIL_BATCHES = `UPDATE webhook_batches SET state = 'failed', last_error = $1, updated_at = $2
  WHERE webhook_id = $3 AND state = 'pending'`;

export async function deleteWebhook(
  db: PgQueries,
  accountId: string,
  id: string,
  now: number,
): Promise<boolean> {
  return db.transaction(async (client) => {
    const r = await client.query(
      `UPDATE webhooks SET deleted_at = $1, enabled = false WHERE id = $2 AND account_id = $3 AND deleted_at IS NULL`,
      [now, clean(id), accountId],
    );
    if ((r.rowCount ?? 0) === 0) return false;
    await client.query(FAIL_BATCHES, ['webhook deleted', now, clean(id)]);
    return true;
  });
}

export async function updateWebhook(
  db: PgQueries,
  id: string,
  change: Partial<Pick<WebhookEndpoint, 'enabled' | 'disabledReason' | 'disabledAt' | 'failingSince'>>,
): Promise<void> {
  const values: unknown[] = [];
  const sets: string[] = [];
  const set = (column: string, value: unknown): void => {
    if (value === undefined) return;
    sets.push(`${column} = $${values.push(value)}`);
  };
  set('enabled', change.enabled);
  set('disabled_reason', change.disabledReason);
  set('disabled_at', change.disabledAt);
  set('failing_since', change.failingSince);
  if (sets.length === 0) return;
  await db.run(`UPDATE webhooks SET ${sets.join(', ')} WHERE id = $${values.push(id)}`, values);
}

export async function enqueueWebhookBatches(
  db: PgQueries,
  batches: WebhookBatch[],
  cursor?: { name: string; position: number; now: number },
): Promise<void> {
  await db.transaction(async (client) => {
    if (batches.length > 0) {
      const col = <T>(f: (b: WebhookBatch) => T): T[] => batches.map(f);
      await client.query(
        `INSERT INTO webhook_batches (id, webhook_id, account_id, kind, first_event_id, last_event_id, count, body,
           state, attempts, next_attempt_at, created_at, updated_at, last_error)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::int[],
           $8::text[], $9::text[], $10::int[], $11::bigint[], $12::bigint[], $13::bigint[], $14::text[])
         ON CONFLICT (id) DO NOTHING`,
        [
          col((b) => b.id),
          col((b) => b.webhookId),
          col((b) => b.accountId),
          col((b) => b.kind),
          col((b) => b.firstEventId),
          col((b) => b.lastEventId),
          col((b) => b.count),
          col((b) => clean(b.body)),
          col((b) => b.state),
          col((b) => b.attempts),
          col((b) => b.nextAttemptAt),
          col((b) => b.createdAt),
          col((b) => b.updatedAt),
          col((b) => b.lastError),
        ],
      );
    }
    if (cursor) await client.query(SET_CURSOR, [clean(cursor.name), cursor.position, cursor.now]);
  });
}

export async function dueWebhookBatches(db: PgQueries, now: number, limit: number): Promise<WebhookBatch[]> {
  const rows = await db.all(
    `SELECT b.* FROM webhook_batches b JOIN webhooks w ON w.id = b.webhook_id
     WHERE b.state = 'pending' AND b.next_attempt_at <= $1 AND w.enabled AND w.deleted_at IS NULL
     ORDER BY b.next_attempt_at LIMIT $2`,
    [now, limit],
  );
  return rows.map(toWebhookBatch);
}

export async function webhookBacklog(db: PgQueries): Promise<{ batches: number; events: number }> {
  const rows = await db.all(
    `SELECT COUNT(*) AS batches, COALESCE(SUM(count), 0) AS events FROM webhook_batches WHERE state = 'pending'`,
    [],
  );
  return { batches: Number(rows[0]?.batches ?? 0), events: Number(rows[0]?.events ?? 0) };
}

export async function recordWebhookAttempt(
  db: PgQueries,
  attempt: Omit<WebhookAttempt, 'id'>,
  batch: Pick<WebhookBatch, 'state' | 'attempts' | 'nextAttemptAt' | 'lastError'>,
): Promise<void> {
  await db.run(
    `WITH logged AS (
       INSERT INTO webhook_attempts (batch_id, webhook_id, at, status, error, duration_ms)
       VALUES ($1, $2, $3, $4, $5, $6)
     )
     UPDATE webhook_batches SET state = $7, attempts = $8, next_attempt_at = $9, last_error = $10, updated_at = $3
     WHERE id = $1`,
    [
      attempt.batchId,
      attempt.webhookId,
      attempt.at,
      attempt.status,
      clean(attempt.error),
      Math.round(attempt.durationMs),
      batch.state,
      batch.attempts,
      batch.nextAttemptAt,
      clean(batch.lastError),
    ],
  );
}

export async function failWebhookBatches(
  db: PgQueries,
  webhookId: string,
  reason: string,
  now: number,
): Promise<number> {
  return db.run(FAIL_BATCHES, [clean(reason), now, webhookId]);
}

export async function listWebhookAttempts(
  db: PgQueries,
  webhookId: string,
  limit: number,
): Promise<WebhookAttempt[]> {
  const rows = await db.all(
    'SELECT * FROM webhook_attempts WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2',
    [webhookId, Math.min(Math.max(limit, 1), 1000)],
  );
  return rows.map((r) => ({
    id: num(r.id),
    batchId: String(r.batch_id),
    webhookId: String(r.webhook_id),
    at: num(r.at),
    status: num(r.status),
    error: String(r.error),
    durationMs: num(r.duration_ms),
  }));
}

export async function listWebhookBatches(
  db: PgQueries,
  webhookId: string,
  limit: number,
): Promise<WebhookBatch[]> {
  const rows = await db.all(
    'SELECT * FROM webhook_batches WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2',
    [webhookId, Math.min(Math.max(limit, 1), 1000)],
  );
  return rows.map(toWebhookBatch);
}
