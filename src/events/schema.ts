import type { EnrichedEventRow, EventType } from '../store/types.ts';
import { PUBLIC_EVENT_TYPES } from './types.ts';

/**
 * The one public event schema (API, CSV, webhooks, `postbote events`). Internal event types keep
 * their names where the public list has the same word; the few that differ are mapped here, and
 * only here:
 *
 * - `retried` (an operator made waiting mail due now, or released held mail) is public
 *   `scheduled`: the recipient is back on the delivery schedule. Mail accepted with `send_at`
 *   gets `accepted` like any other (its first attempt time is the message's `send_at`).
 * - `delivering` is a recipient state, never an event.
 *
 * Types beyond the list that exist internally are public too: `dsn_sent` (a delivery
 * status notification went back to the sender), `webhook_disabled` (an endpoint failed for a
 * day or answered 410), `account_warned` (the reputation guard's warn threshold: guard/) and
 * `content_warning` (the built-in or rspamd content checks found something: content/).
 */
export { PUBLIC_EVENT_TYPES };
export type PublicEventType = (typeof PUBLIC_EVENT_TYPES)[number];

const TO_INTERNAL: Partial<Record<PublicEventType, string>> = { scheduled: 'retried' };
const TO_PUBLIC: Record<string, PublicEventType> = { retried: 'scheduled' };

export function isPublicEventType(value: string): value is PublicEventType {
  return (PUBLIC_EVENT_TYPES as readonly string[]).includes(value);
}

/** The stored type a public type is written as. */
export function internalEventType(type: PublicEventType): EventType {
  return (TO_INTERNAL[type] ?? type) as EventType;
}

/** The public name of a stored type (an unknown one, written by a newer node, passes as is). */
export function publicEventType(type: string): string {
  return TO_PUBLIC[type] ?? type;
}

/** One event as the API, the CSV export and webhooks show it. */
export interface PublicEvent {
  /** The event log's id: increasing, the cursor of every listing and of replays. */
  id: number;
  type: string;
  /** ISO 8601 with milliseconds, UTC. */
  at: string;
  /** '' for an event about no message (domain_status_changed, account_paused, …). */
  message_id: string;
  /** The recipient's address, null for an event about a whole message or none. */
  recipient: string | null;
  /** The recipient's API id (`<message id>-<n>`, n from 0 in the order of the request); null when unknown. */
  recipient_id: string | null;
  account: string;
  stream: string;
  tags: string[];
  metadata: Record<string, string>;
  /** What happened: the remote reply, MX host, IP, TLS, attempt, timings, reason, … (camelCase keys as stored). */
  details: Record<string, unknown>;
}

/** The public form of a stored event. */
export function toPublicEvent(e: EnrichedEventRow): PublicEvent {
  return {
    id: e.id,
    type: publicEventType(e.type),
    at: new Date(e.at).toISOString(),
    message_id: e.messageId,
    recipient: e.recipient,
    recipient_id: e.recipientOrdinal === null ? null : `${e.messageId}-${e.recipientOrdinal}`,
    account: e.accountId,
    stream: e.stream,
    tags: e.tags,
    metadata: e.metadata,
    details: e.data,
  };
}

/** The JSON schema of PublicEvent (OpenAPI, api/events.ts and api/webhooks.ts). */
export const publicEventSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer', description: 'Increasing id: the cursor of listings and replays' },
    type: { type: 'string', enum: [...PUBLIC_EVENT_TYPES] },
    at: { type: 'string', format: 'date-time', description: 'ISO 8601, UTC, milliseconds' },
    message_id: { type: 'string', description: "'' for events about no message" },
    recipient: { type: ['string', 'null'] },
    recipient_id: { type: ['string', 'null'], description: '`<message id>-<n>` when known' },
    account: { type: 'string' },
    stream: { type: 'string' },
    tags: { type: 'array', items: { type: 'string' } },
    metadata: { type: 'object', additionalProperties: { type: 'string' } },
    details: { type: 'object', additionalProperties: true },
  },
} as const;
