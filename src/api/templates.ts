import type { FastifyInstance } from 'fastify';
import { SendError } from '../intake/send-errors.ts';
import type { Template, TemplateVersion } from '../store/types.ts';
import { renderTemplate } from '../templates/render.ts';
import type { TemplateInput, Templates } from '../templates/templates.ts';
import { ApiError } from './errors.ts';
import type { Idempotency } from './idempotency.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security, templateBodySchema } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

function templateBody(t: Template, v?: TemplateVersion) {
  return {
    id: t.id,
    name: t.name,
    alias: t.alias,
    version: v?.version ?? t.latestVersion,
    latest_version: t.latestVersion,
    created_at: new Date(t.createdAt).toISOString(),
    updated_at: new Date(t.updatedAt).toISOString(),
    ...(v ? { subject: v.subject, html: v.html, text: v.text } : {}),
  };
}

function input(body: unknown, partial: boolean): Partial<TemplateInput> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError('invalid_request', 'the body is a JSON object');
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(body)) {
    if (!['name', 'alias', 'subject', 'html', 'text'].includes(key)) {
      throw new ApiError('invalid_request', `unknown field "${key}"`, key);
    }
    if (typeof value !== 'string') throw new ApiError('invalid_request', `${key} must be a string`, key);
    out[key] = value;
  }
  if (!partial) {
    for (const key of ['name', 'subject'] as const) {
      if (out[key] === undefined) throw new ApiError('invalid_template', `a template needs a ${key}`, key);
    }
  }
  return out;
}

function version(raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new ApiError('invalid_request', 'version must be a whole number from 1', 'version');
  return n;
}

/** /v1/templates: stored Handlebars templates with versions, and a preview. */
export function registerTemplateRoutes(
  app: FastifyInstance,
  deps: { templates: Templates; keys: KeyGate; idempotency: Idempotency },
): void {
  const { templates, keys, idempotency } = deps;
  const tags = ['templates'];
  const byId = {
    type: 'object',
    properties: { id: { type: 'string', description: 'Template id or alias' } },
  };

  app.post(
    '/v1/templates',
    documented({
      tags,
      summary: 'Create a template (version 1)',
      security,
      body: templateBodySchema,
      response: { '4xx': errorSchema },
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const answer = await idempotency.run(request, principal, async () => {
        const created = await templates.create(
          principal.accountId,
          input(request.body, false) as TemplateInput,
        );
        const { version: v } = await templates.get(principal.accountId, created.id);
        return { status: 201, body: templateBody(created, v) };
      });
      return reply.code(answer.status).send(answer.body);
    },
  );

  app.get(
    '/v1/templates',
    documented({ tags, summary: "The account's templates", security }),
    async (request) => {
      const principal = await authorize(keys, request, 'read');
      return { data: (await templates.list(principal.accountId)).map((t) => templateBody(t)) };
    },
  );

  app.get(
    '/v1/templates/:id',
    documented({
      tags,
      summary: 'A template with one version (the latest unless ?version=)',
      security,
      params: byId,
      querystring: { type: 'object', properties: { version: { type: 'integer', minimum: 1 } } },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'read');
      const { id } = request.params as { id: string };
      const found = await templates.get(
        principal.accountId,
        id,
        version((request.query as { version?: string }).version),
      );
      return templateBody(found.template, found.version);
    },
  );

  app.put(
    '/v1/templates/:id',
    documented({
      tags,
      summary: 'Update a template: adds a version',
      security,
      params: byId,
      body: templateBodySchema,
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'admin');
      const { id } = request.params as { id: string };
      const updated = await templates.update(principal.accountId, id, input(request.body, true));
      const found = await templates.get(principal.accountId, updated.id);
      return templateBody(found.template, found.version);
    },
  );

  app.delete(
    '/v1/templates/:id',
    documented({
      tags,
      summary: 'Delete a template (messages keep what they were rendered from)',
      security,
      params: byId,
    }),
    async (request, reply) => {
      const principal = await authorize(keys, request, 'admin');
      const { id } = request.params as { id: string };
      await templates.remove(principal.accountId, id);
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/templates/:id/render',
    documented({
      tags,
      summary: 'Render a template with variables (a preview; nothing is sent)',
      security,
      params: byId,
      body: {
        type: 'object',
        properties: { version: { type: 'integer', minimum: 1 }, variables: { type: 'object' } },
      },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'send');
      const { id } = request.params as { id: string };
      const body = (request.body ?? {}) as { version?: unknown; variables?: unknown };
      if (typeof body !== 'object' || Array.isArray(body))
        throw new ApiError('invalid_request', 'the body is a JSON object');
      const variables = body.variables ?? {};
      if (typeof variables !== 'object' || variables === null || Array.isArray(variables)) {
        throw new ApiError('invalid_request', 'variables must be an object', 'variables');
      }
      const found = await templates.get(principal.accountId, id, version(body.version));
      try {
        const rendered = renderTemplate(
          { name: found.template.alias || found.template.name, ...found.version },
          variables as Record<string, unknown>,
        );
        return { id: found.template.id, version: found.version.version, ...rendered };
      } catch (err) {
        if (err instanceof SendError) throw new ApiError(err.code, err.message, err.field);
        throw err;
      }
    },
  );
}
