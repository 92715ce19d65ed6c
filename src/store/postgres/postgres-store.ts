import { DatabaseError, escapeIdentifier, Pool, type PoolClient } from 'pg';
import { bounceReply } from '../bounce-reply.ts';
import { isDefaultStream, withDefaultStreams } from '../default-streams.ts';
import { SchemaTooNewError } from '../errors.ts';
import { type LaneClaim, type LeasedInLane, type LeasePass, LeasePlan } from '../lease-plan.ts';
import { oneLine } from '../one-line.ts';
import { mergeIncrements, statsQuerySql } from '../stats-sql.ts';
import type { ElectsLeader, LeaderLock, SharesConnectionSlots, Store } from '../store.ts';
import type {
  Account,
  AccountRetention,
  AddressExport,
  AsyncReport,
  AuditEntry,
  AuditFilter,
  Credential,
  CredentialKind,
  DashboardSession,
  DashboardUser,
  DkimKey,
  DkimKeyState,
  EnrichedEventRow,
  ErasureResult,
  EventFilter,
  EventRow,
  GuardCount,
  GuardState,
  HoldReason,
  IdempotencyRecord,
  InsertOptions,
  IntakeLease,
  LeasedRecipient,
  LeaseRequest,
  MessageFilter,
  MessageRow,
  MessageSummary,
  NewAuditEntry,
  NewEngagement,
  NewEvent,
  NewMessage,
  NewShapingEvent,
  NodeHeartbeat,
  NodeStatus,
  Outcome,
  PurgeBatch,
  QueueDepth,
  QueueDomainSummary,
  QueueSelector,
  QueueSiteSummary,
  RecipientRow,
  RecipientState,
  RollupBatch,
  SenderPolicy,
  SendingDomain,
  ShapingEventRow,
  StatsLookup,
  StatsQuery,
  StatsRow,
  Stream,
  StreamKind,
  StreamSettings,
  Suppression,
  SuppressionFilter,
  Template,
  TemplateContent,
  TemplateVersion,
  WebhookAttempt,
  WebhookBatch,
  WebhookEndpoint,
} from '../types.ts';
import {
  CANCEL_REASON,
  copySize,
  DEFAULT_STREAM,
  FINAL_STATES,
  HOLD_REASON,
  leasedAtIntake,
  leasedAtIntakeRecipient,
  SHAPING_END_TYPES,
  SHAPING_REPLY_MAX,
  STREAM_KINDS,
  storedSize,
} from '../types.ts';
import { Batcher } from './batcher.ts';
import { PostgresConnectionSlots } from './connection-slots.ts';
import * as dashboardStore from './dashboard-store.ts';
import { DUE_CHANNEL, type DueWatch, watchDue } from './due-notifier.ts';
import * as pgEvents from './events-store.ts';
import * as guardStore from './guard-store.ts';
import { startLeaderLock } from './leader-lock.ts';
import { migrations } from './migrations.ts';
import * as privacyStore from './privacy-store.ts';
import {
  clean,
  json,
  num,
  type Row,
  replyText,
  toAccount,
  toCredential,
  toDkimKey,
  toDomain,
  toEvent,
  toLeased,
  toMessage,
  toRecipient,
  toShapingEvent,
  toStream,
  toSuppression,
  toTemplate,
  toTemplateVersion,
} from './rows.ts';

export { SchemaTooNewError };

export interface PostgresStoreOptions {
  /** `postgres://user@host:port/database` (anything pg's connection string accepts). */
  url: string;
  /** The schema every table lives in; created by migrate() if missing. */
  schema: string;
  /** Connections in the pool (default 10); the bookkeeping pool has half as many (at least 2). */
  poolSize?: number;
  /**
   * Named prepared statements on the delivery path (default true; see `prepared()`): false for a
   * connection pooler that cannot keep them (PgBouncer before 1.21 in transaction mode).
   */
  preparedStatements?: boolean;
  /**
   * Errors of idle pooled connections (the server restarted, a network cut). The pool drops the
   * connection and opens a new one on demand; without a listener, pg would crash the process.
   */
  onIdleError?: (err: Error) => void;
}

// Arbitrary class id for the two-key advisory lock taken by migrate(); the second key is the
// schema, so test schemas migrating side by side do not wait for each other.
const MIGRATION_LOCK = 0x706f7374; // 'post'

// Bind parameters per statement are limited to 65,535: messages are inserted in chunks.
const MESSAGES_PER_STATEMENT = 2000;
// Outcomes travel as arrays (one parameter per column), so only the statement's size bounds them.
const OUTCOMES_PER_STATEMENT = 5000;
/** Most addresses one merged suppression lookup asks for (findSuppressions). */
const SUPPRESSION_LOOKUPS_PER_STATEMENT = 5000;
/**
 * How long a busy batcher (calls waited through its last flush) gathers more before the next
 * statement (batcher.ts). Two nodes split the load and so halve every batch; this wins back
 * part of it (docs/architecture.md, "Group commit on PostgreSQL").
 */
const BUSY_LINGER_MS = 2;
const LINGER = { lingerMs: BUSY_LINGER_MS };
/**
 * Notifications of due work (#notifyDue) are at least this far apart: every intake commit asks
 * for one, and a node takes at most one remote wake-up per 10 ms anyway (REMOTE_WAKE_MS,
 * delivery/engine.ts). Unspaced, two nodes sent one per insert: 0.4 statements per message.
 */
const NOTIFY_SPACING_MS = 5;

/** One address of one findSuppressions call, merged with the others waiting (Batcher). */
interface SuppressionLookup {
  call: number;
  accountId: string;
  /** null: every scope. */
  stream: string | null;
  address: string;
  now: number;
}

const WAITING = `state IN ('queued', 'deferred')`;
/**
 * Waiting recipients `q` of lane `kind` and account `account` due at `due` (SQL expressions):
 * one range of recipients_lane (kind, account_id, next_attempt_at). Row comparisons rather than
 * `q.kind = … AND q.account_id = … AND q.next_attempt_at <= …`: when the kind and account come
 * from another row (a lateral or correlated reference) the planner cannot tell how rare the
 * account is, and chose recipients_due, walking every other account's due mail to find this
 * one's. With 30,000 due for one account and 10 for another, a lease pass for the small one took
 * 13 ms that way and 0.3 ms on the range, the due-count of find_due 12 ms and 0.4 ms.
 */
const inLane = (kind: string, account: string, due: string): string =>
  `q.${WAITING} AND (q.kind, q.account_id, q.next_attempt_at) >= (${kind}, ${account}, ${Number.MIN_SAFE_INTEGER})
   AND (q.kind, q.account_id, q.next_attempt_at) <= (${kind}, ${account}, ${due})`;
const MESSAGE_COLUMNS = `id, account_id, credential_id, mail_from, message_id_header, subject, size, source,
  client_ip, dsn, dsn_on_failure, received_at, stream, tags, metadata, template, envelope_from`;
// A pass after the first tops up accounts that filled their share (lease-plan.ts); each costs a
// round trip, so a call stops after this many (the usual mixes need one or two) and what is left
// goes to the scheduler's next lease, which every finished delivery wakes.
const LEASE_PASSES = 3;
/** Every recipient of message `m` is final (an unknown state counts as unfinished). */
const FINISHED = `NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id
  AND r.state NOT IN (${FINAL_STATES.map((state) => `'${state}'`).join(', ')}))`;

/** An API request's idempotency key, answered in the same commit as its call's messages. */
type AnsweredKey = NonNullable<InsertOptions['idempotency']>;

/**
 * What the intake batcher carries: messages (each with its call's lease terms, if any), and after
 * those of a call that named one, its idempotency key. The key travels in the same batch as its
 * messages, so a merged flush commits both in one statement, and a flush retried call by call
 * (batcher.ts) keeps them together.
 */
type InsertItem = { message: NewMessage; lease: IntakeLease | undefined } | { answered: AnsweredKey };

/**
 * What an intake flush returns to each of its calls: every inserted recipient's id, and whether
 * the statement's suppression check (NewMessage.suppressionCheck) stored it `suppressed`, by message.
 */
type InsertedIds = Map<string, { id: number; listed: boolean }[]>;

/**
 * Marks idempotency keys answered (`keys` is the parameter number of three parallel arrays and
 * their length). The LIMIT (their length) is for a generic plan: see RECORD_OUTCOMES.
 */
const answerKeys = (keys: number): string => `UPDATE idempotency_keys k SET status = 1, response = a.response
  FROM (SELECT * FROM unnest($${keys}::text[], $${keys + 1}::text[], $${keys + 2}::text[]) AS a(account_id, key, response)
    LIMIT $${keys + 3}) a
  WHERE k.account_id = a.account_id AND k.key = a.key`;

/** The values of answerKeys' parameters. */
const answeredValues = (answered: AnsweredKey[]): unknown[] => [
  answered.map((a) => a.accountId),
  answered.map((a) => a.key),
  answered.map((a) => clean(a.response)),
  answered.length,
];

/**
 * One statement inserts a chunk of messages, their personalised copies, their recipients and one
 * event per recipient (`accepted`, or `suppressed` with its reason for a recipient on a
 * suppression list, stored final), and marks `answered` keys: a single round trip and, outside a
 * transaction, a single commit. Copies, recipients and keys come as parallel arrays (unnest) so
 * the statement text depends only on the number of messages. Copies travel as a bytea[] (hex in
 * the array literal, so twice their size on the wire): one parameter each would bound a batch by
 * the 65,535 parameters a statement may have rather than by its messages. Recipients their
 * call's intake lease covers (types.ts leasedAtIntake) are stored `delivering` under it. The
 * statement returns every recipient's id with its message id, in input order; `queued` says
 * whether any recipient was left for a lease (the other nodes are then notified).
 */
function insertMessagesStatement(
  items: { message: NewMessage; lease: IntakeLease | undefined }[],
  answered: AnsweredKey[],
): { sql: Sql; values: unknown[]; queued: boolean } {
  const values: unknown[] = [];
  const rows: string[] = [];
  const copies = { messageId: [] as string[], variant: [] as number[], body: [] as (Buffer | null)[] };
  const rcpt = {
    messageId: [] as string[],
    accountId: [] as string[],
    address: [] as string[],
    domain: [] as string[],
    due: [] as number[],
    createdAt: [] as number[],
    dsn: [] as string[],
    stream: [] as string[],
    kind: [] as string[],
    variant: [] as number[],
    state: [] as string[],
    event: [] as string[],
    /** null: the accepted event's data, built in the statement (it needs the stored size). */
    eventData: [] as (string | null)[],
    holdReason: [] as string[],
    leaseOwner: [] as (string | null)[],
    leaseUntil: [] as (number | null)[],
    /** The suppression check's keys (types.ts SuppressionCheck); a null address: no check. */
    listedAddress: [] as (string | null)[],
    listedToken: [] as (string | null)[],
    unsubscribes: [] as boolean[],
  };
  /** content_warning events (types.ts contentWarnings), each after its message's recipients' events. */
  const warnings = {
    messageId: [] as string[],
    accountId: [] as string[],
    at: [] as number[],
    data: [] as string[],
    /** The ordinal of the message's last recipient: the warning goes right after its event. */
    lastRecipient: [] as number[],
  };
  let queued = false;
  for (const { message: m, lease } of items) {
    const first = values.length;
    values.push(
      m.id,
      m.accountId,
      m.credentialId,
      m.mailFrom,
      clean(m.messageIdHeader),
      clean(m.subject),
      storedSize(m),
      m.source,
      m.clientIp,
      json(m.dsn),
      m.dsnOnFailure,
      m.receivedAt,
      m.stream ?? DEFAULT_STREAM,
      json(m.tags ?? []),
      json(m.metadata ?? {}),
      m.template ?? '',
      m.envelopeFrom ?? '',
      // A Buffer parameter travels in binary: no hex or escape encoding of the body.
      m.body,
    );
    rows.push(`(${Array.from({ length: values.length - first }, (_, i) => `$${first + i + 1}`).join(', ')})`);
    const variants = m.variants ?? [];
    for (let v = 0; v < variants.length; v++) {
      copies.messageId.push(m.id);
      copies.variant.push(v + 1);
      copies.body.push(variants[v] ?? null);
    }
    const check = m.suppressionCheck;
    for (const [i, r] of m.recipients.entries()) {
      const checked = check !== undefined && !r.suppressed;
      rcpt.listedAddress.push(checked ? clean(r.address.toLowerCase()) : null);
      rcpt.listedToken.push(checked ? check.tokens?.[i] || null : null);
      rcpt.unsubscribes.push(check?.unsubscribes ?? false);
      rcpt.messageId.push(m.id);
      rcpt.accountId.push(m.accountId);
      rcpt.address.push(r.address);
      rcpt.domain.push(r.domain);
      rcpt.due.push(m.notBefore ?? m.receivedAt);
      rcpt.createdAt.push(m.receivedAt);
      rcpt.dsn.push(json(r.dsn));
      rcpt.stream.push(m.stream ?? DEFAULT_STREAM);
      rcpt.kind.push(m.kind ?? 'transactional');
      rcpt.variant.push(r.variant ?? 0);
      // Held (guard/, content/): accepted and stored, not sent until released.
      const held = r.suppressed ? undefined : r.held;
      const leasing = leasedAtIntake(m, r, lease);
      rcpt.state.push(r.suppressed ? 'suppressed' : held ? 'held' : leasing ? 'delivering' : 'queued');
      rcpt.leaseOwner.push(leasing ? (lease?.owner ?? null) : null);
      rcpt.leaseUntil.push(leasing ? (lease?.until ?? null) : null);
      if (!r.suppressed && !held && !leasing) queued = true;
      rcpt.event.push(r.suppressed ? 'suppressed' : held ? 'held' : 'accepted');
      rcpt.eventData.push(
        r.suppressed
          ? json({ reason: r.suppressed.reason, scope: r.suppressed.scope })
          : held
            ? json({
                reason: held.reason,
                details: held.details,
                size: copySize(m, r.variant),
                source: m.source,
              })
            : null,
      );
      rcpt.holdReason.push(held?.reason ?? '');
    }
    if (m.contentWarnings && m.contentWarnings.length > 0) {
      warnings.messageId.push(m.id);
      warnings.accountId.push(m.accountId);
      warnings.at.push(m.receivedAt);
      warnings.data.push(json({ warnings: m.contentWarnings }));
      warnings.lastRecipient.push(rcpt.messageId.length);
    }
  }
  const a = values.length;
  values.push(rcpt.messageId, rcpt.accountId, rcpt.address, rcpt.domain, rcpt.due, rcpt.createdAt, rcpt.dsn);
  const b = values.push(rcpt.stream, rcpt.kind, rcpt.variant) - 3;
  const e = values.push(rcpt.state, rcpt.event, rcpt.eventData) - 3;
  const c = values.push(copies.messageId, copies.variant, copies.body) - 3;
  const k = values.push(...answeredValues(answered)) - 4;
  const h = values.push(rcpt.holdReason);
  const l = values.push(rcpt.leaseOwner, rcpt.leaseUntil) - 2;
  const q = values.push(rcpt.listedAddress, rcpt.listedToken, rcpt.unsubscribes) - 3;
  const w =
    values.push(warnings.messageId, warnings.accountId, warnings.at, warnings.data, warnings.lastRecipient) -
    5;
  // The foreign keys to messages are checked at the end of the statement, when the messages
  // inserted by the first CTE exist. Each recipient's id is drawn in x, so its event is written
  // from the same row as the recipient (no matching of RETURNING rows back to their input), in
  // input order: ids and events keep it; a message's content_warning event follows its
  // recipients' events. The accepted event gives the size of the recipient's
  // own copy (types.ts copySize). A recipient the suppression check finds listed (the first
  // entry by types.ts suppressionPrecedence, on the primary key) is stored as one that came
  // `suppressed`: final, unleased, with a `suppressed` event. The generic plan of a list of a few
  // hundred entries or fewer reads its few pages instead of the key (measured: from about 500 on,
  // the key); new statistics (autovacuum's ANALYZE as the list grows) make PostgreSQL plan again.
  const text = `WITH m AS (
      INSERT INTO messages (${MESSAGE_COLUMNS}, body) VALUES ${rows.join(', ')}
      RETURNING id, octet_length(body) AS body_size, source, client_ip
    ), v AS (
      INSERT INTO message_variants (message_id, variant, body)
      SELECT * FROM unnest($${c + 1}::text[], $${c + 2}::int[], $${c + 3}::bytea[])
      RETURNING message_id, variant, octet_length(body) AS size
    ), x AS (
      SELECT nextval('recipients_id_seq') AS id, u.message_id, u.account_id, u.address, u.domain, u.due,
        u.created_at, u.dsn, u.stream, u.kind, u.variant,
        CASE WHEN s.reason IS NULL THEN u.state ELSE 'suppressed' END AS state,
        CASE WHEN s.reason IS NULL THEN u.event ELSE 'suppressed' END AS event,
        CASE WHEN s.reason IS NULL THEN u.event_data
          ELSE jsonb_build_object('reason', s.reason, 'scope', s.scope) END AS event_data,
        CASE WHEN s.reason IS NULL THEN u.hold_reason ELSE '' END AS hold_reason,
        CASE WHEN s.reason IS NULL THEN u.lease_owner END AS lease_owner,
        CASE WHEN s.reason IS NULL THEN u.lease_until END AS lease_until,
        s.reason IS NOT NULL AS listed, u.ord
      FROM unnest($${a + 1}::text[], $${a + 2}::text[], $${a + 3}::text[], $${a + 4}::text[], $${a + 5}::bigint[],
        $${a + 6}::bigint[], $${a + 7}::jsonb[], $${b + 1}::text[], $${b + 2}::text[], $${b + 3}::int[],
        $${e + 1}::text[], $${e + 2}::text[], $${e + 3}::jsonb[], $${h}::text[], $${l + 1}::text[],
        $${l + 2}::bigint[], $${q + 1}::text[], $${q + 2}::text[], $${q + 3}::boolean[])
        WITH ORDINALITY AS u(message_id, account_id, address, domain, due, created_at, dsn, stream, kind, variant,
          state, event, event_data, hold_reason, lease_owner, lease_until, listed_address, listed_token,
          unsubscribes, ord)
      LEFT JOIN LATERAL (
        SELECT s.reason, s.scope FROM suppressions s
        WHERE s.account_id = u.account_id AND s.address IN (u.listed_address, u.listed_token)
          AND s.scope IN ('', u.stream) AND (s.expires_at IS NULL OR s.expires_at > u.created_at)
          AND (u.unsubscribes OR s.reason <> 'unsubscribe')
        ORDER BY s.reason = 'unsubscribe', s.scope, s.address <> u.listed_address
        LIMIT 1
      ) s ON u.listed_address IS NOT NULL
      ORDER BY u.ord
    ), r AS (
      INSERT INTO recipients (id, message_id, account_id, address, domain, state, next_attempt_at, created_at,
        updated_at, dsn, stream, kind, variant, hold_reason, lease_owner, lease_until)
      SELECT id, message_id, account_id, address, domain, state, due, created_at, created_at, dsn, stream, kind,
        variant, hold_reason, lease_owner, lease_until
      FROM x
    ), answered AS (
      ${answerKeys(k + 1)}
    ), ev AS (
      INSERT INTO events (at, type, message_id, recipient_id, account_id, recipient, data)
      SELECT at, type, message_id, recipient_id, account_id, recipient, data FROM (
        SELECT x.created_at AS at, x.event AS type, x.message_id, x.id AS recipient_id, x.account_id,
          x.address AS recipient, COALESCE(x.event_data, jsonb_build_object(
            'size', CASE WHEN x.variant = 0 THEN m.body_size ELSE COALESCE(v.size, 0) END,
            'source', m.source, 'clientIp', m.client_ip)) AS data, x.ord, false AS warning
        FROM x JOIN m ON m.id = x.message_id LEFT JOIN v ON v.message_id = x.message_id AND v.variant = x.variant
        UNION ALL
        SELECT w.at, 'content_warning', w.message_id, NULL, w.account_id, NULL, w.data, w.ord, true
        FROM unnest($${w + 1}::text[], $${w + 2}::text[], $${w + 3}::bigint[], $${w + 4}::jsonb[], $${w + 5}::bigint[])
          AS w(message_id, account_id, at, data, ord)
      ) e
      ORDER BY ord, warning
    )
    SELECT x.message_id, x.id, x.listed FROM x ORDER BY x.ord`;
  // The text depends only on the number of messages.
  const sql = items.length <= PREPARED_INSERT_MAX_MESSAGES ? prepared(`insert_${items.length}`, text) : text;
  return { sql, values, queued };
}

/**
 * A statement of the delivery path that each connection parses and plans once, then reuses (a
 * named prepared statement): most of these are CTEs whose planning cost more server CPU than
 * running them. Measured (`node bench/store-writes.ts --store postgres --outcomes 16`, two
 * alternated pairs): the server's CPU per message 1,312 → 720 and 890 → 526 µs; for an intake
 * of four messages 502 → 270 µs, for a lease (planning and pass) 670 → 298 µs.
 *
 * Only for statements whose text is fixed (or one of a few shapes, each with its own name) and
 * whose result columns are listed, never `table.*`: a prepared statement whose result would gain
 * a column (a newer node's migration adding one) fails with "cached plan must not change result
 * type" on the nodes still running the previous version.
 */
interface Prepared {
  name: string;
  text: string;
}

type Sql = string | Prepared;

const prepared = (name: string, text: string): Prepared => ({ name: `postbote_${name}`, text });

/**
 * The outcome statement (#recordForOwner), prepared. `LIMIT $19` (the number of outcomes) is
 * there for its generic plan: without it that plan expects ten outcomes, and one made while
 * `recipients` was still small (a new install, a benchmark) joins them by a hash over a
 * sequential scan of the whole table for as long as the connection lives; so it went unprepared
 * and was planned on every call, which cost the server more than running it. With an unknown
 * LIMIT the planner expects one row and looks each recipient up by its key whatever the table's
 * size. Measured with `node bench/store-writes.ts --store postgres` (two outcomes per call):
 * server CPU per message for outcomes 543–605 µs planned each time, 1,100 µs on the hash-join
 * generic plan, 192–197 µs now.
 */
export const RECORD_OUTCOMES = prepared(
  'record_outcomes',
  `WITH o AS (
    SELECT * FROM unnest($2::bigint[], $3::text[], $4::int[], $5::bigint[], $6::boolean[], $7::int[],
      $8::text[], $9::text[], $10::bigint[], $11::text[], $12::jsonb[], $13::text[], $14::text[], $15::text[],
      $16::text[], $17::text[], $18::boolean[])
      WITH ORDINALITY AS x(id, state, attempted, next_attempt_at, has_reply, code, enhanced, reply_text, at,
        event_type, event_data, message_id, account_id, recipient, site, source, recovered, ord)
    LIMIT $19
  ), applied AS (
    UPDATE recipients r SET state = o.state, attempts = r.attempts + o.attempted,
      next_attempt_at = COALESCE(o.next_attempt_at, r.next_attempt_at),
      last_code = COALESCE(o.code, r.last_code),
      last_enhanced = CASE WHEN o.has_reply THEN o.enhanced ELSE r.last_enhanced END,
      last_text = COALESCE(o.reply_text, r.last_text),
      last_site = COALESCE(o.site, r.last_site),
      last_source = COALESCE(o.source, r.last_source),
      lease_owner = NULL, lease_until = NULL, updated_at = o.at
    FROM o
    WHERE r.id = o.id AND ((r.state = 'delivering' AND r.lease_owner = $1)
      OR (o.state = 'delivered' AND (NOT o.recovered OR r.state <> 'delivered')))
    RETURNING r.id
  ), logged AS (
    INSERT INTO events (at, type, message_id, recipient_id, account_id, recipient, data)
    SELECT o.at, o.event_type, o.message_id, o.id, o.account_id, o.recipient, o.event_data
    FROM o JOIN applied a ON a.id = o.id
    WHERE o.event_type IS NOT NULL
    ORDER BY o.ord
  )
  SELECT o.id FROM o JOIN applied a ON a.id = o.id ORDER BY o.ord`,
);

function queryConfig(
  sql: Sql,
  values: unknown[],
  prepare: boolean,
): { name?: string; text: string; values: unknown[] } {
  return typeof sql === 'string' || !prepare
    ? { text: typeof sql === 'string' ? sql : sql.text, values }
    : { name: sql.name, text: sql.text, values };
}

/** Insert statements of up to this many messages are prepared (one per count), larger ones not. */
const PREPARED_INSERT_MAX_MESSAGES = 16;

/** A body the delivery engine asked for: a message's own (variant 0) or a recipient's copy. */
interface BodyWanted {
  messageId: string;
  variant: number;
}

/** Bodies larger than this are not sent with a lease: the delivery reads them when it needs them. */
const PREFETCH_BODY_MAX_BYTES = 64 * 1024;
/** Bytes of prefetched bodies kept at most: unclaimed ones (a lease released before delivery) go oldest first. */
const PREFETCHED_BYTES_MAX = 8 * 1024 * 1024;
/**
 * How long a prefetched body may wait for its delivery. The delivery asks within moments; an
 * unclaimed one (its message already in the delivery's body cache) must not outlive a purge or
 * an erasure run by another node, which only touch mail far older than this.
 */
const PREFETCHED_TTL_MS = 60_000;

/**
 * Bodies that arrived with a lease, until the delivery takes them: bounded in bytes (oldest
 * dropped first) and in age; emptied by this node's purges and erasures.
 */
class PrefetchedBodies {
  readonly #maxBytes: number;
  readonly #bodies = new Map<string, { body: Buffer; at: number }>();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  put(key: string, body: Buffer): void {
    this.#remove(key);
    this.#bodies.set(key, { body, at: Date.now() });
    this.#bytes += body.length;
    for (const oldest of this.#bodies.keys()) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#remove(oldest);
    }
  }

  take(key: string): Buffer | undefined {
    const entry = this.#remove(key);
    return entry && Date.now() - entry.at <= PREFETCHED_TTL_MS ? entry.body : undefined;
  }

  clear(): void {
    this.#bodies.clear();
    this.#bytes = 0;
  }

  #remove(key: string): { body: Buffer; at: number } | undefined {
    const entry = this.#bodies.get(key);
    if (entry) {
      this.#bodies.delete(key);
      this.#bytes -= entry.body.length;
    }
    return entry;
  }
}

/** The key of a body in #loadBodies' result. */
const bodyKey = (messageId: string, variant: number): string => `${variant}:${messageId}`;

/**
 * The cluster store on PostgreSQL (pg.Pool). Every method is one statement in autocommit (so
 * one round trip and one commit) unless noted; multi-table writes use data-modifying CTEs so
 * they stay atomic without a BEGIN/COMMIT round trip each. Durability is PostgreSQL's commit
 * with synchronous_commit on; concurrent commits share WAL flushes in the server, so there is no
 * group-commit queue here.
 *
 * Delivery bookkeeping (leases, renewals, outcomes, heartbeats, shaping changes, connection
 * slots) is not a promise to a client and goes through a second pool whose sessions commit with
 * synchronous_commit=off: the commit is visible at once and answered without waiting for the WAL
 * flush, which the next durable commit (or the WAL writer, within wal_writer_delay) does anyway.
 * Like the SQLite store's lazy jobs: a crash of a node loses none of it (the server has it); a
 * crash of the server can lose its last moments, and those deliveries are repeated (at least
 * once, nothing lost). Measured (bench/relay.ts --store postgres): the flushes were the largest
 * wait of the nodes' sessions (IO:WALSync, LWLock:WALWrite).
 */
export class PostgresStore implements Store, SharesConnectionSlots, ElectsLeader {
  readonly #pool: Pool;
  /** Delivery bookkeeping: sessions with synchronous_commit=off (see the class comment). */
  readonly #lazyPool: Pool;
  /** Cluster-wide connection limits (delivery/connection-permits.ts). */
  readonly connectionSlots: PostgresConnectionSlots;
  readonly #url: string;
  readonly #schema: string;
  /** Named prepared statements on the delivery path (PostgresStoreOptions.preparedStatements). */
  readonly #prepare: boolean;
  #closed = false;
  #notifying = false;
  #notifyAgain = false;
  // Group commit (batcher.ts): concurrent intake commits and concurrent outcome commits each
  // share one statement.
  readonly #inserts = new Batcher<InsertItem, InsertedIds>(
    (items) => this.#insertNow(items),
    MESSAGES_PER_STATEMENT,
    LINGER,
  );
  // The delivery engine asks for one body per transaction; those asked for while a read is
  // running come back together in the next one (keyed by bodyKey).
  readonly #bodies = new Batcher<BodyWanted, Map<string, Buffer>>(
    (wanted) => this.#loadBodies(wanted),
    200,
    LINGER,
  );
  /**
   * Bodies that came with a lease (#leasePass: the first leased recipient of each copy brings
   * it, when it is at most PREFETCH_BODY_MAX_BYTES), taken by the delivery's getBody: one
   * statement per lease instead of a lease and a body read.
   */
  readonly #prefetched = new PrefetchedBodies(PREFETCHED_BYTES_MAX);
  /** One batcher per lease owner (in practice the one node id of this process). */
  readonly #outcomes = new Map<string, Batcher<Outcome, Set<number>>>();
  /**
   * Intake asks for every message: lookups arriving while one runs share the next statement,
   * like the writes (measured with bench/relay.ts --store postgres: 1.0 statements and commits
   * per message, the largest single share, before).
   */
  readonly #suppressionLookups = new Batcher<SuppressionLookup, Map<number, Suppression[]>>(
    (lookups) => this.#lookUpSuppressions(lookups),
    SUPPRESSION_LOOKUPS_PER_STATEMENT,
    LINGER,
  );
  #suppressionCalls = 0;

  constructor(options: PostgresStoreOptions) {
    if (options.schema === '') throw new Error('PostgresStore: schema must not be empty');
    this.#schema = options.schema;
    this.#prepare = options.preparedStatements ?? true;
    this.#url = options.url;
    const searchPath = escapeIdentifier(options.schema);
    const poolSize = options.poolSize ?? 10;
    this.#pool = new Pool({
      connectionString: options.url,
      max: poolSize,
      // Awaited by pg-pool before a new connection is handed out; if it fails, the connection is
      // closed and the caller gets the error, so no statement ever runs against another schema.
      // 250 means durable: a server or role configured with synchronous_commit=off would
      // acknowledge commits before the WAL flush, so such a connection is put back to 'on'
      // (stricter settings, remote_write/remote_apply for synchronous replicas, are kept).
      onConnect: async (client) => {
        await client.query(
          `SELECT set_config('search_path', $1, false),
             CASE WHEN current_setting('synchronous_commit') = 'off'
               THEN set_config('synchronous_commit', 'on', false) END`,
          [searchPath],
        );
      },
    });
    this.#lazyPool = new Pool({
      connectionString: options.url,
      max: Math.max(2, Math.ceil(poolSize / 2)),
      onConnect: async (client) => {
        await client.query(
          `SELECT set_config('search_path', $1, false), set_config('synchronous_commit', 'off', false)`,
          [searchPath],
        );
      },
    });
    this.#pool.on('error', options.onIdleError ?? (() => {}));
    this.#lazyPool.on('error', options.onIdleError ?? (() => {}));
    this.connectionSlots = new PostgresConnectionSlots(this.#lazyPool);
  }

  async #all(sql: Sql, values: unknown[] = []): Promise<Row[]> {
    return (await this.#pool.query<Row>(queryConfig(sql, values, this.#prepare))).rows;
  }

  async #get(sql: Sql, values: unknown[] = []): Promise<Row | undefined> {
    return (await this.#pool.query<Row>(queryConfig(sql, values, this.#prepare))).rows[0];
  }

  async #run(sql: Sql, values: unknown[] = []): Promise<number> {
    return (await this.#pool.query(queryConfig(sql, values, this.#prepare))).rowCount ?? 0;
  }

  /** A bookkeeping statement: committed without waiting for the WAL flush (#lazyPool). */
  async #lazy(sql: Sql, values: unknown[] = []): Promise<{ rows: Row[]; rowCount: number }> {
    const result = await this.#lazyPool.query<Row>(queryConfig(sql, values, this.#prepare));
    return { rows: result.rows, rowCount: result.rowCount ?? 0 };
  }

  /** Runs `work` in one transaction on one connection. */
  async #transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        // The connection is unusable: destroy it rather than return it to the pool.
        broken = rollbackErr as Error;
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async migrate(): Promise<void> {
    const schema = escapeIdentifier(this.#schema);
    // One version per transaction, each under an advisory lock held until its commit: two nodes
    // starting together take turns, and the second finds the work done.
    for (;;) {
      const done = await this.#transaction(async (client) => {
        await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIGRATION_LOCK, this.#schema]);
        // IF NOT EXISTS is not safe against a concurrent CREATE; the lock makes it so.
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
        await client.query(
          'CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL, applied_at bigint)',
        );
        const row = (await client.query<Row>('SELECT MAX(version) AS v FROM schema_version')).rows[0];
        const current = row?.v === null || row?.v === undefined ? 0 : num(row.v);
        if (current > migrations.length) throw new SchemaTooNewError(current, migrations.length);
        if (current === migrations.length) return true;
        const version = current + 1;
        try {
          for (const sql of migrations[version - 1] ?? []) await client.query(sql);
          await client.query(
            `INSERT INTO schema_version (version, applied_at)
             VALUES ($1, (extract(epoch FROM now()) * 1000)::bigint)`,
            [version],
          );
        } catch (err) {
          throw new Error(`migration to schema version ${version} failed`, { cause: err });
        }
        return false;
      });
      if (done) return;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Waits for checked-out connections to be released, so calls in flight finish first.
    await Promise.all([this.#pool.end(), this.#lazyPool.end()]);
  }

  async createAccount(input: { id: string; name: string; createdAt: number }): Promise<Account> {
    await this.#run('INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)', [
      input.id,
      input.name,
      input.createdAt,
    ]);
    return { ...input, paused: false, weight: 1, senderPolicy: 'verified' };
  }

  async getAccount(id: string): Promise<Account | undefined> {
    const r = await this.#get('SELECT * FROM accounts WHERE id = $1', [id]);
    return r && toAccount(r);
  }

  async getAccountByName(name: string): Promise<Account | undefined> {
    const r = await this.#get('SELECT * FROM accounts WHERE name = $1', [name]);
    return r && toAccount(r);
  }

  async listAccounts(): Promise<Account[]> {
    return (await this.#all('SELECT * FROM accounts ORDER BY name COLLATE "C"')).map(toAccount);
  }

  async setAccountWeight(id: string, weight: number): Promise<boolean> {
    return (await this.#run('UPDATE accounts SET weight = $1 WHERE id = $2', [weight, id])) > 0;
  }

  async setAccountSenderPolicy(id: string, policy: SenderPolicy): Promise<boolean> {
    return (await this.#run('UPDATE accounts SET sender_policy = $1 WHERE id = $2', [policy, id])) > 0;
  }

  async createStream(input: Omit<Stream, 'isDefault'>): Promise<Stream> {
    await this.#run(
      'INSERT INTO streams (account_id, name, kind, pool, created_at) VALUES ($1, $2, $3, $4, $5)',
      [input.accountId, input.name, input.kind, input.pool, input.createdAt],
    );
    return { ...input, isDefault: isDefaultStream(input.name) };
  }

  async listStreams(accountId: string): Promise<Stream[]> {
    const rows = await this.#all(
      `SELECT a.created_at AS account_created_at, s.* FROM accounts a
       LEFT JOIN streams s ON s.account_id = a.id WHERE a.id = $1`,
      [accountId],
    );
    const [first] = rows;
    if (!first) return [];
    const streams = rows.filter((r) => r.name !== null).map(toStream);
    return withDefaultStreams(accountId, num(first.account_created_at), streams);
  }

  async getStream(accountId: string, name: string): Promise<Stream | undefined> {
    const r = await this.#get(
      `SELECT a.created_at AS account_created_at, s.* FROM accounts a
       LEFT JOIN streams s ON s.account_id = a.id AND s.name = $2 WHERE a.id = $1`,
      [accountId, name],
    );
    if (!r) return undefined;
    if (r.name !== null) return toStream(r);
    return withDefaultStreams(accountId, num(r.account_created_at), []).find((s) => s.name === name);
  }

  async setStreamSettings(input: {
    accountId: string;
    name: string;
    kind: StreamKind;
    createdAt: number;
    settings: StreamSettings;
  }): Promise<void> {
    await this.#run(
      `INSERT INTO streams (account_id, name, kind, pool, created_at, settings) VALUES ($1, $2, $3, '', $4, $5)
       ON CONFLICT (account_id, name) DO UPDATE SET settings = excluded.settings`,
      [input.accountId, input.name, input.kind, input.createdAt, json(input.settings)],
    );
  }

  async createCredential(c: Credential): Promise<Credential> {
    await this.#run(
      `INSERT INTO credentials (id, account_id, kind, name, secret_hash, cidrs, created_at, revoked_at,
         default_stream, scopes)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        c.id,
        c.accountId,
        c.kind,
        c.name,
        c.secretHash,
        JSON.stringify(c.cidrs),
        c.createdAt,
        c.revokedAt,
        c.defaultStream,
        c.scopes.join(','),
      ],
    );
    return c;
  }

  async getCredential(id: string): Promise<Credential | undefined> {
    const r = await this.#get('SELECT * FROM credentials WHERE id = $1', [id]);
    return r && toCredential(r);
  }

  async findCredential(kind: CredentialKind, name: string): Promise<Credential | undefined> {
    const r = await this.#get(
      'SELECT * FROM credentials WHERE kind = $1 AND name = $2 AND revoked_at IS NULL',
      [kind, name],
    );
    return r && toCredential(r);
  }

  async listCredentials(
    filter: { accountId?: string; kind?: CredentialKind; includeRevoked?: boolean } = {},
  ): Promise<Credential[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    if (filter.accountId !== undefined) where.push(`account_id = $${values.push(filter.accountId)}`);
    if (filter.kind !== undefined) where.push(`kind = $${values.push(filter.kind)}`);
    if (!filter.includeRevoked) where.push('revoked_at IS NULL');
    const sql = `SELECT * FROM credentials ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at, id`;
    return (await this.#all(sql, values)).map(toCredential);
  }

  async revokeCredential(id: string, at: number): Promise<boolean> {
    const changed = await this.#run(
      'UPDATE credentials SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL',
      [at, id],
    );
    return changed > 0;
  }

  async insertMessages(messages: NewMessage[], options?: InsertOptions): Promise<LeasedRecipient[]> {
    const lease = options?.lease;
    const items: InsertItem[] = messages.map((message) => ({ message, lease }));
    const answered = options?.idempotency;
    // The key rides in the same batch as its messages (see InsertItem): API sends keep the group
    // commit instead of paying a transaction of their own.
    if (answered) items.push({ answered });
    if (items.length === 0) return [];
    const ids = await this.#inserts.add(items);
    if (!lease) return [];
    const leased: LeasedRecipient[] = [];
    for (const m of messages) {
      const own = ids.get(m.id) ?? [];
      m.recipients.forEach((r, i) => {
        const row = own[i];
        if (row && !row.listed && leasedAtIntake(m, r, lease))
          leased.push(leasedAtIntakeRecipient(m, r, row.id));
      });
    }
    return leased;
  }

  async #insertNow(items: InsertItem[]): Promise<InsertedIds> {
    const messages: { message: NewMessage; lease: IntakeLease | undefined }[] = [];
    const answered: AnsweredKey[] = [];
    for (const item of items) {
      if ('answered' in item) answered.push(item.answered);
      else messages.push(item);
    }
    const ids: InsertedIds = new Map();
    const collect = (rows: Row[]): void => {
      for (const row of rows) {
        const messageId = String(row.message_id);
        const inserted = { id: num(row.id), listed: row.listed === true };
        const own = ids.get(messageId);
        if (own) own.push(inserted);
        else ids.set(messageId, [inserted]);
      }
    };
    let queued = false;
    if (messages.length === 0) {
      await this.#pool.query(answerKeys(1), answeredValues(answered));
    } else if (messages.length <= MESSAGES_PER_STATEMENT) {
      const statement = insertMessagesStatement(messages, answered);
      collect((await this.#pool.query(queryConfig(statement.sql, statement.values, this.#prepare))).rows);
      queued = statement.queued;
    } else {
      await this.#transaction(async (client) => {
        for (let i = 0; i < messages.length; i += MESSAGES_PER_STATEMENT) {
          const statement = insertMessagesStatement(
            messages.slice(i, i + MESSAGES_PER_STATEMENT),
            i === 0 ? answered : [],
          );
          collect((await client.query(queryConfig(statement.sql, statement.values, this.#prepare))).rows);
          queued ||= statement.queued;
        }
      });
    }
    // Mail leased by its intake commit is this node's already: no other node needs waking for it.
    if (queued) this.#notifyDue();
    return ids;
  }

  /**
   * Tells every node's delivery engine that work is due (LISTEN/NOTIFY, see due-notifier.ts).
   * After the commit, not awaited: the caller's reply must not wait for it, and a lost
   * notification only delays delivery until the next poll.
   *
   * Never inside the transaction that makes the work due: PostgreSQL serialises the commits of
   * notifying transactions (a lock on the database held until the commit is flushed), so intake
   * inserts that notified could not share a WAL flush across nodes; with two nodes they queued
   * behind each other (`Lock:object` in pg_stat_activity). Sent on the lazy pool
   * (synchronous_commit off): the lock is then held only for the commit record's insertion.
   */
  #notifyDue(): void {
    // Coalesced: while one notification is on its way, and for NOTIFY_SPACING_MS after it, later
    // ones become a single follow-up.
    if (this.#notifying) {
      this.#notifyAgain = true;
      return;
    }
    if (this.#closed) return;
    this.#notifying = true;
    this.#lazyPool
      .query('SELECT pg_notify($1, $2)', [DUE_CHANNEL, this.#schema])
      .catch(() => {})
      .finally(() => {
        const timer = setTimeout(() => {
          this.#notifying = false;
          if (this.#notifyAgain) {
            this.#notifyAgain = false;
            this.#notifyDue();
          }
        }, NOTIFY_SPACING_MS);
        timer.unref();
      });
  }

  /** Competes for leadership of this schema's nodes (periodic tasks) on a dedicated connection. */
  startLeaderLock(options: { checkMs?: number; onError?: (err: Error) => void } = {}): Promise<LeaderLock> {
    return startLeaderLock({ url: this.#url, schema: this.#schema, ...options });
  }

  /** Calls `onDue` whenever any node commits due work to this schema. */
  watchDue(onDue: () => void, onError?: (err: Error) => void): Promise<DueWatch> {
    return watchDue({ url: this.#url, schema: this.#schema, onDue, ...(onError ? { onError } : {}) });
  }

  async leaseDue(input: LeaseRequest): Promise<LeasedRecipient[]> {
    if (Math.floor(input.limit) <= 0) return [];
    const plan = new LeasePlan(input, await this.#findDue(input));
    const leased: LeasedRecipient[] = [];
    let pass = plan.next();
    for (let n = 0; pass && n < LEASE_PASSES; n++, pass = plan.next()) {
      let rows: Row[];
      try {
        rows = await this.#leasePass(input, pass);
      } catch (err) {
        // The leases of earlier passes are committed: returning them beats leaving them to wait
        // a lease period. The scheduler's next call meets the failure again if it persists.
        if (leased.length > 0) break;
        throw err;
      }
      plan.record(
        pass,
        rows.map(
          (r): LeasedInLane => ({
            kind: String(r.kind) as StreamKind,
            accountId: String(r.account_id),
            expired: r.expired === true,
          }),
        ),
      );
      leased.push(...rows.map(toLeased));
    }
    return leased;
  }

  /**
   * What is there to lease, without locking anything: expired leases per kind (counted up to the
   * limit; there are few), and every (lane, account) pair with due work, with the account's
   * weight. The pairs come from a skip scan of recipients_lane (a recursive CTE: one index seek
   * per pair with waiting recipients, whatever its backlog) and one seek each to see whether
   * anything of it is due. Every lane but the last also gets its due recipients counted (up to
   * what the lane could take), so the first pass can size the next lane's budget; the last lane
   * needs no count: accounts that fill their share are topped up by the next pass.
   */
  async #findDue(
    input: LeaseRequest,
  ): Promise<{ expired: Partial<Record<StreamKind, number>>; claims: LaneClaim[] }> {
    const limit = Math.max(0, Math.floor(input.limit));
    const counted = STREAM_KINDS.slice(0, -1);
    const countCap = Math.min(limit, Math.max(...counted.map((k) => input.lanes?.[k] ?? limit)));
    const rows = await this.#all(
      prepared(
        'find_due',
        `WITH RECURSIVE pairs AS (
         (SELECT kind, account_id FROM recipients WHERE ${WAITING} ORDER BY kind, account_id LIMIT 1)
         UNION ALL
         SELECT next.kind, next.account_id FROM pairs p CROSS JOIN LATERAL (
           SELECT q.kind, q.account_id FROM recipients q
           WHERE q.${WAITING} AND (q.kind, q.account_id) > (p.kind, p.account_id)
           ORDER BY q.kind, q.account_id LIMIT 1) next
       )
       SELECT p.kind, p.account_id, a.weight, false AS expired,
         CASE WHEN p.kind = ANY($3::text[]) THEN (SELECT count(*) FROM (
           SELECT 1 FROM recipients q WHERE ${inLane('p.kind', 'p.account_id', '$1')} LIMIT $2) c) END AS due
       FROM pairs p JOIN accounts a ON a.id = p.account_id
       WHERE EXISTS (SELECT 1 FROM recipients q WHERE ${inLane('p.kind', 'p.account_id', '$1')})
       UNION ALL
       SELECT kind, NULL, NULL, true, count(*) FROM (
         SELECT kind FROM recipients WHERE state = 'delivering' AND lease_until < $1 LIMIT $4) e
       GROUP BY kind`,
      ),
      [input.now, countCap, counted, limit],
    );
    const expired: Partial<Record<StreamKind, number>> = {};
    const claims: LaneClaim[] = [];
    for (const r of rows) {
      const kind = String(r.kind) as StreamKind;
      // A kind this code does not know (a newer node's) waits for a node that does.
      if (!STREAM_KINDS.includes(kind)) continue;
      if (r.expired === true) expired[kind] = num(r.due);
      else
        claims.push({
          kind,
          accountId: String(r.account_id),
          weight: num(r.weight),
          due: r.due === null ? Number.POSITIVE_INFINITY : num(r.due),
        });
    }
    return { expired, claims };
  }

  /**
   * One pass of the plan in one statement: expired leases by kind, then each account's share of
   * its lane, oldest due first. Every locking subquery is a range scan of one index that stops
   * after the rows it may take (recipients_leased per kind, recipients_lane per lane and
   * account), and locks only rows the UPDATE then leases. FOR UPDATE is not allowed over a
   * UNION, hence one lateral subquery per kind and per account. SKIP LOCKED lets nodes leasing at
   * the same time take disjoint rows; a row another node leased since our snapshot fails the
   * recheck and is skipped, so that account comes up short and gets no top-up this call.
   *
   * The LIMITs on the inputs ($10–$12: kinds, shares, the most rows a pass can lease) only
   * change estimates, for a generic plan (see RECORD_OUTCOMES): without them one made while
   * `recipients` was nearly empty joins the leased ids to it by a hash over a sequential scan,
   * and the server planned the statement on every call instead (0.5 ms each).
   */
  async #leasePass(input: LeaseRequest, pass: LeasePass): Promise<Row[]> {
    const { rows } = await this.#lazy(
      prepared(
        'lease_pass',
        `WITH expired AS (
         SELECT x.id FROM (SELECT * FROM unnest($4::text[], $5::int[]) AS e(kind, n) LIMIT $10) e
         CROSS JOIN LATERAL (
           SELECT q.id FROM recipients q WHERE q.state = 'delivering' AND q.lease_until < $1 AND q.kind = e.kind
           ORDER BY q.lease_until LIMIT e.n FOR UPDATE SKIP LOCKED) x
       ), due AS (
         SELECT x.id FROM (SELECT * FROM unnest($6::text[], $7::text[], $8::int[]) AS s(kind, account_id, share)
           LIMIT $11) s
         CROSS JOIN LATERAL (
           SELECT q.id FROM recipients q WHERE ${inLane('s.kind', 's.account_id', '$1')}
           ORDER BY q.kind, q.account_id, q.next_attempt_at LIMIT s.share FOR UPDATE SKIP LOCKED) x
       ), picked AS (
         SELECT * FROM (SELECT id, true AS expired FROM expired UNION ALL SELECT id, false FROM due) u LIMIT $12
       ), leased AS (
         UPDATE recipients r SET state = 'delivering', lease_owner = $2, lease_until = $3, updated_at = $1
         FROM picked p, messages m
         WHERE r.id = p.id AND m.id = r.message_id
         RETURNING r.id, r.message_id, r.account_id, r.address, r.domain, r.attempts, r.created_at, r.dsn, r.stream,
           r.kind, r.variant, CASE WHEN m.envelope_from <> '' THEN m.envelope_from ELSE m.mail_from END AS mail_from,
           p.expired
       ), numbered AS (
         SELECT l.*, row_number() OVER (PARTITION BY l.message_id, l.variant ORDER BY l.id) AS nth FROM leased l
       )
       SELECT n.*, CASE WHEN n.nth = 1 THEN (
           CASE WHEN n.variant = 0
             THEN (SELECT b.body FROM messages b WHERE b.id = n.message_id AND octet_length(b.body) <= $9)
             ELSE (SELECT v.body FROM message_variants v
                   WHERE v.message_id = n.message_id AND v.variant = n.variant AND octet_length(v.body) <= $9)
           END) END AS body
       FROM numbered n`,
      ),
      [
        input.now,
        input.owner,
        input.leaseUntil,
        STREAM_KINDS,
        STREAM_KINDS.map((kind) => pass.expired[kind]),
        pass.shares.map((s) => s.kind),
        pass.shares.map((s) => s.accountId),
        pass.shares.map((s) => s.share),
        PREFETCH_BODY_MAX_BYTES,
        STREAM_KINDS.length,
        pass.shares.length,
        STREAM_KINDS.reduce((n, kind) => n + pass.expired[kind], 0) +
          pass.shares.reduce((n, s) => n + s.share, 0),
      ],
    );
    for (const r of rows) {
      if (r.body instanceof Buffer)
        this.#prefetched.put(bodyKey(String(r.message_id), num(r.variant)), r.body);
    }
    return rows;
  }

  async renewLeases(input: { owner: string; ids: number[]; leaseUntil: number }): Promise<void> {
    if (input.ids.length === 0) return;
    await this.#lazy(
      prepared(
        'renew_leases',
        `UPDATE recipients SET lease_until = $1
       WHERE id = ANY($2::bigint[]) AND lease_owner = $3 AND state = 'delivering'`,
      ),
      [input.leaseUntil, input.ids, input.owner],
    );
  }

  async releaseLeases(owner: string | null, now: number): Promise<number> {
    const { rowCount: n } = await this.#lazy(
      `UPDATE recipients SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,
         lease_owner = NULL, lease_until = NULL, updated_at = $1
       WHERE state = 'delivering' AND ($2::text IS NULL OR lease_owner = $2)`,
      [now, owner],
    );
    // A node shutting down hands its work back: the others can take it at once.
    if (n > 0) this.#notifyDue();
    return n;
  }

  async nextDueAt(): Promise<number | null> {
    // LEAST ignores NULLs: null only when neither a waiting recipient nor a lease exists.
    const r = await this.#get(
      prepared(
        'next_due_at',
        `SELECT LEAST(
         (SELECT MIN(next_attempt_at) FROM recipients WHERE ${WAITING}),
         (SELECT MIN(lease_until) FROM recipients WHERE state = 'delivering')) AS t`,
      ),
    );
    return r?.t === null || r?.t === undefined ? null : num(r.t);
  }

  async getBody(messageId: string, variant = 0): Promise<Buffer | undefined> {
    const key = bodyKey(messageId, variant);
    return this.#prefetched.take(key) ?? (await this.#bodies.add([{ messageId, variant }])).get(key);
  }

  /** One read for a batch of bodies: messages' own (variant 0) by id, copies by (id, variant). */
  async #loadBodies(wanted: BodyWanted[]): Promise<Map<string, Buffer>> {
    const own = new Set<string>();
    const copies = new Map<string, BodyWanted>();
    for (const w of wanted) {
      if (w.variant === 0) own.add(w.messageId);
      else copies.set(bodyKey(w.messageId, w.variant), w);
    }
    const rows = await this.#all(
      prepared(
        'load_bodies',
        `SELECT id AS message_id, 0 AS variant, body FROM messages WHERE id = ANY($1::text[]) AND body IS NOT NULL
       UNION ALL
       SELECT v.message_id, v.variant, v.body
       FROM unnest($2::text[], $3::int[]) AS w(message_id, variant)
       JOIN message_variants v ON v.message_id = w.message_id AND v.variant = w.variant
       WHERE v.body IS NOT NULL`,
      ),
      [[...own], [...copies.values()].map((w) => w.messageId), [...copies.values()].map((w) => w.variant)],
    );
    return new Map(rows.map((r) => [bodyKey(String(r.message_id), num(r.variant)), r.body as Buffer]));
  }

  async recordOutcomes(owner: string, outcomes: Outcome[]): Promise<number[]> {
    if (outcomes.length === 0) return [];
    let batcher = this.#outcomes.get(owner);
    if (!batcher) {
      batcher = new Batcher(
        async (merged) => new Set(await this.#recordForOwner(owner, merged)),
        OUTCOMES_PER_STATEMENT,
        LINGER,
      );
      this.#outcomes.set(owner, batcher);
    }
    const applied = await batcher.add(outcomes);
    return outcomes.map((o) => o.recipientId).filter((id) => applied.has(id));
  }

  async #recordForOwner(owner: string, outcomes: Outcome[]): Promise<number[]> {
    const col = <T>(pick: (o: Outcome) => T): T[] => outcomes.map(pick);
    // One statement: the batch is atomic, and an event is written only for an applied outcome.
    // The lease condition is rechecked on the newest row version if a concurrent write (a cancel,
    // another node taking an expired lease) got there first.
    const { rows } = await this.#lazy(RECORD_OUTCOMES, [
      owner,
      col((o) => o.recipientId),
      col((o) => o.state),
      col((o) => (o.attempted ? 1 : 0)),
      col((o) => o.nextAttemptAt ?? null),
      col((o) => o.reply !== null),
      col((o) => o.reply?.code ?? null),
      col((o) => (o.reply?.enhanced === undefined ? null : clean(o.reply.enhanced))),
      col((o) => (o.reply ? clean(o.reply.text) : null)),
      col((o) => o.at),
      col((o) => o.event?.type ?? null),
      col((o) => (o.event ? json(o.event.data) : null)),
      col((o) => o.messageId),
      col((o) => o.accountId),
      col((o) => o.recipient),
      col((o) => (o.site === undefined ? null : clean(o.site))),
      col((o) => (o.source === undefined ? null : clean(o.source))),
      col((o) => o.recovered === true),
      outcomes.length,
    ]);
    return rows.map((r) => num(r.id));
  }

  async findMessagesByHeader(messageIdHeader: string): Promise<MessageRow[]> {
    const rows = await this.#all(
      `SELECT ${MESSAGE_COLUMNS}, body IS NULL AS body_purged FROM messages
       WHERE message_id_header = $1 ORDER BY id DESC LIMIT 10`,
      [clean(messageIdHeader)],
    );
    return rows.map(toMessage);
  }

  async getMessage(id: string): Promise<MessageRow | undefined> {
    const r = await this.#get(
      `SELECT ${MESSAGE_COLUMNS}, body IS NULL AS body_purged FROM messages WHERE id = $1`,
      [id],
    );
    return r && toMessage(r);
  }

  async listMessages(filter: MessageFilter): Promise<MessageSummary[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    if (filter.accountId !== undefined) where.push(`m.account_id = $${values.push(filter.accountId)}`);
    if (filter.before !== undefined) where.push(`m.id < $${values.push(filter.before)}`);
    if (filter.after !== undefined) where.push(`m.received_at >= $${values.push(filter.after)}`);
    // tags is JSON text (as in SQLite); `?` is jsonb's "array contains this string".
    if (filter.tag !== undefined) where.push(`m.tags::jsonb ? $${values.push(filter.tag)}`);
    if (filter.subject !== undefined) {
      where.push(`strpos(lower(m.subject), lower($${values.push(filter.subject)})) > 0`);
    }
    if (filter.recipient !== undefined || filter.status !== undefined) {
      const sub: string[] = [];
      if (filter.recipient !== undefined) sub.push(`r.address = $${values.push(filter.recipient)}`);
      if (filter.status !== undefined) sub.push(`r.state = $${values.push(filter.status)}`);
      where.push(`m.id IN (SELECT r.message_id FROM recipients r WHERE ${sub.join(' AND ')})`);
    }
    const limit = Math.min(Math.max(filter.limit ?? 50, 1), 1000);
    const rows = await this.#all(
      `SELECT ${MESSAGE_COLUMNS}, body IS NULL AS body_purged
       FROM messages m
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY m.id DESC LIMIT $${values.push(limit)}`,
      values,
    );
    if (rows.length === 0) return [];
    const byMessage = new Map<string, { address: string; state: RecipientState }[]>();
    for (const x of await this.#all(
      'SELECT message_id, address, state FROM recipients WHERE message_id = ANY($1::text[]) ORDER BY id',
      [rows.map((r) => String(r.id))],
    )) {
      const list = byMessage.get(String(x.message_id)) ?? [];
      list.push({ address: String(x.address), state: String(x.state) as RecipientState });
      byMessage.set(String(x.message_id), list);
    }
    return rows.map((r) => ({ ...toMessage(r), recipients: byMessage.get(String(r.id)) ?? [] }));
  }

  async getRecipients(messageId: string): Promise<RecipientRow[]> {
    return (await this.#all('SELECT * FROM recipients WHERE message_id = $1 ORDER BY id', [messageId])).map(
      toRecipient,
    );
  }

  async getEvents(messageId: string): Promise<EventRow[]> {
    return (await this.#all('SELECT * FROM events WHERE message_id = $1 ORDER BY id', [messageId])).map(
      toEvent,
    );
  }

  async queueSummary(now: number, accountId?: string): Promise<QueueDomainSummary[]> {
    const hourAgo = now - 3_600_000;
    const dayAgo = now - 86_400_000;
    // $3 / $1 is the account when one is asked for (the API's view of its own mail).
    const only = accountId === undefined ? '' : ' AND account_id = $3';
    const rows = await this.#all(
      `SELECT domain,
         count(*) FILTER (WHERE state = 'queued') AS queued,
         count(*) FILTER (WHERE state = 'deferred') AS deferred,
         count(*) FILTER (WHERE state = 'delivering') AS delivering,
         MIN(created_at) AS oldest,
         count(*) FILTER (WHERE created_at > $1) AS under_hour,
         count(*) FILTER (WHERE created_at <= $1 AND created_at > $2) AS under_day,
         count(*) FILTER (WHERE created_at <= $2) AS older
       FROM recipients WHERE state IN ('queued', 'deferred', 'delivering')${only}
       GROUP BY domain ORDER BY count(*) DESC, domain`,
      accountId === undefined ? [hourAgo, dayAgo] : [hourAgo, dayAgo, accountId],
    );
    // The three most common last replies of each domain's deferred recipients.
    const reasons = await this.#all(
      `SELECT domain, last_code, last_enhanced, last_text, n FROM (
         SELECT domain, last_code, last_enhanced, last_text, count(*) AS n,
           row_number() OVER (PARTITION BY domain ORDER BY count(*) DESC, last_code, last_enhanced, last_text)
             AS rank
         FROM recipients WHERE state = 'deferred' AND last_code IS NOT NULL${only.replace('$3', '$1')}
         GROUP BY domain, last_code, last_enhanced, last_text) x
       WHERE rank <= 3 ORDER BY domain, rank`,
      accountId === undefined ? [] : [accountId],
    );
    return rows.map((r) => ({
      domain: String(r.domain),
      queued: num(r.queued),
      deferred: num(r.deferred),
      delivering: num(r.delivering),
      oldestAt: num(r.oldest),
      ages: { underHour: num(r.under_hour), underDay: num(r.under_day), older: num(r.older) },
      reasons: reasons
        .filter((x) => x.domain === r.domain)
        .map((x) => ({ text: replyText(x), count: num(x.n) })),
    }));
  }

  async queueSiteSummary(now: number, accountId?: string): Promise<QueueSiteSummary[]> {
    const only = (n: number) => (accountId === undefined ? '' : ` AND account_id = $${n}`);
    const of = accountId === undefined ? [] : [accountId];
    const rows = await this.#all(
      `SELECT last_site,
         count(*) FILTER (WHERE state IN ('queued', 'deferred') AND next_attempt_at <= $1) AS ready,
         count(*) FILTER (WHERE state IN ('queued', 'deferred') AND next_attempt_at > $1) AS scheduled,
         count(*) FILTER (WHERE state = 'delivering') AS delivering,
         MIN(created_at) AS oldest, count(DISTINCT domain) AS domains
       FROM recipients WHERE state IN ('queued', 'deferred', 'delivering')${only(2)}
       GROUP BY last_site ORDER BY count(*) DESC, last_site`,
      [now, ...of],
    );
    // The three most common last replies of each site's deferred recipients.
    const reasons = await this.#all(
      `SELECT last_site, last_code, last_enhanced, last_text, n FROM (
         SELECT last_site, last_code, last_enhanced, last_text, count(*) AS n,
           row_number() OVER (PARTITION BY last_site ORDER BY count(*) DESC, last_code, last_text) AS rank
         FROM recipients WHERE state = 'deferred' AND last_code IS NOT NULL${only(1)}
         GROUP BY last_site, last_code, last_enhanced, last_text) x
       WHERE rank <= 3 ORDER BY last_site, rank`,
      of,
    );
    const bySource = await this.#all(
      `SELECT last_site, last_source,
         count(*) FILTER (WHERE state IN ('queued', 'deferred') AND next_attempt_at <= $1) AS ready,
         count(*) FILTER (WHERE state IN ('queued', 'deferred') AND next_attempt_at > $1) AS scheduled,
         count(*) FILTER (WHERE state = 'delivering') AS delivering
       FROM recipients WHERE state IN ('queued', 'deferred', 'delivering')${only(2)}
       GROUP BY last_site, last_source ORDER BY last_site, last_source`,
      [now, ...of],
    );
    return rows.map((r) => ({
      site: String(r.last_site),
      ready: num(r.ready),
      scheduled: num(r.scheduled),
      delivering: num(r.delivering),
      oldestAt: num(r.oldest),
      domains: num(r.domains),
      reasons: reasons
        .filter((x) => x.last_site === r.last_site)
        .map((x) => ({ text: replyText(x), count: num(x.n) })),
      sources: bySource
        .filter((x) => x.last_site === r.last_site)
        .map((x) => ({
          source: String(x.last_source),
          ready: num(x.ready),
          scheduled: num(x.scheduled),
          delivering: num(x.delivering),
        })),
    }));
  }

  async recordShapingEvents(events: NewShapingEvent[]): Promise<void> {
    if (events.length === 0) return;
    const col = <T>(pick: (e: NewShapingEvent) => T): T[] => events.map(pick);
    await this.#lazy(
      `INSERT INTO shaping_events (at, node_id, type, rule, kind, scope_key, rate, until, reply)
       SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
         $8::bigint[], $9::text[])`,
      [
        col((e) => e.at),
        col((e) => clean(e.nodeId)),
        col((e) => e.type),
        col((e) => clean(e.rule)),
        col((e) => e.kind),
        col((e) => clean(e.scopeKey)),
        col((e) => clean(e.rate ?? '')),
        col((e) => e.until),
        col((e) => oneLine(e.reply ?? '', SHAPING_REPLY_MAX)),
      ],
    );
  }

  async activeShaping(now: number): Promise<ShapingEventRow[]> {
    // Candidates by the until index; each must be the latest of its (scope, rule, node).
    const rows = await this.#all(
      `SELECT * FROM shaping_events e
       WHERE e.until > $1 AND e.type <> ALL($2::text[])
         AND NOT EXISTS (SELECT 1 FROM shaping_events l
           WHERE l.scope_key = e.scope_key AND l.rule = e.rule AND l.node_id = e.node_id AND l.id > e.id)
       ORDER BY e.until, e.scope_key, e.rule, e.node_id`,
      [now, SHAPING_END_TYPES],
    );
    return rows.map(toShapingEvent);
  }

  /** The selector's conditions on recipients; their values are appended to `values`. */
  #selectorWhere(selector: QueueSelector, values: unknown[]): string {
    const where: string[] = [];
    if (selector.messageId !== undefined) where.push(`message_id = $${values.push(selector.messageId)}`);
    else if (selector.domain !== undefined)
      where.push(`domain = $${values.push(selector.domain.toLowerCase())}`);
    else throw new Error('a queue selector needs a message id or a domain');
    if (selector.accountId !== undefined) where.push(`account_id = $${values.push(selector.accountId)}`);
    return where.join(' AND ');
  }

  async retryNow(selector: QueueSelector, now: number): Promise<number> {
    const values: unknown[] = [now, json({ reason: 'retry requested by an operator' })];
    const sql = this.#selectorWhere(selector, values);
    const r = await this.#get(
      `WITH changed AS (
         UPDATE recipients SET next_attempt_at = $1, updated_at = $1,
           state = CASE WHEN state <> 'held' THEN state WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END
         WHERE state IN ('queued', 'deferred', 'held') AND ${sql}
         RETURNING id, message_id, account_id, address
       ), logged AS (
         INSERT INTO events (at, type, message_id, recipient_id, account_id, recipient, data)
         SELECT $1, 'retried', message_id, id, account_id, address, $2::jsonb FROM changed ORDER BY id
       )
       SELECT count(*) AS n FROM changed`,
      values,
    );
    const n = num(r?.n ?? 0);
    if (n > 0) this.#notifyDue();
    return n;
  }

  async hold(selector: QueueSelector, now: number, reason = HOLD_REASON): Promise<number> {
    const values: unknown[] = [now, json({ reason: 'operator', details: reason })];
    const sql = this.#selectorWhere(selector, values);
    const r = await this.#get(
      `WITH changed AS (
         UPDATE recipients SET state = 'held', hold_reason = 'operator', updated_at = $1
         WHERE state IN ('queued', 'deferred') AND ${sql}
         RETURNING id, message_id, account_id, address
       ), logged AS (
         INSERT INTO events (at, type, message_id, recipient_id, account_id, recipient, data)
         SELECT $1, 'held', message_id, id, account_id, address, $2::jsonb FROM changed ORDER BY id
       )
       SELECT count(*) AS n FROM changed`,
      values,
    );
    return num(r?.n ?? 0);
  }

  async cancel(selector: QueueSelector, now: number, reason = CANCEL_REASON): Promise<number> {
    const values: unknown[] = [now, json({ reason })];
    const sql = this.#selectorWhere(selector, values);
    const r = await this.#get(
      `WITH changed AS (
         UPDATE recipients SET state = 'cancelled', lease_owner = NULL, lease_until = NULL, updated_at = $1
         WHERE state IN ('queued', 'deferred', 'delivering', 'held') AND ${sql}
         RETURNING id, message_id, account_id, address
       ), logged AS (
         INSERT INTO events (at, type, message_id, recipient_id, account_id, recipient, data)
         SELECT $1, 'cancelled', message_id, id, account_id, address, $2::jsonb FROM changed ORDER BY id
       )
       SELECT count(*) AS n FROM changed`,
      values,
    );
    return num(r?.n ?? 0);
  }

  async countByState(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of await this.#all('SELECT state, count(*) AS n FROM recipients GROUP BY state')) {
      out[String(r.state)] = num(r.n);
    }
    return out;
  }

  // Candidates are locked with SKIP LOCKED: a `postbote gc` running beside the cluster's own
  // retention task takes other messages instead of waiting for the same ones.
  async purgeBodies(batch: PurgeBatch): Promise<number> {
    this.#prefetched.clear();
    const { before, limit } = batch;
    const scope = guardStore.purgeScope(batch, 3);
    return this.#run(
      `WITH doomed AS (
         SELECT m.id FROM messages m WHERE m.body IS NOT NULL AND m.received_at < $1 AND ${FINISHED}${scope.sql}
         ORDER BY m.received_at LIMIT $2 FOR UPDATE SKIP LOCKED
       ), variants_gone AS (
         DELETE FROM message_variants WHERE message_id IN (SELECT id FROM doomed)
       )
       UPDATE messages SET body = NULL FROM doomed WHERE messages.id = doomed.id`,
      [before, limit, ...scope.params],
    );
  }

  async purgeMessages(batch: PurgeBatch): Promise<number> {
    this.#prefetched.clear();
    const { before, limit } = batch;
    const scope = guardStore.purgeScope(batch, 3);
    // One statement: the foreign keys to messages are checked at its end, when all are gone.
    return this.#run(
      `WITH doomed AS (
         SELECT m.id FROM messages m WHERE m.received_at < $1 AND ${FINISHED}${scope.sql}
         ORDER BY m.received_at LIMIT $2 FOR UPDATE SKIP LOCKED
       ), tags_gone AS (
         -- the event log's tag index (schema v12), by its key: account, each tag, the events
         DELETE FROM event_tags t USING messages m, jsonb_array_elements_text(m.tags::jsonb) g(tag), events e
         WHERE m.id IN (SELECT id FROM doomed) AND m.tags <> '[]' AND e.message_id = m.id
           AND t.account_id = e.account_id AND t.tag = g.tag AND t.event_id = e.id
       ), events_gone AS (
         DELETE FROM events WHERE message_id IN (SELECT id FROM doomed)
       ), recipients_gone AS (
         DELETE FROM recipients WHERE message_id IN (SELECT id FROM doomed)
       ), variants_gone AS (
         DELETE FROM message_variants WHERE message_id IN (SELECT id FROM doomed)
       )
       DELETE FROM messages WHERE id IN (SELECT id FROM doomed)`,
      [before, limit, ...scope.params],
    );
  }

  async purgeEventLog(batch: PurgeBatch): Promise<number> {
    const { before, limit } = batch;
    const scope = guardStore.purgeScope(batch, 3);
    // See the SQLite adapter: attempts by age, finished batches and message-less events by
    // their account's retention.
    const [attempts, batches, events] = await Promise.all([
      this.#run(
        `DELETE FROM webhook_attempts WHERE id IN (
           SELECT id FROM webhook_attempts WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
        [before, limit],
      ),
      this.#run(
        `DELETE FROM webhook_batches WHERE id IN (
           SELECT m.id FROM webhook_batches m WHERE m.state <> 'pending' AND m.created_at < $1${scope.sql}
           LIMIT $2 FOR UPDATE SKIP LOCKED)`,
        [before, limit, ...scope.params],
      ),
      this.#run(
        `DELETE FROM events WHERE id IN (
           SELECT m.id FROM events m WHERE m.message_id = '' AND m.at < $1${scope.sql}
           ORDER BY m.id LIMIT $2 FOR UPDATE SKIP LOCKED)`,
        [before, limit, ...scope.params],
      ),
    ]);
    return attempts + batches + events;
  }

  async purgeShapingEvents({ before, limit }: PurgeBatch): Promise<number> {
    return this.#run(
      `DELETE FROM shaping_events WHERE id IN (
         SELECT id FROM shaping_events WHERE at < $1 AND until < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      [before, limit],
    );
  }

  async createTemplate(
    input: Omit<Template, 'latestVersion'> & { content: TemplateContent },
  ): Promise<Template | undefined> {
    // ON CONFLICT without a target covers the partial unique index on live aliases too; the
    // version's foreign key is checked at the end of the statement, after the template's insert.
    const created = await this.#run(
      `WITH t AS (
         INSERT INTO templates (id, account_id, name, alias, latest_version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 1, $5, $6)
         ON CONFLICT DO NOTHING
         RETURNING id
       )
       INSERT INTO template_versions (template_id, version, subject, html, text, created_at)
       SELECT id, 1, $7, $8, $9, $5 FROM t`,
      [
        input.id,
        input.accountId,
        clean(input.name),
        clean(input.alias),
        input.createdAt,
        input.updatedAt,
        clean(input.content.subject),
        clean(input.content.html),
        clean(input.content.text),
      ],
    );
    if (created === 0) return undefined;
    const { content: _content, ...template } = input;
    return { ...template, latestVersion: 1 };
  }

  async addTemplateVersion(input: {
    accountId: string;
    id: string;
    name: string;
    alias: string;
    content: TemplateContent;
    now: number;
  }): Promise<Template | undefined> {
    try {
      // The UPDATE locks the template's row: concurrent new versions take turns for the number.
      const r = await this.#get(
        `WITH t AS (
           UPDATE templates SET latest_version = latest_version + 1, name = $1, alias = $2, updated_at = $3
           WHERE id = $4 AND account_id = $5 AND deleted_at IS NULL
           RETURNING *
         ), v AS (
           INSERT INTO template_versions (template_id, version, subject, html, text, created_at)
           SELECT id, latest_version, $6, $7, $8, $3 FROM t
         )
         SELECT * FROM t`,
        [
          clean(input.name),
          clean(input.alias),
          input.now,
          input.id,
          input.accountId,
          clean(input.content.subject),
          clean(input.content.html),
          clean(input.content.text),
        ],
      );
      return r && toTemplate(r);
    } catch (err) {
      // The alias belongs to another live template of the account (templates_alias).
      if (err instanceof DatabaseError && err.code === '23505' && err.constraint === 'templates_alias') {
        return undefined;
      }
      throw err;
    }
  }

  async getTemplate(accountId: string, idOrAlias: string): Promise<Template | undefined> {
    // By id first: an alias that happens to equal another template's id does not hide it.
    const r = await this.#get(
      `SELECT * FROM templates
       WHERE account_id = $1 AND deleted_at IS NULL AND (id = $2 OR (alias = $2 AND alias <> ''))
       ORDER BY id = $2 DESC LIMIT 1`,
      [accountId, idOrAlias],
    );
    return r && toTemplate(r);
  }

  async getTemplateVersion(templateId: string, version?: number): Promise<TemplateVersion | undefined> {
    const r = await this.#get(
      `SELECT * FROM template_versions WHERE template_id = $1 AND ($2::int IS NULL OR version = $2)
       ORDER BY version DESC LIMIT 1`,
      [templateId, version ?? null],
    );
    return r && toTemplateVersion(r);
  }

  async listTemplates(accountId: string): Promise<Template[]> {
    return (
      await this.#all('SELECT * FROM templates WHERE account_id = $1 AND deleted_at IS NULL ORDER BY id', [
        accountId,
      ])
    ).map(toTemplate);
  }

  async deleteTemplate(accountId: string, id: string, now: number): Promise<boolean> {
    const changed = await this.#run(
      'UPDATE templates SET deleted_at = $1 WHERE id = $2 AND account_id = $3 AND deleted_at IS NULL',
      [now, id, accountId],
    );
    return changed > 0;
  }

  async createDomain(input: SendingDomain & { keys: DkimKey[] }): Promise<SendingDomain | undefined> {
    const { keys, ...domain } = { ...input, domain: input.domain.toLowerCase() };
    // One statement: the keys go in only with the domain (from d), whose row their foreign key
    // finds at the end of the statement. ON CONFLICT without a target: a taken domain or id.
    const created = await this.#run(
      `WITH d AS (
         INSERT INTO domains (id, account_id, domain, return_path, tracking_host, verified_at, verified_by,
           last_check, checked_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT DO NOTHING
         RETURNING id
       ), k AS (
         INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key, public_key, state, created_at,
           changed_at)
         SELECT d.id, k.selector, k.algorithm, k.private_key, k.public_key, k.state, k.created_at, k.changed_at
         FROM d CROSS JOIN unnest($11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::bigint[],
           $17::bigint[]) AS k(selector, algorithm, private_key, public_key, state, created_at, changed_at)
       )
       SELECT id FROM d`,
      [
        domain.id,
        domain.accountId,
        domain.domain,
        domain.returnPath,
        domain.trackingHost,
        domain.verifiedAt,
        domain.verifiedBy,
        domain.lastCheck === null ? null : json(domain.lastCheck),
        domain.checkedAt,
        domain.createdAt,
        keys.map((k) => k.selector),
        keys.map((k) => k.algorithm),
        keys.map((k) => k.privateKeyPem),
        keys.map((k) => k.publicKey),
        keys.map((k) => k.state),
        keys.map((k) => k.createdAt),
        keys.map((k) => k.changedAt),
      ],
    );
    return created === 0 ? undefined : domain;
  }

  async getDomain(domain: string): Promise<SendingDomain | undefined> {
    const r = await this.#get('SELECT * FROM domains WHERE domain = $1', [domain.toLowerCase()]);
    return r && toDomain(r);
  }

  async listDomains(accountId?: string): Promise<SendingDomain[]> {
    const rows = await this.#all(
      'SELECT * FROM domains WHERE $1::text IS NULL OR account_id = $1 ORDER BY domain',
      [accountId ?? null],
    );
    return rows.map(toDomain);
  }

  async setDomainVerified(id: string, at: number | null, by: 'dns' | 'admin' | null): Promise<boolean> {
    const changed = await this.#run('UPDATE domains SET verified_at = $1, verified_by = $2 WHERE id = $3', [
      at,
      at === null ? null : by,
      id,
    ]);
    return changed > 0;
  }

  async recordDomainCheck(id: string, input: { checkedAt: number; result: unknown }): Promise<void> {
    await this.#run('UPDATE domains SET last_check = $1, checked_at = $2 WHERE id = $3', [
      json(input.result),
      input.checkedAt,
      id,
    ]);
  }

  async deleteDomain(id: string): Promise<boolean> {
    // The domain's foreign key is checked at the end of the statement, after its keys are gone.
    const changed = await this.#run(
      `WITH k AS (DELETE FROM dkim_keys WHERE domain_id = $1)
       DELETE FROM domains WHERE id = $1`,
      [id],
    );
    return changed > 0;
  }

  async listDkimKeys(domainId: string): Promise<DkimKey[]> {
    return (
      await this.#all('SELECT * FROM dkim_keys WHERE domain_id = $1 ORDER BY created_at, selector', [
        domainId,
      ])
    ).map(toDkimKey);
  }

  async addDkimKey(k: DkimKey): Promise<void> {
    await this.#run(
      `INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key, public_key, state, created_at, changed_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [k.domainId, k.selector, k.algorithm, k.privateKeyPem, k.publicKey, k.state, k.createdAt, k.changedAt],
    );
  }

  async setDkimKeyState(
    domainId: string,
    selector: string,
    state: DkimKeyState,
    at: number,
  ): Promise<boolean> {
    const changed = await this.#run(
      'UPDATE dkim_keys SET state = $1, changed_at = $2 WHERE domain_id = $3 AND selector = $4',
      [state, at, domainId, selector],
    );
    return changed > 0;
  }

  async setDkimPrivateKey(
    domainId: string,
    selector: string,
    expected: string,
    privateKey: string,
  ): Promise<boolean> {
    const changed = await this.#run(
      'UPDATE dkim_keys SET private_key = $1 WHERE domain_id = $2 AND selector = $3 AND private_key = $4',
      [privateKey, domainId, selector, expected],
    );
    return changed > 0;
  }

  async signingDomains(): Promise<(SendingDomain & { keys: DkimKey[] })[]> {
    // One statement, so one snapshot: a domain never comes without the keys it was created with.
    const rows = await this.#all(
      `SELECT d.*, COALESCE((
           SELECT json_agg(k ORDER BY k.created_at, k.selector) FROM dkim_keys k
           WHERE k.domain_id = d.id AND k.state <> 'retired'
         ), '[]') AS keys
       FROM domains d ORDER BY d.domain`,
    );
    return rows.map((r) => ({ ...toDomain(r), keys: (r.keys as Row[]).map(toDkimKey) }));
  }

  async upsertSuppressions(entries: Suppression[]): Promise<void> {
    // ON CONFLICT DO UPDATE may not touch a row twice in one statement: of entries with the same
    // key, the last one given is kept, as one upsert after another would leave it.
    const byKey = new Map<string, Suppression>();
    for (const e of entries) {
      const address = e.address.toLowerCase();
      byKey.set(JSON.stringify([e.accountId, address, e.scope]), { ...e, address });
    }
    if (byKey.size === 0) return;
    const list = [...byKey.values()];
    const col = <T>(pick: (e: Suppression) => T): T[] => list.map(pick);
    await this.#run(
      `INSERT INTO suppressions (account_id, address, scope, reason, category, source, details, created_at,
         expires_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
         $8::bigint[], $9::bigint[])
       ON CONFLICT (account_id, address, scope) DO UPDATE SET reason = excluded.reason,
         category = excluded.category, source = excluded.source, details = excluded.details,
         created_at = excluded.created_at, expires_at = excluded.expires_at`,
      [
        col((e) => e.accountId),
        col((e) => clean(e.address)),
        col((e) => clean(e.scope)),
        col((e) => e.reason),
        col((e) => clean(e.category)),
        col((e) => clean(e.source)),
        col((e) => clean(e.details)),
        col((e) => e.createdAt),
        col((e) => e.expiresAt),
      ],
    );
  }

  async removeSuppression(accountId: string, address: string, scope: string): Promise<boolean> {
    const changed = await this.#run(
      'DELETE FROM suppressions WHERE account_id = $1 AND address = $2 AND scope = $3',
      [accountId, address.toLowerCase(), scope],
    );
    return changed > 0;
  }

  async listSuppressions(filter: SuppressionFilter): Promise<Suppression[]> {
    const values: unknown[] = [filter.accountId];
    const where = ['account_id = $1'];
    if (filter.address !== undefined) where.push(`address = $${values.push(filter.address.toLowerCase())}`);
    if (filter.reason !== undefined) where.push(`reason = $${values.push(filter.reason)}`);
    if (filter.scope !== undefined) where.push(`scope = $${values.push(filter.scope)}`);
    if (filter.after !== undefined) {
      const address = values.push(filter.after.address);
      where.push(`(address, scope) > ($${address}, $${values.push(filter.after.scope)})`);
    }
    const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
    const rows = await this.#all(
      `SELECT * FROM suppressions WHERE ${where.join(' AND ')} ORDER BY address, scope LIMIT $${values.push(limit)}`,
      values,
    );
    return rows.map(toSuppression);
  }

  async findSuppressions(input: {
    accountId: string;
    stream: string | null;
    addresses: string[];
    now: number;
  }): Promise<Suppression[]> {
    if (input.addresses.length === 0) return [];
    const call = ++this.#suppressionCalls;
    const found = await this.#suppressionLookups.add(
      input.addresses.map((a) => ({
        call,
        accountId: input.accountId,
        stream: input.stream === null ? null : clean(input.stream),
        address: clean(a.toLowerCase()),
        now: input.now,
      })),
    );
    return found.get(call) ?? [];
  }

  /** The entries of several findSuppressions calls in one statement, by call, address, scope. */
  async #lookUpSuppressions(lookups: SuppressionLookup[]): Promise<Map<number, Suppression[]>> {
    const col = <T>(pick: (l: SuppressionLookup) => T): T[] => lookups.map(pick);
    const rows = await this.#all(
      prepared(
        'find_suppressions',
        `SELECT DISTINCT q.call, s.account_id, s.address, s.scope, s.reason, s.category, s.source, s.details,
           s.created_at, s.expires_at
         FROM (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[])
           AS q(call, account_id, address, stream, now) LIMIT $6) q
         JOIN suppressions s ON s.account_id = q.account_id AND s.address = q.address
           AND (q.stream IS NULL OR s.scope IN ('', q.stream)) AND (s.expires_at IS NULL OR s.expires_at > q.now)
         ORDER BY q.call, s.address, s.scope`,
      ),
      [
        col((l) => l.call),
        col((l) => l.accountId),
        col((l) => l.address),
        col((l) => l.stream),
        col((l) => l.now),
        lookups.length,
      ],
    );
    const byCall = new Map<number, Suppression[]>();
    for (const r of rows) {
      const call = num(r.call);
      const list = byCall.get(call) ?? [];
      list.push(toSuppression(r));
      byCall.set(call, list);
    }
    return byCall;
  }

  async purgeExpiredSuppressions({ before, limit }: PurgeBatch): Promise<number> {
    return this.#run(
      `DELETE FROM suppressions WHERE (account_id, address, scope) IN (
         SELECT account_id, address, scope FROM suppressions WHERE expires_at < $1 ORDER BY expires_at LIMIT $2
         FOR UPDATE SKIP LOCKED)`,
      [before, limit],
    );
  }

  async getRecipient(id: number): Promise<RecipientRow | undefined> {
    const r = await this.#get('SELECT * FROM recipients WHERE id = $1', [id]);
    return r && toRecipient(r);
  }

  async getRecipientAt(messageId: string, index: number): Promise<RecipientRow | undefined> {
    if (!Number.isSafeInteger(index) || index < 0) return undefined;
    const r = await this.#get(
      'SELECT * FROM recipients WHERE message_id = $1 ORDER BY id LIMIT 1 OFFSET $2',
      [messageId, index],
    );
    return r && toRecipient(r);
  }

  async recordEngagement(event: NewEngagement): Promise<{ first: boolean } | undefined> {
    return this.#transaction(async (client) => {
      // The recipient's row lock orders concurrent events of one recipient: one of two opens
      // arriving together is the first, never both.
      const r = (
        await client.query<Row>(
          'SELECT message_id, account_id, address FROM recipients WHERE id = $1 FOR UPDATE',
          [event.recipientId],
        )
      ).rows[0];
      if (!r) return undefined;
      const earlier = await client.query(
        `SELECT 1 FROM events WHERE recipient_id = $1 AND type = $2
           AND type IN ('opened', 'clicked', 'unsubscribed') LIMIT 1`,
        [event.recipientId, event.type],
      );
      const first = earlier.rowCount === 0;
      await client.query(
        `INSERT INTO events (at, type, message_id, recipient_id, account_id, recipient, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [
          event.at,
          event.type,
          String(r.message_id),
          event.recipientId,
          String(r.account_id),
          String(r.address),
          json({ ...event.data, first }),
        ],
      );
      return { first };
    });
  }

  async recordAsyncReports(reports: AsyncReport[]): Promise<number[]> {
    if (reports.length === 0) return [];
    const col = <T>(pick: (r: AsyncReport) => T): T[] => reports.map(pick);
    const replies = reports.map(bounceReply);
    // One statement: events and state change together. The recipients are read from the
    // statement's snapshot; of several bounces of one recipient in the batch the last one given
    // sets its reply (an UPDATE changes a row once).
    const rows = await this.#all(
      `WITH rep AS (
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::jsonb[], $5::text[], $6::text[], $7::int[])
           WITH ORDINALITY AS x(recipient_id, at, type, data, status, diagnostic, code, ord)
       ), found AS (
         SELECT rep.*, r.message_id, r.account_id, r.address FROM rep JOIN recipients r ON r.id = rep.recipient_id
       ), bounced AS (
         UPDATE recipients r SET state = 'bounced', lease_owner = NULL, lease_until = NULL, updated_at = b.at,
           last_code = b.code, last_enhanced = COALESCE(b.status, r.last_enhanced),
           last_text = COALESCE(b.diagnostic, r.last_text)
         FROM (SELECT DISTINCT ON (recipient_id) * FROM found WHERE type = 'bounced'
           ORDER BY recipient_id, ord DESC) b
         WHERE r.id = b.recipient_id
       ), logged AS (
         INSERT INTO events (at, type, message_id, recipient_id, account_id, recipient, data)
         SELECT at, type, message_id, recipient_id, account_id, address, data FROM found ORDER BY ord
       )
       SELECT recipient_id FROM found ORDER BY ord`,
      [
        col((r) => r.recipientId),
        col((r) => r.at),
        col((r) => r.type),
        col((r) => json(r.data)),
        replies.map((r) => (r.status === null ? null : clean(r.status))),
        replies.map((r) => (r.diagnostic === null ? null : clean(r.diagnostic))),
        replies.map((r) => r.code),
      ],
    );
    return rows.map((r) => num(r.recipient_id));
  }

  async countSoftBounces(input: { accountId: string; address: string; since: number }): Promise<number> {
    const r = await this.#get(
      'SELECT count(*) AS n FROM soft_bounces WHERE account_id = $1 AND address = $2 AND at >= $3',
      [input.accountId, input.address.toLowerCase(), input.since],
    );
    return num(r?.n ?? 0);
  }

  // Retention will prune old rows (by `at`); nothing here deletes them.
  async recordSoftBounce(input: { accountId: string; address: string; at: number }): Promise<void> {
    await this.#run('INSERT INTO soft_bounces (account_id, address, at) VALUES ($1, $2, $3)', [
      input.accountId,
      clean(input.address.toLowerCase()),
      input.at,
    ]);
  }

  async purgeSoftBounces({ before, limit }: PurgeBatch): Promise<number> {
    const rows = await this.#all(
      `DELETE FROM soft_bounces WHERE ctid IN (SELECT ctid FROM soft_bounces WHERE at < $1 ORDER BY at LIMIT $2)
       RETURNING 1`,
      [before, limit],
    );
    return rows.length;
  }

  async claimIdempotencyKey(input: {
    accountId: string;
    key: string;
    requestHash: string;
    now: number;
    staleBefore: number;
    expiredBefore: number;
  }): Promise<IdempotencyRecord | undefined> {
    // Two statements: a SELECT in the claiming statement would read its snapshot, which misses a
    // claim committed by a concurrent request after it began (the conflict does see that one).
    // Between them the record may be released (its request failed): then claim again.
    for (;;) {
      const claimed = await this.#run(
        `INSERT INTO idempotency_keys (account_id, key, request_hash, status, response, created_at)
         VALUES ($1, $2, $3, 0, '', $4)
         ON CONFLICT (account_id, key) DO UPDATE SET request_hash = excluded.request_hash, status = 0,
           response = '', created_at = excluded.created_at
         WHERE idempotency_keys.created_at < $5 OR (idempotency_keys.status = 0 AND idempotency_keys.created_at < $6)`,
        [input.accountId, input.key, input.requestHash, input.now, input.expiredBefore, input.staleBefore],
      );
      if (claimed > 0) return undefined;
      const r = await this.#get('SELECT * FROM idempotency_keys WHERE account_id = $1 AND key = $2', [
        input.accountId,
        input.key,
      ]);
      if (!r) continue;
      return {
        requestHash: String(r.request_hash),
        ...(num(r.status) === 1 ? { response: String(r.response) } : {}),
        createdAt: num(r.created_at),
      };
    }
  }

  async completeIdempotencyKey(input: { accountId: string; key: string; response: string }): Promise<void> {
    await this.#run(
      'UPDATE idempotency_keys SET status = 1, response = $1 WHERE account_id = $2 AND key = $3 AND status = 0',
      [clean(input.response), input.accountId, input.key],
    );
  }

  async releaseIdempotencyKey(accountId: string, key: string): Promise<void> {
    await this.#run('DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND status = 0', [
      accountId,
      key,
    ]);
  }

  async purgeIdempotencyKeys({ before, limit }: PurgeBatch): Promise<number> {
    return this.#run(
      `DELETE FROM idempotency_keys WHERE (account_id, key) IN (
         SELECT account_id, key FROM idempotency_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2
         FOR UPDATE SKIP LOCKED)`,
      [before, limit],
    );
  }

  async heartbeat(node: NodeHeartbeat, now: number): Promise<void> {
    await this.#lazy(
      `INSERT INTO nodes (id, started_at, heartbeat_at, info) VALUES ($1, $2, $3, $4::jsonb)
       ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
         info = excluded.info`,
      [node.id, node.startedAt, now, json(node.info)],
    );
  }

  async forgetNodes(before: number): Promise<number> {
    return this.#run('DELETE FROM nodes WHERE heartbeat_at < $1', [before]);
  }

  // reputation guard, audit trail, per-account retention, privacy: guard-store.ts, privacy-store.ts
  async recordAudit(entries: NewAuditEntry[]): Promise<void> {
    if (entries.length > 0) await guardStore.recordAudit(this.#pool, entries);
  }

  async listAudit(filter: AuditFilter): Promise<AuditEntry[]> {
    return guardStore.listAudit(this.#pool, filter);
  }

  async guardCounts(input: { since: number; accountId?: string; stream?: string }): Promise<GuardCount[]> {
    return guardStore.guardCounts(this.#pool, input);
  }

  async listGuardStates(accountId?: string): Promise<GuardState[]> {
    return guardStore.listGuardStates(this.#pool, accountId);
  }

  async saveGuardState(state: GuardState): Promise<void> {
    await guardStore.saveGuardState(this.#pool, state);
  }

  async releaseHeld(input: {
    accountId: string;
    stream?: string;
    reason: HoldReason;
    now: number;
    note: string;
  }): Promise<number> {
    const n = await guardStore.releaseHeld(this.#pool, input);
    if (n > 0) this.#notifyDue();
    return n;
  }

  async heldSummary(): Promise<{ accountId: string; stream: string; reason: string; count: number }[]> {
    return guardStore.heldSummary(this.#pool);
  }

  async setAccountRetention(retention: AccountRetention): Promise<void> {
    await guardStore.setAccountRetention(this.#pool, retention);
  }

  async listAccountRetention(): Promise<AccountRetention[]> {
    return guardStore.listAccountRetention(this.#pool);
  }

  async privacySecret(name: string, candidate: string): Promise<string> {
    return guardStore.privacySecret(this.#pool, name, candidate);
  }

  async exportAddress(input: { address: string; accountId?: string; limit: number }): Promise<AddressExport> {
    return privacyStore.exportAddress(this.#pool, this.#schema, input);
  }

  async eraseAddress(input: {
    address: string;
    accountId?: string;
    token: string;
    now: number;
  }): Promise<ErasureResult> {
    this.#prefetched.clear();
    return this.#transaction((client) => privacyStore.eraseAddress(client, this.#schema, input));
  }

  async clusterStatus(): Promise<NodeStatus[]> {
    const rows = await this.#all(
      `SELECT n.id, n.started_at, n.heartbeat_at, n.info,
         (SELECT count(*) FROM recipients r WHERE r.state = 'delivering' AND r.lease_owner = n.id) AS leases
       FROM nodes n ORDER BY n.id`,
    );
    return rows.map((r) => ({
      id: String(r.id),
      startedAt: num(r.started_at),
      heartbeatAt: num(r.heartbeat_at),
      info: (r.info ?? {}) as NodeStatus['info'],
      leases: num(r.leases),
    }));
  }

  // Statistics rollups (stats/): the cursor row is locked, checked and moved in the counters'
  // transaction, so two leaders overlapping for a moment cannot both apply one batch.
  async applyRollup(batch: RollupBatch): Promise<boolean> {
    const increments = mergeIncrements(batch.increments);
    return this.#transaction(async (client) => {
      await client.query(
        `INSERT INTO stats_cursors (name, last_id, updated_at) VALUES ($1, 0, $2) ON CONFLICT (name) DO NOTHING`,
        [clean(batch.cursor), batch.at],
      );
      const row = (
        await client.query<Row>('SELECT last_id FROM stats_cursors WHERE name = $1 FOR UPDATE', [
          clean(batch.cursor),
        ])
      ).rows[0];
      if (num(row?.last_id ?? 0) !== batch.fromId) return false;
      if (increments.length > 0) {
        const col = <T>(pick: (i: (typeof increments)[number]) => T): T[] => increments.map(pick);
        await client.query(
          `INSERT INTO stats_rollups (account_id, bucket, stream, tag, domain, provider, counter, n)
           SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
             $8::bigint[])
           ON CONFLICT (account_id, bucket, stream, tag, domain, provider, counter)
           DO UPDATE SET n = stats_rollups.n + excluded.n`,
          [
            col((i) => clean(i.accountId)),
            col((i) => i.bucket),
            col((i) => clean(i.stream)),
            col((i) => clean(i.tag)),
            col((i) => clean(i.domain)),
            col((i) => clean(i.provider)),
            col((i) => clean(i.counter)),
            col((i) => i.n),
          ],
        );
      }
      await client.query('UPDATE stats_cursors SET last_id = $2, updated_at = $3 WHERE name = $1', [
        clean(batch.cursor),
        batch.toId,
        batch.at,
      ]);
      return true;
    });
  }

  async rollupCursor(name: string): Promise<number> {
    return num(
      (await this.#get('SELECT last_id FROM stats_cursors WHERE name = $1', [clean(name)]))?.last_id ?? 0,
    );
  }

  async queryStats(query: StatsQuery): Promise<StatsRow[]> {
    const { text, values } = statsQuerySql(
      {
        ...query,
        ...(query.filter
          ? { filter: Object.fromEntries(Object.entries(query.filter).map(([k, v]) => [k, clean(v ?? '')])) }
          : {}),
        accountId: clean(query.accountId),
      },
      (i) => `$${i}`,
    );
    return (await this.#all(text, values)).map((r) => ({
      bucket: num(r.b),
      stream: String(r.stream),
      tag: String(r.tag),
      domain: String(r.domain),
      provider: String(r.provider),
      counter: String(r.counter),
      n: num(r.n),
    }));
  }

  async statsLookup(input: { messageIds: string[]; recipientIds: number[] }): Promise<StatsLookup> {
    const messages =
      input.messageIds.length === 0
        ? []
        : await this.#all('SELECT id, mail_from, envelope_from FROM messages WHERE id = ANY($1::text[])', [
            [...new Set(input.messageIds)].map(clean),
          ]);
    const recipients =
      input.recipientIds.length === 0
        ? []
        : await this.#all('SELECT id, last_site, domain FROM recipients WHERE id = ANY($1::bigint[])', [
            [...new Set(input.recipientIds)],
          ]);
    return {
      messages: messages.map((r) => ({
        id: String(r.id),
        mailFrom: String(r.mail_from),
        envelopeFrom: String(r.envelope_from),
      })),
      recipients: recipients.map((r) => ({
        id: num(r.id),
        lastSite: String(r.last_site),
        domain: String(r.domain),
      })),
    };
  }

  async queueDepth(): Promise<QueueDepth[]> {
    return (
      await this.#all(
        `SELECT state, kind, count(*) AS n FROM recipients
         WHERE state IN ('queued', 'deferred', 'delivering', 'held') GROUP BY state, kind ORDER BY state, kind`,
      )
    ).map((r) => ({
      state: String(r.state) as RecipientState,
      kind: String(r.kind) as StreamKind,
      count: num(r.n),
    }));
  }

  // ---- the event log and its feed (events/), webhooks (webhooks/): events-store.ts ----

  #eventQueries?: pgEvents.PgQueries;
  get #events(): pgEvents.PgQueries {
    this.#eventQueries ??= {
      all: (text, values) => this.#all(text, values),
      get: (text, values) => this.#get(text, values),
      run: (text, values) => this.#run(text, values),
      transaction: (work) => this.#transaction(work),
    };
    return this.#eventQueries;
  }

  appendEvents(events: NewEvent[]): Promise<number[]> {
    return pgEvents.appendEvents(this.#events, events);
  }

  listEvents(filter: EventFilter): Promise<EnrichedEventRow[]> {
    return pgEvents.listEvents(this.#events, filter);
  }

  eventsAfter(afterId: number, limit: number): Promise<EnrichedEventRow[]> {
    return pgEvents.eventsAfter(this.#events, afterId, limit);
  }

  lastEventId(): Promise<number> {
    return pgEvents.lastEventId(this.#events);
  }

  getEventCursor(name: string): Promise<number | undefined> {
    return pgEvents.getEventCursor(this.#events, name);
  }

  setEventCursor(name: string, position: number, now: number): Promise<void> {
    return pgEvents.setEventCursor(this.#events, name, position, now);
  }

  createWebhook(endpoint: WebhookEndpoint): Promise<void> {
    return pgEvents.createWebhook(this.#events, endpoint);
  }

  getWebhook(id: string): Promise<WebhookEndpoint | undefined> {
    return pgEvents.getWebhook(this.#events, id);
  }

  listWebhooks(accountId?: string): Promise<WebhookEndpoint[]> {
    return pgEvents.listWebhooks(this.#events, accountId);
  }

  deleteWebhook(accountId: string, id: string, now: number): Promise<boolean> {
    return pgEvents.deleteWebhook(this.#events, accountId, id, now);
  }

  updateWebhook(
    id: string,
    change: Partial<Pick<WebhookEndpoint, 'enabled' | 'disabledReason' | 'disabledAt' | 'failingSince'>>,
  ): Promise<void> {
    return pgEvents.updateWebhook(this.#events, id, change);
  }

  enqueueWebhookBatches(
    batches: WebhookBatch[],
    cursor?: { name: string; position: number; now: number },
  ): Promise<void> {
    return pgEvents.enqueueWebhookBatches(this.#events, batches, cursor);
  }

  dueWebhookBatches(now: number, limit: number): Promise<WebhookBatch[]> {
    return pgEvents.dueWebhookBatches(this.#events, now, limit);
  }

  webhookBacklog(): Promise<{ batches: number; events: number }> {
    return pgEvents.webhookBacklog(this.#events);
  }

  recordWebhookAttempt(
    attempt: Omit<WebhookAttempt, 'id'>,
    batch: Pick<WebhookBatch, 'state' | 'attempts' | 'nextAttemptAt' | 'lastError'>,
  ): Promise<void> {
    return pgEvents.recordWebhookAttempt(this.#events, attempt, batch);
  }

  failWebhookBatches(webhookId: string, reason: string, now: number): Promise<number> {
    return pgEvents.failWebhookBatches(this.#events, webhookId, reason, now);
  }

  listWebhookAttempts(webhookId: string, limit: number): Promise<WebhookAttempt[]> {
    return pgEvents.listWebhookAttempts(this.#events, webhookId, limit);
  }

  listWebhookBatches(webhookId: string, limit: number): Promise<WebhookBatch[]> {
    return pgEvents.listWebhookBatches(this.#events, webhookId, limit);
  }

  // dashboard users and sessions: dashboard-store.ts
  async createDashboardUser(user: DashboardUser): Promise<DashboardUser> {
    return dashboardStore.createUser(this.#pool, user);
  }

  async getDashboardUser(id: string): Promise<DashboardUser | undefined> {
    return dashboardStore.getUser(this.#pool, id);
  }

  async findDashboardUser(email: string): Promise<DashboardUser | undefined> {
    return dashboardStore.findUser(this.#pool, email);
  }

  async listDashboardUsers(accountId?: string): Promise<DashboardUser[]> {
    return dashboardStore.listUsers(this.#pool, accountId);
  }

  async deleteDashboardUser(id: string): Promise<boolean> {
    return dashboardStore.deleteUser(this.#pool, id);
  }

  async setDashboardPassword(id: string, passwordHash: string, at: number): Promise<boolean> {
    return dashboardStore.setPassword(this.#pool, id, passwordHash, at);
  }

  async createDashboardSession(session: DashboardSession): Promise<void> {
    await dashboardStore.createSession(this.#pool, session);
  }

  async getDashboardSession(id: string): Promise<DashboardSession | undefined> {
    return dashboardStore.getSession(this.#pool, id);
  }

  async touchDashboardSession(id: string, at: number): Promise<void> {
    await dashboardStore.touchSession(this.#pool, id, at);
  }

  async deleteDashboardSession(id: string): Promise<void> {
    await dashboardStore.deleteSession(this.#pool, id);
  }

  async purgeDashboardSessions(idleBefore: number, createdBefore: number): Promise<number> {
    return dashboardStore.purgeSessions(this.#pool, idleBefore, createdBefore);
  }
}
