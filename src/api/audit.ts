import type { FastifyInstance } from 'fastify';
import type { Audit } from '../audit/audit.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

/** GET /v1/audit: the account's audit trail, newest first (admin scope; one account's entries only). */
export function registerAuditRoutes(app: FastifyInstance, deps: { audit: Audit; keys: KeyGate }): void {
  app.get(
    '/v1/audit',
    documented({
      tags: ['audit'],
      summary:
        'Who changed what in this account, newest first (credentials, domains, suppressions, pauses, …)',
      security,
      querystring: {
        type: 'object',
        properties: {
          limit: { type: 'integer', minimum: 1, maximum: 1000 },
          cursor: { type: 'string', description: 'next_cursor of the previous page' },
        },
      },
      response: { '4xx': errorSchema },
    }),
    async (request) => {
      const principal = await authorize(deps.keys, request, 'admin');
      const q = request.query as { limit?: string; cursor?: string };
      const limit = q.limit === undefined ? 100 : Number(q.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw new ApiError('invalid_request', 'limit must be a whole number from 1 to 1000', 'limit');
      }
      let before: number | undefined;
      if (q.cursor !== undefined) {
        before = Number(q.cursor);
        if (!/^\d{1,15}$/.test(q.cursor) || before < 1) {
          throw new ApiError('invalid_request', 'cursor is not one this API gave', 'cursor');
        }
      }
      const rows = await deps.audit.list({
        accountId: principal.accountId,
        limit,
        ...(before === undefined ? {} : { before }),
      });
      const last = rows[rows.length - 1];
      return {
        data: rows.map((e) => ({
          id: e.id,
          at: new Date(e.at).toISOString(),
          actor: e.actor,
          action: e.action,
          target: e.target,
          details: e.details,
        })),
        next_cursor: rows.length === limit && last ? String(last.id) : null,
      };
    },
  );
}
