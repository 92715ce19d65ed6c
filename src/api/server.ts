import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Audit } from '../audit/audit.ts';
import type { Suppressions } from '../bounces/suppressions.ts';
import { type DashboardDeps, registerDashboard } from '../dashboard/routes.ts';
import type { Resolve } from '../domains/checks/types.ts';
import type { Domains } from '../domains/domains.ts';
import type { Guard } from '../guard/guard.ts';
import type { Sender } from '../intake/send.ts';
import type { Privacy } from '../privacy/privacy.ts';
import { createMetricsRegistry } from '../stats/prometheus.ts';
import type { Store } from '../store/store.ts';
import type { Templates } from '../templates/templates.ts';
import { registerTrackingRoutes, type TrackingRouteDeps } from '../tracking/routes.ts';
import type { Webhooks } from '../webhooks/webhooks.ts';
import { registerAccountRoutes } from './accounts.ts';
import { registerAuditRoutes } from './audit.ts';
import { registerCredentialRoutes } from './credential-routes.ts';
import { type DeliveryView, registerDeliveryRoutes } from './delivery.ts';
import { registerDomainRoutes } from './domains.ts';
import { ApiError, installErrorHandler } from './errors.ts';
import { registerEventRoutes } from './events.ts';
import type { Idempotency } from './idempotency.ts';
import { registerKeyRoutes } from './key-routes.ts';
import { registerMailgunRoutes } from './mailgun.ts';
import { registerMessageContentRoutes } from './message-content.ts';
import { registerMessageRoutes } from './messages.ts';
import { type OperationsDeps, registerOperationsRoutes } from './metrics.ts';
import { registerPostmarkRoutes } from './postmark.ts';
import { registerPrivacyRoutes } from './privacy.ts';
import { registerQueueRoutes } from './queue.ts';
import { createSendApi, type KeyGate } from './send-api.ts';
import { registerStatsRoutes } from './stats.ts';
import { registerStreamRoutes } from './streams.ts';
import { registerSuppressionRoutes } from './suppressions.ts';
import { registerTemplatePreviewRoute } from './template-preview.ts';
import { registerTemplateRoutes } from './templates.ts';
import { registerWebhookRoutes } from './webhooks.ts';

export interface HttpServerDeps {
  store: Store;
  nodeId: string;
  startedAt: number;
  logger: Logger;
  clock: () => number;
  sender: Sender;
  templates: Templates;
  domains: Domains;
  suppressions: Suppressions;
  /** The DNS the domain checks ask. */
  resolve: Resolve;
  keys: KeyGate;
  idempotency: Idempotency;
  limits: { maxRequestBytes: number; maxBatch: number; maxMessageBytes: number };
  /** /v1/webhooks (api/webhooks.ts); absent = no webhook routes. */
  webhooks?: Webhooks;
  /** The tracking endpoints /o, /c, /u and tracking-host routing (tracking/routes.ts); absent = none. */
  tracking?: TrackingRouteDeps;
  /** /v1/accounts/{id} status, pause, resume (api/accounts.ts); absent = none. */
  guard?: Guard;
  /** /v1/audit (api/audit.ts); absent = none. */
  audit?: Audit;
  /** /v1/privacy/{email} (api/privacy.ts); absent = none. */
  privacy?: Privacy;
  /** /metrics and /readyz (api/metrics.ts); without it: open /metrics, readiness = the store answers. */
  operations?: Pick<OperationsDeps, 'registry' | 'metricsToken' | 'readiness'>;
  /** GET /v1/delivery (api/delivery.ts): the configured pools and routes; absent = no route. */
  delivery?: DeliveryView;
  /** The web dashboard at / with its login (dashboard/routes.ts); absent = none. */
  dashboard?: DashboardDeps;
}

/** One registered route: an HTTP method and its URL pattern (`/v1/messages/:id`). */
export interface RouteEntry {
  method: string;
  url: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered on this app, in order (read by tests). */
    routeTable: readonly RouteEntry[];
  }
}

/**
 * The HTTP listener: the native send API (/v1), the Postmark- and Mailgun-compatible
 * endpoints, the OpenAPI document (/openapi.json) with rendered docs (/docs), and health.
 */
export async function createHttpServer(deps: HttpServerDeps): Promise<FastifyInstance> {
  // Our logger, without fastify's line per request: handlers log what went wrong (request.log).
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.limits.maxRequestBytes,
  });
  // Every route as registered (plugins included), so the hardening tests can walk all of them
  // and fail when a route is added without authentication (test/hardening/route-auth.test.ts).
  const routeTable: RouteEntry[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routeTable.push({ method, url: route.url });
  });
  app.decorate('routeTable', routeTable);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Postbote send API',
        version: '1',
        description:
          'Send, look up and cancel mail, and manage templates. Authenticate with `Authorization: Bearer <API key>` ' +
          '(`postbote credentials create --api`). Errors are `{error: {code, message, field?}}` with stable codes.',
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
    },
    // Only the native API is documented here; the compatibility endpoints follow Postmark's and
    // Mailgun's own documentation.
    hideUntagged: true,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  installErrorHandler(app, deps.logger);

  // The native API speaks JSON only (fastify would hand a text/plain body to the handlers).
  app.addHook('onRequest', async (request) => {
    if (!request.url.startsWith('/v1/') || (request.method !== 'POST' && request.method !== 'PUT')) return;
    const type = request.headers['content-type'];
    const csv = request.url.split('?')[0] === '/v1/suppressions/import';
    if (
      type !== undefined &&
      !/^application\/json\s*(;|$)/i.test(type) &&
      !(csv && /^text\/(csv|plain)/i.test(type))
    ) {
      throw new ApiError('unsupported_media_type', 'send the request body as application/json');
    }
  });
  app.get('/openapi.json', async () => app.swagger());
  // Liveness, readiness and Prometheus metrics (api/metrics.ts).
  registerOperationsRoutes(app, {
    store: deps.store,
    nodeId: deps.nodeId,
    startedAt: deps.startedAt,
    clock: deps.clock,
    registry: deps.operations?.registry ?? createMetricsRegistry(),
    metricsToken: deps.operations?.metricsToken ?? '',
    ...(deps.operations?.readiness ? { readiness: deps.operations.readiness } : {}),
  });

  registerMessageRoutes(app, {
    store: deps.store,
    sender: deps.sender,
    keys: deps.keys,
    idempotency: deps.idempotency,
    clock: deps.clock,
    maxBatch: deps.limits.maxBatch,
  });
  registerTemplateRoutes(app, { templates: deps.templates, keys: deps.keys, idempotency: deps.idempotency });
  registerSuppressionRoutes(app, {
    suppressions: deps.suppressions,
    keys: deps.keys,
    ...(deps.audit ? { audit: deps.audit } : {}),
  });
  registerStatsRoutes(app, { store: deps.store, keys: deps.keys, clock: deps.clock });
  registerDomainRoutes(app, {
    domains: deps.domains,
    store: deps.store,
    keys: deps.keys,
    resolve: deps.resolve,
  });
  registerEventRoutes(app, { store: deps.store, keys: deps.keys });
  // API keys, a message's content, and the dashboard that uses them (dashboard/).
  registerKeyRoutes(app, { store: deps.store, keys: deps.keys, clock: deps.clock });
  registerCredentialRoutes(app, { store: deps.store, keys: deps.keys, clock: deps.clock });
  if (deps.delivery)
    registerDeliveryRoutes(app, { store: deps.store, keys: deps.keys, config: deps.delivery });
  registerMessageContentRoutes(app, { store: deps.store, keys: deps.keys });
  registerQueueRoutes(app, { store: deps.store, keys: deps.keys, clock: deps.clock });
  registerStreamRoutes(app, { store: deps.store, keys: deps.keys });
  registerTemplatePreviewRoute(app, { keys: deps.keys });
  if (deps.dashboard) registerDashboard(app, deps.dashboard);
  if (deps.webhooks) {
    registerWebhookRoutes(app, {
      webhooks: deps.webhooks,
      keys: deps.keys,
      ...(deps.audit ? { audit: deps.audit } : {}),
    });
  }
  const send = createSendApi(deps.sender);
  registerPostmarkRoutes(app, { send, keys: deps.keys });
  registerMailgunRoutes(app, { send, keys: deps.keys, maxMessageBytes: deps.limits.maxMessageBytes });
  if (deps.tracking) registerTrackingRoutes(app, deps.tracking);
  if (deps.guard) registerAccountRoutes(app, { guard: deps.guard, keys: deps.keys });
  if (deps.audit) registerAuditRoutes(app, { audit: deps.audit, keys: deps.keys });
  if (deps.privacy) registerPrivacyRoutes(app, { privacy: deps.privacy, keys: deps.keys });
  return app;
}
