import type { FastifyInstance } from 'fastify';
import { credentialActor, recordAudit } from '../audit/audit.ts';
import { inForceNow, liveNodes, scopeParts } from '../cli/queue-summary.ts';
import { siteFromKey } from '../delivery/shaping/site.ts';
import type { Store } from '../store/store.ts';
import type { QueueSelector } from '../store/types.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

/**
 * /v1/queue: an account's own waiting mail (what `postbote queue summary` shows an operator,
 * narrowed to the account) and the operator's actions on it: retry now, hold, release, delete,
 * by message or by recipient domain. Reading needs the `read` scope, acting `admin`; every
 * action is audited. Another account's mail is never counted nor touched: the store filters
 * by the key's account in the same statement.
 */

const iso = (t: number | null | undefined) =>
  t === null || t === undefined ? null : new Date(t).toISOString();

export const QUEUE_ACTIONS = ['retry', 'hold', 'release', 'delete'] as const;
export type QueueAction = (typeof QUEUE_ACTIONS)[number];

const reasonsSchema = {
  type: 'array',
  description: 'The most common last replies of deferred recipients, most frequent first',
  items: { type: 'object', properties: { text: { type: 'string' }, count: { type: 'integer' } } },
} as const;

const queueSchema = {
  type: 'object',
  properties: {
    at: { type: 'string' },
    totals: {
      type: 'object',
      properties: {
        queued: { type: 'integer' },
        deferred: { type: 'integer' },
        delivering: { type: 'integer' },
        held: { type: 'integer' },
      },
    },
    domains: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          domain: { type: 'string' },
          queued: { type: 'integer' },
          deferred: { type: 'integer' },
          delivering: { type: 'integer' },
          oldest_at: { type: ['string', 'null'] },
          reasons: reasonsSchema,
        },
      },
    },
    sites: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          site: { type: 'string', description: "'' = not attempted yet (or the MX did not resolve)" },
          provider: { type: ['string', 'null'] },
          ready: { type: 'integer' },
          scheduled: { type: 'integer' },
          delivering: { type: 'integer' },
          domains: { type: 'integer' },
          oldest_at: { type: ['string', 'null'] },
          reasons: reasonsSchema,
        },
      },
    },
    held: {
      type: 'array',
      description: 'Held recipients by stream and why: paused (guard or a pause), content, operator',
      items: {
        type: 'object',
        properties: { stream: { type: 'string' }, reason: { type: 'string' }, count: { type: 'integer' } },
      },
    },
    in_force: {
      type: 'array',
      description:
        "Throttles, suspensions and open circuits the live nodes hold now at this account's sites, streams or account",
      items: {
        type: 'object',
        properties: {
          kind: { type: 'string' },
          rule: { type: 'string' },
          state: { type: 'string' },
          site: { type: ['string', 'null'] },
          stream: { type: ['string', 'null'] },
          rate: { type: ['string', 'null'] },
          until: { type: ['string', 'null'] },
          reply: { type: 'string' },
        },
      },
    },
  },
} as const;

/** The selector of an action body: exactly one of message_id and domain. */
function selectorOf(body: unknown, accountId: string): QueueSelector {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError('invalid_request', 'the body is {"message_id"} or {"domain"}');
  }
  const { message_id: messageId, domain, ...rest } = body as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) throw new ApiError('invalid_request', `unknown field "${unknown}"`, unknown);
  if ((messageId === undefined) === (domain === undefined)) {
    throw new ApiError('invalid_request', 'give either message_id or domain', 'message_id');
  }
  if (messageId !== undefined) {
    if (typeof messageId !== 'string' || !/^[\w-]{1,64}$/.test(messageId)) {
      throw new ApiError('invalid_request', 'message_id is not a message id', 'message_id');
    }
    return { messageId, accountId };
  }
  if (typeof domain !== 'string' || domain.length > 253 || !/^[^\s@/\\]+$/.test(domain.trim())) {
    throw new ApiError('invalid_request', 'domain must be a domain name', 'domain');
  }
  return { domain: domain.trim().toLowerCase(), accountId };
}

export function registerQueueRoutes(
  app: FastifyInstance,
  deps: { store: Store; keys: KeyGate; clock: () => number },
): void {
  const { store, keys, clock } = deps;
  const tags = ['queue'];

  app.get(
    '/v1/queue',
    documented({
      tags,
      summary:
        "The account's waiting mail by recipient domain and by site (with deferral reasons), held mail, and the throttles in force",
      security,
      response: { 200: queueSchema, '4xx': errorSchema },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'read');
      const accountId = principal.accountId;
      const now = clock();
      const [account, domains, sites, heldAll, active, nodes] = await Promise.all([
        store.getAccount(accountId),
        store.queueSummary(now, accountId),
        store.queueSiteSummary(now, accountId),
        store.heldSummary(),
        store.activeShaping(now),
        store.clusterStatus(),
      ]);
      const held = heldAll.filter((h) => h.accountId === accountId);
      // Site rules are shared by every account sending there: shown where this account has mail.
      const ourSites = new Set(sites.map((s) => s.site).filter((s) => s !== ''));
      const ours = new Set([accountId, account?.name ?? accountId]);
      const inForce = inForceNow(active, liveNodes(nodes, now))
        .map((e) => ({ e, parts: scopeParts(e.scopeKey) }))
        .filter(({ parts }) =>
          parts.account !== undefined
            ? ours.has(parts.account)
            : parts.site !== undefined && ourSites.has(parts.site),
        );
      const sum = (pick: (d: (typeof domains)[number]) => number) => domains.reduce((n, d) => n + pick(d), 0);
      return {
        at: iso(now),
        totals: {
          queued: sum((d) => d.queued),
          deferred: sum((d) => d.deferred),
          delivering: sum((d) => d.delivering),
          held: held.reduce((n, h) => n + h.count, 0),
        },
        domains: domains.map((d) => ({
          domain: d.domain,
          queued: d.queued,
          deferred: d.deferred,
          delivering: d.delivering,
          oldest_at: iso(d.oldestAt),
          reasons: d.reasons,
        })),
        sites: sites.map((s) => ({
          site: s.site,
          provider: siteFromKey(s.site)?.provider ?? null,
          ready: s.ready,
          scheduled: s.scheduled,
          delivering: s.delivering,
          domains: s.domains,
          oldest_at: iso(s.oldestAt),
          reasons: s.reasons,
        })),
        held: held.map((h) => ({ stream: h.stream, reason: h.reason || 'route', count: h.count })),
        in_force: inForce.map(({ e, parts }) => ({
          kind: e.kind,
          rule: e.rule,
          state: e.type,
          site: parts.site ?? null,
          stream: parts.stream ?? null,
          rate: e.rate === '' ? null : e.rate,
          until: iso(e.until),
          reply: e.reply,
        })),
      };
    },
  );

  const summaries: Record<QueueAction, string> = {
    retry: 'Attempt waiting recipients now (held ones are released too)',
    hold: 'Hold waiting recipients: nothing is sent until they are released',
    release: 'Release held recipients (and make waiting ones due now): the same operation as retry',
    delete: 'Cancel recipients not yet delivered',
  };
  for (const action of QUEUE_ACTIONS) {
    app.post(
      `/v1/queue/${action}`,
      documented({
        tags,
        summary: `${summaries[action]}, by message or by recipient domain`,
        security,
        body: {
          type: 'object',
          properties: { message_id: { type: 'string' }, domain: { type: 'string' } },
          description: 'Exactly one of message_id and domain',
        },
        response: {
          200: {
            type: 'object',
            properties: { action: { type: 'string' }, recipients: { type: 'integer' } },
          },
          '4xx': errorSchema,
        },
      }),
      async (request) => {
        const principal = await authorize(keys, request, 'admin');
        const selector = selectorOf(request.body, principal.accountId);
        const now = clock();
        const count =
          action === 'hold'
            ? await store.hold(selector, now)
            : action === 'delete'
              ? await store.cancel(selector, now, 'deleted from the queue through the API')
              : await store.retryNow(selector, now);
        await recordAudit(store, {
          actor: credentialActor(principal.credentialId),
          accountId: principal.accountId,
          action: `queue.${action}`,
          target: selector.messageId ?? selector.domain ?? '',
          details: { recipients: count },
        });
        return { action, recipients: count };
      },
    );
  }
}
