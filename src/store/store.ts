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
} from './types.ts';

export interface LeaderLock {
  /** This node holds the lock now (as far as it knows). */
  isLeader(): boolean;
  stop(): Promise<void>;
}

/**
 * The store port: everything Postbote persists goes through this async interface. Adapters
 * (sqlite now, postgres later) pass the same contract tests in test/store/. No business rules
 * here: callers decide states, the store makes them durable and answers queries.
 */
export interface Store {
  /** Creates or upgrades the schema. Refuses a schema newer than this code. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  // accounts and credentials (auth/)
  createAccount(input: { id: string; name: string; createdAt: number }): Promise<Account>;
  getAccount(id: string): Promise<Account | undefined>;
  getAccountByName(name: string): Promise<Account | undefined>;
  listAccounts(): Promise<Account[]>;
  /** Sets the account's share within each lane (Account.weight); false when there is no such account. */
  setAccountWeight(id: string, weight: number): Promise<boolean>;
  /** Sets the account's sender policy (Account.senderPolicy); false when there is no such account. */
  setAccountSenderPolicy(id: string, policy: SenderPolicy): Promise<boolean>;
  createCredential(input: Credential): Promise<Credential>;
  getCredential(id: string): Promise<Credential | undefined>;
  /** Active (not revoked) credential of a kind by name (SMTP username or API key prefix). */
  findCredential(kind: CredentialKind, name: string): Promise<Credential | undefined>;
  listCredentials(filter?: {
    accountId?: string;
    kind?: CredentialKind;
    includeRevoked?: boolean;
  }): Promise<Credential[]>;
  revokeCredential(id: string, at: number): Promise<boolean>;

  // streams (auth/streams.ts). The default streams (DEFAULT_STREAMS) have no rows: these two
  // methods add them to every existing account, so callers never see an account without them.
  /** Stores a stream; refuses a name the account already has a row for. */
  createStream(input: Omit<Stream, 'isDefault'>): Promise<Stream>;
  /** The account's streams by name, the defaults included; [] for an unknown account. */
  listStreams(accountId: string): Promise<Stream[]>;
  /** One stream of the account (a default one too); undefined for an unknown account or name. */
  getStream(accountId: string, name: string): Promise<Stream | undefined>;
  /**
   * Replaces a stream's settings (Stream.settings). A default stream without a row gets one
   * (of `kind`, default pool, created `createdAt`); for a stream with a row, `kind` and
   * `createdAt` are ignored.
   */
  setStreamSettings(input: {
    accountId: string;
    name: string;
    kind: StreamKind;
    createdAt: number;
    settings: StreamSettings;
  }): Promise<void>;

  // intake
  /**
   * Stores messages with their recipients and `accepted` events (`suppressed` or `held` for
   * such recipients; a message's `suppressionCheck` is made here, in the same transaction).
   * Resolves only after the data is durable (fsync); concurrent calls share one commit (group
   * commit). What `options` names is written in the same transaction. Returns the recipients
   * leased by `options.lease` (none without it; never a suppressed one), in input order.
   */
  insertMessages(messages: NewMessage[], options?: InsertOptions): Promise<LeasedRecipient[]>;

  // delivery
  /**
   * Leases up to `limit` due recipients (queued/deferred with nextAttemptAt <= now, or
   * delivering with an expired lease) to `owner` until `leaseUntil`, committed before return.
   * Order (store/lease-plan.ts): expired leases first, then transactional recipients, then
   * broadcast ones, each lane within its `lanes` limit; within a lane the accounts with due work
   * share the batch in proportion to their weights, oldest due first within an account.
   */
  leaseDue(input: LeaseRequest): Promise<LeasedRecipient[]>;
  renewLeases(input: { owner: string; ids: number[]; leaseUntil: number }): Promise<void>;
  /**
   * Returns leased-but-unfinished recipients of `owner` to the queue (shutdown); `null` releases
   * every lease (start-up of the single embedded node, after a crash).
   */
  releaseLeases(owner: string | null, now: number): Promise<number>;
  /** Earliest nextAttemptAt among queued/deferred recipients, or null when nothing waits. */
  nextDueAt(): Promise<number | null>;
  /** The message's body (variant 0) or a recipient's personalised copy (LeasedRecipient.variant). */
  getBody(messageId: string, variant?: number): Promise<Buffer | undefined>;
  /**
   * Applies outcomes (recipient state + event) atomically and durably; batched by the adapter.
   * Only recipients still leased by `owner` change, so an outcome cannot undo an operator's
   * cancel or a lease released meanwhile, except `delivered`, which is always recorded: the
   * remote side has the message. Returns the recipient ids whose outcome was applied.
   */
  recordOutcomes(owner: string, outcomes: Outcome[]): Promise<number[]>;

  // visibility
  getMessage(id: string): Promise<MessageRow | undefined>;
  listMessages(filter: MessageFilter): Promise<MessageSummary[]>;
  getRecipients(messageId: string): Promise<RecipientRow[]>;
  getEvents(messageId: string): Promise<EventRow[]>;
  /** Waiting and delivering recipients by domain; `accountId`: that account's only (the API). */
  queueSummary(now: number, accountId?: string): Promise<QueueDomainSummary[]>;
  /**
   * Waiting and delivering recipients by the site of their last attempt (Outcome.site), most
   * recipients first; ready = due at `now`, scheduled = due later. `accountId`: that account's only.
   */
  queueSiteSummary(now: number, accountId?: string): Promise<QueueSiteSummary[]>;
  /** Makes matching queued/deferred recipients due now, and releases held ones; returns how many. */
  retryNow(selector: QueueSelector, now: number): Promise<number>;
  /**
   * Holds matching queued/deferred recipients (state held, hold reason `operator`, a `held` event
   * with `reason` as its details) until retryNow releases them; in-flight ones are not touched.
   * Returns how many.
   */
  hold(selector: QueueSelector, now: number, reason?: string): Promise<number>;
  /** Cancels matching recipients that are not final; returns how many. `reason` goes on their events. */
  cancel(selector: QueueSelector, now: number, reason?: string): Promise<number>;
  /** Counts by recipient state (health, metrics, tests). */
  countByState(): Promise<Record<string, number>>;

  // traffic shaping state of the nodes' delivery engines (delivery/shaping-events.ts)
  /** Appends shaping events (one short write for the batch). */
  recordShapingEvents(events: NewShapingEvent[]): Promise<void>;
  /**
   * What is in force at `now`: for each (node, rule, scope) the latest event, when it is not an
   * ending one (SHAPING_END_TYPES) and its `until` is later than `now`. Soonest to end first.
   * Whether its node is still alive (and has not restarted since) is the caller's question.
   */
  activeShaping(now: number): Promise<ShapingEventRow[]>;

  // retention (maintenance/retention.ts)
  // A message is finished when every recipient is in a final state (FINAL_STATES); a message with
  // any recipient queued, delivering, deferred or held is never touched. Each call is one short
  // transaction over at most `limit` messages, oldest first; callers loop until a call returns
  // fewer than `limit`, so a large purge never holds a long lock.
  /**
   * Deletes the bodies of finished messages received before `before`; their metadata,
   * recipients and events stay (`MessageRow.bodyPurged`). Returns how many bodies it deleted.
   */
  purgeBodies(batch: PurgeBatch): Promise<number>;
  /**
   * Deletes finished messages received before `before` entirely, with their recipients and
   * events. Returns how many messages it deleted.
   */
  purgeMessages(batch: PurgeBatch): Promise<number>;
  /**
   * Deletes shaping events that happened before `before` and ended before it too (`until`), so
   * nothing still in force loses its event. Returns how many it deleted.
   */
  purgeShapingEvents(batch: PurgeBatch): Promise<number>;
  /**
   * Deletes up to `limit` of each, older than `before`: webhook delivery attempts, finished
   * webhook batches (their bodies hold events) and events about no message (domain status,
   * guard, webhooks), the last two within the batch's account scope. Returns how many in all.
   */
  purgeEventLog(batch: PurgeBatch): Promise<number>;

  // templates (templates/templates.ts). Versions are never changed: an update adds one.
  /** Stores a template with its version 1; undefined when the account has a live template with that alias. */
  createTemplate(
    input: Omit<Template, 'latestVersion'> & { content: TemplateContent },
  ): Promise<Template | undefined>;
  /**
   * Adds the next version of a live template of the account (and sets its name and alias);
   * undefined when there is no such template, or the alias belongs to another live template.
   */
  addTemplateVersion(input: {
    accountId: string;
    id: string;
    name: string;
    alias: string;
    content: TemplateContent;
    now: number;
  }): Promise<Template | undefined>;
  /** A live template of the account by id, else by alias. */
  getTemplate(accountId: string, idOrAlias: string): Promise<Template | undefined>;
  /** One version of a template (latest when `version` is absent). */
  getTemplateVersion(templateId: string, version?: number): Promise<TemplateVersion | undefined>;
  /** The account's live templates, by id. */
  listTemplates(accountId: string): Promise<Template[]>;
  /** Deletes a live template (its versions stay for the messages rendered from them); false when none. */
  deleteTemplate(accountId: string, id: string, now: number): Promise<boolean>;

  // sending domains (domains/)
  /** Stores a domain with its first DKIM keys; undefined when any account has that domain already. */
  createDomain(input: SendingDomain & { keys: DkimKey[] }): Promise<SendingDomain | undefined>;
  /** A domain by name (lower-case ASCII), whatever its account. */
  getDomain(domain: string): Promise<SendingDomain | undefined>;
  /** Every domain, or one account's, by name. */
  listDomains(accountId?: string): Promise<SendingDomain[]>;
  /** Marks a domain verified (`at`, `by`) or not (`at` null); false when there is no such domain. */
  setDomainVerified(id: string, at: number | null, by: 'dns' | 'admin' | null): Promise<boolean>;
  /** Stores the result of a DNS check. */
  recordDomainCheck(id: string, input: { checkedAt: number; result: unknown }): Promise<void>;
  /** Deletes a domain and its keys; false when there is none. */
  deleteDomain(id: string): Promise<boolean>;
  /** The domain's keys (retired ones too), oldest first. */
  listDkimKeys(domainId: string): Promise<DkimKey[]>;
  addDkimKey(key: DkimKey): Promise<void>;
  /** Changes a key's state; false when the domain has no such selector. */
  setDkimKeyState(domainId: string, selector: string, state: DkimKeyState, at: number): Promise<boolean>;
  /**
   * Replaces a key's stored private key (`postbote domains encrypt-keys`) if it still is
   * `expected`; false when the key is gone or changed meanwhile.
   */
  setDkimPrivateKey(
    domainId: string,
    selector: string,
    expected: string,
    privateKey: string,
  ): Promise<boolean>;
  /**
   * Every domain with its active and pending keys, for intake's signing and sender checks
   * (a small table, read whole and cached).
   */
  signingDomains(): Promise<(SendingDomain & { keys: DkimKey[] })[]>;

  // suppressions and bounces (bounces/)
  /** Adds or replaces entries (key: account, address, scope). */
  upsertSuppressions(entries: Suppression[]): Promise<void>;
  /** Removes one entry; false when there was none. */
  removeSuppression(accountId: string, address: string, scope: string): Promise<boolean>;
  /** Entries by (address, scope), `limit` at most (default 100, max 1000). */
  listSuppressions(filter: SuppressionFilter): Promise<Suppression[]>;
  /**
   * The entries that apply to mail of `stream` to each of `addresses` (lower-cased): scope '' or
   * `stream` (every scope when `stream` is null), not expired at `now`. Several may apply to one
   * address.
   */
  findSuppressions(input: {
    accountId: string;
    stream: string | null;
    addresses: string[];
    now: number;
  }): Promise<Suppression[]>;
  /** Deletes entries that expired before `before`; returns how many (retention). */
  purgeExpiredSuppressions(batch: PurgeBatch): Promise<number>;
  /** Messages whose Message-ID header is `messageIdHeader` (with angle brackets), newest first, at most 10. */
  findMessagesByHeader(messageIdHeader: string): Promise<MessageRow[]>;
  /** One recipient by its id (the inbound MX maps a VERP token to it). */
  getRecipient(id: number): Promise<RecipientRow | undefined>;

  // engagement (tracking/)
  /**
   * The message's `index`-th recipient (0-based, in the order they were given: the API's
   * `<message id>-<index>`), or undefined.
   */
  getRecipientAt(messageId: string, index: number): Promise<RecipientRow | undefined>;
  /**
   * Appends an open, click or unsubscribe event of a recipient, with `first` in its data: no
   * earlier event of that type for that recipient. Undefined when there is no such recipient.
   */
  recordEngagement(event: NewEngagement): Promise<{ first: boolean } | undefined>;
  /**
   * Records bounces and complaints that came back after delivery: the event for each, and for
   * a `bounced` one the recipient's state becomes `bounced` (from any state: a delivered message
   * can bounce later). Returns the ids of the recipients found.
   */
  recordAsyncReports(reports: AsyncReport[]): Promise<number[]>;
  /** Counts soft bounces of an address in the account since `since` (suppression after N in M days). */
  countSoftBounces(input: { accountId: string; address: string; since: number }): Promise<number>;
  /** Remembers a soft bounce (an address, a time) for countSoftBounces. */
  recordSoftBounce(input: { accountId: string; address: string; at: number }): Promise<void>;
  /** Forgets soft bounces older than `before` (outside every counting window); returns how many. */
  purgeSoftBounces(batch: PurgeBatch): Promise<number>;

  // idempotency keys of API requests (api/idempotency.ts)
  /**
   * Claims `key` for a request: returns undefined when it is now this request's (new, or the
   * earlier claim is older than `expiredBefore`, or still unanswered and older than
   * `staleBefore`: its request died before its work was committed); otherwise the existing record.
   */
  claimIdempotencyKey(input: {
    accountId: string;
    key: string;
    requestHash: string;
    now: number;
    staleBefore: number;
    expiredBefore: number;
  }): Promise<IdempotencyRecord | undefined>;
  /** Stores the answer of a claimed key (when insertMessages did not already). */
  completeIdempotencyKey(input: { accountId: string; key: string; response: string }): Promise<void>;
  /** Forgets an unanswered claim (the request failed: nothing was done, a retry may run). */
  releaseIdempotencyKey(accountId: string, key: string): Promise<void>;
  /** Deletes keys created before `before`; returns how many. */
  purgeIdempotencyKeys(batch: PurgeBatch): Promise<number>;

  // statistics rollups (stats/): counters by account, hour, stream, tag, sending domain, provider
  /**
   * Adds the increments to the rollup rows and moves the cursor `cursor` from `fromId` to `toId`,
   * in one transaction. Applies nothing and returns false when the cursor is not at `fromId`
   * (the batch, or part of it, was applied already: a re-delivered batch or a second leader).
   */
  applyRollup(batch: RollupBatch): Promise<boolean>;
  /** Where a rollup cursor stands (the last event id applied); 0 before the first batch. */
  rollupCursor(name: string): Promise<number>;
  /** Summed counters per interval bucket and grouped dimensions, bucket order. */
  queryStats(query: StatsQuery): Promise<StatsRow[]>;
  /** Envelope senders of messages and last sites of recipients (the rollup's dimensions); unknown ids are left out. */
  statsLookup(input: { messageIds: string[]; recipientIds: number[] }): Promise<StatsLookup>;
  /** Recipients that are not final, by state and lane (metrics). */
  queueDepth(): Promise<QueueDepth[]>;

  // cluster
  /** Records that a node is alive (insert or update). */
  heartbeat(node: NodeHeartbeat, now: number): Promise<void>;
  /** Every node that ever reported, with the leases it holds now (`postbote cluster status`). */
  clusterStatus(): Promise<NodeStatus[]>;
  /** Removes nodes whose last heartbeat is older than `before`; returns how many. */
  forgetNodes(before: number): Promise<number>;

  // reputation guard, audit trail, per-account retention, privacy (guard/, audit/, privacy/)
  /** Appends audit trail entries (audit/audit.ts). */
  recordAudit(entries: NewAuditEntry[]): Promise<void>;
  /** Audit entries, newest first (`limit` default 100, max 1000). */
  listAudit(filter: AuditFilter): Promise<AuditEntry[]>;
  /** Sends, bounces and complaints per account and stream since `since` (the guard's window). */
  guardCounts(input: { since: number; accountId?: string; stream?: string }): Promise<GuardCount[]>;
  /** Every guard state (or one account's): pauses, warnings, resumes. */
  listGuardStates(accountId?: string): Promise<GuardState[]>;
  /** Stores a guard state; an account-wide one (stream '') also sets Account.paused. */
  saveGuardState(state: GuardState): Promise<void>;
  /**
   * Releases the account's recipients held for `reason` (one stream, or all): due now, with a
   * `retried` event noting `note`. Returns how many.
   */
  releaseHeld(input: {
    accountId: string;
    stream?: string;
    reason: HoldReason;
    now: number;
    note: string;
  }): Promise<number>;
  /** Held recipients by account, stream and hold reason ('' = held by a route). */
  heldSummary(): Promise<{ accountId: string; stream: string; reason: string; count: number }[]>;
  /** Sets an account's own retention (both null: the defaults again). */
  setAccountRetention(retention: AccountRetention): Promise<void>;
  listAccountRetention(): Promise<AccountRetention[]>;
  /** The stored secret `name` (the same on every node), storing `candidate` when there is none yet. */
  privacySecret(name: string, candidate: string): Promise<string>;
  /**
   * Everything stored about one address (lower-cased), in one account or all: the messages
   * that name it (as recipient, sender, in a header or body) with its own recipient rows and
   * events, its suppressions, and rows of other tables that mention it. At most `limit` messages.
   */
  exportAddress(input: { address: string; accountId?: string; limit: number }): Promise<AddressExport>;
  /**
   * Erases an address (lower-cased) in one account or all, in one transaction: deletes every
   * message naming it (with its rows in every table that has a message_id), every row of a
   * non-configuration table that mentions it, and replaces its suppressions with entries for
   * `token` (its salted hash: privacy/privacy.ts) so it stays suppressed.
   */
  eraseAddress(input: {
    address: string;
    accountId?: string;
    token: string;
    now: number;
  }): Promise<ErasureResult>;

  // the event log and its feed (events/)
  /** Appends events that no delivery state change writes (domain status, account paused, …); returns their ids. */
  appendEvents(events: NewEvent[]): Promise<number[]>;
  /**
   * One account's events matching every given filter, newest first (or oldest first with
   * `ascending`), with their message's stream, tags and metadata; each filter is one index range.
   */
  listEvents(filter: EventFilter): Promise<EnrichedEventRow[]>;
  /** Events with an id above `afterId`, in id order, at most `limit` (the feed: events/feed.ts). */
  eventsAfter(afterId: number, limit: number): Promise<EnrichedEventRow[]>;
  /** The highest event id now (0 when there is none). */
  lastEventId(): Promise<number>;
  /** A feed consumer's persisted position; undefined when it never acknowledged anything. */
  getEventCursor(name: string): Promise<number | undefined>;
  setEventCursor(name: string, position: number, now: number): Promise<void>;

  // webhooks (webhooks/)
  createWebhook(endpoint: WebhookEndpoint): Promise<void>;
  /** A webhook that is not deleted. */
  getWebhook(id: string): Promise<WebhookEndpoint | undefined>;
  /** Webhooks not deleted: one account's, or every account's (the dispatcher), by id. */
  listWebhooks(accountId?: string): Promise<WebhookEndpoint[]>;
  /** Deletes the account's webhook and fails its pending batches; false when there is none. */
  deleteWebhook(accountId: string, id: string, now: number): Promise<boolean>;
  /** Sets a webhook's health: enabled, why not, since when it fails. */
  updateWebhook(
    id: string,
    change: Partial<Pick<WebhookEndpoint, 'enabled' | 'disabledReason' | 'disabledAt' | 'failingSince'>>,
  ): Promise<void>;
  /**
   * Stores batches as pending, and in the same transaction the feed position `cursor` when
   * given: a batch is durable before the events it carries are acknowledged.
   */
  enqueueWebhookBatches(
    batches: WebhookBatch[],
    cursor?: { name: string; position: number; now: number },
  ): Promise<void>;
  /** Pending batches due at `now` of enabled webhooks, oldest due first, at most `limit`. */
  dueWebhookBatches(now: number, limit: number): Promise<WebhookBatch[]>;
  /** Records one attempt and the batch's new state (delivered, failed, or pending until `nextAttemptAt`). */
  recordWebhookAttempt(
    attempt: Omit<WebhookAttempt, 'id'>,
    batch: Pick<WebhookBatch, 'state' | 'attempts' | 'nextAttemptAt' | 'lastError'>,
  ): Promise<void>;
  /** Marks a webhook's pending batches failed (it was disabled); returns how many. */
  failWebhookBatches(webhookId: string, reason: string, now: number): Promise<number>;
  /** What the dispatcher still has to deliver: pending batches and the events they carry (metrics). */
  webhookBacklog(): Promise<{ batches: number; events: number }>;
  /** A webhook's latest attempts, newest first. */
  listWebhookAttempts(webhookId: string, limit: number): Promise<WebhookAttempt[]>;
  /** A webhook's latest batches (without their bodies' content when `withBody` is false), newest first. */
  listWebhookBatches(webhookId: string, limit: number): Promise<WebhookBatch[]>;

  // dashboard users and sessions (dashboard/)
  /** Stores a new user; rejects (unique violation) when the e-mail is taken. */
  createDashboardUser(user: DashboardUser): Promise<DashboardUser>;
  getDashboardUser(id: string): Promise<DashboardUser | undefined>;
  /** By lower-cased e-mail. */
  findDashboardUser(email: string): Promise<DashboardUser | undefined>;
  /** Users of one account, or all, by e-mail. */
  listDashboardUsers(accountId?: string): Promise<DashboardUser[]>;
  /** Deletes the user and its sessions; false when there was none. */
  deleteDashboardUser(id: string): Promise<boolean>;
  /** Replaces the password hash and ends every session of the user; false when there is no such user. */
  setDashboardPassword(id: string, passwordHash: string, at: number): Promise<boolean>;
  createDashboardSession(session: DashboardSession): Promise<void>;
  getDashboardSession(id: string): Promise<DashboardSession | undefined>;
  /** Moves the session's last activity to `at` (the idle timeout counts from there). */
  touchDashboardSession(id: string, at: number): Promise<void>;
  deleteDashboardSession(id: string): Promise<void>;
  /** Deletes sessions idle since before `idleBefore` or created before `createdBefore`; returns how many. */
  purgeDashboardSessions(idleBefore: number, createdBefore: number): Promise<number>;
}

/**
 * A store that can tell every node when work becomes due anywhere (PostgreSQL LISTEN/NOTIFY),
 * so a message accepted on one node is picked up by another within milliseconds, not at its
 * next poll. The embedded store needs none: its one process wakes its scheduler directly.
 */
export interface WatchesDue {
  watchDue(onDue: () => void, onError?: (err: Error) => void): Promise<{ stop(): Promise<void> }>;
}

export function watchesDue(store: Store): store is Store & WatchesDue {
  return typeof (store as Partial<WatchesDue>).watchDue === 'function';
}

/** One cluster-wide connection slot: `slot` of the slots of `key`. */
export interface SlotRef {
  key: string;
  slot: number;
}

/** A request for one of a key's connection slots (ConnectionSlotStore.acquireSlot). */
export interface SlotRequest {
  key: string;
  limit: number;
  /**
   * Nodes whose last heartbeat is at or after this time are live: the holder's fair share of
   * the `limit` slots is limit ÷ live nodes, rounded up (read at each request, so a node that
   * joined is counted at once).
   */
  liveSince: number;
  /** How long a refusal below a holder's share keeps the others from taking freed slots. */
  demandMs: number;
  holder: string;
  now: number;
  until: number;
}

/**
 * Connection slots shared by every node (PostgreSQL), so a per-destination connection limit
 * holds across the cluster: a node leases one of `limit` slots of a key before it connects and
 * gives it back when the connection closes. Times are the caller's clock, like recipient leases.
 */
export interface ConnectionSlotStore {
  /**
   * Takes a free (or expired) slot until `until`; undefined when all `limit` are held, or when
   * `holder` already holds its fair share of them and another holder was refused one within
   * `demandMs`. A holder refused while below its share records that demand, so that the
   * holders above theirs leave the next freed slot to it.
   */
  acquireSlot(input: SlotRequest): Promise<number | undefined>;
  /** Extends slots `holder` still holds; returns those (a slot lost after expiry is missing). */
  renewSlots(input: { holder: string; slots: SlotRef[]; until: number }): Promise<SlotRef[]>;
  /** Frees the given slots of `holder`, or all of them (`null`: start-up, shutdown). */
  releaseSlots(holder: string, slots: SlotRef[] | null): Promise<number>;
}

export interface SharesConnectionSlots {
  readonly connectionSlots: ConnectionSlotStore;
}

/**
 * A store that elects one node among those sharing it (PostgreSQL advisory lock) to run the
 * periodic tasks. The embedded store has one node, which is always the leader.
 */
export interface ElectsLeader {
  startLeaderLock(options?: { checkMs?: number; onError?: (err: Error) => void }): Promise<LeaderLock>;
}

export function electsLeader(store: Store): store is Store & ElectsLeader {
  return typeof (store as Partial<ElectsLeader>).startLeaderLock === 'function';
}

export function sharesConnectionSlots(store: Store): store is Store & SharesConnectionSlots {
  return (store as Partial<SharesConnectionSlots>).connectionSlots !== undefined;
}
