import type { FastifyInstance } from 'fastify';
import { credentialActor, recordAudit } from '../audit/audit.ts';
import { AuthInputError, createCredential } from '../auth/accounts.ts';
import { API_SCOPES, type ApiScope, isApiScope } from '../auth/scopes.ts';
import type { Store } from '../store/store.ts';
import type { Credential, CredentialKind } from '../store/types.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { ApiPrincipal, KeyGate } from './send-api.ts';

const keySchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    prefix: { type: 'string', description: 'The visible part of the key (pb_…); the secret follows a dot' },
    scopes: { type: 'array', items: { type: 'string', enum: [...API_SCOPES] } },
    stream: { type: 'string', description: 'Default stream of messages that name none' },
    created_at: { type: 'string', format: 'date-time' },
  },
} as const;

function keyBody(c: Credential) {
  return {
    id: c.id,
    prefix: c.name,
    scopes: c.scopes,
    stream: c.defaultStream || 'outbound',
    created_at: new Date(c.createdAt).toISOString(),
  };
}

/**
 * /v1/keys: the account's API keys (admin scope): list, create (the secret is in the answer,
 * once; only its scrypt hash is stored), revoke. A key sees and revokes only its own account's
 * keys; another account's key id is "not found".
 */
export function registerKeyRoutes(
  app: FastifyInstance,
  deps: { store: Store; keys: KeyGate; clock: () => number },
): void {
  const { store, keys, clock } = deps;
  const tags = ['keys'];

  app.get(
    '/v1/keys',
    documented({
      tags,
      summary: "The account's active API keys (without secrets)",
      security,
      response: {
        200: { type: 'object', properties: { data: { type: 'array', items: keySchema } } },
        '4xx': errorSchema,
      },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'admin');
      const list = await store.listCredentials({ accountId: principal.accountId, kind: 'api' });
      return { data: list.map(keyBody) };
    },
  );

  app.post(
    '/v1/keys',
    documented({
      tags,
      summary: 'Create an API key; the answer holds its secret, shown this once',
      security,
      body: {
        type: 'object',
        additionalProperties: false,
        properties: {
          scopes: {
            type: 'array',
            items: { type: 'string', enum: [...API_SCOPES] },
            description: 'Default send, read',
          },
          stream: { type: 'string', description: 'Default stream (must exist); default outbound' },
        },
      },
      response: {
        201: { ...keySchema, properties: { ...keySchema.properties, secret: { type: 'string' } } },
        '4xx': errorSchema,
      },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const body = (request.body ?? {}) as Record<string, unknown>;
      if (typeof body !== 'object' || Array.isArray(body))
        throw new ApiError('invalid_request', 'send {scopes?, stream?}');
      for (const key of Object.keys(body)) {
        if (key !== 'scopes' && key !== 'stream')
          throw new ApiError('invalid_request', `unknown field "${key}"`, key);
      }
      let scopes: ApiScope[] | undefined;
      if (body.scopes !== undefined) {
        if (
          !Array.isArray(body.scopes) ||
          body.scopes.length === 0 ||
          !body.scopes.every((s) => isApiScope(String(s)))
        )
          throw new ApiError(
            'invalid_request',
            `scopes must be a non-empty list of ${API_SCOPES.join(', ')}`,
            'scopes',
          );
        scopes = body.scopes as ApiScope[];
      }
      if (body.stream !== undefined && (typeof body.stream !== 'string' || body.stream.length > 64))
        throw new ApiError('invalid_request', 'stream must be a stream name', 'stream');
      const account = await store.getAccount(principal.accountId);
      if (!account) throw new ApiError('unauthorized', 'the account of this key no longer exists');
      let issued: Awaited<ReturnType<typeof createCredential>>;
      try {
        issued = await createCredential(
          store,
          account,
          {
            kind: 'api',
            ...(scopes ? { scopes } : {}),
            ...(typeof body.stream === 'string' ? { stream: body.stream } : {}),
          },
          clock(),
        );
      } catch (err) {
        if (err instanceof AuthInputError)
          throw new ApiError(
            'invalid_request',
            err.message,
            /stream/i.test(err.message) ? 'stream' : 'scopes',
          );
        throw err;
      }
      await recordAudit(store, {
        actor: credentialActor(principal.credentialId),
        accountId: account.id,
        action: 'credential.create',
        target: issued.credential.id,
        details: { kind: 'api', prefix: issued.credential.name, scopes: issued.credential.scopes },
      });
      return reply.code(201).send({ ...keyBody(issued.credential), secret: issued.secret });
    },
  );

  app.delete(
    '/v1/keys/:id',
    documented({
      tags,
      summary: 'Revoke an API key (it stops working at once)',
      security,
      params: { type: 'object', properties: { id: { type: 'string' } } },
      response: { 204: { type: 'null' }, '4xx': errorSchema },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const { id } = request.params as { id: string };
      await revokeOwnCredential({ store, clock }, principal, id, {
        kinds: ['api'],
        what: 'API key',
        details: (c) => ({ kind: 'api', prefix: c.name }),
      });
      return reply.code(204).send();
    },
  );
}

/**
 * Revokes one of the principal's own live credentials of the given kinds and audits it; any
 * other id (unknown, another account's, another kind, revoked already) is 404, all alike.
 */
export async function revokeOwnCredential(
  deps: { store: Store; clock: () => number },
  principal: ApiPrincipal,
  id: string,
  options: {
    kinds: readonly CredentialKind[];
    what: string;
    details: (c: Credential) => Record<string, unknown>;
  },
): Promise<void> {
  const { store, clock } = deps;
  const credential = /^[\w-]{1,64}$/.test(id) ? await store.getCredential(id) : undefined;
  if (
    !credential ||
    !options.kinds.includes(credential.kind) ||
    credential.accountId !== principal.accountId ||
    credential.revokedAt !== null
  ) {
    throw new ApiError('not_found', `no ${options.what} "${id.slice(0, 64)}"`, 'id');
  }
  await store.revokeCredential(credential.id, clock());
  await recordAudit(store, {
    actor: credentialActor(principal.credentialId),
    accountId: principal.accountId,
    action: 'credential.revoke',
    target: credential.id,
    details: options.details(credential),
  });
}
