import type { FastifyInstance } from 'fastify';
import { renderInline } from '../templates/render.ts';
import { MAX_TEMPLATE_PART } from '../templates/templates.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

/**
 * POST /v1/templates/preview: renders template text that is not stored (the dashboard's editor
 * while it is being written) with variables; nothing is stored or sent. The same Handlebars
 * environment and rules as stored templates and personalised sends (templates/render.ts), the
 * same size limit per part, and the `send` scope that rendering a stored template needs.
 */
export function registerTemplatePreviewRoute(app: FastifyInstance, deps: { keys: KeyGate }): void {
  app.post(
    '/v1/templates/preview',
    documented({
      tags: ['templates'],
      summary: 'Render unsaved template parts with variables (a preview; nothing is stored or sent)',
      security,
      body: {
        type: 'object',
        properties: {
          subject: { type: 'string' },
          html: { type: 'string' },
          text: { type: 'string' },
          variables: { type: 'object' },
        },
      },
      response: {
        200: {
          type: 'object',
          properties: { subject: { type: 'string' }, html: { type: 'string' }, text: { type: 'string' } },
        },
        '4xx': errorSchema,
      },
    }),
    async (request) => {
      await authorize(deps.keys, request, 'send');
      const body = request.body;
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new ApiError('invalid_request', 'the body is a JSON object');
      }
      const parts: { subject?: string; html?: string; text?: string } = {};
      let variables: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(body)) {
        if (key === 'variables') {
          if (typeof value !== 'object' || value === null || Array.isArray(value)) {
            throw new ApiError('invalid_request', 'variables must be an object', 'variables');
          }
          variables = value as Record<string, unknown>;
        } else if (key === 'subject' || key === 'html' || key === 'text') {
          if (typeof value !== 'string')
            throw new ApiError('invalid_request', `${key} must be a string`, key);
          if (value.length > MAX_TEMPLATE_PART) {
            throw new ApiError(
              'invalid_template',
              `the ${key} is longer than ${MAX_TEMPLATE_PART} characters`,
              key,
            );
          }
          parts[key] = value;
        } else {
          throw new ApiError('invalid_request', `unknown field "${key}"`, key);
        }
      }
      const rendered = renderInline(parts, variables, 'preview');
      return { subject: rendered.subject ?? '', html: rendered.html ?? '', text: rendered.text ?? '' };
    },
  );
}
