import type { EventFilter } from '../store/types.ts';
import { internalEventType, isPublicEventType, PUBLIC_EVENT_TYPES } from './schema.ts';

/** A filter value that cannot be used; `field` names the query parameter or CLI option. */
export class EventQueryError extends Error {
  readonly field: string;
  constructor(message: string, field: string) {
    super(message);
    this.name = 'EventQueryError';
    this.field = field;
  }
}

/** What `GET /v1/events` and `postbote events list` take, as written (strings). */
export interface EventQueryInput {
  type?: string;
  recipient?: string;
  message_id?: string;
  tag?: string;
  stream?: string;
  from?: string;
  to?: string;
  limit?: string;
  cursor?: string;
}

const MAX_TEXT = 320;

/** A time: RFC 3339 with a zone, or epoch milliseconds. */
export function parseTime(value: string, field: string): number {
  const ms = /^\d{1,15}$/.test(value)
    ? Number(value)
    : /^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2}))?$/.test(value)
      ? Date.parse(value)
      : Number.NaN;
  if (!Number.isFinite(ms)) {
    throw new EventQueryError(
      `${field} must be an RFC 3339 time (2026-12-01T09:00:00Z), a date or epoch ms`,
      field,
    );
  }
  return ms;
}

/** The opaque cursor of the next page: the last id handed out. */
export function eventCursor(lastId: number): string {
  return Buffer.from(`e${lastId}`).toString('base64url');
}

export function readEventCursor(cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const m = /^e(\d{1,15})$/.exec(text);
  if (!m) throw new EventQueryError('cursor is not one this API gave', 'cursor');
  return Number(m[1]);
}

/**
 * The store filter for one account from the query as written; every problem names its field.
 * `type` takes public names (events/schema.ts), comma-separated.
 */
export function parseEventQuery(
  accountId: string,
  q: EventQueryInput,
  limits: { defaultLimit: number; maxLimit: number },
): EventFilter & { limit: number } {
  const filter: EventFilter & { limit: number } = { accountId, limit: limits.defaultLimit };
  if (q.type !== undefined && q.type !== '') {
    const types = q.type.split(',').map((t) => t.trim());
    for (const t of types) {
      if (!isPublicEventType(t)) {
        throw new EventQueryError(
          `unknown event type "${t.slice(0, 40)}"; one of ${PUBLIC_EVENT_TYPES.join(', ')}`,
          'type',
        );
      }
    }
    filter.types = [...new Set(types.map((t) => internalEventType(t as never)))];
  }
  for (const key of ['recipient', 'message_id', 'tag', 'stream'] as const) {
    const value = q[key];
    if (value === undefined || value === '') continue;
    if (value.length > MAX_TEXT)
      throw new EventQueryError(`${key} is longer than ${MAX_TEXT} characters`, key);
    if (key === 'recipient') filter.recipient = value;
    else if (key === 'message_id') filter.messageId = value;
    else if (key === 'tag') filter.tag = value;
    else filter.stream = value.toLowerCase();
  }
  if (q.from !== undefined && q.from !== '') filter.from = parseTime(q.from, 'from');
  if (q.to !== undefined && q.to !== '') filter.to = parseTime(q.to, 'to');
  if (filter.from !== undefined && filter.to !== undefined && filter.from >= filter.to) {
    throw new EventQueryError('from must be before to', 'from');
  }
  if (q.limit !== undefined && q.limit !== '') {
    const limit = Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > limits.maxLimit) {
      throw new EventQueryError(`limit must be a whole number from 1 to ${limits.maxLimit}`, 'limit');
    }
    filter.limit = limit;
  }
  if (q.cursor !== undefined && q.cursor !== '') filter.beforeId = readEventCursor(q.cursor);
  return filter;
}
