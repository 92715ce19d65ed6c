import type { FastifyInstance } from 'fastify';
import { credentialActor, recordAudit } from '../audit/audit.ts';
import { AuthInputError, createCredential } from '../auth/accounts.ts';
import type { Store } from '../store/store.ts';
import type { Credential } from '../store/types.ts';
import { ApiError } from './errors.ts';
import { revokeOwnCredential } from './key-routes.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

/** The kinds this route manages; API keys have their own (/v1/keys). */
const KINDS = ['smtp', 'ip'] as const;
type Kind = (typeof KINDS)[number];
/** An IP credential names at most this many CIDRs (a bound on hostile input, far above real use). */
const MAX_CIDRS = 64;

const credentialSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    kind: { type: 'string', enum: [...KINDS] },
    username: { type: 'string', description: 'SMTP login name (kind smtp)' },
    cidrs: { type: 'array', items: { type: 'string' }, description: 'Allowed client networks (kind ip)' },
    stream: { type: 'string', description: 'Default stream of messages that name none' },
    created_at: { type: 'string', format: 'date-time' },
  },
} as const;

function credentialBody(c: Credential) {
  return {
    id: c.id,
    kind: c.kind as Kind,
    ...(c.kind === 'smtp' ? { username: c.name } : { cidrs: c.cidrs }),
    stream: c.defaultStream || 'outbound',
    created_at: new Date(c.createdAt).toISOString(),
  };
}

/** Validates `{kind, username?, cidrs?, stream?}`; typed errors name the field. */
function requestOf(body: unknown): { kind: Kind; username?: string; cidrs?: string[]; stream?: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new ApiError('invalid_request', 'send {kind: "smtp", username} or {kind: "ip", cidrs}');
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    if (!['kind', 'username', 'cidrs', 'stream'].includes(key))
      throw new ApiError('invalid_request', `unknown field "${key}"`, key);
  }
  if (b.stream !== undefined && (typeof b.stream !== 'string' || b.stream.length > 64))
    throw new ApiError('invalid_request', 'stream must be a stream name', 'stream');
  const stream = b.stream as string | undefined;
  if (b.kind === 'smtp') {
    if (b.cidrs !== undefined) throw new ApiError('invalid_request', 'an SMTP login has no cidrs', 'cidrs');
    if (typeof b.username !== 'string' || b.username.length === 0 || b.username.length > 128)
      throw new ApiError('invalid_request', 'username must be 1-128 characters', 'username');
    return { kind: 'smtp', username: b.username, ...(stream !== undefined ? { stream } : {}) };
  }
  if (b.kind === 'ip') {
    if (b.username !== undefined)
      throw new ApiError('invalid_request', 'an IP credential has no username', 'username');
    if (
      !Array.isArray(b.cidrs) ||
      b.cidrs.length === 0 ||
      b.cidrs.length > MAX_CIDRS ||
      !b.cidrs.every((c) => typeof c === 'string' && c.length > 0 && c.length <= 64)
    )
      throw new ApiError('invalid_request', `cidrs must be a list of 1-${MAX_CIDRS} CIDRs`, 'cidrs');
    return { kind: 'ip', cidrs: b.cidrs as string[], ...(stream !== undefined ? { stream } : {}) };
  }
  throw new ApiError('invalid_request', 'kind must be "smtp" or "ip" (API keys: /v1/keys)', 'kind');
}

/**
 * /v1/credentials: the account's SMTP logins and IP credentials (admin scope): list (never a
 * secret or hash), create (an SMTP password is in the answer, once; only its scrypt hash is
 * stored), revoke. Another account's credential id, or an API key's, is "not found": keys
 * are managed at /v1/keys. Creating and revoking are audited like keys.
 */
export function registerCredentialRoutes(
  app: FastifyInstance,
  deps: { store: Store; keys: KeyGate; clock: () => number },
): void {
  const { store, keys, clock } = deps;
  const tags = ['credentials'];

  app.get(
    '/v1/credentials',
    documented({
      tags,
      summary: "The account's active SMTP logins and IP credentials (without secrets)",
      security,
      response: {
        200: { type: 'object', properties: { data: { type: 'array', items: credentialSchema } } },
        '4xx': errorSchema,
      },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'admin');
      const lists = await Promise.all(
        KINDS.map((kind) => store.listCredentials({ accountId: principal.accountId, kind })),
      );
      return { data: lists.flat().map(credentialBody) };
    },
  );

  app.post(
    '/v1/credentials',
    documented({
      tags,
      summary: 'Create an SMTP login (the answer holds its password, shown this once) or an IP credential',
      security,
      body: {
        type: 'object',
        properties: {
          kind: { type: 'string', enum: [...KINDS] },
          username: {
            type: 'string',
            description: 'SMTP login name (kind smtp), unique among active logins',
          },
          cidrs: {
            type: 'array',
            items: { type: 'string' },
            description: `Client networks allowed to relay without a login (kind ip), 1-${MAX_CIDRS}`,
          },
          stream: { type: 'string', description: 'Default stream (must exist); default outbound' },
        },
        required: ['kind'],
      },
      response: {
        201: {
          ...credentialSchema,
          properties: {
            ...credentialSchema.properties,
            password: { type: 'string', description: 'The SMTP password (kind smtp), shown this once' },
          },
        },
        '4xx': errorSchema,
      },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const wanted = requestOf(request.body ?? {});
      const account = await store.getAccount(principal.accountId);
      if (!account) throw new ApiError('unauthorized', 'the account of this key no longer exists');
      let issued: Awaited<ReturnType<typeof createCredential>>;
      try {
        issued = await createCredential(
          store,
          account,
          {
            ...(wanted.kind === 'smtp'
              ? { kind: 'smtp' as const, username: wanted.username ?? '' }
              : { kind: 'ip' as const, cidrs: wanted.cidrs ?? [] }),
            ...(wanted.stream !== undefined ? { stream: wanted.stream } : {}),
          },
          clock(),
        );
      } catch (err) {
        if (err instanceof AuthInputError)
          throw new ApiError('invalid_request', err.message, fieldOf(err.message, wanted.kind));
        throw err;
      }
      await recordAudit(store, {
        actor: credentialActor(principal.credentialId),
        accountId: account.id,
        action: 'credential.create',
        target: issued.credential.id,
        details: { kind: issued.credential.kind, name: issued.credential.name },
      });
      return reply.code(201).send({
        ...credentialBody(issued.credential),
        ...(issued.secret ? { password: issued.secret } : {}),
      });
    },
  );

  app.delete(
    '/v1/credentials/:id',
    documented({
      tags,
      summary: 'Revoke an SMTP login or IP credential (it stops working at once)',
      security,
      params: { type: 'object', properties: { id: { type: 'string' } } },
      response: { 204: { type: 'null' }, '4xx': errorSchema },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const { id } = request.params as { id: string };
      await revokeOwnCredential({ store, clock }, principal, id, {
        kinds: KINDS,
        what: 'SMTP or IP credential',
        details: (c) => ({ kind: c.kind, name: c.name }),
      });
      return reply.code(204).send();
    },
  );
}

function fieldOf(message: string, kind: Kind): string {
  if (/stream/i.test(message)) return 'stream';
  return kind === 'smtp' ? 'username' : 'cidrs';
}
