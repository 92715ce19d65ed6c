import type { FastifyInstance } from 'fastify';
import { type Audit, credentialActor } from '../audit/audit.ts';
import { SuppressionError, type SuppressionInput, type Suppressions } from '../bounces/suppressions.ts';
import { SUPPRESSION_REASONS, type Suppression, type SuppressionReason } from '../store/types.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { parseSendAt } from './message-request.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

function suppressionBody(s: Suppression) {
  return {
    address: s.address,
    scope: s.scope,
    reason: s.reason,
    ...(s.category ? { category: s.category } : {}),
    source: s.source,
    details: s.details,
    created_at: new Date(s.createdAt).toISOString(),
    expires_at: s.expiresAt === null ? null : new Date(s.expiresAt).toISOString(),
  };
}

const cursorOf = (s: Suppression) => Buffer.from(`${s.address}\0${s.scope}`).toString('base64url');

function readCursor(cursor: string): { address: string; scope: string } {
  const [address, scope, extra] = Buffer.from(cursor, 'base64url').toString('utf8').split('\0');
  if (address === undefined || scope === undefined || extra !== undefined) {
    throw new ApiError('invalid_request', 'cursor is not one this API gave', 'cursor');
  }
  return { address, scope };
}

function input(item: unknown, i: number): SuppressionInput {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    throw new ApiError(
      'invalid_request',
      'a suppression is {address, scope?, reason?, details?, expires_at?}',
      `suppressions[${i}]`,
    );
  }
  const o = item as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!['address', 'scope', 'reason', 'details', 'expires_at'].includes(key)) {
      throw new ApiError('invalid_request', `unknown field "${key}"`, `suppressions[${i}].${key}`);
    }
  }
  if (typeof o.address !== 'string')
    throw new ApiError('invalid_address', 'address is required', `suppressions[${i}].address`);
  let expiresAt: number | undefined;
  try {
    expiresAt = parseSendAt(o.expires_at);
  } catch {
    throw new ApiError(
      'invalid_request',
      'expires_at must be an RFC 3339 date-time',
      `suppressions[${i}].expires_at`,
    );
  }
  return {
    address: o.address,
    ...(typeof o.scope === 'string' ? { scope: o.scope } : {}),
    ...(typeof o.reason === 'string' ? { reason: o.reason as SuppressionReason } : {}),
    ...(typeof o.details === 'string' ? { details: o.details } : {}),
    ...(expiresAt === undefined ? {} : { expiresAt }),
  };
}

/** /v1/suppressions: the account's suppression list, by hand and as CSV. */
export function registerSuppressionRoutes(
  app: FastifyInstance,
  deps: { suppressions: Suppressions; keys: KeyGate; audit?: Audit },
): void {
  const { suppressions, keys } = deps;
  const tags = ['suppressions'];
  const asApiError = (err: unknown): never => {
    if (err instanceof SuppressionError) {
      throw new ApiError(
        err.field.startsWith('address') ? 'invalid_address' : 'invalid_request',
        err.message,
        err.field,
      );
    }
    throw err;
  };

  app.get(
    '/v1/suppressions',
    documented({
      tags,
      summary: "The account's suppressed addresses, by address",
      security,
      querystring: {
        type: 'object',
        properties: {
          address: { type: 'string' },
          reason: { type: 'string', enum: [...SUPPRESSION_REASONS] },
          scope: { type: 'string', description: "'' = the whole account, else a stream" },
          limit: { type: 'integer', minimum: 1, maximum: 1000 },
          cursor: { type: 'string' },
        },
      },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'read');
      const q = request.query as Record<string, string | undefined>;
      if (q.reason !== undefined && !(SUPPRESSION_REASONS as readonly string[]).includes(q.reason)) {
        throw new ApiError(
          'invalid_request',
          `reason must be one of ${SUPPRESSION_REASONS.join(', ')}`,
          'reason',
        );
      }
      const limit = q.limit === undefined ? 100 : Number(q.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw new ApiError('invalid_request', 'limit must be a whole number from 1 to 1000', 'limit');
      }
      const rows = await suppressions.list({
        accountId: principal.accountId,
        ...(q.address ? { address: q.address.toLowerCase() } : {}),
        ...(q.reason ? { reason: q.reason as SuppressionReason } : {}),
        ...(q.scope !== undefined ? { scope: q.scope.toLowerCase() } : {}),
        ...(q.cursor ? { after: readCursor(q.cursor) } : {}),
        limit,
      });
      const last = rows[rows.length - 1];
      return {
        data: rows.map(suppressionBody),
        next_cursor: rows.length === limit && last ? cursorOf(last) : null,
      };
    },
  );

  app.post(
    '/v1/suppressions',
    documented({
      tags,
      summary:
        'Suppress addresses (reason manual unless given); replaces an entry of the same address and scope',
      security,
      body: {
        type: 'object',
        required: ['suppressions'],
        properties: {
          suppressions: {
            type: 'array',
            maxItems: 1000,
            items: {
              type: 'object',
              required: ['address'],
              properties: {
                address: { type: 'string' },
                scope: { type: 'string' },
                reason: { type: 'string', enum: [...SUPPRESSION_REASONS] },
                details: { type: 'string' },
                expires_at: { type: 'string', format: 'date-time' },
              },
            },
          },
        },
      },
      response: { '4xx': errorSchema },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const body = request.body as { suppressions?: unknown } | null;
      if (!Array.isArray(body?.suppressions) || body.suppressions.length === 0) {
        throw new ApiError('invalid_request', 'the body is {"suppressions": [{address, …}]}', 'suppressions');
      }
      if (body.suppressions.length > 1000)
        throw new ApiError('batch_too_large', 'at most 1000 per call', 'suppressions');
      const added = await suppressions
        .add(principal.accountId, body.suppressions.map(input), 'api')
        .catch(asApiError);
      return reply.code(201).send({ data: added.map(suppressionBody) });
    },
  );

  app.delete(
    '/v1/suppressions/:address',
    documented({
      tags,
      summary: 'Remove an address from the list (?scope= for a stream entry)',
      security,
      params: { type: 'object', properties: { address: { type: 'string' } } },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const { address } = request.params as { address: string };
      const scope = (request.query as { scope?: string }).scope ?? '';
      if (!(await suppressions.remove(principal.accountId, address, scope))) {
        throw new ApiError(
          'not_found',
          `${address.slice(0, 80)} is not suppressed${scope ? ` for ${scope}` : ''}`,
          'address',
        );
      }
      await deps.audit?.record({
        actor: credentialActor(principal.credentialId),
        accountId: principal.accountId,
        action: 'suppression.remove',
        target: address.trim().toLowerCase(),
        details: { scope },
      });
      return reply.code(204).send();
    },
  );

  app.get(
    '/v1/suppressions/export',
    documented({ tags, summary: 'The whole list as CSV', security }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'read');
      return reply.type('text/csv; charset=utf-8').send(await suppressions.exportCsv(principal.accountId));
    },
  );

  // CSV arrives as text, not JSON: this route has its own parser.
  app.register(async (scope) => {
    scope.addContentTypeParser(['text/csv', 'text/plain'], { parseAs: 'string' }, (_request, body, done) =>
      done(null, body),
    );
    scope.post(
      '/v1/suppressions/import',
      documented({
        tags,
        summary:
          'Import CSV (a header naming address, and optionally scope, reason, details, expires_at; or one address per line)',
        security,
      }),
      async (request) => {
        const principal = await authorize(keys, request, 'admin');
        if (typeof request.body !== 'string') throw new ApiError('unsupported_media_type', 'send text/csv');
        const imported = await suppressions.importCsv(principal.accountId, request.body).catch(asApiError);
        return { imported };
      },
    );
  });
}
