import type { FastifyInstance } from 'fastify';
import { credentialActor } from '../audit/audit.ts';
import type { Guard } from '../guard/guard.ts';
import type { GuardState } from '../store/types.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { ApiPrincipal, KeyGate } from './send-api.ts';

/**
 * /v1/accounts/{id}: the account's sending status, pause and resume. An API key acts on its own
 * account only (another id is 404). The decision on resuming: a key with the `admin` scope may
 * pause its account (or a stream) and resume what a key of the account paused, but not a pause
 * by the reputation guard or an operator: an account must not switch off the protection that
 * stopped it. Those are resumed by an operator (`postbote accounts resume NAME`).
 */

function stateBody(s: GuardState) {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  return {
    stream: s.stream,
    paused: s.pausedAt !== null,
    paused_at: iso(s.pausedAt),
    paused_by: s.pausedBy,
    reason: s.reason,
    resumed_at: iso(s.resumedAt),
    warned_at: iso(s.warnedAt),
  };
}

/** Who may resume a pause made by `pausedBy` through the API: only the account's own keys. */
export function apiMayResume(pausedBy: string): boolean {
  return pausedBy.startsWith('credential:');
}

export function registerAccountRoutes(app: FastifyInstance, deps: { guard: Guard; keys: KeyGate }): void {
  const { guard, keys } = deps;
  const tags = ['accounts'];
  const own = (principal: ApiPrincipal, id: string): void => {
    if (id !== principal.accountId) throw new ApiError('not_found', 'no such account', 'id');
  };
  const streamOf = (body: unknown): string => {
    if (body === undefined || body === null) return '';
    const o = body as { stream?: unknown };
    if (typeof body !== 'object' || Array.isArray(body)) {
      throw new ApiError('invalid_request', 'the body is {"stream"?: name}', 'stream');
    }
    if (o.stream === undefined) return '';
    if (typeof o.stream !== 'string' || o.stream.length > 64) {
      throw new ApiError('invalid_request', 'stream must be a stream name', 'stream');
    }
    return o.stream.trim().toLowerCase();
  };

  app.get(
    '/v1/accounts/:id/status',
    documented({
      tags,
      summary:
        'Whether the account or its streams are paused (by the reputation guard, an operator or a key)',
      security,
      params: { type: 'object', properties: { id: { type: 'string' } } },
      response: { '4xx': errorSchema },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'read');
      const { id } = request.params as { id: string };
      own(principal, id);
      const states = await guard.states(id);
      return {
        id,
        paused: states.some((s) => s.stream === '' && s.pausedAt !== null),
        streams: states.map(stateBody),
      };
    },
  );

  app.post(
    '/v1/accounts/:id/pause',
    documented({
      tags,
      summary: 'Pause sending (the account, or one stream): new mail is accepted and held',
      security,
      params: { type: 'object', properties: { id: { type: 'string' } } },
      body: { type: 'object', properties: { stream: { type: 'string' }, reason: { type: 'string' } } },
      response: { '4xx': errorSchema },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'admin');
      const { id } = request.params as { id: string };
      own(principal, id);
      const stream = streamOf(request.body);
      const reason = (request.body as { reason?: unknown } | undefined)?.reason;
      const paused = await guard.pause({
        accountId: id,
        stream,
        actor: credentialActor(principal.credentialId),
        reason:
          typeof reason === 'string' && reason.trim() !== ''
            ? reason.slice(0, 300)
            : 'paused through the API',
      });
      return { id, stream, paused: true, changed: paused };
    },
  );

  app.post(
    '/v1/accounts/:id/resume',
    documented({
      tags,
      summary:
        'Resume what a key of this account paused and release the held mail (pauses by the reputation guard or an operator are resumed by an operator)',
      security,
      params: { type: 'object', properties: { id: { type: 'string' } } },
      body: { type: 'object', properties: { stream: { type: 'string' } } },
      response: { '4xx': errorSchema },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'admin');
      const { id } = request.params as { id: string };
      own(principal, id);
      const stream =
        (request.body as { stream?: unknown } | undefined)?.stream === undefined
          ? undefined
          : streamOf(request.body);
      const paused = (await guard.states(id)).filter(
        (s) => s.pausedAt !== null && (stream === undefined || s.stream === stream),
      );
      if (paused.length === 0) throw new ApiError('not_found', 'nothing of this account is paused', 'stream');
      const locked = paused.find((s) => !apiMayResume(s.pausedBy));
      if (locked) {
        throw new ApiError(
          'forbidden',
          `${locked.stream === '' ? 'the account' : `stream ${locked.stream}`} was paused by ${locked.pausedBy} (${locked.reason}); an operator resumes it with postbote accounts resume`,
        );
      }
      const result = await guard.resume({
        accountId: id,
        ...(stream === undefined ? {} : { stream }),
        actor: credentialActor(principal.credentialId),
      });
      return { id, resumed: result.resumed, released: result.released };
    },
  );
}
