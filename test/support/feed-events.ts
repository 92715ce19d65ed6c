import type { EnrichedEventRow } from '../../src/store/types.ts';

/** An event of the feed as a store hands it out: id `id`, also its time, of account `a`. */
export function feedEvent(id: number, type: EnrichedEventRow['type'] = 'accepted'): EnrichedEventRow {
  return {
    id,
    at: id,
    type,
    messageId: `m${id}`,
    recipientId: id,
    accountId: 'a',
    recipient: 'x@one.test',
    data: {},
    recipientOrdinal: 0,
    stream: 'outbound',
    tags: [],
    metadata: {},
  };
}
