import type { FastifyInstance } from 'fastify';
import { credentialActor, recordAudit } from '../audit/audit.ts';
import { AuthInputError } from '../auth/errors.ts';
import { normaliseStreamName, updateStreamTracking } from '../auth/streams.ts';
import type { Store } from '../store/store.ts';
import type { Stream, StreamTracking } from '../store/types.ts';
import { effectiveTracking } from '../tracking/settings.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

/**
 * /v1/streams: the account's streams (the default ones included) with kind, pool and tracking
 * switches, and PATCH for the switches (what `postbote streams update` changes). Kind and pool
 * stay with the operator: a pool names egress addresses in the configuration.
 */

/** The API's names of the tracking switches and the stored ones. */
const SWITCHES = {
  opens: 'opens',
  clicks: 'clicks',
  text_links: 'textLinks',
  list_unsubscribe: 'listUnsubscribe',
} as const satisfies Record<string, keyof StreamTracking>;
type ApiSwitch = keyof typeof SWITCHES;

const switchesSchema = {
  type: 'object',
  properties: Object.fromEntries(Object.keys(SWITCHES).map((k) => [k, { type: 'boolean' }])),
} as const;

function streamBody(s: Stream) {
  const own = s.settings?.tracking ?? {};
  const effective = effectiveTracking(s.kind, own, undefined);
  const api = (t: Partial<Record<keyof StreamTracking, boolean | undefined>>) =>
    Object.fromEntries(
      (Object.entries(SWITCHES) as [ApiSwitch, keyof StreamTracking][])
        .filter(([, stored]) => t[stored] !== undefined)
        .map(([name, stored]) => [name, t[stored]]),
    );
  return {
    name: s.name,
    kind: s.kind,
    pool: s.pool || null,
    created_at: new Date(s.createdAt).toISOString(),
    tracking: api(effective),
    tracking_overrides: api(own),
  };
}

/** `{tracking: {opens?: true|false|null, …}}`: null = back to the kind's default. */
function changesOf(body: unknown): { [K in keyof StreamTracking]?: boolean | null } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError('invalid_request', 'the body is {"tracking": {…}}');
  }
  const { tracking, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) {
    throw new ApiError('invalid_request', `unknown field "${unknown}" (only tracking can change)`, unknown);
  }
  if (typeof tracking !== 'object' || tracking === null || Array.isArray(tracking)) {
    throw new ApiError('invalid_request', 'tracking must be an object of switches', 'tracking');
  }
  const changes: { [K in keyof StreamTracking]?: boolean | null } = {};
  for (const [key, value] of Object.entries(tracking)) {
    if (!Object.hasOwn(SWITCHES, key)) {
      throw new ApiError(
        'invalid_request',
        `unknown switch "${key}": use ${Object.keys(SWITCHES).join(', ')}`,
        `tracking.${key}`,
      );
    }
    if (value !== null && typeof value !== 'boolean') {
      throw new ApiError(
        'invalid_request',
        `${key} must be true, false or null (the default)`,
        `tracking.${key}`,
      );
    }
    changes[SWITCHES[key as ApiSwitch]] = value;
  }
  if (Object.keys(changes).length === 0)
    throw new ApiError('invalid_request', 'nothing to change', 'tracking');
  return changes;
}

export function registerStreamRoutes(app: FastifyInstance, deps: { store: Store; keys: KeyGate }): void {
  const { store, keys } = deps;
  const tags = ['streams'];
  const streamSchema = {
    type: 'object',
    properties: {
      name: { type: 'string' },
      kind: { type: 'string', enum: ['transactional', 'broadcast'] },
      pool: { type: ['string', 'null'], description: "null = the kind's default pool" },
      created_at: { type: 'string' },
      tracking: { ...switchesSchema, description: 'In force: the kind’s defaults and the overrides' },
      tracking_overrides: { ...switchesSchema, description: "The stream's own switches" },
    },
  } as const;

  app.get(
    '/v1/streams',
    documented({
      tags,
      summary: "The account's streams (the default ones included) with kind, pool and tracking",
      security,
      response: {
        200: { type: 'object', properties: { data: { type: 'array', items: streamSchema } } },
        '4xx': errorSchema,
      },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'read');
      return { data: (await store.listStreams(principal.accountId)).map(streamBody) };
    },
  );

  app.patch(
    '/v1/streams/:name',
    documented({
      tags,
      summary:
        "Change a stream's tracking switches (null = the kind's default); a running node applies it within 10 s",
      security,
      params: { type: 'object', properties: { name: { type: 'string' } } },
      body: {
        type: 'object',
        properties: {
          tracking: {
            type: 'object',
            properties: Object.fromEntries(
              Object.keys(SWITCHES).map((k) => [k, { type: ['boolean', 'null'] }]),
            ),
          },
        },
      },
      response: { 200: streamSchema, '4xx': errorSchema },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'admin');
      const { name } = request.params as { name: string };
      const changes = changesOf(request.body);
      const account = await store.getAccount(principal.accountId);
      if (!account) throw new ApiError('unauthorized', 'the API key’s account is gone');
      if (!(await store.getStream(account.id, normaliseStreamName(name)))) {
        throw new ApiError('not_found', 'no such stream', 'name');
      }
      let stream: Stream;
      try {
        stream = await updateStreamTracking(store, account, name, changes);
      } catch (err) {
        if (err instanceof AuthInputError) throw new ApiError('invalid_request', err.message, 'name');
        throw err;
      }
      await recordAudit(store, {
        actor: credentialActor(principal.credentialId),
        accountId: account.id,
        action: 'stream.update',
        target: stream.name,
        details: { tracking: changes },
      });
      return streamBody(stream);
    },
  );
}
