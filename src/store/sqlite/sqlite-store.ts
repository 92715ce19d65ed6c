import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { bounceReply } from '../bounce-reply.ts';
import { isDefaultStream, withDefaultStreams } from '../default-streams.ts';
import { EVENT_WITH_LABELS, enrichedEventsSql } from '../enriched-events.ts';
import { SchemaTooNewError } from '../errors.ts';
import { type LaneClaim, type LeasePass, LeasePlan } from '../lease-plan.ts';
import { oneLine } from '../one-line.ts';
import { mergeIncrements, statsQuerySql } from '../stats-sql.ts';
import type { Store } from '../store.ts';
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
  DkimAlgorithm,
  DkimKey,
  DkimKeyState,
  EnrichedEventRow,
  ErasureResult,
  EventFilter,
  EventRow,
  EventType,
  GuardCount,
  GuardState,
  HoldReason,
  IdempotencyRecord,
  InsertOptions,
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
  ShapingEventKind,
  ShapingEventRow,
  ShapingEventType,
  StatsLookup,
  StatsQuery,
  StatsRow,
  Stream,
  StreamKind,
  StreamSettings,
  Suppression,
  SuppressionCheck,
  SuppressionFilter,
  SuppressionReason,
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
  EVENT_WRITE_SLACK_MS,
  FINAL_STATES,
  HOLD_REASON,
  leasedAtIntake,
  leasedAtIntakeRecipient,
  SHAPING_END_TYPES,
  SHAPING_REPLY_MAX,
  STREAM_KINDS,
  storedSize,
} from '../types.ts';
import { CommitQueue, WalFlusher } from './commit-queue.ts';
import * as dashboardStore from './dashboard-store.ts';
import * as guardStore from './guard-store.ts';
import { migrations } from './migrations.ts';
import * as privacyStore from './privacy-store.ts';

type Row = Record<string, SQLInputValue>;

export { SchemaTooNewError };

const json = (value: unknown): string => JSON.stringify(value ?? {});
/**
 * Delivery bookkeeping (leases, outcomes, heartbeats, shaping changes) is answered when it is
 * committed, without waiting for the flush to disk (CommitQueue: `durable: false`): a delivery
 * connection waits for its outcome's commit before its next transaction, so this shortens the
 * window in which a crash repeats a delivery; the next flush makes it durable.
 */
const LAZY = { durable: false } as const;

const parse = <T>(text: SQLInputValue | undefined): T => JSON.parse(String(text ?? '{}')) as T;

function toAccount(r: Row): Account {
  return {
    id: String(r.id),
    name: String(r.name),
    createdAt: Number(r.created_at),
    paused: Number(r.paused) === 1,
    weight: Number(r.weight),
    senderPolicy: String(r.sender_policy) as SenderPolicy,
  };
}

function toStream(r: Row): Stream {
  const name = String(r.name);
  return {
    accountId: String(r.account_id),
    name,
    kind: String(r.kind) as StreamKind,
    pool: String(r.pool),
    createdAt: Number(r.created_at),
    isDefault: isDefaultStream(name),
    ...streamSettings(r.settings),
  };
}

/** streams.settings (JSON text, schema v10); anything unreadable counts as none. */
function streamSettings(value: unknown): { settings?: StreamSettings } {
  if (typeof value !== 'string' || value === '' || value === '{}') return {};
  try {
    const parsed = JSON.parse(value) as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? { settings: parsed as StreamSettings }
      : {};
  } catch {
    return {};
  }
}

function toCredential(r: Row): Credential {
  return {
    id: String(r.id),
    accountId: String(r.account_id),
    kind: String(r.kind) as CredentialKind,
    name: String(r.name),
    secretHash: String(r.secret_hash),
    cidrs: parse<string[]>(r.cidrs),
    createdAt: Number(r.created_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
    defaultStream: String(r.default_stream ?? ''),
    scopes: splitScopes(r.scopes),
  };
}

function splitScopes(value: unknown): string[] {
  return String(value ?? '')
    .split(',')
    .filter((s) => s !== '');
}

function toTemplate(r: Row): Template {
  return {
    id: String(r.id),
    accountId: String(r.account_id),
    name: String(r.name),
    alias: String(r.alias),
    latestVersion: Number(r.latest_version),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

function toTemplateVersion(r: Row): TemplateVersion {
  return {
    templateId: String(r.template_id),
    version: Number(r.version),
    subject: String(r.subject),
    html: String(r.html),
    text: String(r.text),
    createdAt: Number(r.created_at),
  };
}

function toDomain(r: Row): SendingDomain {
  return {
    id: String(r.id),
    accountId: String(r.account_id),
    domain: String(r.domain),
    returnPath: String(r.return_path),
    trackingHost: String(r.tracking_host),
    verifiedAt: r.verified_at === null ? null : Number(r.verified_at),
    verifiedBy: r.verified_by === null ? null : (String(r.verified_by) as 'dns' | 'admin'),
    lastCheck: r.last_check === null ? null : parse(r.last_check),
    checkedAt: r.checked_at === null ? null : Number(r.checked_at),
    createdAt: Number(r.created_at),
  };
}

function toDkimKey(r: Row): DkimKey {
  return {
    domainId: String(r.domain_id),
    selector: String(r.selector),
    algorithm: String(r.algorithm) as DkimAlgorithm,
    privateKeyPem: String(r.private_key),
    publicKey: String(r.public_key),
    state: String(r.state) as DkimKeyState,
    createdAt: Number(r.created_at),
    changedAt: Number(r.changed_at),
  };
}

function toSuppression(r: Row): Suppression {
  return {
    accountId: String(r.account_id),
    address: String(r.address),
    scope: String(r.scope),
    reason: String(r.reason) as SuppressionReason,
    category: String(r.category),
    source: String(r.source),
    details: String(r.details),
    createdAt: Number(r.created_at),
    expiresAt: r.expires_at === null ? null : Number(r.expires_at),
  };
}

/** Column list of MessageRow queries (`m` is messages). */
const MESSAGE_FIELDS = `m.id, m.account_id, m.credential_id, m.mail_from, m.message_id_header, m.subject, m.size,
  m.source, m.client_ip, m.dsn, m.dsn_on_failure, m.received_at, m.stream, m.tags, m.metadata, m.template,
  m.body IS NULL AS body_purged`;

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
    dsn: parse(r.dsn),
    dsnOnFailure: Number(r.dsn_on_failure) === 1,
    receivedAt: Number(r.received_at),
    stream: String(r.stream),
    bodyPurged: Number(r.body_purged) === 1,
    tags: parse<string[]>(r.tags ?? '[]'),
    metadata: parse<Record<string, string>>(r.metadata ?? '{}'),
    template: String(r.template ?? ''),
  };
}

function toRecipient(r: Row): RecipientRow {
  return {
    id: Number(r.id),
    messageId: String(r.message_id),
    accountId: String(r.account_id),
    address: String(r.address),
    domain: String(r.domain),
    state: String(r.state) as RecipientState,
    attempts: Number(r.attempts),
    nextAttemptAt: Number(r.next_attempt_at),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    lastReply:
      r.last_code === null
        ? null
        : {
            code: Number(r.last_code),
            ...(r.last_enhanced === null ? {} : { enhanced: String(r.last_enhanced) }),
            text: String(r.last_text ?? ''),
          },
    dsn: parse(r.dsn),
    leaseOwner: r.lease_owner === null ? null : String(r.lease_owner),
    leaseUntil: r.lease_until === null ? null : Number(r.lease_until),
    stream: String(r.stream),
    kind: String(r.kind) as StreamKind,
    lastSite: String(r.last_site ?? ''),
    variant: Number(r.variant ?? 0),
  };
}

function toShapingEvent(r: Row): ShapingEventRow {
  return {
    id: Number(r.id),
    at: Number(r.at),
    nodeId: String(r.node_id),
    type: String(r.type) as ShapingEventType,
    rule: String(r.rule),
    kind: String(r.kind) as ShapingEventKind,
    scopeKey: String(r.scope_key),
    rate: String(r.rate),
    until: Number(r.until),
    reply: String(r.reply),
  };
}

/** A deferred recipient's last reply as one line: `421 4.7.0 try again later`. */
function replyText(r: Row): string {
  return [r.last_code, r.last_enhanced, r.last_text].filter((p) => p !== null && p !== '').join(' ');
}

function toEvent(r: Row): EventRow {
  return {
    id: Number(r.id),
    at: Number(r.at),
    type: String(r.type) as EventType,
    messageId: String(r.message_id),
    recipientId: r.recipient_id === null ? null : Number(r.recipient_id),
    accountId: String(r.account_id),
    recipient: r.recipient === null ? null : String(r.recipient),
    data: parse(r.data),
  };
}

/** An event with its message's labels and the recipient's position in it (EnrichedEventRow). */
function toEnrichedEvent(r: Row): EnrichedEventRow {
  return {
    ...toEvent(r),
    recipientOrdinal: r.rcpt_ordinal === null || r.rcpt_ordinal === undefined ? null : Number(r.rcpt_ordinal),
    stream: String(r.stream ?? ''),
    tags: parse<string[]>(r.m_tags ?? '[]'),
    metadata: parse<Record<string, string>>(r.m_metadata ?? '{}'),
  };
}

function toWebhook(r: Row): WebhookEndpoint {
  return {
    id: String(r.id),
    accountId: String(r.account_id),
    url: String(r.url),
    secret: String(r.secret),
    eventTypes: parse<string[]>(r.event_types),
    enabled: Number(r.enabled) === 1,
    disabledReason: String(r.disabled_reason),
    disabledAt: r.disabled_at === null ? null : Number(r.disabled_at),
    failingSince: r.failing_since === null ? null : Number(r.failing_since),
    createdAt: Number(r.created_at),
  };
}

function toWebhookBatch(r: Row): WebhookBatch {
  return {
    id: String(r.id),
    webhookId: String(r.webhook_id),
    accountId: String(r.account_id),
    kind: String(r.kind),
    firstEventId: Number(r.first_event_id),
    lastEventId: Number(r.last_event_id),
    count: Number(r.count),
    body: String(r.body),
    state: String(r.state) as WebhookBatch['state'],
    attempts: Number(r.attempts),
    nextAttemptAt: Number(r.next_attempt_at),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    lastError: String(r.last_error),
  };
}

const WAITING = `state IN ('queued', 'deferred')`;
// Accounts with waiting mail looked at per lane and lease (#dueClaims).
const CLAIM_SCAN = 200;
/** Every recipient of message `m` is final (an unknown state counts as unfinished). */
const FINISHED = `NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id
  AND r.state NOT IN (${FINAL_STATES.map((state) => `'${state}'`).join(', ')}))`;

/**
 * The embedded store on node:sqlite, in WAL mode. All writes go through one CommitQueue, so the
 * writes of one event-loop turn (concurrent submissions, outcomes, leases) share a transaction.
 * node:sqlite is synchronous, so the connection commits with synchronous=NORMAL (no fsync in
 * COMMIT) and the queue flushes the WAL on libuv's thread pool (WalFlusher): durable jobs
 * (intake) are answered after that flush, delivery bookkeeping (`durable: false`) right after
 * its COMMIT.
 */
export class SqliteStore implements Store {
  readonly #db: DatabaseSync;
  readonly #queue: CommitQueue;
  readonly #flusher: WalFlusher | undefined;
  readonly #stmts = new Map<string, StatementSync>();
  /** Per lane, the account where the last lease's scan stopped (#dueClaims). */
  readonly #claimCursor = new Map<StreamKind, string>();
  #closed = false;

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    // The busy timeout comes first: a CLI command opens the file while the server writes to
    // it, and even the journal_mode pragma must wait for the lock rather than fail.
    this.#db = new DatabaseSync(path, { timeout: 5000 });
    this.#db.exec('PRAGMA busy_timeout = 5000');
    const mode = this.#db.prepare('PRAGMA journal_mode = WAL').get()?.journal_mode;
    this.#db.exec('PRAGMA foreign_keys = ON');
    if (mode === 'wal') {
      // COMMIT writes the WAL without waiting for the disk; the commit queue flushes it off this
      // thread and answers durable jobs after that (CommitQueue, WalFlusher).
      this.#db.exec('PRAGMA synchronous = NORMAL');
      this.#flusher = new WalFlusher(`${path}-wal`);
    } else {
      // An in-memory database: nothing to flush.
      this.#db.exec('PRAGMA synchronous = FULL');
    }
    this.#queue = new CommitQueue(this.#db, this.#flusher);
  }

  #stmt(sql: string): StatementSync {
    let stmt = this.#stmts.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      this.#stmts.set(sql, stmt);
    }
    return stmt;
  }

  #all(sql: string, ...params: SQLInputValue[]): Row[] {
    return this.#stmt(sql).all(...params) as Row[];
  }

  #get(sql: string, ...params: SQLInputValue[]): Row | undefined {
    return this.#stmt(sql).get(...params) as Row | undefined;
  }

  #run(sql: string, ...params: SQLInputValue[]): number {
    return Number(this.#stmt(sql).run(...params).changes);
  }

  async migrate(): Promise<void> {
    this.#db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = this.#db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as Row | undefined;
    const current = row?.v === null || row?.v === undefined ? 0 : Number(row.v);
    if (current > migrations.length) throw new SchemaTooNewError(current, migrations.length);
    for (let version = current + 1; version <= migrations.length; version++) {
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        for (const sql of migrations[version - 1] ?? []) this.#db.exec(sql);
        this.#db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(version);
        this.#db.exec('COMMIT');
      } catch (err) {
        this.#db.exec('ROLLBACK');
        throw new Error(`migration to schema version ${version} failed`, { cause: err });
      }
    }
    // The migrations committed outside the queue: its flush makes them durable.
    await this.#queue.run(() => undefined);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Let queued commits finish first.
    await this.#queue.run(() => undefined);
    this.#db.close();
    this.#flusher?.close();
  }

  async createAccount(input: { id: string; name: string; createdAt: number }): Promise<Account> {
    await this.#queue.run(() =>
      this.#run(
        'INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)',
        input.id,
        input.name,
        input.createdAt,
      ),
    );
    return { ...input, paused: false, weight: 1, senderPolicy: 'verified' };
  }

  async getAccount(id: string): Promise<Account | undefined> {
    const r = this.#get('SELECT * FROM accounts WHERE id = ?', id);
    return r && toAccount(r);
  }

  async getAccountByName(name: string): Promise<Account | undefined> {
    const r = this.#get('SELECT * FROM accounts WHERE name = ?', name);
    return r && toAccount(r);
  }

  async listAccounts(): Promise<Account[]> {
    return this.#all('SELECT * FROM accounts ORDER BY name').map(toAccount);
  }

  async setAccountWeight(id: string, weight: number): Promise<boolean> {
    const changed = await this.#queue.run(() =>
      this.#run('UPDATE accounts SET weight = ? WHERE id = ?', weight, id),
    );
    return changed > 0;
  }

  async setAccountSenderPolicy(id: string, policy: SenderPolicy): Promise<boolean> {
    const changed = await this.#queue.run(() =>
      this.#run('UPDATE accounts SET sender_policy = ? WHERE id = ?', policy, id),
    );
    return changed > 0;
  }

  async createStream(input: Omit<Stream, 'isDefault'>): Promise<Stream> {
    await this.#queue.run(() =>
      this.#run(
        'INSERT INTO streams (account_id, name, kind, pool, created_at) VALUES (?, ?, ?, ?, ?)',
        input.accountId,
        input.name,
        input.kind,
        input.pool,
        input.createdAt,
      ),
    );
    return { ...input, isDefault: isDefaultStream(input.name) };
  }

  async listStreams(accountId: string): Promise<Stream[]> {
    const account = this.#get('SELECT created_at FROM accounts WHERE id = ?', accountId);
    if (!account) return [];
    const rows = this.#all('SELECT * FROM streams WHERE account_id = ? ORDER BY name', accountId).map(
      toStream,
    );
    return withDefaultStreams(accountId, Number(account.created_at), rows);
  }

  async getStream(accountId: string, name: string): Promise<Stream | undefined> {
    const r = this.#get('SELECT * FROM streams WHERE account_id = ? AND name = ?', accountId, name);
    if (r) return toStream(r);
    if (!isDefaultStream(name)) return undefined;
    const account = this.#get('SELECT created_at FROM accounts WHERE id = ?', accountId);
    if (!account) return undefined;
    return withDefaultStreams(accountId, Number(account.created_at), []).find((s) => s.name === name);
  }

  async setStreamSettings(input: {
    accountId: string;
    name: string;
    kind: StreamKind;
    createdAt: number;
    settings: StreamSettings;
  }): Promise<void> {
    await this.#queue.run(() =>
      this.#run(
        `INSERT INTO streams (account_id, name, kind, pool, created_at, settings) VALUES (?, ?, ?, '', ?, ?)
         ON CONFLICT (account_id, name) DO UPDATE SET settings = excluded.settings`,
        input.accountId,
        input.name,
        input.kind,
        input.createdAt,
        json(input.settings),
      ),
    );
  }

  async createCredential(c: Credential): Promise<Credential> {
    await this.#queue.run(() =>
      this.#run(
        `INSERT INTO credentials (id, account_id, kind, name, secret_hash, cidrs, created_at, revoked_at,
           default_stream, scopes)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
      ),
    );
    return c;
  }

  async getCredential(id: string): Promise<Credential | undefined> {
    const r = this.#get('SELECT * FROM credentials WHERE id = ?', id);
    return r && toCredential(r);
  }

  async findCredential(kind: CredentialKind, name: string): Promise<Credential | undefined> {
    const r = this.#get(
      'SELECT * FROM credentials WHERE kind = ? AND name = ? AND revoked_at IS NULL',
      kind,
      name,
    );
    return r && toCredential(r);
  }

  async listCredentials(
    filter: { accountId?: string; kind?: CredentialKind; includeRevoked?: boolean } = {},
  ): Promise<Credential[]> {
    const where: string[] = [];
    const params: SQLInputValue[] = [];
    if (filter.accountId !== undefined) {
      where.push('account_id = ?');
      params.push(filter.accountId);
    }
    if (filter.kind !== undefined) {
      where.push('kind = ?');
      params.push(filter.kind);
    }
    if (!filter.includeRevoked) where.push('revoked_at IS NULL');
    const sql = `SELECT * FROM credentials ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at, id`;
    return this.#all(sql, ...params).map(toCredential);
  }

  async revokeCredential(id: string, at: number): Promise<boolean> {
    const changed = await this.#queue.run(() =>
      this.#run('UPDATE credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', at, id),
    );
    return changed > 0;
  }

  async insertMessages(messages: NewMessage[], options?: InsertOptions): Promise<LeasedRecipient[]> {
    const lease = options?.lease;
    return this.#queue.run(() => {
      const leased: LeasedRecipient[] = [];
      for (const m of messages) {
        const stream = m.stream ?? DEFAULT_STREAM;
        const kind = m.kind ?? 'transactional';
        this.#stmt(
          `INSERT INTO messages (id, account_id, credential_id, mail_from, message_id_header, subject, size, source,
             client_ip, dsn, dsn_on_failure, received_at, body, stream, tags, metadata, template, envelope_from)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          m.id,
          m.accountId,
          m.credentialId,
          m.mailFrom,
          m.messageIdHeader,
          m.subject,
          storedSize(m),
          m.source,
          m.clientIp,
          json(m.dsn),
          m.dsnOnFailure ? 1 : 0,
          m.receivedAt,
          m.body,
          stream,
          json(m.tags ?? []),
          json(m.metadata ?? {}),
          m.template ?? '',
          m.envelopeFrom ?? '',
        );
        const variants = m.variants ?? [];
        for (let v = 0; v < variants.length; v++) {
          this.#stmt('INSERT INTO message_variants (message_id, variant, body) VALUES (?, ?, ?)').run(
            m.id,
            v + 1,
            variants[v] ?? null,
          );
        }
        const due = m.notBefore ?? m.receivedAt;
        const check = m.suppressionCheck;
        for (const [i, given] of m.recipients.entries()) {
          const listed = check && !given.suppressed ? this.#listed(m, stream, check, i) : undefined;
          const r = listed ? { ...given, suppressed: listed } : given;
          // A suppressed recipient is final from the start: no waiting index ever sees it.
          const leasing = leasedAtIntake(m, r, lease);
          const res = this.#stmt(
            `INSERT INTO recipients (message_id, account_id, address, domain, state, next_attempt_at, created_at,
               updated_at, dsn, stream, kind, variant, hold_reason, lease_owner, lease_until)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          ).run(
            m.id,
            m.accountId,
            r.address,
            r.domain,
            r.suppressed ? 'suppressed' : r.held ? 'held' : leasing ? 'delivering' : 'queued',
            due,
            m.receivedAt,
            m.receivedAt,
            json(r.dsn),
            stream,
            kind,
            r.variant ?? 0,
            r.suppressed ? '' : (r.held?.reason ?? ''),
            leasing ? (lease?.owner ?? null) : null,
            leasing ? (lease?.until ?? null) : null,
          );
          const recipientId = Number(res.lastInsertRowid);
          if (leasing) leased.push(leasedAtIntakeRecipient(m, r, recipientId));
          if (r.held && !r.suppressed) {
            // Held (guard/, content/): accepted and stored, not sent until released.
            this.#insertEvent(m.receivedAt, 'held', m.id, recipientId, m.accountId, r.address, {
              reason: r.held.reason,
              details: r.held.details,
              size: copySize(m, r.variant),
              source: m.source,
            });
          } else if (r.suppressed) {
            const { reason, scope } = r.suppressed;
            this.#insertEvent(m.receivedAt, 'suppressed', m.id, recipientId, m.accountId, r.address, {
              reason,
              scope,
            });
          } else {
            this.#insertEvent(m.receivedAt, 'accepted', m.id, recipientId, m.accountId, r.address, {
              size: copySize(m, r.variant),
              source: m.source,
              clientIp: m.clientIp,
            });
          }
        }
        if (m.contentWarnings && m.contentWarnings.length > 0) {
          this.#insertEvent(m.receivedAt, 'content_warning', m.id, null, m.accountId, null, {
            warnings: m.contentWarnings,
          });
        }
      }
      const key = options?.idempotency;
      if (key) {
        this.#stmt(
          'UPDATE idempotency_keys SET status = 1, response = ? WHERE account_id = ? AND key = ?',
        ).run(key.response, key.accountId, key.key);
      }
      return leased;
    });
  }

  /** The suppression entry recipient `index` of `m` records, if one applies (types.ts SuppressionCheck). */
  #listed(
    m: NewMessage,
    stream: string,
    check: SuppressionCheck,
    index: number,
  ): { reason: SuppressionReason; scope: string } | undefined {
    const address = m.recipients[index]?.address.toLowerCase();
    const row = this.#stmt(
      `SELECT reason, scope FROM suppressions
       WHERE account_id = ?1 AND address IN (?2, ?3) AND scope IN ('', ?4)
         AND (expires_at IS NULL OR expires_at > ?5) AND (?6 OR reason <> 'unsubscribe')
       ORDER BY reason = 'unsubscribe', scope, address <> ?2 LIMIT 1`,
    ).get(
      m.accountId,
      address ?? null,
      check.tokens?.[index] || null,
      stream,
      m.receivedAt,
      check.unsubscribes ? 1 : 0,
    );
    return row ? { reason: String(row.reason) as SuppressionReason, scope: String(row.scope) } : undefined;
  }

  #insertEvent(
    at: number,
    type: EventType,
    messageId: string,
    recipientId: number | null,
    accountId: string,
    recipient: string | null,
    data: unknown,
  ): void {
    this.#run(
      // The message's stream is copied onto the event (events_account_stream; schema v11).
      `INSERT INTO events (at, type, message_id, recipient_id, account_id, recipient, data, stream)
       VALUES (?, ?, ?, ?, ?, ?, ?, COALESCE((SELECT stream FROM messages WHERE id = ?), ''))`,
      at,
      type,
      messageId,
      recipientId,
      accountId,
      recipient,
      json(data),
      messageId,
    );
  }

  async leaseDue(input: LeaseRequest): Promise<LeasedRecipient[]> {
    return this.#queue.run(() => {
      const plan = new LeasePlan(input, {
        expired: this.#expiredByKind(input),
        claims: this.#dueClaims(input.now),
      });
      // No other writer can come between these statements (one connection, one transaction), so
      // every pass is exact: passes continue until the batch is full or nothing more is due.
      const rows: Row[] = [];
      for (let pass = plan.next(); pass; pass = plan.next()) {
        const leased = this.#leasePass(input, pass);
        plan.record(
          pass,
          leased.map((r) => ({
            kind: String(r.kind) as StreamKind,
            accountId: String(r.account_id),
            expired: r.expired === 1,
          })),
        );
        rows.push(...leased);
      }
      const senders = new Map<string, string>();
      return rows.map((r): LeasedRecipient => {
        const messageId = String(r.message_id);
        let mailFrom = senders.get(messageId);
        if (mailFrom === undefined) {
          mailFrom = String(
            this.#get(
              `SELECT CASE WHEN envelope_from <> '' THEN envelope_from ELSE mail_from END AS mail_from
               FROM messages WHERE id = ?`,
              messageId,
            )?.mail_from ?? '',
          );
          senders.set(messageId, mailFrom);
        }
        return {
          id: Number(r.id),
          messageId,
          accountId: String(r.account_id),
          address: String(r.address),
          domain: String(r.domain),
          attempts: Number(r.attempts),
          mailFrom,
          createdAt: Number(r.created_at),
          dsn: parse(r.dsn),
          stream: String(r.stream),
          kind: String(r.kind) as StreamKind,
          variant: Number(r.variant),
        };
      });
    }, LAZY);
  }

  /** Expired leases per kind, counted up to the batch limit (a dead node's work; few). */
  #expiredByKind(input: LeaseRequest): Partial<Record<StreamKind, number>> {
    const counts: Partial<Record<StreamKind, number>> = {};
    for (const r of this.#all(
      `SELECT kind, COUNT(*) AS n FROM (
         SELECT kind FROM recipients WHERE state = 'delivering' AND lease_until < ? LIMIT ?)
       GROUP BY kind`,
      input.now,
      Math.max(0, Math.floor(input.limit)),
    )) {
      counts[String(r.kind) as StreamKind] = Number(r.n);
    }
    return counts;
  }

  /**
   * The (lane, account) pairs with due work and the account's weight: per lane a skip scan over
   * recipients_lane, one index seek per account that has waiting recipients (due or not),
   * whatever the size of its backlog, and one more to see whether anything of it is due. At most
   * CLAIM_SCAN accounts per lane and call: with thousands of accounts waiting, each call looks at
   * the next ones after where the last call stopped (round robin), so a lease stays cheap and
   * every account's turn comes.
   */
  #dueClaims(now: number): LaneClaim[] {
    const claims: LaneClaim[] = [];
    for (const kind of STREAM_KINDS) {
      const start = this.#claimCursor.get(kind) ?? '';
      let after = start;
      let wrapped = false;
      for (let seen = 0; seen < CLAIM_SCAN; seen++) {
        const at = this.#get(
          `SELECT account_id FROM recipients WHERE ${WAITING} AND kind = ? AND account_id > ?
           ORDER BY account_id LIMIT 1`,
          kind,
          after,
        );
        if (!at) {
          // The end of the lane: go round once from its start, up to where this call began.
          if (wrapped || start === '') break;
          wrapped = true;
          after = '';
          seen--;
          continue;
        }
        const accountId = String(at.account_id);
        if (wrapped && accountId > start) break;
        after = accountId;
        const due = this.#get(
          `SELECT a.weight FROM accounts a WHERE a.id = ? AND EXISTS (
             SELECT 1 FROM recipients WHERE ${WAITING} AND kind = ? AND account_id = ? AND next_attempt_at <= ?)`,
          accountId,
          kind,
          accountId,
          now,
        );
        if (due) claims.push({ kind, accountId, weight: Number(due.weight), due: Number.POSITIVE_INFINITY });
        if (wrapped && accountId === start) break;
      }
      this.#claimCursor.set(kind, after);
    }
    return claims;
  }

  /** Leases one pass of the plan: expired leases by kind, then each account's share, oldest due first. */
  #leasePass(input: LeaseRequest, pass: LeasePass): Row[] {
    const lease = `UPDATE recipients SET state = 'delivering', lease_owner = ?, lease_until = ?, updated_at = ?`;
    const returning = `RETURNING id, message_id, account_id, address, domain, attempts, created_at, dsn, stream, kind,
      variant`;
    const rows: Row[] = [];
    for (const kind of STREAM_KINDS) {
      if (pass.expired[kind] <= 0) continue;
      const expired = this.#all(
        `${lease} WHERE id IN (
           SELECT id FROM recipients WHERE state = 'delivering' AND lease_until < ? AND kind = ?
           ORDER BY lease_until LIMIT ?)
         ${returning}`,
        input.owner,
        input.leaseUntil,
        input.now,
        input.now,
        kind,
        pass.expired[kind],
      );
      rows.push(...expired.map((r) => ({ ...r, expired: 1 })));
    }
    for (const { kind, accountId, share } of pass.shares) {
      rows.push(
        ...this.#all(
          `${lease} WHERE id IN (
             SELECT id FROM recipients WHERE ${WAITING} AND kind = ? AND account_id = ? AND next_attempt_at <= ?
             ORDER BY next_attempt_at LIMIT ?)
           ${returning}`,
          input.owner,
          input.leaseUntil,
          input.now,
          kind,
          accountId,
          input.now,
          share,
        ),
      );
    }
    return rows;
  }

  async renewLeases(input: { owner: string; ids: number[]; leaseUntil: number }): Promise<void> {
    if (input.ids.length === 0) return;
    await this.#queue.run(() => {
      for (const id of input.ids) {
        this.#run(
          `UPDATE recipients SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'delivering'`,
          input.leaseUntil,
          id,
          input.owner,
        );
      }
    }, LAZY);
  }

  async releaseLeases(owner: string | null, now: number): Promise<number> {
    return this.#queue.run(() =>
      this.#run(
        `UPDATE recipients SET state = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END,
           lease_owner = NULL, lease_until = NULL, updated_at = ?
         WHERE state = 'delivering' AND (? IS NULL OR lease_owner = ?)`,
        now,
        owner,
        owner,
      ),
    );
  }

  async nextDueAt(): Promise<number | null> {
    const r = this.#get(`SELECT MIN(next_attempt_at) AS t FROM recipients WHERE ${WAITING}`);
    const leased = this.#get(`SELECT MIN(lease_until) AS t FROM recipients WHERE state = 'delivering'`);
    const times = [r?.t, leased?.t].filter((t) => t !== null && t !== undefined).map(Number);
    return times.length ? Math.min(...times) : null;
  }

  async getBody(messageId: string, variant = 0): Promise<Buffer | undefined> {
    const r =
      variant === 0
        ? this.#get('SELECT body FROM messages WHERE id = ?', messageId)
        : this.#get(
            'SELECT body FROM message_variants WHERE message_id = ? AND variant = ?',
            messageId,
            variant,
          );
    if (!r || r.body === null) return undefined;
    const body = r.body as Uint8Array;
    return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  }

  async recordOutcomes(owner: string, outcomes: Outcome[]): Promise<number[]> {
    if (outcomes.length === 0) return [];
    return this.#queue.run(() => {
      const applied: number[] = [];
      for (const o of outcomes) {
        const changed = this.#run(
          `UPDATE recipients SET state = ?, attempts = attempts + ?, next_attempt_at = COALESCE(?, next_attempt_at),
             last_code = COALESCE(?, last_code), last_enhanced = CASE WHEN ? IS NULL THEN last_enhanced ELSE ? END,
             last_text = COALESCE(?, last_text), last_site = COALESCE(?, last_site),
             last_source = COALESCE(?, last_source), lease_owner = NULL,
             lease_until = NULL, updated_at = ?
           WHERE id = ? AND ((state = 'delivering' AND lease_owner = ?)
             OR (? = 'delivered' AND (? = 0 OR state <> 'delivered')))`,
          o.state,
          o.attempted ? 1 : 0,
          o.nextAttemptAt ?? null,
          o.reply?.code ?? null,
          o.reply ? 1 : null,
          o.reply?.enhanced ?? null,
          o.reply?.text ?? null,
          o.site ?? null,
          o.source ?? null,
          o.at,
          o.recipientId,
          owner,
          o.state,
          o.recovered ? 1 : 0,
        );
        if (changed === 0) continue;
        applied.push(o.recipientId);
        if (o.event) {
          this.#insertEvent(
            o.at,
            o.event.type,
            o.messageId,
            o.recipientId,
            o.accountId,
            o.recipient,
            o.event.data,
          );
        }
      }
      return applied;
    }, LAZY);
  }

  async findMessagesByHeader(messageIdHeader: string): Promise<MessageRow[]> {
    return this.#all(
      `SELECT ${MESSAGE_FIELDS} FROM messages m WHERE m.message_id_header = ? ORDER BY m.id DESC LIMIT 10`,
      messageIdHeader,
    ).map(toMessage);
  }

  async getMessage(id: string): Promise<MessageRow | undefined> {
    const r = this.#get(`SELECT ${MESSAGE_FIELDS} FROM messages m WHERE m.id = ?`, id);
    return r && toMessage(r);
  }

  async listMessages(filter: MessageFilter): Promise<MessageSummary[]> {
    const where: string[] = [];
    const params: SQLInputValue[] = [];
    if (filter.accountId !== undefined) {
      where.push('m.account_id = ?');
      params.push(filter.accountId);
    }
    if (filter.before !== undefined) {
      where.push('m.id < ?');
      params.push(filter.before);
    }
    if (filter.after !== undefined) {
      where.push('m.received_at >= ?');
      params.push(filter.after);
    }
    if (filter.tag !== undefined) {
      where.push('EXISTS (SELECT 1 FROM json_each(m.tags) t WHERE t.value = ?)');
      params.push(filter.tag);
    }
    if (filter.subject !== undefined) {
      // lower() of SQLite folds ASCII only; PostgreSQL's folds every letter.
      where.push('instr(lower(m.subject), lower(?)) > 0');
      params.push(filter.subject);
    }
    if (filter.recipient !== undefined || filter.status !== undefined) {
      const sub: string[] = [];
      if (filter.recipient !== undefined) {
        sub.push('r.address = ?');
        params.push(filter.recipient);
      }
      if (filter.status !== undefined) {
        sub.push('r.state = ?');
        params.push(filter.status);
      }
      where.push(`m.id IN (SELECT r.message_id FROM recipients r WHERE ${sub.join(' AND ')})`);
    }
    params.push(Math.min(Math.max(filter.limit ?? 50, 1), 1000));
    const rows = this.#all(
      `SELECT ${MESSAGE_FIELDS}
       FROM messages m ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY m.id DESC LIMIT ?`,
      ...params,
    );
    return rows.map((r) => ({
      ...toMessage(r),
      recipients: this.#all(
        'SELECT address, state FROM recipients WHERE message_id = ? ORDER BY id',
        String(r.id),
      ).map((x) => ({ address: String(x.address), state: String(x.state) as RecipientState })),
    }));
  }

  async getRecipients(messageId: string): Promise<RecipientRow[]> {
    return this.#all('SELECT * FROM recipients WHERE message_id = ? ORDER BY id', messageId).map(toRecipient);
  }

  async getEvents(messageId: string): Promise<EventRow[]> {
    return this.#all('SELECT * FROM events WHERE message_id = ? ORDER BY id', messageId).map(toEvent);
  }

  async queueSummary(now: number, accountId?: string): Promise<QueueDomainSummary[]> {
    const [only, of] = accountId === undefined ? ['', []] : [' AND account_id = ?', [accountId]];
    const rows = this.#all(
      `SELECT domain,
         SUM(state = 'queued') AS queued, SUM(state = 'deferred') AS deferred, SUM(state = 'delivering') AS delivering,
         MIN(created_at) AS oldest,
         SUM(created_at > ?) AS under_hour, SUM(created_at <= ? AND created_at > ?) AS under_day,
         SUM(created_at <= ?) AS older
       FROM recipients WHERE state IN ('queued', 'deferred', 'delivering')${only}
       GROUP BY domain ORDER BY COUNT(*) DESC, domain`,
      now - 3_600_000,
      now - 3_600_000,
      now - 86_400_000,
      now - 86_400_000,
      ...of,
    );
    const reasons = this.#all(
      `SELECT domain, last_code, last_enhanced, last_text, COUNT(*) AS n FROM recipients
       WHERE state = 'deferred' AND last_code IS NOT NULL${only}
       GROUP BY domain, last_code, last_enhanced, last_text ORDER BY n DESC`,
      ...of,
    );
    return rows.map((r) => ({
      domain: String(r.domain),
      queued: Number(r.queued),
      deferred: Number(r.deferred),
      delivering: Number(r.delivering),
      oldestAt: Number(r.oldest),
      ages: { underHour: Number(r.under_hour), underDay: Number(r.under_day), older: Number(r.older) },
      reasons: reasons
        .filter((x) => x.domain === r.domain)
        .slice(0, 3)
        .map((x) => ({ text: replyText(x), count: Number(x.n) })),
    }));
  }

  async queueSiteSummary(now: number, accountId?: string): Promise<QueueSiteSummary[]> {
    const [only, of] = accountId === undefined ? ['', []] : [' AND account_id = ?', [accountId]];
    const rows = this.#all(
      `SELECT last_site,
         SUM(state IN ('queued', 'deferred') AND next_attempt_at <= ?) AS ready,
         SUM(state IN ('queued', 'deferred') AND next_attempt_at > ?) AS scheduled,
         SUM(state = 'delivering') AS delivering, MIN(created_at) AS oldest, COUNT(DISTINCT domain) AS domains
       FROM recipients WHERE state IN ('queued', 'deferred', 'delivering')${only}
       GROUP BY last_site ORDER BY COUNT(*) DESC, last_site`,
      now,
      now,
      ...of,
    );
    const reasons = this.#all(
      `SELECT last_site, last_code, last_enhanced, last_text, COUNT(*) AS n FROM recipients
       WHERE state = 'deferred' AND last_code IS NOT NULL${only}
       GROUP BY last_site, last_code, last_enhanced, last_text ORDER BY n DESC, last_code, last_text`,
      ...of,
    );
    const bySource = this.#all(
      `SELECT last_site, last_source,
         SUM(state IN ('queued', 'deferred') AND next_attempt_at <= ?) AS ready,
         SUM(state IN ('queued', 'deferred') AND next_attempt_at > ?) AS scheduled,
         SUM(state = 'delivering') AS delivering
       FROM recipients WHERE state IN ('queued', 'deferred', 'delivering')${only}
       GROUP BY last_site, last_source ORDER BY last_site, last_source`,
      now,
      now,
      ...of,
    );
    return rows.map((r) => ({
      site: String(r.last_site),
      ready: Number(r.ready),
      scheduled: Number(r.scheduled),
      delivering: Number(r.delivering),
      oldestAt: Number(r.oldest),
      domains: Number(r.domains),
      reasons: reasons
        .filter((x) => x.last_site === r.last_site)
        .slice(0, 3)
        .map((x) => ({ text: replyText(x), count: Number(x.n) })),
      sources: bySource
        .filter((x) => x.last_site === r.last_site)
        .map((x) => ({
          source: String(x.last_source),
          ready: Number(x.ready),
          scheduled: Number(x.scheduled),
          delivering: Number(x.delivering),
        })),
    }));
  }

  async recordShapingEvents(events: NewShapingEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.#queue.run(() => {
      for (const e of events) {
        this.#run(
          `INSERT INTO shaping_events (at, node_id, type, rule, kind, scope_key, rate, until, reply)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          e.at,
          e.nodeId,
          e.type,
          e.rule,
          e.kind,
          e.scopeKey,
          e.rate ?? '',
          e.until,
          oneLine(e.reply ?? '', SHAPING_REPLY_MAX),
        );
      }
    }, LAZY);
  }

  async activeShaping(now: number): Promise<ShapingEventRow[]> {
    // Candidates by the until index; each must be the latest of its (scope, rule, node).
    return this.#all(
      `SELECT * FROM shaping_events e
       WHERE e.until > ? AND e.type NOT IN (${SHAPING_END_TYPES.map((t) => `'${t}'`).join(', ')})
         AND NOT EXISTS (SELECT 1 FROM shaping_events l
           WHERE l.scope_key = e.scope_key AND l.rule = e.rule AND l.node_id = e.node_id AND l.id > e.id)
       ORDER BY e.until, e.scope_key, e.rule, e.node_id`,
      now,
    ).map(toShapingEvent);
  }
  #selectorWhere(selector: QueueSelector): { sql: string; params: SQLInputValue[] } {
    const where: string[] = [];
    const params: SQLInputValue[] = [];
    if (selector.messageId !== undefined) {
      where.push('message_id = ?');
      params.push(selector.messageId);
    } else if (selector.domain !== undefined) {
      where.push('domain = ?');
      params.push(selector.domain.toLowerCase());
    } else {
      throw new Error('a queue selector needs a message id or a domain');
    }
    if (selector.accountId !== undefined) {
      where.push('account_id = ?');
      params.push(selector.accountId);
    }
    return { sql: where.join(' AND '), params };
  }

  async retryNow(selector: QueueSelector, now: number): Promise<number> {
    const { sql, params } = this.#selectorWhere(selector);
    return this.#queue.run(() => {
      const rows = this.#all(
        `UPDATE recipients SET next_attempt_at = ?, updated_at = ?,
           state = CASE WHEN state <> 'held' THEN state WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END
         WHERE state IN ('queued', 'deferred', 'held') AND ${sql}
         RETURNING id, message_id, account_id, address`,
        now,
        now,
        ...params,
      );
      for (const r of rows) {
        this.#insertEvent(
          now,
          'retried',
          String(r.message_id),
          Number(r.id),
          String(r.account_id),
          String(r.address),
          {
            reason: 'retry requested by an operator',
          },
        );
      }
      return rows.length;
    });
  }

  async hold(selector: QueueSelector, now: number, reason = HOLD_REASON): Promise<number> {
    const { sql, params } = this.#selectorWhere(selector);
    return this.#queue.run(() => {
      const rows = this.#all(
        `UPDATE recipients SET state = 'held', hold_reason = 'operator', updated_at = ?
         WHERE state IN ('queued', 'deferred') AND ${sql}
         RETURNING id, message_id, account_id, address`,
        now,
        ...params,
      );
      for (const r of rows) {
        this.#insertEvent(
          now,
          'held',
          String(r.message_id),
          Number(r.id),
          String(r.account_id),
          String(r.address),
          { reason: 'operator', details: reason },
        );
      }
      return rows.length;
    });
  }

  async cancel(selector: QueueSelector, now: number, reason = CANCEL_REASON): Promise<number> {
    const { sql, params } = this.#selectorWhere(selector);
    return this.#queue.run(() => {
      const rows = this.#all(
        `UPDATE recipients SET state = 'cancelled', lease_owner = NULL, lease_until = NULL, updated_at = ?
         WHERE state IN ('queued', 'deferred', 'delivering', 'held') AND ${sql}
         RETURNING id, message_id, account_id, address`,
        now,
        ...params,
      );
      for (const r of rows) {
        this.#insertEvent(
          now,
          'cancelled',
          String(r.message_id),
          Number(r.id),
          String(r.account_id),
          String(r.address),
          { reason },
        );
      }
      return rows.length;
    });
  }

  async countByState(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of this.#all('SELECT state, COUNT(*) AS n FROM recipients GROUP BY state')) {
      out[String(r.state)] = Number(r.n);
    }
    return out;
  }

  async purgeBodies(batch: PurgeBatch): Promise<number> {
    const { before, limit } = batch;
    const scope = guardStore.purgeScope(batch);
    return this.#queue.run(() => {
      const doomed = this.#all(
        `SELECT m.id FROM messages m WHERE m.body IS NOT NULL AND m.received_at < ? AND ${FINISHED}${scope.sql}
           ORDER BY m.received_at LIMIT ?`,
        before,
        ...scope.params,
        limit,
      );
      for (const r of doomed) {
        this.#run('UPDATE messages SET body = NULL WHERE id = ?', String(r.id));
        this.#run('DELETE FROM message_variants WHERE message_id = ?', String(r.id));
      }
      return doomed.length;
    });
  }

  async purgeMessages(batch: PurgeBatch): Promise<number> {
    const { before, limit } = batch;
    const scope = guardStore.purgeScope(batch);
    return this.#queue.run(() => {
      const doomed = this.#all(
        `SELECT m.id, m.account_id, m.tags FROM messages m WHERE m.received_at < ? AND ${FINISHED}${scope.sql}
         ORDER BY m.received_at LIMIT ?`,
        before,
        ...scope.params,
        limit,
      );
      for (const r of doomed) {
        const id = String(r.id);
        // The event log's tag index (schema v11), by its key: account, each of the message's tags.
        for (const tag of parse<string[]>(r.tags ?? '[]')) {
          this.#run(
            'DELETE FROM event_tags WHERE account_id = ? AND tag = ? AND event_id IN (SELECT id FROM events WHERE message_id = ?)',
            String(r.account_id),
            tag,
            id,
          );
        }
        this.#run('DELETE FROM events WHERE message_id = ?', id);
        this.#run('DELETE FROM recipients WHERE message_id = ?', id);
        this.#run('DELETE FROM message_variants WHERE message_id = ?', id);
        this.#run('DELETE FROM messages WHERE id = ?', id);
      }
      return doomed.length;
    });
  }

  async purgeEventLog(batch: PurgeBatch): Promise<number> {
    const { before, limit } = batch;
    const scope = guardStore.purgeScope(batch);
    return this.#queue.run(() => {
      // Attempts name no address (status, error, timing): one global age for them.
      let n = this.#run(
        'DELETE FROM webhook_attempts WHERE id IN (SELECT id FROM webhook_attempts WHERE at < ? ORDER BY at LIMIT ?)',
        before,
        limit,
      );
      // A batch's body holds its events (addresses, metadata): by its account's retention.
      n += this.#run(
        `DELETE FROM webhook_batches WHERE id IN (
           SELECT m.id FROM webhook_batches m WHERE m.state <> 'pending' AND m.created_at < ?${scope.sql} LIMIT ?)`,
        before,
        ...scope.params,
        limit,
      );
      // Events about no message (domains, the guard, webhooks): purgeMessages never reaches them.
      n += this.#run(
        `DELETE FROM events WHERE id IN (
           SELECT m.id FROM events m WHERE m.message_id = '' AND m.at < ?${scope.sql} ORDER BY m.id LIMIT ?)`,
        before,
        ...scope.params,
        limit,
      );
      return n;
    });
  }

  async purgeShapingEvents({ before, limit }: PurgeBatch): Promise<number> {
    return this.#queue.run(() =>
      this.#run(
        `DELETE FROM shaping_events WHERE id IN (
           SELECT id FROM shaping_events WHERE at < ? AND until < ? ORDER BY at LIMIT ?)`,
        before,
        before,
        limit,
      ),
    );
  }

  async createTemplate(
    input: Omit<Template, 'latestVersion'> & { content: TemplateContent },
  ): Promise<Template | undefined> {
    return this.#queue.run(() => {
      const inserted = this.#run(
        `INSERT OR IGNORE INTO templates (id, account_id, name, alias, latest_version, created_at, updated_at)
         VALUES (?, ?, ?, ?, 1, ?, ?)`,
        input.id,
        input.accountId,
        input.name,
        input.alias,
        input.createdAt,
        input.updatedAt,
      );
      if (inserted === 0) return undefined;
      this.#insertTemplateVersion(input.id, 1, input.content, input.createdAt);
      const { content: _content, ...template } = input;
      return { ...template, latestVersion: 1 };
    });
  }

  #insertTemplateVersion(templateId: string, version: number, c: TemplateContent, at: number): void {
    this.#run(
      'INSERT INTO template_versions (template_id, version, subject, html, text, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      templateId,
      version,
      c.subject,
      c.html,
      c.text,
      at,
    );
  }

  async addTemplateVersion(input: {
    accountId: string;
    id: string;
    name: string;
    alias: string;
    content: TemplateContent;
    now: number;
  }): Promise<Template | undefined> {
    return this.#queue.run(() => {
      const r = this.#get(
        `UPDATE OR IGNORE templates SET latest_version = latest_version + 1, name = ?, alias = ?, updated_at = ?
         WHERE id = ? AND account_id = ? AND deleted_at IS NULL RETURNING *`,
        input.name,
        input.alias,
        input.now,
        input.id,
        input.accountId,
      );
      if (!r) return undefined;
      const template = toTemplate(r);
      this.#insertTemplateVersion(template.id, template.latestVersion, input.content, input.now);
      return template;
    });
  }

  async getTemplate(accountId: string, idOrAlias: string): Promise<Template | undefined> {
    const r =
      this.#get(
        'SELECT * FROM templates WHERE id = ? AND account_id = ? AND deleted_at IS NULL',
        idOrAlias,
        accountId,
      ) ??
      this.#get(
        `SELECT * FROM templates WHERE alias = ? AND alias <> '' AND account_id = ? AND deleted_at IS NULL`,
        idOrAlias,
        accountId,
      );
    return r && toTemplate(r);
  }

  async getTemplateVersion(templateId: string, version?: number): Promise<TemplateVersion | undefined> {
    const r =
      version === undefined
        ? this.#get(
            'SELECT * FROM template_versions WHERE template_id = ? ORDER BY version DESC LIMIT 1',
            templateId,
          )
        : this.#get(
            'SELECT * FROM template_versions WHERE template_id = ? AND version = ?',
            templateId,
            version,
          );
    return r && toTemplateVersion(r);
  }

  async listTemplates(accountId: string): Promise<Template[]> {
    return this.#all(
      'SELECT * FROM templates WHERE account_id = ? AND deleted_at IS NULL ORDER BY id',
      accountId,
    ).map(toTemplate);
  }

  async deleteTemplate(accountId: string, id: string, now: number): Promise<boolean> {
    const changed = await this.#queue.run(() =>
      this.#run(
        'UPDATE templates SET deleted_at = ? WHERE id = ? AND account_id = ? AND deleted_at IS NULL',
        now,
        id,
        accountId,
      ),
    );
    return changed > 0;
  }

  async createDomain(input: SendingDomain & { keys: DkimKey[] }): Promise<SendingDomain | undefined> {
    const { keys, ...domain } = { ...input, domain: input.domain.toLowerCase() };
    return this.#queue.run(() => {
      // OR IGNORE: a domain (or id) taken by any account leaves the row there as it was.
      const inserted = this.#run(
        `INSERT OR IGNORE INTO domains (id, account_id, domain, return_path, tracking_host, verified_at,
           verified_by, last_check, checked_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
      );
      if (inserted === 0) return undefined;
      // The job's savepoint (commit-queue.ts) takes the domain back if one of its keys fails.
      for (const key of keys) this.#insertDkimKey({ ...key, domainId: domain.id });
      return domain;
    });
  }

  async getDomain(domain: string): Promise<SendingDomain | undefined> {
    const r = this.#get('SELECT * FROM domains WHERE domain = ?', domain.toLowerCase());
    return r && toDomain(r);
  }

  async listDomains(accountId?: string): Promise<SendingDomain[]> {
    const rows =
      accountId === undefined
        ? this.#all('SELECT * FROM domains ORDER BY domain')
        : this.#all('SELECT * FROM domains WHERE account_id = ? ORDER BY domain', accountId);
    return rows.map(toDomain);
  }

  async setDomainVerified(id: string, at: number | null, by: 'dns' | 'admin' | null): Promise<boolean> {
    const changed = await this.#queue.run(() =>
      this.#run(
        'UPDATE domains SET verified_at = ?, verified_by = ? WHERE id = ?',
        at,
        at === null ? null : by,
        id,
      ),
    );
    return changed > 0;
  }

  async recordDomainCheck(id: string, input: { checkedAt: number; result: unknown }): Promise<void> {
    await this.#queue.run(() =>
      this.#run(
        'UPDATE domains SET last_check = ?, checked_at = ? WHERE id = ?',
        json(input.result),
        input.checkedAt,
        id,
      ),
    );
  }

  async deleteDomain(id: string): Promise<boolean> {
    const changed = await this.#queue.run(() => {
      this.#run('DELETE FROM dkim_keys WHERE domain_id = ?', id);
      return this.#run('DELETE FROM domains WHERE id = ?', id);
    });
    return changed > 0;
  }

  async listDkimKeys(domainId: string): Promise<DkimKey[]> {
    return this.#all(
      'SELECT * FROM dkim_keys WHERE domain_id = ? ORDER BY created_at, selector',
      domainId,
    ).map(toDkimKey);
  }

  async addDkimKey(key: DkimKey): Promise<void> {
    await this.#queue.run(() => this.#insertDkimKey(key));
  }

  #insertDkimKey(k: DkimKey): void {
    this.#run(
      `INSERT INTO dkim_keys (domain_id, selector, algorithm, private_key, public_key, state, created_at, changed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      k.domainId,
      k.selector,
      k.algorithm,
      k.privateKeyPem,
      k.publicKey,
      k.state,
      k.createdAt,
      k.changedAt,
    );
  }

  async setDkimKeyState(
    domainId: string,
    selector: string,
    state: DkimKeyState,
    at: number,
  ): Promise<boolean> {
    const changed = await this.#queue.run(() =>
      this.#run(
        'UPDATE dkim_keys SET state = ?, changed_at = ? WHERE domain_id = ? AND selector = ?',
        state,
        at,
        domainId,
        selector,
      ),
    );
    return changed > 0;
  }

  async setDkimPrivateKey(
    domainId: string,
    selector: string,
    expected: string,
    privateKey: string,
  ): Promise<boolean> {
    const changed = await this.#queue.run(() =>
      this.#run(
        'UPDATE dkim_keys SET private_key = ? WHERE domain_id = ? AND selector = ? AND private_key = ?',
        privateKey,
        domainId,
        selector,
        expected,
      ),
    );
    return changed > 0;
  }

  async signingDomains(): Promise<(SendingDomain & { keys: DkimKey[] })[]> {
    const keys = new Map<string, DkimKey[]>();
    for (const key of this.#all(
      `SELECT * FROM dkim_keys WHERE state <> 'retired' ORDER BY created_at, selector`,
    ).map(toDkimKey)) {
      const list = keys.get(key.domainId);
      if (list) list.push(key);
      else keys.set(key.domainId, [key]);
    }
    return this.#all('SELECT * FROM domains ORDER BY domain').map((r) => {
      const domain = toDomain(r);
      return { ...domain, keys: keys.get(domain.id) ?? [] };
    });
  }

  async upsertSuppressions(entries: Suppression[]): Promise<void> {
    if (entries.length === 0) return;
    await this.#queue.run(() => {
      for (const e of entries) {
        this.#run(
          `INSERT INTO suppressions (account_id, address, scope, reason, category, source, details, created_at,
             expires_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (account_id, address, scope) DO UPDATE SET reason = excluded.reason,
             category = excluded.category, source = excluded.source, details = excluded.details,
             created_at = excluded.created_at, expires_at = excluded.expires_at`,
          e.accountId,
          e.address.toLowerCase(),
          e.scope,
          e.reason,
          e.category,
          e.source,
          e.details,
          e.createdAt,
          e.expiresAt,
        );
      }
    });
  }

  async removeSuppression(accountId: string, address: string, scope: string): Promise<boolean> {
    const changed = await this.#queue.run(() =>
      this.#run(
        'DELETE FROM suppressions WHERE account_id = ? AND address = ? AND scope = ?',
        accountId,
        address.toLowerCase(),
        scope,
      ),
    );
    return changed > 0;
  }

  async listSuppressions(filter: SuppressionFilter): Promise<Suppression[]> {
    const where = ['account_id = ?'];
    const params: SQLInputValue[] = [filter.accountId];
    if (filter.address !== undefined) {
      where.push('address = ?');
      params.push(filter.address.toLowerCase());
    }
    if (filter.reason !== undefined) {
      where.push('reason = ?');
      params.push(filter.reason);
    }
    if (filter.scope !== undefined) {
      where.push('scope = ?');
      params.push(filter.scope);
    }
    if (filter.after !== undefined) {
      where.push('(address, scope) > (?, ?)');
      params.push(filter.after.address, filter.after.scope);
    }
    params.push(Math.min(Math.max(filter.limit ?? 100, 1), 1000));
    return this.#all(
      `SELECT * FROM suppressions WHERE ${where.join(' AND ')} ORDER BY address, scope LIMIT ?`,
      ...params,
    ).map(toSuppression);
  }

  async findSuppressions(input: {
    accountId: string;
    stream: string | null;
    addresses: string[];
    now: number;
  }): Promise<Suppression[]> {
    if (input.addresses.length === 0) return [];
    // The addresses travel as one JSON array, so the statement (and its cache entry) is the same
    // whatever their number.
    return this.#all(
      `SELECT * FROM suppressions
       WHERE account_id = ?1 AND address IN (SELECT value FROM json_each(?2))
         AND (?3 IS NULL OR scope IN ('', ?3)) AND (expires_at IS NULL OR expires_at > ?4)
       ORDER BY address, scope`,
      input.accountId,
      JSON.stringify(input.addresses.map((a) => a.toLowerCase())),
      input.stream,
      input.now,
    ).map(toSuppression);
  }

  async purgeExpiredSuppressions({ before, limit }: PurgeBatch): Promise<number> {
    return this.#queue.run(() =>
      this.#run(
        `DELETE FROM suppressions WHERE rowid IN (
           SELECT rowid FROM suppressions WHERE expires_at < ? ORDER BY expires_at LIMIT ?)`,
        before,
        limit,
      ),
    );
  }

  async getRecipient(id: number): Promise<RecipientRow | undefined> {
    const r = this.#get('SELECT * FROM recipients WHERE id = ?', id);
    return r && toRecipient(r);
  }

  async getRecipientAt(messageId: string, index: number): Promise<RecipientRow | undefined> {
    if (!Number.isSafeInteger(index) || index < 0) return undefined;
    // recipients_message holds the rowid in order: the offset walks the index, not the rows.
    const r = this.#get(
      'SELECT * FROM recipients WHERE message_id = ? ORDER BY id LIMIT 1 OFFSET ?',
      messageId,
      index,
    );
    return r && toRecipient(r);
  }

  async recordEngagement(event: NewEngagement): Promise<{ first: boolean } | undefined> {
    return this.#queue.run(() => {
      const r = this.#get(
        'SELECT message_id, account_id, address FROM recipients WHERE id = ?',
        event.recipientId,
      );
      if (!r) return undefined;
      const earlier = this.#get(
        'SELECT 1 AS x FROM events WHERE recipient_id = ? AND type = ? LIMIT 1',
        event.recipientId,
        event.type,
      );
      const first = earlier === undefined;
      this.#insertEvent(
        event.at,
        event.type,
        String(r.message_id),
        event.recipientId,
        String(r.account_id),
        String(r.address),
        { ...event.data, first },
      );
      return { first };
    });
  }

  async recordAsyncReports(reports: AsyncReport[]): Promise<number[]> {
    if (reports.length === 0) return [];
    return this.#queue.run(() => {
      const found: number[] = [];
      for (const report of reports) {
        const r = this.#get(
          'SELECT message_id, account_id, address FROM recipients WHERE id = ?',
          report.recipientId,
        );
        if (!r) continue;
        if (report.type === 'bounced') {
          const { code, status, diagnostic } = bounceReply(report);
          this.#run(
            `UPDATE recipients SET state = 'bounced', lease_owner = NULL, lease_until = NULL, updated_at = ?,
               last_code = ?, last_enhanced = COALESCE(?, last_enhanced), last_text = COALESCE(?, last_text)
             WHERE id = ?`,
            report.at,
            code,
            status,
            diagnostic,
            report.recipientId,
          );
        }
        this.#insertEvent(
          report.at,
          report.type,
          String(r.message_id),
          report.recipientId,
          String(r.account_id),
          String(r.address),
          report.data,
        );
        found.push(report.recipientId);
      }
      return found;
    });
  }

  async countSoftBounces(input: { accountId: string; address: string; since: number }): Promise<number> {
    const r = this.#get(
      'SELECT COUNT(*) AS n FROM soft_bounces WHERE account_id = ? AND address = ? AND at >= ?',
      input.accountId,
      input.address.toLowerCase(),
      input.since,
    );
    return Number(r?.n ?? 0);
  }

  // Retention will prune old rows (by `at`); nothing here deletes them.
  async recordSoftBounce(input: { accountId: string; address: string; at: number }): Promise<void> {
    await this.#queue.run(() =>
      this.#run(
        'INSERT INTO soft_bounces (account_id, address, at) VALUES (?, ?, ?)',
        input.accountId,
        input.address.toLowerCase(),
        input.at,
      ),
    );
  }

  async purgeSoftBounces({ before, limit }: PurgeBatch): Promise<number> {
    return this.#queue.run(() =>
      this.#run(
        'DELETE FROM soft_bounces WHERE rowid IN (SELECT rowid FROM soft_bounces WHERE at < ? ORDER BY at LIMIT ?)',
        before,
        limit,
      ),
    );
  }

  async claimIdempotencyKey(input: {
    accountId: string;
    key: string;
    requestHash: string;
    now: number;
    staleBefore: number;
    expiredBefore: number;
  }): Promise<IdempotencyRecord | undefined> {
    return this.#queue.run(() => {
      const claimed = this.#run(
        `INSERT INTO idempotency_keys (account_id, key, request_hash, status, response, created_at)
         VALUES (?, ?, ?, 0, '', ?)
         ON CONFLICT (account_id, key) DO UPDATE SET request_hash = excluded.request_hash, status = 0,
           response = '', created_at = excluded.created_at
         WHERE idempotency_keys.created_at < ? OR (idempotency_keys.status = 0 AND idempotency_keys.created_at < ?)`,
        input.accountId,
        input.key,
        input.requestHash,
        input.now,
        input.expiredBefore,
        input.staleBefore,
      );
      if (claimed > 0) return undefined;
      const r = this.#get(
        'SELECT * FROM idempotency_keys WHERE account_id = ? AND key = ?',
        input.accountId,
        input.key,
      );
      if (!r) return undefined;
      return {
        requestHash: String(r.request_hash),
        ...(Number(r.status) === 1 ? { response: String(r.response) } : {}),
        createdAt: Number(r.created_at),
      };
    });
  }

  async completeIdempotencyKey(input: { accountId: string; key: string; response: string }): Promise<void> {
    await this.#queue.run(() =>
      this.#run(
        'UPDATE idempotency_keys SET status = 1, response = ? WHERE account_id = ? AND key = ? AND status = 0',
        input.response,
        input.accountId,
        input.key,
      ),
    );
  }

  async releaseIdempotencyKey(accountId: string, key: string): Promise<void> {
    await this.#queue.run(() =>
      this.#run(
        'DELETE FROM idempotency_keys WHERE account_id = ? AND key = ? AND status = 0',
        accountId,
        key,
      ),
    );
  }

  async purgeIdempotencyKeys({ before, limit }: PurgeBatch): Promise<number> {
    return this.#queue.run(() =>
      this.#run(
        `DELETE FROM idempotency_keys WHERE rowid IN (
           SELECT rowid FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?)`,
        before,
        limit,
      ),
    );
  }

  async heartbeat(node: NodeHeartbeat, now: number): Promise<void> {
    await this.#queue.run(
      () =>
        this.#run(
          `INSERT INTO nodes (id, started_at, heartbeat_at, info) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
           info = excluded.info`,
          node.id,
          node.startedAt,
          now,
          json(node.info),
        ),
      LAZY,
    );
  }

  async forgetNodes(before: number): Promise<number> {
    return this.#queue.run(() => this.#run('DELETE FROM nodes WHERE heartbeat_at < ?', before));
  }

  // reputation guard, audit trail, per-account retention, privacy: guard-store.ts, privacy-store.ts
  async recordAudit(entries: NewAuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.#queue.run(() => guardStore.recordAudit(this.#db, entries));
  }

  async listAudit(filter: AuditFilter): Promise<AuditEntry[]> {
    return guardStore.listAudit(this.#db, filter);
  }

  async guardCounts(input: { since: number; accountId?: string; stream?: string }): Promise<GuardCount[]> {
    return guardStore.guardCounts(this.#db, input);
  }

  async listGuardStates(accountId?: string): Promise<GuardState[]> {
    return guardStore.listGuardStates(this.#db, accountId);
  }

  async saveGuardState(state: GuardState): Promise<void> {
    await this.#queue.run(() => guardStore.saveGuardState(this.#db, state));
  }

  async releaseHeld(input: {
    accountId: string;
    stream?: string;
    reason: HoldReason;
    now: number;
    note: string;
  }): Promise<number> {
    return this.#queue.run(() => guardStore.releaseHeld(this.#db, input));
  }

  async heldSummary(): Promise<{ accountId: string; stream: string; reason: string; count: number }[]> {
    return guardStore.heldSummary(this.#db);
  }

  async setAccountRetention(retention: AccountRetention): Promise<void> {
    await this.#queue.run(() => guardStore.setAccountRetention(this.#db, retention));
  }

  async listAccountRetention(): Promise<AccountRetention[]> {
    return guardStore.listAccountRetention(this.#db);
  }

  async privacySecret(name: string, candidate: string): Promise<string> {
    return this.#queue.run(() => guardStore.privacySecret(this.#db, name, candidate));
  }

  async exportAddress(input: { address: string; accountId?: string; limit: number }): Promise<AddressExport> {
    return privacyStore.exportAddress(this.#db, input);
  }

  async eraseAddress(input: {
    address: string;
    accountId?: string;
    token: string;
    now: number;
  }): Promise<ErasureResult> {
    return this.#queue.run(() => privacyStore.eraseAddress(this.#db, input));
  }

  async clusterStatus(): Promise<NodeStatus[]> {
    const leases = new Map(
      this.#all(
        `SELECT lease_owner, COUNT(*) AS n FROM recipients WHERE state = 'delivering' GROUP BY lease_owner`,
      ).map((r) => [String(r.lease_owner), Number(r.n)]),
    );
    return this.#all('SELECT * FROM nodes ORDER BY id').map((r) => ({
      id: String(r.id),
      startedAt: Number(r.started_at),
      heartbeatAt: Number(r.heartbeat_at),
      info: parse(r.info),
      leases: leases.get(String(r.id)) ?? 0,
    }));
  }

  // Statistics rollups (stats/): the cursor check and the counters in one commit.
  async applyRollup(batch: RollupBatch): Promise<boolean> {
    const increments = mergeIncrements(batch.increments);
    return this.#queue.run(() => {
      const row = this.#get('SELECT last_id FROM stats_cursors WHERE name = ?', batch.cursor);
      if (Number(row?.last_id ?? 0) !== batch.fromId) return false;
      for (const i of increments) {
        this.#run(
          `INSERT INTO stats_rollups (account_id, bucket, stream, tag, domain, provider, counter, n)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (account_id, bucket, stream, tag, domain, provider, counter)
           DO UPDATE SET n = stats_rollups.n + excluded.n`,
          i.accountId,
          i.bucket,
          i.stream,
          i.tag,
          i.domain,
          i.provider,
          i.counter,
          i.n,
        );
      }
      this.#run(
        `INSERT INTO stats_cursors (name, last_id, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET last_id = excluded.last_id, updated_at = excluded.updated_at`,
        batch.cursor,
        batch.toId,
        batch.at,
      );
      return true;
    });
  }

  async rollupCursor(name: string): Promise<number> {
    return Number(this.#get('SELECT last_id FROM stats_cursors WHERE name = ?', name)?.last_id ?? 0);
  }

  async queryStats(query: StatsQuery): Promise<StatsRow[]> {
    const { text, values } = statsQuerySql(query, () => '?');
    return this.#all(text, ...values).map((r) => ({
      bucket: Number(r.b),
      stream: String(r.stream),
      tag: String(r.tag),
      domain: String(r.domain),
      provider: String(r.provider),
      counter: String(r.counter),
      n: Number(r.n),
    }));
  }

  async statsLookup(input: { messageIds: string[]; recipientIds: number[] }): Promise<StatsLookup> {
    const out: StatsLookup = { messages: [], recipients: [] };
    const chunks = <T>(list: T[]): T[][] =>
      Array.from({ length: Math.ceil(list.length / 500) }, (_, i) => list.slice(i * 500, i * 500 + 500));
    for (const ids of chunks([...new Set(input.messageIds)])) {
      const rows = this.#db
        .prepare(
          `SELECT id, mail_from, envelope_from FROM messages WHERE id IN (${ids.map(() => '?').join(', ')})`,
        )
        .all(...ids) as Row[];
      for (const r of rows) {
        out.messages.push({
          id: String(r.id),
          mailFrom: String(r.mail_from),
          envelopeFrom: String(r.envelope_from),
        });
      }
    }
    for (const ids of chunks([...new Set(input.recipientIds)])) {
      const rows = this.#db
        .prepare(
          `SELECT id, last_site, domain FROM recipients WHERE id IN (${ids.map(() => '?').join(', ')})`,
        )
        .all(...ids) as Row[];
      for (const r of rows) {
        out.recipients.push({ id: Number(r.id), lastSite: String(r.last_site), domain: String(r.domain) });
      }
    }
    return out;
  }

  async queueDepth(): Promise<QueueDepth[]> {
    return this.#all(
      `SELECT state, kind, COUNT(*) AS n FROM recipients
       WHERE state IN ('queued', 'deferred', 'delivering', 'held') GROUP BY state, kind ORDER BY state, kind`,
    ).map((r) => ({
      state: String(r.state) as RecipientState,
      kind: String(r.kind) as StreamKind,
      count: Number(r.n),
    }));
  }

  // ---- the event log and its feed (events/), webhooks (webhooks/) ----

  async appendEvents(events: NewEvent[]): Promise<number[]> {
    if (events.length === 0) return [];
    return this.#queue.run(() =>
      events.map((e) => {
        this.#insertEvent(
          e.at,
          e.type,
          e.messageId ?? '',
          e.recipientId ?? null,
          e.accountId,
          e.recipient ?? null,
          e.data,
        );
        return Number((this.#get('SELECT last_insert_rowid() AS id') as Row).id);
      }),
    );
  }

  /** The id range `from`/`to` (times) can be in: events are written within EVENT_WRITE_SLACK_MS of their time. */
  #eventIdBounds(filter: EventFilter): { above?: number; below?: number } {
    const bounds: { above?: number; below?: number } = {};
    if (filter.from !== undefined) {
      const boundary = this.#eventIdAtTime(filter.from - EVENT_WRITE_SLACK_MS);
      if (boundary !== undefined) bounds.above = boundary - 1;
    }
    if (filter.to !== undefined) {
      const boundary = this.#eventIdAtTime(filter.to + EVENT_WRITE_SLACK_MS);
      if (boundary !== undefined) bounds.below = boundary;
    }
    return bounds;
  }

  /**
   * An id `b` such that the first event at or after `b - 1` is older than `t` and the first at or
   * after `b` is not (or there is none): a binary search over ids, one primary-key lookup a step.
   * Times do not grow strictly with ids, but an event written after another is at most
   * EVENT_WRITE_SLACK_MS older (ids grow with write time), so with `t = from - slack` every event
   * at or after `from` has an id >= b, and with `t = to + slack` every event before `to` has an id
   * < b. Undefined when there are no events.
   */
  #eventIdAtTime(t: number): number | undefined {
    const range = this.#get('SELECT MIN(id) AS lo, MAX(id) AS hi FROM events');
    if (range?.lo === null || range?.lo === undefined) return undefined;
    const atOrAfter = (id: number): number | undefined => {
      const r = this.#get('SELECT at FROM events WHERE id >= ? ORDER BY id LIMIT 1', id);
      return r === undefined ? undefined : Number(r.at);
    };
    let lo = Number(range.lo);
    if ((atOrAfter(lo) ?? t) >= t) return lo;
    let hi = Number(range.hi) + 1;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if ((atOrAfter(mid) ?? t) >= t) hi = mid;
      else lo = mid;
    }
    return hi;
  }

  async listEvents(filter: EventFilter): Promise<EnrichedEventRow[]> {
    const where: string[] = ['e.account_id = ?'];
    const params: SQLInputValue[] = [filter.accountId];
    let from = 'events e';
    if (filter.tag !== undefined) {
      // The tag's index range drives the scan; each row found probes events by id.
      from = 'event_tags t JOIN events e ON e.id = t.event_id';
      where.unshift('t.account_id = ? AND t.tag = ?');
      params.unshift(filter.accountId, filter.tag);
    }
    const idCol = filter.tag !== undefined ? 't.event_id' : 'e.id';
    const bounds = this.#eventIdBounds(filter);
    const above = Math.max(filter.afterId ?? 0, bounds.above ?? 0);
    if (above > 0) {
      where.push(`${idCol} > ?`);
      params.push(above);
    }
    const below = Math.min(
      filter.beforeId ?? Number.MAX_SAFE_INTEGER,
      bounds.below ?? Number.MAX_SAFE_INTEGER,
    );
    if (below < Number.MAX_SAFE_INTEGER) {
      where.push(`${idCol} < ?`);
      params.push(below);
    }
    if (filter.types !== undefined && filter.types.length > 0) {
      where.push(`e.type IN (${filter.types.map(() => '?').join(', ')})`);
      params.push(...filter.types);
    }
    if (filter.recipient !== undefined) {
      // Through the address's recipient rows to their events (events_recipient); the few events
      // that name an address without a recipient row have a partial index of their own. As an id
      // list, the plan probes events by id in order (an OR of the two made SQLite walk the
      // account's whole events_account range instead).
      where.push(
        `e.id IN (
           SELECT x.id FROM events x WHERE x.recipient_id IN (
             SELECT r.id FROM recipients r WHERE r.address = ? AND r.account_id = ?)
           UNION ALL
           SELECT x.id FROM events x WHERE x.recipient_id IS NULL AND x.account_id = ? AND x.recipient = ?)`,
      );
      params.push(filter.recipient, filter.accountId, filter.accountId, filter.recipient);
    }
    for (const [column, value] of [
      ['e.message_id', filter.messageId],
      ['e.stream', filter.stream],
    ] as const) {
      if (value === undefined) continue;
      where.push(`${column} = ?`);
      params.push(value);
    }
    if (filter.from !== undefined) {
      where.push('e.at >= ?');
      params.push(filter.from);
    }
    if (filter.to !== undefined) {
      where.push('e.at < ?');
      params.push(filter.to);
    }
    params.push(Math.min(Math.max(filter.limit ?? 100, 1), 1000));
    const direction = filter.ascending ? 'ASC' : 'DESC';
    return this.#all(
      enrichedEventsSql(
        `SELECT ${EVENT_WITH_LABELS}
         FROM ${from} LEFT JOIN messages m ON m.id = e.message_id
         WHERE ${where.join(' AND ')} ORDER BY ${idCol} ${direction} LIMIT ?`,
        direction,
      ),
      ...params,
    ).map(toEnrichedEvent);
  }

  async eventsAfter(afterId: number, limit: number): Promise<EnrichedEventRow[]> {
    return this.#all(
      enrichedEventsSql(
        `SELECT ${EVENT_WITH_LABELS} FROM events e LEFT JOIN messages m ON m.id = e.message_id
         WHERE e.id > ? ORDER BY e.id LIMIT ?`,
        'ASC',
      ),
      afterId,
      Math.min(Math.max(limit, 1), 10_000),
    ).map(toEnrichedEvent);
  }

  async lastEventId(): Promise<number> {
    return Number(this.#get('SELECT COALESCE(MAX(id), 0) AS id FROM events')?.id ?? 0);
  }

  async getEventCursor(name: string): Promise<number | undefined> {
    const r = this.#get('SELECT position FROM event_cursors WHERE name = ?', name);
    return r ? Number(r.position) : undefined;
  }

  #setEventCursor(name: string, position: number, now: number): void {
    this.#run(
      `INSERT INTO event_cursors (name, position, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
      name,
      position,
      now,
    );
  }

  async setEventCursor(name: string, position: number, now: number): Promise<void> {
    await this.#queue.run(() => this.#setEventCursor(name, position, now));
  }

  async createWebhook(w: WebhookEndpoint): Promise<void> {
    await this.#queue.run(() =>
      this.#run(
        `INSERT INTO webhooks (id, account_id, url, secret, event_types, enabled, disabled_reason, disabled_at,
           failing_since, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        w.id,
        w.accountId,
        w.url,
        w.secret,
        JSON.stringify(w.eventTypes),
        w.enabled ? 1 : 0,
        w.disabledReason,
        w.disabledAt,
        w.failingSince,
        w.createdAt,
      ),
    );
  }

  async getWebhook(id: string): Promise<WebhookEndpoint | undefined> {
    const r = this.#get('SELECT * FROM webhooks WHERE id = ? AND deleted_at IS NULL', id);
    return r && toWebhook(r);
  }

  async listWebhooks(accountId?: string): Promise<WebhookEndpoint[]> {
    return (
      accountId === undefined
        ? this.#all('SELECT * FROM webhooks WHERE deleted_at IS NULL ORDER BY id')
        : this.#all(
            'SELECT * FROM webhooks WHERE account_id = ? AND deleted_at IS NULL ORDER BY id',
            accountId,
          )
    ).map(toWebhook);
  }

  async deleteWebhook(accountId: string, id: string, now: number): Promise<boolean> {
    return this.#queue.run(() => {
      const n = this.#run(
        'UPDATE webhooks SET deleted_at = ?, enabled = 0 WHERE id = ? AND account_id = ? AND deleted_at IS NULL',
        now,
        id,
        accountId,
      );
      if (n > 0) this.#failWebhookBatches(id, 'webhook deleted', now);
      return n > 0;
    });
  }

  async updateWebhook(
    id: string,
    change: Partial<Pick<WebhookEndpoint, 'enabled' | 'disabledReason' | 'disabledAt' | 'failingSince'>>,
  ): Promise<void> {
    const sets: string[] = [];
    const params: SQLInputValue[] = [];
    const set = (column: string, value: SQLInputValue | undefined): void => {
      if (value === undefined) return;
      sets.push(`${column} = ?`);
      params.push(value);
    };
    set('enabled', change.enabled === undefined ? undefined : change.enabled ? 1 : 0);
    set('disabled_reason', change.disabledReason);
    set('disabled_at', change.disabledAt);
    set('failing_since', change.failingSince);
    if (sets.length === 0) return;
    await this.#queue.run(() =>
      this.#run(`UPDATE webhooks SET ${sets.join(', ')} WHERE id = ?`, ...params, id),
    );
  }

  async enqueueWebhookBatches(
    batches: WebhookBatch[],
    cursor?: { name: string; position: number; now: number },
  ): Promise<void> {
    await this.#queue.run(() => {
      for (const b of batches) {
        this.#run(
          `INSERT OR IGNORE INTO webhook_batches (id, webhook_id, account_id, kind, first_event_id, last_event_id, count,
             body, state, attempts, next_attempt_at, created_at, updated_at, last_error)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          b.id,
          b.webhookId,
          b.accountId,
          b.kind,
          b.firstEventId,
          b.lastEventId,
          b.count,
          b.body,
          b.state,
          b.attempts,
          b.nextAttemptAt,
          b.createdAt,
          b.updatedAt,
          b.lastError,
        );
      }
      if (cursor) this.#setEventCursor(cursor.name, cursor.position, cursor.now);
    });
  }

  async dueWebhookBatches(now: number, limit: number): Promise<WebhookBatch[]> {
    return this.#all(
      `SELECT b.* FROM webhook_batches b JOIN webhooks w ON w.id = b.webhook_id
       WHERE b.state = 'pending' AND b.next_attempt_at <= ? AND w.enabled = 1 AND w.deleted_at IS NULL
       ORDER BY b.next_attempt_at LIMIT ?`,
      now,
      limit,
    ).map(toWebhookBatch);
  }

  async webhookBacklog(): Promise<{ batches: number; events: number }> {
    const r = this.#get(
      `SELECT COUNT(*) AS batches, COALESCE(SUM(count), 0) AS events FROM webhook_batches WHERE state = 'pending'`,
    );
    return { batches: Number(r?.batches ?? 0), events: Number(r?.events ?? 0) };
  }

  async recordWebhookAttempt(
    attempt: Omit<WebhookAttempt, 'id'>,
    batch: Pick<WebhookBatch, 'state' | 'attempts' | 'nextAttemptAt' | 'lastError'>,
  ): Promise<void> {
    await this.#queue.run(() => {
      this.#run(
        `INSERT INTO webhook_attempts (batch_id, webhook_id, at, status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)`,
        attempt.batchId,
        attempt.webhookId,
        attempt.at,
        attempt.status,
        attempt.error,
        attempt.durationMs,
      );
      this.#run(
        `UPDATE webhook_batches SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ?, updated_at = ?
         WHERE id = ?`,
        batch.state,
        batch.attempts,
        batch.nextAttemptAt,
        batch.lastError,
        attempt.at,
        attempt.batchId,
      );
    });
  }

  #failWebhookBatches(webhookId: string, reason: string, now: number): number {
    return this.#run(
      `UPDATE webhook_batches SET state = 'failed', last_error = ?, updated_at = ? WHERE webhook_id = ? AND state = 'pending'`,
      reason,
      now,
      webhookId,
    );
  }

  async failWebhookBatches(webhookId: string, reason: string, now: number): Promise<number> {
    return this.#queue.run(() => this.#failWebhookBatches(webhookId, reason, now));
  }

  async listWebhookAttempts(webhookId: string, limit: number): Promise<WebhookAttempt[]> {
    return this.#all(
      'SELECT * FROM webhook_attempts WHERE webhook_id = ? ORDER BY id DESC LIMIT ?',
      webhookId,
      Math.min(Math.max(limit, 1), 1000),
    ).map((r) => ({
      id: Number(r.id),
      batchId: String(r.batch_id),
      webhookId: String(r.webhook_id),
      at: Number(r.at),
      status: Number(r.status),
      error: String(r.error),
      durationMs: Number(r.duration_ms),
    }));
  }

  async listWebhookBatches(webhookId: string, limit: number): Promise<WebhookBatch[]> {
    return this.#all(
      'SELECT * FROM webhook_batches WHERE webhook_id = ? ORDER BY created_at DESC, id DESC LIMIT ?',
      webhookId,
      Math.min(Math.max(limit, 1), 1000),
    ).map(toWebhookBatch);
  }

  // dashboard users and sessions: dashboard-store.ts
  async createDashboardUser(user: DashboardUser): Promise<DashboardUser> {
    return this.#queue.run(() => dashboardStore.createUser(this.#db, user));
  }

  async getDashboardUser(id: string): Promise<DashboardUser | undefined> {
    return dashboardStore.getUser(this.#db, id);
  }

  async findDashboardUser(email: string): Promise<DashboardUser | undefined> {
    return dashboardStore.findUser(this.#db, email);
  }

  async listDashboardUsers(accountId?: string): Promise<DashboardUser[]> {
    return dashboardStore.listUsers(this.#db, accountId);
  }

  async deleteDashboardUser(id: string): Promise<boolean> {
    return this.#queue.run(() => dashboardStore.deleteUser(this.#db, id));
  }

  async setDashboardPassword(id: string, passwordHash: string, at: number): Promise<boolean> {
    return this.#queue.run(() => dashboardStore.setPassword(this.#db, id, passwordHash, at));
  }

  async createDashboardSession(session: DashboardSession): Promise<void> {
    await this.#queue.run(() => dashboardStore.createSession(this.#db, session));
  }

  async getDashboardSession(id: string): Promise<DashboardSession | undefined> {
    return dashboardStore.getSession(this.#db, id);
  }

  async touchDashboardSession(id: string, at: number): Promise<void> {
    await this.#queue.run(() => dashboardStore.touchSession(this.#db, id, at));
  }

  async deleteDashboardSession(id: string): Promise<void> {
    await this.#queue.run(() => dashboardStore.deleteSession(this.#db, id));
  }

  async purgeDashboardSessions(idleBefore: number, createdBefore: number): Promise<number> {
    return this.#queue.run(() => dashboardStore.purgeSessions(this.#db, idleBefore, createdBefore));
  }
}
