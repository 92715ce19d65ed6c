import type { FeedEvent } from '../events/feed.ts';
import { publicEventType, toPublicEvent } from '../events/schema.ts';
import type { WebhookBatch, WebhookEndpoint } from '../store/types.ts';

/**
 * The body of one webhook request, Standard Webhooks' recommended shape: `type`, `timestamp`
 * (when the batch was made) and `data` with the events in the one public schema
 * (events/schema.ts), oldest first.
 */
export function batchBody(events: FeedEvent[], madeAt: number): string {
  return JSON.stringify({
    type: 'postbote.events',
    timestamp: new Date(madeAt).toISOString(),
    data: { events: events.map(toPublicEvent) },
  });
}

/** Whether an endpoint wants an event: its account, written after it was created, a type it asked for. */
export function wants(endpoint: WebhookEndpoint, event: FeedEvent): boolean {
  return (
    endpoint.enabled &&
    endpoint.accountId === event.accountId &&
    event.at >= endpoint.createdAt &&
    (endpoint.eventTypes.length === 0 || endpoint.eventTypes.includes(publicEventType(event.type)))
  );
}

/**
 * Cuts one endpoint's events into batches of at most `size`. `idPrefix` makes the ids: feed
 * batches use the endpoint and the event range (a re-read after a crash makes the same id, which
 * the store keeps once), replays a fresh random prefix (a replay is meant to be received again).
 */
export function makeBatches(input: {
  endpoint: WebhookEndpoint;
  events: FeedEvent[];
  size: number;
  kind: string;
  idPrefix: string;
  now: number;
}): WebhookBatch[] {
  const { endpoint, events, size, kind, idPrefix, now } = input;
  const batches: WebhookBatch[] = [];
  for (let i = 0; i < events.length; i += size) {
    const chunk = events.slice(i, i + size);
    const first = chunk[0]?.id ?? 0;
    const last = chunk.at(-1)?.id ?? 0;
    batches.push({
      id: `${idPrefix}_${first}-${last}`,
      webhookId: endpoint.id,
      accountId: endpoint.accountId,
      kind,
      firstEventId: first,
      lastEventId: last,
      count: chunk.length,
      body: batchBody(chunk, now),
      state: 'pending',
      attempts: 0,
      nextAttemptAt: now,
      createdAt: now,
      updatedAt: now,
      lastError: '',
    });
  }
  return batches;
}
