import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ActiveSession, Sessions } from '../dashboard/sessions.ts';
import { sameSecret } from '../dashboard/sessions.ts';
import { roleScopes } from '../dashboard/users.ts';
import { ApiError } from './errors.ts';
import type { ApiPrincipal } from './send-api.ts';

/** The cookie that carries a dashboard session's token (httpOnly, SameSite=Strict). */
export const SESSION_COOKIE = 'postbote_session';

const principals = new WeakMap<FastifyRequest, ApiPrincipal>();

/**
 * The principal a dashboard session gave this request (checked by the hook below, CSRF
 * included), or undefined. `authorize` (keys.ts) uses it when no Bearer key was sent.
 */
export function sessionPrincipal(request: FastifyRequest): ApiPrincipal | undefined {
  return principals.get(request);
}

/** The session's stand-in for an API key: its user's account, and the scopes of its role. */
export function principalOf(active: ActiveSession): ApiPrincipal {
  return {
    accountId: active.user.accountId,
    // Distinct from every credential id (those are time-sortable ids): the rate limit's key,
    // and what messages sent from the dashboard record as their credential.
    credentialId: `user:${active.user.id}`,
    scopes: roleScopes(active.user.role),
    defaultStream: '',
  };
}

/** One cookie's value from a Cookie header, or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Refuses a request whose Origin (sent by browsers on every cross-origin and every non-GET
 * request) names another host than the one it was sent to: a second line behind SameSite.
 */
export function checkOrigin(request: FastifyRequest): void {
  const origin = request.headers.origin;
  if (origin === undefined) return;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    throw new ApiError('forbidden', 'the request comes from another site (Origin)');
  }
  if (host !== request.headers.host)
    throw new ApiError('forbidden', 'the request comes from another site (Origin)');
}

/**
 * Lets a dashboard session stand in for a Bearer key on /v1: a request without an
 * Authorization header but with a session cookie gets the session's principal. A request that
 * changes something must echo the session's CSRF token in `X-CSRF-Token` (the session cookie is
 * sent by the browser on its own; the token only by our page, which read it from
 * /auth/session). Requests with a Bearer key are not touched.
 */
export function installSessionAuth(app: FastifyInstance, sessions: Sessions): void {
  app.addHook('onRequest', async (request) => {
    if (!request.url.startsWith('/v1/') || request.headers.authorization !== undefined) return;
    const token = readCookie(request.headers.cookie, SESSION_COOKIE);
    if (token === undefined) return;
    let active: ActiveSession | undefined;
    try {
      active = await sessions.resolve(token);
    } catch (err) {
      request.log.warn({ err }, 'dashboard session lookup failed');
      throw new ApiError('unavailable', 'the store is not reachable; try again');
    }
    if (!active) throw new ApiError('unauthorized', 'the dashboard session has ended; log in again');
    if (!SAFE_METHODS.has(request.method)) {
      checkOrigin(request);
      const sent = request.headers['x-csrf-token'];
      if (typeof sent !== 'string' || !sameSecret(sent, active.session.csrfToken)) {
        throw new ApiError('forbidden', 'missing or wrong X-CSRF-Token for this session');
      }
    }
    principals.set(request, principalOf(active));
  });
}
