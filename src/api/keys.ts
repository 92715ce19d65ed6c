import type { FastifyRequest } from 'fastify';
import type { ApiKeyVerifier } from '../auth/api-keys.ts';
import { isApiScope } from '../auth/scopes.ts';
import { ApiError } from './errors.ts';
import type { RateLimiter } from './rate-limit.ts';
import type { ApiPrincipal, ApiScope, KeyGate } from './send-api.ts';
import { sessionPrincipal } from './session-auth.ts';

/** The KeyGate every front end uses: API key verification and the per-key rate limit. */
export function createKeyGate(options: { verifier: ApiKeyVerifier; limiter: RateLimiter }): KeyGate {
  return {
    async authenticate(secret, clientIp) {
      const check = await options.verifier.verify(secret, clientIp);
      if (!check.ok) {
        if (check.reason === 'unavailable')
          throw new ApiError('unavailable', 'the store is not reachable; try again');
        return undefined;
      }
      const c = check.credential;
      return {
        accountId: c.accountId,
        credentialId: c.id,
        scopes: c.scopes.filter(isApiScope),
        defaultStream: c.defaultStream,
      };
    },
    take: (principal) => options.limiter.take(principal.credentialId),
  };
}

/** The Bearer token of a request, or undefined. */
function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/**
 * The native API's check: a valid `Authorization: Bearer <key>` with `scope`, within its rate.
 * Throws the ApiError to answer otherwise.
 */
export async function authorize(
  gate: KeyGate,
  request: FastifyRequest,
  scope: ApiScope,
): Promise<ApiPrincipal> {
  const token = bearer(request);
  // A dashboard session (api/session-auth.ts, CSRF checked there) stands in for a key.
  const session = token ? undefined : sessionPrincipal(request);
  if (!token && !session)
    throw new ApiError('unauthorized', 'send an API key as "Authorization: Bearer <key>"');
  const principal = session ?? (token ? await gate.authenticate(token, request.ip) : undefined);
  if (!principal)
    throw new ApiError('unauthorized', 'the API key is not valid (unknown, revoked or mistyped)');
  if (!principal.scopes.includes(scope)) {
    throw new ApiError(
      'forbidden',
      session ? `your dashboard role lacks the "${scope}" scope` : `this API key lacks the "${scope}" scope`,
    );
  }
  const taken = gate.take(principal);
  if (!taken.ok) {
    throw new ApiError(
      'rate_limited',
      `too many requests for this API key; retry in ${taken.retryAfterSeconds} s`,
      undefined,
      {
        'retry-after': String(taken.retryAfterSeconds),
      },
    );
  }
  return principal;
}
