import type { FastifyInstance } from 'fastify';
import { eventCsvHeader, eventCsvRow } from '../events/csv.ts';
import { EventQueryError, type EventQueryInput, eventCursor, parseEventQuery } from '../events/query.ts';
import { PUBLIC_EVENT_TYPES, publicEventSchema, toPublicEvent } from '../events/schema.ts';
import type { Store } from '../store/store.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

/** A JSON page holds at most this many events; a CSV export up to CSV_MAX (read 1000 at a time). */
const JSON_MAX = 1000;
const CSV_MAX = 10_000;

/**
 * GET /v1/events: the account's event log, newest first, filtered and cursor-paged (JSON), or
 * exported as CSV (`Accept: text/csv` or `format=csv`). A key sees only its own account's events:
 * the account comes from the key, never from the query.
 */
export function registerEventRoutes(app: FastifyInstance, deps: { store: Store; keys: KeyGate }): void {
  const { store, keys } = deps;
  app.get(
    '/v1/events',
    documented({
      tags: ['events'],
      summary: "The account's events, newest first (JSON pages or CSV)",
      description:
        'Filters combine (AND). `type` takes one or more types, comma-separated. `from` is inclusive and `to` ' +
        'exclusive (RFC 3339 or epoch ms). The next page: `cursor` = the previous answer’s `next_cursor` ' +
        '(CSV: the `X-Next-Cursor` header). CSV: `Accept: text/csv` or `format=csv`, up to 10,000 rows per call.',
      security,
      querystring: {
        type: 'object',
        properties: {
          type: { type: 'string', description: `comma-separated: ${PUBLIC_EVENT_TYPES.join(', ')}` },
          recipient: { type: 'string' },
          message_id: { type: 'string' },
          tag: { type: 'string' },
          stream: { type: 'string' },
          from: { type: 'string', description: 'RFC 3339 or epoch ms, inclusive' },
          to: { type: 'string', description: 'RFC 3339 or epoch ms, exclusive' },
          limit: {
            type: 'integer',
            minimum: 1,
            maximum: CSV_MAX,
            description: 'default 100 (CSV: 1000); JSON max 1000',
          },
          cursor: { type: 'string' },
          format: { type: 'string', enum: ['json', 'csv'] },
        },
      },
      response: {
        200: {
          type: 'object',
          properties: {
            data: { type: 'array', items: publicEventSchema },
            next_cursor: { type: ['string', 'null'] },
          },
        },
        '4xx': errorSchema,
      },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'read');
      const q = request.query as EventQueryInput & { format?: string };
      if (q.format !== undefined && q.format !== 'json' && q.format !== 'csv') {
        throw new ApiError('invalid_request', 'format must be json or csv', 'format');
      }
      const csv =
        q.format === 'csv' || (q.format === undefined && /\btext\/csv\b/i.test(request.headers.accept ?? ''));
      let filter: ReturnType<typeof parseEventQuery>;
      try {
        filter = parseEventQuery(principal.accountId, q, {
          defaultLimit: csv ? 1000 : 100,
          maxLimit: csv ? CSV_MAX : JSON_MAX,
        });
      } catch (err) {
        if (err instanceof EventQueryError) throw new ApiError('invalid_request', err.message, err.field);
        throw err;
      }
      if (!csv) {
        const rows = await store.listEvents(filter);
        const last = rows.at(-1);
        return {
          data: rows.map(toPublicEvent),
          next_cursor: rows.length === filter.limit && last ? eventCursor(last.id) : null,
        };
      }
      // CSV: pages of 1000 until the limit, so one export is bounded in time and memory.
      let out = eventCsvHeader();
      let got = 0;
      let beforeId = filter.beforeId;
      let lastId: number | undefined;
      while (got < filter.limit) {
        const pageSize = Math.min(1000, filter.limit - got);
        const rows = await store.listEvents({ ...filter, beforeId, limit: pageSize });
        for (const r of rows) out += eventCsvRow(toPublicEvent(r));
        got += rows.length;
        lastId = rows.at(-1)?.id ?? lastId;
        if (rows.length < pageSize) {
          lastId = undefined;
          break;
        }
        beforeId = lastId;
      }
      if (lastId !== undefined) reply.header('x-next-cursor', eventCursor(lastId));
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', 'attachment; filename="events.csv"')
        .serializer((body: unknown) => String(body))
        .send(out);
    },
  );
}
