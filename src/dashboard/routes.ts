import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../api/errors.ts';
import { checkOrigin, installSessionAuth, readCookie, SESSION_COOKIE } from '../api/session-auth.ts';
import type { Store } from '../store/store.ts';
import type { DashboardUser } from '../store/types.ts';
import { type ActiveSession, type Sessions, sameSecret } from './sessions.ts';
import { type Asset, DASHBOARD_CSP } from './static.ts';
import { roleScopes } from './users.ts';

export interface DashboardDeps {
  store: Store;
  sessions: Sessions;
  /** The built SPA (static.ts loadAssets); empty = not built, `/` says how to build it. */
  assets: Map<string, Asset>;
  /** Mark the session cookie `Secure` always (behind a TLS proxy); requests over TLS get it anyway. */
  secureCookie: boolean;
}

/** Headers every dashboard response carries. */
const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

const NOT_BUILT = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Postbote</title>
<body><h1>The dashboard is not built</h1><p>Run <code>npm run build:web</code> (or <code>npm ci</code>,
which builds it) and restart Postbote. The API (<a href="/docs">/docs</a>) works without it.</p></body></html>`;

/**
 * The web dashboard on the HTTP listener: the built SPA at `/` (static files from memory), the
 * login endpoints under /auth, and the session → principal hook that lets the SPA call /v1
 * with its cookie instead of an API key (api/session-auth.ts).
 */
export function registerDashboard(app: FastifyInstance, deps: DashboardDeps): void {
  const { sessions, store } = deps;
  installSessionAuth(app, sessions);

  const cookie = (request: FastifyRequest, value: string, clear = false): string =>
    [
      `${SESSION_COOKIE}=${value}`,
      'Path=/',
      'HttpOnly',
      'SameSite=Strict',
      ...(deps.secureCookie || request.protocol === 'https' ? ['Secure'] : []),
      ...(clear ? ['Max-Age=0'] : []),
    ].join('; ');

  async function sessionBody(active: Pick<ActiveSession, 'session' | 'user'>) {
    const account = await store.getAccount(active.user.accountId);
    return {
      user: userBody(active.user),
      account: { id: active.user.accountId, name: account?.name ?? '' },
      scopes: roleScopes(active.user.role),
      csrf_token: active.session.csrfToken,
      idle_timeout_seconds: Math.round(sessions.idleMs / 1000),
    };
  }

  /** The JSON a login form sends; anything else is refused (a cross-site form cannot send JSON). */
  function jsonBody(request: FastifyRequest): Record<string, unknown> {
    if (!/^application\/json\s*(;|$)/i.test(request.headers['content-type'] ?? '')) {
      throw new ApiError('unsupported_media_type', 'send the request body as application/json');
    }
    const body = request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new ApiError('invalid_request', 'send {email, password}');
    return body as Record<string, unknown>;
  }

  app.post('/auth/login', async (request, reply) => {
    checkOrigin(request);
    const body = jsonBody(request);
    const { email, password } = body;
    if (typeof email !== 'string' || typeof password !== 'string' || email.length > 320)
      throw new ApiError('invalid_request', 'send {email, password} as strings');
    const result = await sessions.login(email, password, request.ip);
    if (!result.ok) {
      // One answer for an unknown e-mail and a wrong password (no user enumeration).
      if (result.reason === 'locked_out')
        throw new ApiError('rate_limited', 'too many failed logins; try again later', undefined, {
          'retry-after': '900',
        });
      throw new ApiError('unauthorized', 'wrong e-mail or password');
    }
    noStore(reply).header('set-cookie', cookie(request, result.token));
    return sessionBody(result);
  });

  app.post('/auth/logout', async (request, reply) => {
    checkOrigin(request);
    const token = readCookie(request.headers.cookie, SESSION_COOKIE);
    if (token !== undefined) {
      const active = await sessions.resolve(token);
      if (active) {
        const sent = request.headers['x-csrf-token'];
        if (typeof sent !== 'string' || !sameSecret(sent, active.session.csrfToken))
          throw new ApiError('forbidden', 'missing or wrong X-CSRF-Token for this session');
        await sessions.logout(token);
      }
    }
    noStore(reply).header('set-cookie', cookie(request, '', true));
    return reply.code(204).send();
  });

  app.get('/auth/session', async (request, reply) => {
    const token = readCookie(request.headers.cookie, SESSION_COOKIE);
    const active = token === undefined ? undefined : await sessions.resolve(token);
    if (!active) throw new ApiError('unauthorized', 'not logged in');
    noStore(reply);
    return sessionBody(active);
  });

  const serve = (reply: FastifyReply, asset: Asset) => {
    reply.headers(SECURITY_HEADERS).type(asset.type);
    if (asset.immutable) reply.header('cache-control', 'public, max-age=31536000, immutable');
    else reply.header('cache-control', 'no-cache');
    if (asset.type.startsWith('text/html')) reply.header('content-security-policy', DASHBOARD_CSP);
    return reply.send(asset.body);
  };

  app.get('/', async (_request, reply) => {
    const index = deps.assets.get('/index.html');
    if (!index) {
      return reply
        .code(503)
        .headers(SECURITY_HEADERS)
        .header('cache-control', 'no-cache')
        .header('content-security-policy', "default-src 'none'")
        .type('text/html; charset=utf-8')
        .send(NOT_BUILT);
    }
    return serve(reply, index);
  });
  for (const [path, asset] of deps.assets) {
    if (path === '/index.html') continue;
    app.get(path, async (_request, reply) => serve(reply, asset));
  }
}

function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store');
}

function userBody(u: DashboardUser) {
  return { id: u.id, email: u.email, role: u.role };
}
