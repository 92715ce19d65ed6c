/**
 * The tracking endpoints on the HTTP listener: `/o/<token>.gif` (open pixel), `/c/<token>`
 * (click: 302 to the URL the token carries), `/u/<token>` (GET: a confirm page; POST with
 * `List-Unsubscribe=One-Click`: unsubscribes at once, RFC 8058).
 *
 * A token that is not ours or was changed gets 404 and records nothing. Requests whose Host is
 * a tracking host (`pb-track.<domain>`) reach these endpoints only: the API and its docs stay
 * on the API's own name.
 *
 * Wildcard routes, not `:token`: fastify refuses parameters over 100 characters, and a click
 * token carries its URL.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Engagement, EngagementRequest } from './engagement.ts';
import type { TrackingHosts } from './hosts.ts';
import { trackableUrl } from './html.ts';
import { readToken, type TokenKind, type TrackingToken } from './token.ts';

export interface TrackingRouteDeps {
  engagement: Engagement;
  hosts: TrackingHosts;
  /** HMAC key of the tokens (token.ts trackingKey). */
  key: Buffer;
}

/** A transparent 1×1 GIF (GIF89a, one palette entry, transparency extension). */
export const PIXEL = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');

const NO_CACHE = 'no-cache, no-store, must-revalidate, max-age=0';
// The pages run no script and load nothing; the one form posts back to where it came from.
const PAGE_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const PATHS = ['/o/', '/c/', '/u/'];

function page(title: string, body: string): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">` +
    `<title>${title}</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}` +
    `button{font:inherit;padding:.5rem 1.25rem;cursor:pointer}</style></head><body>${body}</body></html>`
  );
}

const CONFIRM = page(
  'Unsubscribe',
  '<h1>Unsubscribe</h1><p>Do you want to stop receiving these emails?</p>' +
    '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">' +
    '<button type="submit">Unsubscribe</button></form>',
);
const DONE = page(
  'Unsubscribed',
  '<h1>You are unsubscribed</h1><p>You will not receive these emails any more.</p>',
);
const GONE = page(
  'Link expired',
  '<h1>This link has expired</h1><p>The message it belongs to is no longer kept.</p>',
);
const NOT_FOUND = page('Not found', '<h1>Not found</h1>');
const BAD_REQUEST = page(
  'Bad request',
  '<h1>Bad request</h1><p>A one-click unsubscribe posts <code>List-Unsubscribe=One-Click</code>.</p>',
);

/** Whether a POST body says `List-Unsubscribe=One-Click` (form-urlencoded or multipart/form-data, RFC 8058 §3.1). */
export function isOneClick(body: unknown): boolean {
  if (typeof body !== 'string') return false;
  if (/^[^\r\n]*=/.test(body) && !body.startsWith('--')) {
    return new URLSearchParams(body.trim()).get('List-Unsubscribe') === 'One-Click';
  }
  return /content-disposition:[^\r\n]*name="?List-Unsubscribe"?[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\nOne-Click\r?\n/i.test(
    body,
  );
}

function requestOf(request: FastifyRequest): EngagementRequest {
  const agent = request.headers['user-agent'];
  return { method: request.method, userAgent: typeof agent === 'string' ? agent : '', ip: request.ip };
}

function html(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', PAGE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-store')
    .send(body);
}

/** Registers the endpoints and the Host routing on `app` (the API's fastify instance). */
export function registerTrackingRoutes(app: FastifyInstance, deps: TrackingRouteDeps): void {
  const { engagement, key } = deps;

  // Tracking hosts serve the tracking endpoints and nothing else.
  app.addHook('onRequest', async (request, reply) => {
    if (PATHS.some((p) => request.url.startsWith(p))) return;
    if (deps.hosts.isTrackingHost(request.hostname)) {
      await html(reply, 404, NOT_FOUND);
    }
  });

  const token = (request: FastifyRequest, kind: TokenKind, suffix = ''): TrackingToken | undefined => {
    let text = (request.params as { '*'?: string })['*'] ?? '';
    if (suffix) {
      if (!text.endsWith(suffix)) return undefined;
      text = text.slice(0, -suffix.length);
    }
    const read = readToken(text, key);
    return read?.kind === kind ? read : undefined;
  };

  app.register(async (scope) => {
    // RFC 8058 one-click POSTs are multipart/form-data or form-urlencoded; the confirm page's
    // form is the latter. Read as text and checked by isOneClick; small by nature.
    scope.addContentTypeParser(
      ['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'],
      { parseAs: 'string', bodyLimit: 16 * 1024 },
      (_request, body, done) => done(null, body),
    );

    scope.get('/o/*', async (request, reply) => {
      const open = token(request, 'open', '.gif');
      if (!open) return html(reply, 404, NOT_FOUND);
      try {
        await engagement.record(open, requestOf(request));
      } catch (err) {
        request.log.error({ err, messageId: open.messageId }, 'open not recorded');
      }
      return reply
        .header('content-type', 'image/gif')
        .header('cache-control', NO_CACHE)
        .header('pragma', 'no-cache')
        .header('expires', '0')
        .send(PIXEL);
    });

    scope.get('/c/*', async (request, reply) => {
      const click = token(request, 'click');
      // Signed by us, so the URL is one we found in the message; checked again all the same.
      const target = click?.url === undefined ? undefined : trackableUrl(click.url);
      if (!click || target === undefined) return html(reply, 404, NOT_FOUND);
      try {
        await engagement.record(click, requestOf(request));
      } catch (err) {
        // The reader still gets where the link leads.
        request.log.error({ err, messageId: click.messageId }, 'click not recorded');
      }
      return reply.code(302).header('location', target).header('cache-control', 'no-store').send();
    });

    scope.get('/u/*', async (request, reply) => {
      // Only a page: link scanners fetch every URL of a message, so GET must never unsubscribe.
      if (!token(request, 'unsubscribe')) return html(reply, 404, NOT_FOUND);
      return html(reply, 200, CONFIRM);
    });

    scope.post('/u/*', async (request, reply) => {
      const unsubscribe = token(request, 'unsubscribe');
      if (!unsubscribe) return html(reply, 404, NOT_FOUND);
      if (!isOneClick(request.body)) return html(reply, 400, BAD_REQUEST);
      const browser = /text\/html/.test(String(request.headers.accept ?? ''));
      const address = await engagement.unsubscribe(unsubscribe, {
        ...requestOf(request),
        via: browser ? 'page' : 'one-click',
      });
      if (address === undefined) return html(reply, 404, GONE);
      request.log.info(
        { messageId: unsubscribe.messageId, recipient: unsubscribe.recipient },
        'unsubscribed',
      );
      return html(reply, 200, DONE);
    });
  });
}
