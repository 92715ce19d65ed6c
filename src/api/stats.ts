import type { FastifyInstance } from 'fastify';
import { COUNTERS } from '../stats/counters.ts';
import { MAILBOX_PROVIDERS } from '../stats/providers.ts';
import {
  MAX_BUCKETS,
  parseStatsQuery,
  readStats,
  type StatsParams,
  StatsQueryError,
} from '../stats/query.ts';
import type { Store } from '../store/store.ts';
import { STATS_DIMENSIONS } from '../store/types.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

const nullableRate = { type: ['number', 'null'] } as const;

/** One bucket (or the whole range, in `totals`) of one group. */
const entrySchema = {
  type: 'object',
  properties: {
    start: {
      type: 'string',
      format: 'date-time',
      description: 'Start of the UTC hour or day (not in totals)',
    },
    ...Object.fromEntries(
      STATS_DIMENSIONS.map((d) => [d, { type: 'string', description: `Only when grouped by ${d}` }]),
    ),
    counters: {
      type: 'object',
      properties: Object.fromEntries(COUNTERS.map((c) => [c, { type: 'integer' }])),
    },
    hard_bounces_by_category: { type: 'object', additionalProperties: { type: 'integer' } },
    soft_bounces_by_category: { type: 'object', additionalProperties: { type: 'integer' } },
    rates: {
      type: 'object',
      description:
        'delivery_rate = delivered / (delivered + hard_bounced + expired); bounce_rate = hard_bounced / (same); ' +
        'complaint_rate = complained / delivered; open_rate = opened_unique / delivered; click_rate = ' +
        'clicked_unique / delivered. null when the denominator is 0.',
      properties: {
        delivery_rate: nullableRate,
        bounce_rate: nullableRate,
        complaint_rate: nullableRate,
        open_rate: nullableRate,
        click_rate: nullableRate,
      },
    },
  },
} as const;

/** GET /v1/stats: the account's counters by hour or day, grouped as asked (read scope). */
export function registerStatsRoutes(
  app: FastifyInstance,
  deps: { store: Store; keys: KeyGate; clock: () => number },
): void {
  app.get(
    '/v1/stats',
    documented({
      tags: ['stats'],
      summary: "The account's delivery and engagement counters per hour or day, with derived rates",
      description:
        'Counters come from the event log, rolled up every few seconds by the elected node, so the newest ' +
        'events may be missing for a moment. Without `tag` in group_by (or a tag filter) every message counts ' +
        'once; grouped by tag, a message with two tags counts in both and untagged mail in none.',
      security,
      querystring: {
        type: 'object',
        properties: {
          group_by: {
            type: 'string',
            description: `Comma-separated: ${STATS_DIMENSIONS.join(', ')}`,
            examples: ['stream,provider'],
          },
          from: {
            type: 'string',
            description:
              'RFC 3339 or a date; rounded down to the interval. Default: 24 hours or 30 days before to',
          },
          to: { type: 'string', description: 'RFC 3339 or a date, exclusive; rounded up. Default: now' },
          interval: {
            type: 'string',
            enum: ['hour', 'day'],
            description: `Default hour. At most ${MAX_BUCKETS.hour} hours or ${MAX_BUCKETS.day} days per query`,
          },
          stream: { type: 'string', description: 'Only this stream' },
          tag: { type: 'string', description: 'Only messages with this tag' },
          domain: { type: 'string', description: 'Only this sending domain' },
          provider: {
            type: 'string',
            enum: [...MAILBOX_PROVIDERS],
            description: 'Only this mailbox provider',
          },
        },
      },
      response: {
        200: {
          type: 'object',
          properties: {
            from: { type: 'string', format: 'date-time' },
            to: { type: 'string', format: 'date-time' },
            interval: { type: 'string', enum: ['hour', 'day'] },
            group_by: { type: 'array', items: { type: 'string', enum: [...STATS_DIMENSIONS] } },
            data: { type: 'array', items: entrySchema },
            totals: { type: 'array', items: entrySchema },
          },
        },
        '4xx': errorSchema,
      },
    }),
    async (request) => {
      const principal = await authorize(deps.keys, request, 'read');
      const raw = request.query as Record<string, unknown>;
      const params: StatsParams = {};
      for (const name of ['group_by', 'from', 'to', 'interval', ...STATS_DIMENSIONS] as const) {
        const value = raw[name];
        if (value === undefined) continue;
        // A repeated parameter arrives as an array: one value per parameter, say which.
        if (typeof value !== 'string') throw new ApiError('invalid_request', `give ${name} once`, name);
        params[name] = value;
      }
      for (const name of Object.keys(raw)) {
        if (!(name in params) && raw[name] !== undefined)
          throw new ApiError(
            'invalid_request',
            `unknown parameter ${JSON.stringify(name.slice(0, 40))}`,
            name,
          );
      }
      let query: ReturnType<typeof parseStatsQuery>;
      try {
        query = parseStatsQuery(principal.accountId, params, deps.clock());
      } catch (err) {
        if (err instanceof StatsQueryError) throw new ApiError('invalid_request', err.message, err.field);
        throw err;
      }
      return readStats(deps.store, query);
    },
  );
}
