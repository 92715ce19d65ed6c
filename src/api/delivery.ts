import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.ts';
import type { RouteSpec } from '../delivery/routing/route-spec.ts';
import type { Store } from '../store/store.ts';
import type { Stream } from '../store/types.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

/** The parts of the configuration the answer is built from. */
export type DeliveryView = Pick<Config, 'egress' | 'routes' | 'delivery' | 'hostname' | 'domains'>;

/**
 * GET /v1/delivery (read scope): where the account's mail leaves from, read-only, for the
 * dashboard's Streams page. Per stream the pool in force (its own, else the account's, else
 * the kind's default, as `domains/egress.ts` decides) and the routes that may take it; the pools
 * with their sources' addresses and EHLO names; the routes with how they deliver. Built from the
 * configuration, never showing what belongs to others or is secret: a smarthost is host, port
 * and TLS mode (whether it logs in, not the user or password); a route's match shows domains and
 * streams but not which accounts it names; pools and routes no stream of the account uses are left
 * out.
 */
export function deliveryOverview(config: DeliveryView, accountName: string, streams: Stream[]) {
  const egress = config.egress;
  const poolOf = (s: Stream) =>
    s.pool ||
    egress.account_pools[accountName] ||
    (s.kind === 'broadcast' ? egress.broadcast_pool : egress.transactional_pool);
  const account = accountName.toLowerCase();
  const routes = config.routes as readonly RouteSpec[];
  const byName = new Map(routes.map((r) => [r.name, r]));
  /** The routes a stream's mail may match first (in order), for this account. */
  const matching = (stream: string) =>
    routes.filter(
      (r) =>
        r.match !== undefined &&
        (r.match.accounts === undefined || r.match.accounts.includes(account)) &&
        (r.match.streams === undefined || r.match.streams.includes(stream)),
    );
  const streamRows = streams.map((s) => ({
    name: s.name,
    kind: s.kind,
    pool: poolOf(s),
    routes: matching(s.name).map((r) => r.name),
  }));
  // The routes the streams reach, with their fallbacks (bounded by the route count: each is visited once).
  const shown = new Set<string>();
  const queue = streamRows.flatMap((s) => s.routes);
  while (queue.length > 0) {
    const name = queue.shift() as string;
    if (shown.has(name)) continue;
    shown.add(name);
    queue.push(...(byName.get(name)?.fallback ?? []));
  }
  const globalEhlo = config.delivery.ehlo_name || config.hostname;
  const sources = new Map(egress.sources.map((s) => [s.name, s]));
  const poolNames = [...new Set(streamRows.map((s) => s.pool))];
  return {
    streams: streamRows,
    pools: poolNames.map((name) => ({
      name,
      sources: (egress.pools[name] ?? []).map((m) => {
        const source = sources.get(m.source);
        return {
          name: m.source,
          weight: m.weight,
          addresses: source?.address ? [source.address] : [...config.domains.public_ips],
          ehlo: source?.ehlo || globalEhlo,
          warming_up: source?.warmup !== undefined,
        };
      }),
    })),
    routes: routes
      .filter((r) => shown.has(r.name))
      .map((r) => ({
        name: r.name,
        via: r.via,
        ...(r.match
          ? {
              match: {
                ...(r.match.domains ? { domains: [...r.match.domains] } : {}),
                ...(r.match.streams ? { streams: [...r.match.streams] } : {}),
                ...(r.match.accounts ? { accounts_only: true } : {}),
              },
            }
          : {}),
        ...(r.smarthost
          ? {
              smarthost: {
                host: r.smarthost.host,
                port: r.smarthost.port,
                tls: r.smarthost.tls,
                authenticated: r.smarthost.user !== undefined,
              },
            }
          : {}),
        fallback: [...r.fallback],
      })),
  };
}

const names = { type: 'array', items: { type: 'string' } } as const;

export function registerDeliveryRoutes(
  app: FastifyInstance,
  deps: { store: Store; keys: KeyGate; config: DeliveryView },
): void {
  const { store, keys, config } = deps;
  app.get(
    '/v1/delivery',
    documented({
      tags: ['streams'],
      summary:
        "Where the account's mail leaves from: each stream's pool and routes, the pools' addresses and EHLO names, the routes (read-only, from the configuration; no credentials)",
      security,
      response: {
        200: {
          type: 'object',
          properties: {
            streams: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  name: { type: 'string' },
                  kind: { type: 'string' },
                  pool: { type: 'string', description: 'The pool in force' },
                  routes: { ...names, description: 'Routes whose match may take its mail, first match wins' },
                },
              },
            },
            pools: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  name: { type: 'string' },
                  sources: {
                    type: 'array',
                    items: {
                      type: 'object',
                      properties: {
                        name: { type: 'string' },
                        weight: { type: 'integer' },
                        addresses: {
                          ...names,
                          description: 'The source address, or the public IPs when the OS chooses',
                        },
                        ehlo: { type: 'string' },
                        warming_up: { type: 'boolean' },
                      },
                    },
                  },
                },
              },
            },
            routes: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  name: { type: 'string' },
                  via: { type: 'string', enum: ['mx', 'smarthost', 'hold'] },
                  match: {
                    type: 'object',
                    properties: {
                      domains: names,
                      streams: names,
                      accounts_only: {
                        type: 'boolean',
                        description: 'The route names some accounts (this one among them)',
                      },
                    },
                  },
                  smarthost: {
                    type: 'object',
                    properties: {
                      host: { type: 'string' },
                      port: { type: 'integer' },
                      tls: { type: 'string' },
                      authenticated: { type: 'boolean', description: 'It logs in (the login is not shown)' },
                    },
                  },
                  fallback: names,
                },
              },
            },
          },
        },
        '4xx': errorSchema,
      },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'read');
      const account = await store.getAccount(principal.accountId);
      const streams = await store.listStreams(principal.accountId);
      return deliveryOverview(config, account?.name ?? '', streams);
    },
  );
}
