import type { FastifyInstance } from 'fastify';
import { credentialActor, recordAudit } from '../audit/audit.ts';
import type { Resolve } from '../domains/checks/types.ts';
import { toZoneLines } from '../domains/dns-records.ts';
import type { Domains, DomainView } from '../domains/domains.ts';
import type { Store } from '../store/store.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

function domainBody(view: DomainView) {
  return {
    domain: view.domain.domain,
    verified: view.domain.verifiedAt !== null,
    verified_by: view.domain.verifiedBy,
    verified_at: view.domain.verifiedAt === null ? null : new Date(view.domain.verifiedAt).toISOString(),
    return_path: view.domain.returnPath,
    tracking_host: view.domain.trackingHost,
    dkim: view.keys.map((k) => ({ selector: k.selector, algorithm: k.algorithm, state: k.state })),
    checked_at: view.domain.checkedAt === null ? null : new Date(view.domain.checkedAt).toISOString(),
  };
}

/** /v1/domains: the account's sending domains, the records to publish, and live checks. */
export function registerDomainRoutes(
  app: FastifyInstance,
  deps: { domains: Domains; store: Store; keys: KeyGate; resolve: Resolve },
): void {
  const { domains, store, keys } = deps;
  const tags = ['domains'];
  const byName = { type: 'object', properties: { domain: { type: 'string' } } };

  async function records(view: DomainView) {
    const list = await domains.records(view);
    return {
      records: list.map((r) => ({
        type: r.type,
        name: r.name,
        value: r.value,
        ...(r.type === 'MX' ? { priority: r.priority } : {}),
        purpose: r.purpose,
      })),
      zone: toZoneLines(list),
    };
  }

  app.post(
    '/v1/domains',
    documented({
      tags,
      summary: 'Add a sending domain: DKIM keys are generated; the answer lists the DNS records to publish',
      security,
      body: { type: 'object', required: ['domain'], properties: { domain: { type: 'string' } } },
      response: { '4xx': errorSchema },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const body = request.body as { domain?: unknown } | null;
      if (typeof body?.domain !== 'string')
        throw new ApiError('invalid_request', 'domain is required', 'domain');
      const account = await store.getAccount(principal.accountId);
      if (!account) throw new ApiError('unauthorized', 'the API key’s account is gone');
      const view = await domains.add(account, body.domain);
      await recordAudit(deps.store, {
        actor: credentialActor(principal.credentialId),
        accountId: account.id,
        action: 'domain.add',
        target: view.domain.domain,
      });
      return reply.code(201).send({ ...domainBody(view), ...(await records(view)) });
    },
  );

  app.get(
    '/v1/domains',
    documented({ tags, summary: "The account's sending domains", security }),
    async (request) => {
      const principal = await authorize(keys, request, 'read');
      const list = await domains.list(principal.accountId);
      const views = await Promise.all(list.map((d) => domains.get(d.domain, principal.accountId)));
      return { data: views.map(domainBody) };
    },
  );

  app.get(
    '/v1/domains/:domain',
    documented({
      tags,
      summary:
        'A sending domain with its records and a live DNS check of each (status ok, missing, wrong, warning or error)',
      security,
      params: byName,
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'read');
      const { domain } = request.params as { domain: string };
      const view = await domains.get(domain, principal.accountId);
      const checked = await domains.check(view, deps.resolve);
      const fresh = await domains.get(domain, principal.accountId);
      return {
        ...domainBody(fresh),
        ...(await records(fresh)),
        checks: checked.results,
        changes: checked.changes,
      };
    },
  );

  app.post(
    '/v1/domains/:domain/rotate-dkim',
    documented({
      tags,
      summary:
        'Start a DKIM key rotation: a new selector signs beside the current one; publish its record (in the answer) and the next check makes it the key',
      security,
      params: byName,
      response: { '4xx': errorSchema },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'admin');
      const { domain } = request.params as { domain: string };
      const view = await domains.get(domain, principal.accountId);
      const pending = await domains.rotate(view);
      await recordAudit(deps.store, {
        actor: credentialActor(principal.credentialId),
        accountId: principal.accountId,
        action: 'domain.rotate_dkim',
        target: view.domain.domain,
        details: { selectors: pending.map((k) => k.selector) },
      });
      const fresh = await domains.get(domain, principal.accountId);
      return {
        ...domainBody(fresh),
        ...(await records(fresh)),
        rotated: pending.map((k) => ({ selector: k.selector, algorithm: k.algorithm, state: k.state })),
      };
    },
  );

  app.delete(
    '/v1/domains/:domain',
    documented({ tags, summary: 'Remove a sending domain and its keys', security, params: byName }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const { domain } = request.params as { domain: string };
      const removed = await domains.get(domain, principal.accountId);
      await domains.remove(removed);
      await recordAudit(deps.store, {
        actor: credentialActor(principal.credentialId),
        accountId: principal.accountId,
        action: 'domain.remove',
        target: removed.domain.domain,
      });
      return reply.code(204).send();
    },
  );
}
