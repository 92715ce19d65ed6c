import { isDefaultStream } from '../default-streams.ts';
import type {
  Account,
  Credential,
  CredentialKind,
  DkimAlgorithm,
  DkimKey,
  DkimKeyState,
  EventRow,
  EventType,
  LeasedRecipient,
  MessageRow,
  RecipientRow,
  RecipientState,
  SenderPolicy,
  SendingDomain,
  ShapingEventKind,
  ShapingEventRow,
  ShapingEventType,
  Stream,
  StreamKind,
  StreamSettings,
  Suppression,
  SuppressionReason,
  Template,
  TemplateVersion,
} from '../types.ts';

/**
 * Values between the model and PostgreSQL rows. pg returns bigint (ids, epoch ms, counts) as
 * strings, integer as numbers, bytea as Buffer and jsonb parsed; the model wants numbers.
 */
export type Row = Record<string, unknown>;

// PostgreSQL refuses NUL in text and jsonb (SQLite stores it). Remote replies and header values
// are not ours to trust: a NUL there must not make a batch of outcomes fail again on every retry.
export const clean = (text: string): string => (text.includes('\0') ? text.replaceAll('\0', '') : text);
export const json = (value: unknown): string =>
  JSON.stringify(value ?? {}, (_key, v: unknown) => (typeof v === 'string' ? clean(v) : v));
export const num = (value: unknown): number => Number(value);
const numOrNull = (value: unknown): number | null => (value === null ? null : Number(value));
const strOrNull = (value: unknown): string | null => (value === null ? null : String(value));
// jsonb columns arrive parsed.
export const obj = <T>(value: unknown): T => (value ?? {}) as T;
// JSON kept in text columns (messages.tags, messages.metadata, domains.last_check) is parsed here.
const parsed = <T>(value: unknown, empty: T): T =>
  value === null || value === undefined ? empty : (JSON.parse(String(value)) as T);

export function toAccount(r: Row): Account {
  return {
    id: String(r.id),
    name: String(r.name),
    createdAt: num(r.created_at),
    paused: r.paused === true,
    weight: num(r.weight),
    senderPolicy: String(r.sender_policy) as SenderPolicy,
  };
}

export function toDomain(r: Row): SendingDomain {
  return {
    id: String(r.id),
    accountId: String(r.account_id),
    domain: String(r.domain),
    returnPath: String(r.return_path),
    trackingHost: String(r.tracking_host),
    verifiedAt: numOrNull(r.verified_at),
    verifiedBy: strOrNull(r.verified_by) as SendingDomain['verifiedBy'],
    lastCheck: parsed<unknown>(r.last_check, null),
    checkedAt: numOrNull(r.checked_at),
    createdAt: num(r.created_at),
  };
}

/** A DKIM key from its row, or from an element of json_agg over rows (times are then numbers). */
export function toDkimKey(r: Row): DkimKey {
  return {
    domainId: String(r.domain_id),
    selector: String(r.selector),
    algorithm: String(r.algorithm) as DkimAlgorithm,
    privateKeyPem: String(r.private_key),
    publicKey: String(r.public_key),
    state: String(r.state) as DkimKeyState,
    createdAt: num(r.created_at),
    changedAt: num(r.changed_at),
  };
}

export function toStream(r: Row): Stream {
  const name = String(r.name);
  return {
    accountId: String(r.account_id),
    name,
    kind: String(r.kind) as StreamKind,
    pool: String(r.pool),
    createdAt: num(r.created_at),
    isDefault: isDefaultStream(name),
    ...streamSettings(r.settings),
  };
}

/** streams.settings (JSON text, schema v11); anything unreadable counts as none. */
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

export function toCredential(r: Row): Credential {
  return {
    id: String(r.id),
    accountId: String(r.account_id),
    kind: String(r.kind) as CredentialKind,
    name: String(r.name),
    secretHash: String(r.secret_hash),
    cidrs: (r.cidrs ?? []) as string[],
    createdAt: num(r.created_at),
    revokedAt: numOrNull(r.revoked_at),
    defaultStream: String(r.default_stream ?? ''),
    scopes: String(r.scopes ?? '')
      .split(',')
      .filter((s) => s !== ''),
  };
}

export function toMessage(r: Row): MessageRow {
  return {
    id: String(r.id),
    accountId: String(r.account_id),
    credentialId: strOrNull(r.credential_id),
    mailFrom: String(r.mail_from),
    messageIdHeader: String(r.message_id_header),
    subject: String(r.subject),
    size: num(r.size),
    source: String(r.source),
    clientIp: String(r.client_ip),
    dsn: obj(r.dsn),
    dsnOnFailure: r.dsn_on_failure === true,
    receivedAt: num(r.received_at),
    stream: String(r.stream),
    bodyPurged: r.body_purged === true,
    tags: parsed<string[]>(r.tags, []),
    metadata: parsed<Record<string, string>>(r.metadata, {}),
    template: String(r.template ?? ''),
  };
}

export function toRecipient(r: Row): RecipientRow {
  return {
    id: num(r.id),
    messageId: String(r.message_id),
    accountId: String(r.account_id),
    address: String(r.address),
    domain: String(r.domain),
    state: String(r.state) as RecipientState,
    attempts: num(r.attempts),
    nextAttemptAt: num(r.next_attempt_at),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    lastReply:
      r.last_code === null
        ? null
        : {
            code: num(r.last_code),
            ...(r.last_enhanced === null ? {} : { enhanced: String(r.last_enhanced) }),
            text: String(r.last_text ?? ''),
          },
    dsn: obj(r.dsn),
    leaseOwner: strOrNull(r.lease_owner),
    leaseUntil: numOrNull(r.lease_until),
    stream: String(r.stream),
    kind: String(r.kind) as StreamKind,
    lastSite: String(r.last_site ?? ''),
    variant: num(r.variant ?? 0),
  };
}

export function toEvent(r: Row): EventRow {
  return {
    id: num(r.id),
    at: num(r.at),
    type: String(r.type) as EventType,
    messageId: String(r.message_id),
    recipientId: numOrNull(r.recipient_id),
    accountId: String(r.account_id),
    recipient: strOrNull(r.recipient),
    data: obj(r.data),
  };
}

export function toLeased(r: Row): LeasedRecipient {
  return {
    id: num(r.id),
    messageId: String(r.message_id),
    accountId: String(r.account_id),
    address: String(r.address),
    domain: String(r.domain),
    attempts: num(r.attempts),
    mailFrom: String(r.mail_from),
    createdAt: num(r.created_at),
    dsn: obj(r.dsn),
    stream: String(r.stream),
    kind: String(r.kind) as StreamKind,
    variant: num(r.variant ?? 0),
  };
}

export function toShapingEvent(r: Row): ShapingEventRow {
  return {
    id: num(r.id),
    at: num(r.at),
    nodeId: String(r.node_id),
    type: String(r.type) as ShapingEventType,
    rule: String(r.rule),
    kind: String(r.kind) as ShapingEventKind,
    scopeKey: String(r.scope_key),
    rate: String(r.rate),
    until: num(r.until),
    reply: String(r.reply),
  };
}

export function toSuppression(r: Row): Suppression {
  return {
    accountId: String(r.account_id),
    address: String(r.address),
    scope: String(r.scope),
    reason: String(r.reason) as SuppressionReason,
    category: String(r.category),
    source: String(r.source),
    details: String(r.details),
    createdAt: num(r.created_at),
    expiresAt: numOrNull(r.expires_at),
  };
}

export function toTemplate(r: Row): Template {
  return {
    id: String(r.id),
    accountId: String(r.account_id),
    name: String(r.name),
    alias: String(r.alias),
    latestVersion: num(r.latest_version),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
  };
}

export function toTemplateVersion(r: Row): TemplateVersion {
  return {
    templateId: String(r.template_id),
    version: num(r.version),
    subject: String(r.subject),
    html: String(r.html),
    text: String(r.text),
    createdAt: num(r.created_at),
  };
}

/** A recipient's last reply as one line: `421 4.7.0 try again later`. */
export function replyText(r: Row): string {
  return [r.last_code, r.last_enhanced, r.last_text].filter((p) => p !== null && p !== '').join(' ');
}
