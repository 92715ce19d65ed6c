/**
 * The core model as the store sees it. Times are epoch milliseconds; ids are strings
 * (sortable, see ids.ts) except recipients and events, which are store-assigned integers.
 */

export interface Account {
  id: string;
  name: string;
  createdAt: number;
  paused: boolean;
  /**
   * The account's share of each lane against the other accounts with due work of the same kind
   * (an account of weight 2 gets twice the recipients per lease batch of one of weight 1).
   */
  weight: number;
  /**
   * Which From (and Sender) domains the account may send as: `verified` (default) = only its
   * verified sending domains; `any` = no check (tests, trusted internal relays).
   */
  senderPolicy: SenderPolicy;
}

export const SENDER_POLICIES = ['verified', 'any'] as const;
export type SenderPolicy = (typeof SENDER_POLICIES)[number];

/**
 * A stream's kind is its lane: every due transactional recipient is leased before any broadcast
 * one. In lease order.
 */
export const STREAM_KINDS = ['transactional', 'broadcast'] as const;
export type StreamKind = (typeof STREAM_KINDS)[number];

/** A named lane inside an account (see docs/architecture.md, "Streams and lanes"). */
export interface Stream {
  accountId: string;
  /** Lower case, unique within the account. */
  name: string;
  kind: StreamKind;
  /** The egress pool its mail leaves from; '' = the default pool of its kind (config). */
  pool: string;
  createdAt: number;
  /**
   * One of DEFAULT_STREAMS. Every account has them without a row (the store lists them with
   * the account's createdAt), so nodes of any version and accounts created before streams
   * existed have them too.
   */
  isDefault: boolean;
  /** What the stream does beyond delivery (tracking/settings.ts); absent or {} = its kind's defaults. */
  settings?: StreamSettings;
}

/**
 * A stream's tracking switches (stored as JSON in `streams.settings`); one not set takes its
 * kind's default (tracking/settings.ts: broadcast tracks opens and clicks and adds
 * List-Unsubscribe, transactional does nothing).
 */
export interface StreamTracking {
  opens?: boolean;
  clicks?: boolean;
  /** Links in text/plain parts too (off by default everywhere). */
  textLinks?: boolean;
  /** List-Unsubscribe and List-Unsubscribe-Post (RFC 8058) fields. */
  listUnsubscribe?: boolean;
}

export interface StreamSettings {
  tracking?: StreamTracking;
}

/** The streams every account has: `outbound` (transactional) and `broadcast`. */
export const DEFAULT_STREAMS: readonly { name: string; kind: StreamKind }[] = [
  { name: 'outbound', kind: 'transactional' },
  { name: 'broadcast', kind: 'broadcast' },
];
/** The stream of a message that names none (no header, no API field, no credential default). */
export const DEFAULT_STREAM = 'outbound';

export type CredentialKind = 'smtp' | 'api' | 'ip';

export interface Credential {
  id: string;
  accountId: string;
  kind: CredentialKind;
  /** SMTP username; for API keys the visible prefix; for IP credentials a label. */
  name: string;
  /** scrypt hash (see auth/secret-hash.ts); empty for IP credentials. */
  secretHash: string;
  /** IP credentials only: the CIDR list allowed to relay without AUTH. */
  cidrs: string[];
  createdAt: number;
  revokedAt: number | null;
  /** The stream of messages that name none; '' = the account's default (`outbound`). */
  defaultStream: string;
  /** API keys: what the key may do (api/send-api.ts API_SCOPES); ignored for other kinds. */
  scopes: string[];
}

export type RecipientState =
  | 'queued'
  | 'delivering'
  | 'deferred'
  | 'delivered'
  | 'bounced'
  | 'expired'
  | 'cancelled'
  | 'suppressed'
  | 'held';

/** Every recipient state, for listings and filters. */
export const RECIPIENT_STATES: readonly RecipientState[] = [
  'queued',
  'delivering',
  'deferred',
  'delivered',
  'bounced',
  'expired',
  'cancelled',
  'suppressed',
  'held',
];

export const FINAL_STATES: readonly RecipientState[] = [
  'delivered',
  'bounced',
  'expired',
  'cancelled',
  'suppressed',
];

/** DSN parameters from MAIL (RET, ENVID) and RCPT (NOTIFY, ORCPT), RFC 3461. */
export interface MessageDsn {
  ret?: 'FULL' | 'HDRS';
  envid?: string;
}
/** RFC 3461 §4.1 NOTIFY values. */
export type DsnNotify = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

export interface RecipientDsn {
  notify?: DsnNotify[];
  orcpt?: string;
  /**
   * RFC 8689 REQUIRETLS was given on MAIL FROM: every hop must be TLS with a verified
   * certificate and support REQUIRETLS, or the recipient bounces (5.7.30). Kept with the
   * recipient's envelope parameters, which travel with its lease to delivery.
   */
  requireTls?: boolean;
}

export interface NewRecipient {
  address: string;
  /** Lower-cased ASCII (punycode) domain: the delivery grouping key. */
  domain: string;
  dsn?: RecipientDsn;
  /** Its personalised copy: 1 = NewMessage.variants[0], …; absent or 0 = the message's body. */
  variant?: number;
  /**
   * The address is on a suppression list (bounces/suppressions.ts): stored in state
   * `suppressed` with a `suppressed` event carrying the reason instead of `accepted`; never sent.
   */
  suppressed?: { reason: SuppressionReason; scope: string };
  /**
   * Stored `held` with a `held` event instead of `accepted` (its account or stream is paused,
   * or a content check held it): never leased until released (Store.releaseHeld, `queue retry`).
   */
  held?: { reason: HoldReason; details: string };
}

export interface NewMessage {
  id: string;
  accountId: string;
  credentialId: string | null;
  /** Envelope sender; '' is the null sender. */
  mailFrom: string;
  recipients: NewRecipient[];
  body: Buffer;
  /** Message-ID header value, for search. */
  messageIdHeader: string;
  subject: string;
  source: 'smtp' | 'api' | 'dsn';
  clientIp: string;
  dsn: MessageDsn;
  /** Whether a DSN goes back to the sender on bounce/expiry (config + source). */
  dsnOnFailure: boolean;
  receivedAt: number;
  /** First delivery attempt no earlier than this (default: receivedAt). */
  notBefore?: number;
  /** The stream (default `outbound`, e.g. DSNs) and its kind, stored on every recipient. */
  stream?: string;
  kind?: StreamKind;
  tags?: string[];
  /** Echoed in every event and webhook of the message. */
  metadata?: Record<string, string>;
  /** The template it was rendered from (`<template id>@<version>`), '' = none. */
  template?: string;
  /**
   * Personalised copies (NewRecipient.variant). A message whose every recipient has its own
   * copy may have an empty `body`.
   */
  variants?: Buffer[];
  /**
   * The envelope sender delivery uses (MAIL FROM), when it is not `mailFrom`: an address on
   * the signing domain's return path (domains/sender-gate.ts). `mailFrom` stays the submitter's
   * (DSNs, listings).
   */
  envelopeFrom?: string;
  /**
   * Content checks' findings (content/checks.ts): the insert records them as one
   * `content_warning` event of the message, after its recipients' events.
   */
  contentWarnings?: string[];
  /**
   * The store checks the account's suppression lists for the recipients not already
   * `suppressed`, inside the insert: a listed one is stored `suppressed` as if it came so. One
   * round trip less than a lookup before the commit, and the check cannot miss an entry added
   * between the two.
   */
  suppressionCheck?: SuppressionCheck;
}

/**
 * What the store needs to check a message's recipients against the suppression lists
 * (NewMessage.suppressionCheck). An entry applies when it is the account's, for the address
 * (lower-cased) or its erasure token, of scope '' or the message's stream, not expired at
 * `receivedAt`, and not an `unsubscribe` unless `unsubscribes`. Of several, the one recorded is
 * the first by suppressionPrecedence.
 */
export interface SuppressionCheck {
  /** Whether `unsubscribe` entries apply (transactional streams may ignore them: bounces/). */
  unsubscribes: boolean;
  /** Each recipient's erasure token (privacy/), by index ('' = none): an erased address is listed under it. */
  tokens?: string[];
}

type SuppressionKeys = Pick<Suppression, 'reason' | 'scope' | 'address'>;

/**
 * Orders entries that apply to one address: the first is the one a suppressed recipient records.
 * Any other reason comes before `unsubscribe` (the stronger reason names the list that must not
 * be left), then the account-wide entry before a stream's, then the address itself before its
 * erasure token (`address`: the lower-cased address). The stores' checks order by the same keys.
 */
export function suppressionPrecedence(address: string): (a: SuppressionKeys, b: SuppressionKeys) => number {
  const keys = (s: SuppressionKeys): [number, string, number] => [
    s.reason === 'unsubscribe' ? 1 : 0,
    s.scope,
    s.address === address ? 0 : 1,
  ];
  return (a, b) => {
    const [ua, sa, ta] = keys(a);
    const [ub, sb, tb] = keys(b);
    return ua - ub || (sa < sb ? -1 : sa > sb ? 1 : 0) || ta - tb;
  };
}

/** The size of a recipient's copy of a message, in bytes. */
export function copySize(message: NewMessage, variant = 0): number {
  return (variant === 0 ? message.body : message.variants?.[variant - 1])?.byteLength ?? 0;
}

/** A message's stored size: its largest copy. */
export function storedSize(message: NewMessage): number {
  let size = message.body.byteLength;
  for (const v of message.variants ?? []) size = Math.max(size, v.byteLength);
  return size;
}

/** What is written in the same transaction as a batch of messages. */
export interface InsertOptions {
  /** Marks the API request's idempotency key answered (api/idempotency.ts) together with the messages. */
  idempotency?: { accountId: string; key: string; response: string };
  /**
   * Leases the recipients that are to be sent now to this node's delivery (intake/handoff.ts):
   * stored `delivering` with this owner and expiry instead of `queued`, and returned.
   */
  lease?: IntakeLease;
}

/** Lease terms of an intake commit (InsertOptions.lease). */
export interface IntakeLease {
  owner: string;
  until: number;
  /** Recipients due by now are leased (a message's notBefore later than this is not). */
  now: number;
}

/** Whether an intake commit with `lease` leases this recipient: neither suppressed nor held, and due. */
export function leasedAtIntake(
  message: NewMessage,
  recipient: NewRecipient,
  lease: IntakeLease | undefined,
): boolean {
  return (
    lease !== undefined &&
    !recipient.suppressed &&
    !recipient.held &&
    (message.notBefore ?? message.receivedAt) <= lease.now
  );
}

/** A recipient leased by its intake commit, as Store.leaseDue would have returned it. */
export function leasedAtIntakeRecipient(
  message: NewMessage,
  recipient: NewRecipient,
  id: number,
): LeasedRecipient {
  return {
    id,
    messageId: message.id,
    accountId: message.accountId,
    address: recipient.address,
    domain: recipient.domain,
    attempts: 0,
    mailFrom: message.envelopeFrom || message.mailFrom,
    createdAt: message.receivedAt,
    dsn: recipient.dsn ?? {},
    stream: message.stream ?? DEFAULT_STREAM,
    kind: message.kind ?? 'transactional',
    variant: recipient.variant ?? 0,
  };
}

export interface MessageRow {
  id: string;
  accountId: string;
  credentialId: string | null;
  mailFrom: string;
  messageIdHeader: string;
  subject: string;
  size: number;
  source: string;
  clientIp: string;
  dsn: MessageDsn;
  dsnOnFailure: boolean;
  receivedAt: number;
  stream: string;
  /**
   * The body was deleted by retention (`retention.bodies`): `getBody` returns undefined while
   * the metadata, recipients and events remain. `size` is still the size it had.
   */
  bodyPurged: boolean;
  tags: string[];
  metadata: Record<string, string>;
  /** `<template id>@<version>` it was rendered from, '' = none. */
  template: string;
}

/** One batch of a retention purge (see Store.purgeBodies / purgeMessages). */
export interface PurgeBatch {
  /** Only messages received strictly before this time (epoch ms) are touched. */
  before: number;
  /** At most this many messages per call (one short transaction each). */
  limit: number;
  /** Only this account's messages (an account's own retention). */
  accountId?: string;
  /** Not these accounts' messages (they have their own retention). */
  exceptAccountIds?: string[];
}

export interface Reply {
  code: number;
  enhanced?: string;
  text: string;
}

export interface RecipientRow {
  id: number;
  messageId: string;
  accountId: string;
  address: string;
  domain: string;
  state: RecipientState;
  attempts: number;
  nextAttemptAt: number;
  createdAt: number;
  updatedAt: number;
  lastReply: Reply | null;
  dsn: RecipientDsn;
  leaseOwner: string | null;
  leaseUntil: number | null;
  stream: string;
  kind: StreamKind;
  /** The site of its last attempt (Outcome.site); '' before one went to a site. */
  lastSite: string;
  /** Its personalised copy of the message (0 = the message's own body). */
  variant: number;
}

export type EventType =
  // Engagement (tracking/): the open pixel, tracked links, one-click unsubscribe.
  | 'opened'
  | 'clicked'
  | 'unsubscribed'
  | 'accepted'
  | 'delivering'
  | 'deferred'
  | 'delivered'
  | 'bounced'
  | 'expired'
  | 'cancelled'
  | 'held'
  | 'retried'
  | 'dsn_sent'
  | 'suppressed'
  | 'complained'
  // Not about a message (message id ''): events/schema.ts.
  | 'domain_status_changed'
  | 'account_paused'
  | 'account_resumed'
  | 'webhook_disabled'
  // The reputation guard's warning (guard/guard.ts) and content checks' findings (content/).
  | 'account_warned'
  | 'content_warning';

/** The event types tracking records (Store.recordEngagement). */
export const ENGAGEMENT_TYPES = ['opened', 'clicked', 'unsubscribed'] as const;
export type EngagementType = (typeof ENGAGEMENT_TYPES)[number];

/** One open, click or unsubscribe of a recipient (tracking/). */
export interface NewEngagement {
  recipientId: number;
  at: number;
  type: EngagementType;
  /** User agent, IP (per tracking.ip), url, machine flag and reason; the store adds `first`. */
  data: EventData;
}

/** Details every delivery event carries (one schema for every outcome, KumoMTA style). */
export interface EventData {
  reply?: Reply;
  mxHost?: string;
  ip?: string;
  port?: number;
  sourceIp?: string;
  tls?: { protocol: string; cipher: string } | null;
  attempt?: number;
  durationMs?: number;
  /** accept→this event, for delivered/bounced. */
  queueMs?: number;
  nextAttemptAt?: number;
  reason?: string;
  [key: string]: unknown;
}

export interface EventRow {
  id: number;
  at: number;
  type: EventType;
  messageId: string;
  recipientId: number | null;
  accountId: string;
  recipient: string | null;
  data: EventData;
}

export interface LeasedRecipient {
  id: number;
  messageId: string;
  accountId: string;
  address: string;
  domain: string;
  attempts: number;
  /** The envelope sender to deliver with: NewMessage.envelopeFrom when set, else mailFrom. */
  mailFrom: string;
  createdAt: number;
  dsn: RecipientDsn;
  stream: string;
  /** Its lane: transactional recipients go before broadcast ones. */
  kind: StreamKind;
  /** Its copy of the message (Store.getBody's `variant`; 0 = the message's body). */
  variant: number;
}

/** What Store.leaseDue takes: who leases, until when, and how many of each lane. */
export interface LeaseRequest {
  owner: string;
  now: number;
  /** Most recipients in the batch, all lanes together. */
  limit: number;
  leaseUntil: number;
  /**
   * Most recipients of a lane in this batch, within `limit` (a lane not named has no limit of
   * its own). Expired leases count against their lane too.
   */
  lanes?: Partial<Record<StreamKind, number>>;
}

/** The result of one delivery attempt for one recipient, written in one batch. */
export interface Outcome {
  /** When it happened (injected clock). */
  at: number;
  recipientId: number;
  messageId: string;
  accountId: string;
  recipient: string;
  /** New state: delivered | deferred | bounced | expired (or queued to release a lease). */
  state: RecipientState;
  /** When the state is deferred: the next attempt time. */
  nextAttemptAt?: number;
  /** Whether this outcome counts as an attempt (false for a released lease). */
  attempted: boolean;
  reply: Reply | null;
  event: { type: EventType; data: EventData } | null;
  /**
   * The site this attempt went to (delivery/shaping/site.ts key), kept on the recipient as its
   * last site for `queue summary`; unset leaves the one it had (DNS failed, a lease released).
   */
  site?: string;
  /** The egress source of this attempt (config egress.sources), kept like `site`. */
  source?: string;
  /**
   * Replayed from the outcome journal after an unclean stop (delivery/outcome-journal.ts): a
   * `delivered` that may have been stored before the crash, so applied only where the recipient
   * is not delivered yet (never a second event for one delivery).
   */
  recovered?: boolean;
}

export interface MessageFilter {
  accountId?: string;
  recipient?: string;
  status?: RecipientState;
  /** Messages carrying this tag. */
  tag?: string;
  /** Messages whose subject contains this text (ASCII letters in any case). */
  subject?: string;
  /** Messages received at or after this time (epoch ms). */
  after?: number;
  limit?: number;
  /** Messages received before this id (cursor). */
  before?: string;
}

export interface MessageSummary extends MessageRow {
  recipients: { address: string; state: RecipientState }[];
}

export interface QueueDomainSummary {
  domain: string;
  queued: number;
  deferred: number;
  delivering: number;
  oldestAt: number;
  /** Waiting recipients by time since accepted: under an hour, under a day, older. */
  ages: { underHour: number; underDay: number; older: number };
  /** Most common last replies of deferred recipients, most frequent first. */
  reasons: { text: string; count: number }[];
}

/** Waiting recipients by the site of their last attempt (`postbote queue summary`). */
export interface QueueSiteSummary {
  /**
   * The site key of the recipients' last attempt; '' = no site yet: never attempted, or their
   * domain's MX did not resolve when they were.
   */
  site: string;
  /** queued/deferred and due now: waiting for a connection (the ready queue). */
  ready: number;
  /** queued/deferred with their next attempt later (the scheduled queue). */
  scheduled: number;
  delivering: number;
  oldestAt: number;
  /** Distinct recipient domains among them. */
  domains: number;
  /** Most common last replies of deferred recipients, most frequent first (at most 3). */
  reasons: { text: string; count: number }[];
  /** The same counts by the egress source of the last attempt ('' = none yet). */
  sources: { source: string; ready: number; scheduled: number; delivering: number }[];
}

/** Adaptive actions (adaptive.ts) and circuits (circuit.ts) as they change. */
export const SHAPING_EVENT_TYPES = [
  'triggered',
  'extended',
  'expired',
  'lifted',
  'opened',
  'half_open',
  'closed',
] as const;
export type ShapingEventType = (typeof SHAPING_EVENT_TYPES)[number];
/** The event types that end what they are about: nothing of it is in force afterwards. */
export const SHAPING_END_TYPES: readonly ShapingEventType[] = ['expired', 'lifted', 'closed'];
export type ShapingEventKind = 'throttle' | 'suspend_site' | 'suspend_stream' | 'suspend_account' | 'circuit';

/**
 * One change of a node's traffic shaping state: its engine keeps the state in memory and writes
 * these so that other processes (`postbote queue summary`) can see what is in force.
 */
export interface NewShapingEvent {
  at: number;
  /** The node whose engine holds the state (config node_id). */
  nodeId: string;
  type: ShapingEventType;
  /** The adaptive rule's name, or `circuit`. */
  rule: string;
  kind: ShapingEventKind;
  /** `site:<source>|<site>`, `stream:<account>/<stream>` or `account:<account>` (adaptive.ts). */
  scopeKey: string;
  /** Throttles: the rate as written (`60/min`). */
  rate?: string;
  /**
   * When the action ends or the circuit allows a trial (half-open: when the trial is given up);
   * for the ending types, when it ended.
   */
  until: number;
  /**
   * The reply that triggered or extended it (circuits: why they opened). Stored as one line,
   * control characters removed, at most SHAPING_REPLY_MAX characters.
   */
  reply?: string;
}

export const SHAPING_REPLY_MAX = 300;

export interface ShapingEventRow extends Required<NewShapingEvent> {
  id: number;
}

/** The reason recorded on the `cancelled` event when the caller gives none. */
export const CANCEL_REASON = 'deleted from the queue by an operator';
/** The `details` of the held event when an operator holds mail (Store.hold). */
export const HOLD_REASON = 'held by an operator';

export interface QueueSelector {
  messageId?: string;
  domain?: string;
  /** Only this account's recipients (the API: an account sees only its own mail). */
  accountId?: string;
}

/** One node's heartbeat: when it started, when it last reported, and what it reported. */
export interface NodeHeartbeat {
  id: string;
  startedAt: number;
  /** Counters since start and current figures, as the node reports them. */
  info: {
    delivered?: number;
    deferred?: number;
    bounced?: number;
    inflight?: number;
    /** Outbound SMTP connections open now. */
    connections?: number;
    /** Elected to run the periodic tasks. */
    leader?: boolean;
    /** Outbound connections open now per site, the 20 sites with most. */
    sites?: { site: string; open: number }[];
    [key: string]: unknown;
  };
}

export interface NodeStatus extends NodeHeartbeat {
  heartbeatAt: number;
  /** Recipients this node holds leases on now. */
  leases: number;
}

/** A stored template (templates/templates.ts); its content lives in versions. */
export interface Template {
  id: string;
  accountId: string;
  name: string;
  /** Unique within the account among templates not deleted; '' = none. */
  alias: string;
  latestVersion: number;
  createdAt: number;
  updatedAt: number;
}

export interface TemplateContent {
  subject: string;
  html: string;
  text: string;
}

export interface TemplateVersion extends TemplateContent {
  templateId: string;
  version: number;
  createdAt: number;
}

/** An API request's idempotency key as stored (api/idempotency.ts). */
export interface IdempotencyRecord {
  requestHash: string;
  /** The answer, once the request's work is durable; undefined while it runs (or after it died). */
  response?: string;
  createdAt: number;
}

/** A sending domain of an account (domains/): its DKIM keys, DNS names and verification. */
export interface SendingDomain {
  id: string;
  accountId: string;
  /** Lower-case ASCII (punycode); unique among all accounts. */
  domain: string;
  /** The envelope sender's domain (bounces come back there): e.g. `pb-bounces.example.com`. */
  returnPath: string;
  /** The host of tracked links and the open pixel: e.g. `pb-track.example.com`. */
  trackingHost: string;
  /** When it became verified (its DNS checks passed, or an administrator trusted it); null = not. */
  verifiedAt: number | null;
  verifiedBy: 'dns' | 'admin' | null;
  /** The last DNS check's results (domains/checks), as JSON-able data; null before the first. */
  lastCheck: unknown;
  checkedAt: number | null;
  createdAt: number;
}

export type DkimAlgorithm = 'rsa' | 'ed25519';
/**
 * `active`: signs every message. `pending`: published for rotation, signs beside the active
 * key until its DNS record verifies, then becomes active and the old one `retired`.
 */
export type DkimKeyState = 'active' | 'pending' | 'retired';

export interface DkimKey {
  domainId: string;
  selector: string;
  algorithm: DkimAlgorithm;
  privateKeyPem: string;
  /** Base64, as in the DNS record's p= tag. */
  publicKey: string;
  state: DkimKeyState;
  createdAt: number;
  /** When its state last changed. */
  changedAt: number;
}

/** Why an address is suppressed. */
export const SUPPRESSION_REASONS = [
  'hard_bounce',
  'soft_bounces',
  'complaint',
  'unsubscribe',
  'manual',
] as const;
export type SuppressionReason = (typeof SUPPRESSION_REASONS)[number];

/** One entry of an account's suppression list (bounces/suppressions.ts). */
export interface Suppression {
  accountId: string;
  /** Lower-cased. */
  address: string;
  /** '' = the whole account; else the one stream it applies to. */
  scope: string;
  reason: SuppressionReason;
  /** The bounce category (bounces/classify.ts) when a bounce caused it, else ''. */
  category: string;
  /** What caused it: a message id, an event, or who added it (`api`, `cli`, `import`). */
  source: string;
  /** Free text for humans: the diagnostic, the operator's note. */
  details: string;
  createdAt: number;
  /** null = never expires. */
  expiresAt: number | null;
}

export interface SuppressionFilter {
  accountId: string;
  address?: string;
  reason?: SuppressionReason;
  scope?: string;
  limit?: number;
  /** Entries after this (address, scope) in (address, scope) order: the cursor of the previous page. */
  after?: { address: string; scope: string };
}

/** A bounce or complaint that arrived after delivery (the inbound MX), for a known recipient. */
export interface AsyncReport {
  recipientId: number;
  at: number;
  type: 'bounced' | 'complained';
  /** Parser and classifier output: status, category, permanent, diagnostic, feedback type, … */
  data: Record<string, unknown>;
}

// Statistics rollups (src/stats/): counters per account × hour × dimensions, written by the
// leader's rollup task from the event feed, read by /v1/stats and `postbote stats`.

/** The dimensions of a rollup row besides the account and the hour. */
export const STATS_DIMENSIONS = ['stream', 'tag', 'domain', 'provider'] as const;
export type StatsDimension = (typeof STATS_DIMENSIONS)[number];

/** One counter increment of one rollup row (stats/rollup.ts computes them from events). */
export interface RollupIncrement {
  accountId: string;
  /** Start of the UTC hour (epoch ms). */
  bucket: number;
  stream: string;
  /** '' = the row of every message whatever its tags (totals); else one of the message's tags. */
  tag: string;
  /** Sending domain (stats/dimensions.ts), '' when unknown. */
  domain: string;
  /** Mailbox provider bucket (stats/providers.ts). */
  provider: string;
  /** Counter name (stats/counters.ts): `delivered`, `hard_bounced:unknown_user`, … */
  counter: string;
  n: number;
}

/** What Store.applyRollup writes in one transaction. */
export interface RollupBatch {
  /** The cursor's name (one per consumer of the event feed). */
  cursor: string;
  /** The cursor position the increments were computed after; the batch applies only if it still is. */
  fromId: number;
  /** The last event id the increments cover: the cursor's new position. */
  toId: number;
  increments: RollupIncrement[];
  at: number;
}

export interface StatsQuery {
  accountId: string;
  /** Inclusive, epoch ms, aligned to the interval. */
  from: number;
  /** Exclusive, epoch ms, aligned to the interval. */
  to: number;
  interval: 'hour' | 'day';
  /** Dimensions to keep apart; the others are summed. Without `tag`, only the all-tags rows count. */
  groupBy: StatsDimension[];
  /** Only rows with these values. */
  filter?: Partial<Record<StatsDimension, string>>;
}

/** One counter of one (bucket, group) of a StatsQuery. Dimensions not grouped by are ''. */
export interface StatsRow {
  bucket: number;
  stream: string;
  tag: string;
  domain: string;
  provider: string;
  counter: string;
  n: number;
}

/** What the rollup needs to know about events' messages and recipients (Store.statsLookup). */
export interface StatsLookup {
  messages: { id: string; mailFrom: string; envelopeFrom: string }[];
  recipients: { id: number; lastSite: string; domain: string }[];
}

/** Recipients not yet final, by state and lane (metrics: queue depth). */
export interface QueueDepth {
  state: RecipientState;
  kind: StreamKind;
  count: number;
}

// ---- the event log and webhooks (events/, webhooks/) ----

/**
 * Events are written within this long of their time (`at`): a time bound of Store.listEvents
 * becomes an id bound through the `at` index with this much slack (ids grow with write time).
 */
export const EVENT_WRITE_SLACK_MS = 15 * 60_000;

/**
 * An event not written by a delivery state change: a domain's status, an account paused or
 * resumed, a webhook endpoint disabled. Such events concern no message: `messageId` is ''.
 */
export interface NewEvent {
  at: number;
  type: EventType;
  accountId: string;
  messageId?: string;
  recipientId?: number | null;
  recipient?: string | null;
  data: EventData;
}

/** An event with what its message says about it (stream, tags, metadata; empty without one). */
export interface EnrichedEventRow extends EventRow {
  /** The recipient's position in its message (0-based; the API's `<message id>-<n>`), null without one. */
  recipientOrdinal: number | null;
  stream: string;
  tags: string[];
  metadata: Record<string, string>;
}

/** Store.listEvents: one account's events, newest first, keyset-paged on id. */
export interface EventFilter {
  accountId: string;
  /** Internal event types (any of them). */
  types?: EventType[];
  recipient?: string;
  messageId?: string;
  tag?: string;
  stream?: string;
  /** `at` >= from (epoch ms). */
  from?: number;
  /** `at` < to (epoch ms). */
  to?: number;
  /** Only ids below this (the previous page's last id). */
  beforeId?: number;
  /** Only ids above this (ascending listings: replay). */
  afterId?: number;
  /** Ascending id order instead of newest first. */
  ascending?: boolean;
  /** 1..1000, default 100. */
  limit?: number;
}

/** A webhook endpoint of an account (webhooks/). */
export interface WebhookEndpoint {
  id: string;
  accountId: string;
  url: string;
  /** `whsec_` + base64 (Standard Webhooks); never shown after creation. */
  secret: string;
  /** Public event type names (events/schema.ts); [] = every type. */
  eventTypes: string[];
  enabled: boolean;
  /** Why it was disabled ('' while enabled): `gone` (410), `failing`, `admin`. */
  disabledReason: string;
  disabledAt: number | null;
  /** Since when every attempt has failed (null after a success). */
  failingSince: number | null;
  createdAt: number;
}

export type WebhookBatchState = 'pending' | 'delivered' | 'failed';

/** One signed POST to an endpoint: the body is fixed when the batch is made, so retries resend it byte for byte. */
export interface WebhookBatch {
  /** The `webhook-id` header: the same on every retry, so receivers can drop duplicates. */
  id: string;
  webhookId: string;
  accountId: string;
  /** `events` (from the feed), `replay`, `test`. */
  kind: string;
  firstEventId: number;
  lastEventId: number;
  count: number;
  body: string;
  state: WebhookBatchState;
  attempts: number;
  nextAttemptAt: number;
  createdAt: number;
  updatedAt: number;
  /** The last attempt's outcome: `HTTP 503`, `timeout after 10000 ms`, … */
  lastError: string;
}

/** One delivery attempt of a batch (the log the API shows). */
export interface WebhookAttempt {
  id: number;
  batchId: string;
  webhookId: string;
  at: number;
  /** HTTP status, 0 when no answer came. */
  status: number;
  error: string;
  durationMs: number;
}

// ---- Reputation guard, audit trail, per-account retention, privacy (guard/, audit/, privacy/) ----

/** Why a recipient is `held` (NewRecipient.held): its account or stream is paused, or a content check held it. */
/** paused: the guard or a pause; content: content checks; operator: held from the queue (Store.hold). */
export type HoldReason = 'paused' | 'content' | 'operator';

/** An audit trail entry as recorded (audit/audit.ts). */
export interface NewAuditEntry {
  at: number;
  /** Who: `credential:<id>` (API key), `cli:<os user>`, `system:<task>` (the guard). */
  actor: string;
  /** The account concerned; '' for deployment-wide actions. */
  accountId: string;
  /** What, as `<noun>.<verb>`: `credential.create`, `domain.remove`, `account.resume`, … */
  action: string;
  /** What it was done to: a credential id, a domain, a stream, an address. */
  target: string;
  /** A small JSON-able object; never secrets. */
  details: Record<string, unknown>;
}

export interface AuditEntry extends NewAuditEntry {
  id: number;
}

export interface AuditFilter {
  accountId?: string;
  /** Entries with an id below this (cursor: newest first). */
  before?: number;
  /** Entries at or after this time. */
  since?: number;
  limit?: number;
}

/**
 * The guard's state of one account (stream '') or one stream of it (guard/guard.ts): paused
 * (new mail is held), when it was last warned and resumed.
 */
export interface GuardState {
  accountId: string;
  /** '' = the whole account. */
  stream: string;
  pausedAt: number | null;
  /** Who paused it: `system:guard`, `cli:<user>`, `credential:<id>`. */
  pausedBy: string;
  /** Why, for humans: "bounce rate 12.0 % over 24h (30 of 250)". */
  reason: string;
  /** The guard counts only traffic after this (so a resume is not undone by the same window). */
  resumedAt: number | null;
  warnedAt: number | null;
}

/** Sends, bounces and complaints of one account's stream since some time (the guard's window). */
export interface GuardCount {
  accountId: string;
  stream: string;
  /** `delivered` + `bounced` events: what was sent and reached a verdict. */
  sent: number;
  bounced: number;
  complained: number;
}

/** An account's own retention (config `retention.*` otherwise); null fields take the default. */
export interface AccountRetention {
  accountId: string;
  bodiesMs: number | null;
  metadataMs: number | null;
}

/** What a privacy export finds about one address (privacy/privacy.ts). */
export interface AddressExport {
  messages: (MessageRow & { recipients: RecipientRow[]; events: EventRow[] })[];
  suppressions: Suppression[];
  /** Rows of other tables that mention the address (soft bounces, tracking, webhooks, audit, …). */
  other: { table: string; rows: Record<string, unknown>[] }[];
  /** More messages matched than the export returns (`limit`). */
  truncated: boolean;
}

/** What an erasure removed, by table. */
export interface ErasureResult {
  /** Messages deleted whole (they named the address: recipient, sender, header or body). */
  messages: number;
  /** Suppression entries replaced by their salted hash. */
  suppressionsHashed: number;
  /** Rows deleted or rewritten per table (the generic sweep included). */
  tables: Record<string, number>;
}

/** What a dashboard user may do: `admin` = send, read, admin scopes; `viewer` = read (dashboard/users.ts). */
export type DashboardRole = 'admin' | 'viewer';

/** A person who logs in to the web dashboard; belongs to one account (schema SQLite v14, PostgreSQL v15). */
export interface DashboardUser {
  id: string;
  accountId: string;
  /** Lower-cased; unique across accounts (the login name). */
  email: string;
  role: DashboardRole;
  /** scrypt (auth/secret-hash.ts). */
  passwordHash: string;
  createdAt: number;
  passwordChangedAt: number;
}

/** A logged-in dashboard session. The cookie holds the token; the store only its SHA-256 (`id`). */
export interface DashboardSession {
  id: string;
  userId: string;
  /** The token state-changing requests must echo in X-CSRF-Token. */
  csrfToken: string;
  createdAt: number;
  lastSeenAt: number;
}
