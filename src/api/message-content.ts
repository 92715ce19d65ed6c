import type { FastifyInstance } from 'fastify';
import { decodeWords, parseMime, partText, walkParts } from '../bounces/mime.ts';
import type { Store } from '../store/store.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

/** Bytes of one text or HTML part handed out; a preview, not an archive. */
const MAX_PART = 512 * 1024;

/**
 * GET /v1/messages/{id}/content: a stored message's header fields and its text and HTML parts,
 * decoded, for showing it (the dashboard renders the HTML in a sandboxed frame). The body is
 * gone once retention purged it (`body_purged`). A personalised message shows the copy of the
 * recipient `recipient` (an index into the message's recipients; default the first).
 */
export function registerMessageContentRoutes(
  app: FastifyInstance,
  deps: { store: Store; keys: KeyGate },
): void {
  const { store, keys } = deps;
  app.get(
    '/v1/messages/:id/content',
    documented({
      tags: ['messages'],
      summary: "A message's header fields and its text and HTML parts, decoded",
      security,
      params: { type: 'object', properties: { id: { type: 'string' } } },
      querystring: {
        type: 'object',
        properties: {
          recipient: { type: 'integer', minimum: 0, description: 'Whose copy (index), default 0' },
        },
      },
      response: {
        200: {
          type: 'object',
          properties: {
            headers: { type: 'array', items: { type: 'array', items: { type: 'string' } } },
            text: { type: ['string', 'null'] },
            html: { type: ['string', 'null'] },
            body_purged: { type: 'boolean' },
            truncated: { type: 'boolean' },
          },
        },
        '4xx': errorSchema,
      },
    }),
    async (request) => {
      const principal = await authorize(keys, request, 'read');
      const { id } = request.params as { id: string };
      const q = request.query as { recipient?: string };
      const index = q.recipient === undefined ? 0 : Number(q.recipient);
      if (!Number.isInteger(index) || index < 0 || index > 100_000)
        throw new ApiError('invalid_request', 'recipient must be a whole number (an index)', 'recipient');
      const message = /^[\w-]{1,64}$/.test(id) ? await store.getMessage(id) : undefined;
      if (!message || message.accountId !== principal.accountId)
        throw new ApiError('not_found', `no message "${id.slice(0, 64)}"`, 'id');
      const recipients = await store.getRecipients(message.id);
      const variant = recipients[index]?.variant ?? 0;
      const body = await store.getBody(message.id, variant);
      if (!body || body.length === 0)
        return { headers: [], text: null, html: null, body_purged: true, truncated: false };
      const mime = parseMime(body.toString('latin1'));
      let text: string | null = null;
      let html: string | null = null;
      let truncated = mime.truncated;
      for (const part of walkParts(mime.root)) {
        if (/^attachment/i.test(part.headers.find(([n]) => /^content-disposition$/i.test(n))?.[1] ?? ''))
          continue;
        if (part.type === 'text/plain' && text === null && part.children.length === 0) {
          text = partText(part, MAX_PART);
          truncated ||= part.bodyEnd - part.bodyStart > MAX_PART;
        } else if (part.type === 'text/html' && html === null) {
          html = partText(part, MAX_PART);
          truncated ||= part.bodyEnd - part.bodyStart > MAX_PART;
        }
      }
      return {
        headers: mime.root.headers.map(([name, value]) => [
          name,
          decodeWords(value.replace(/\r?\n[ \t]+/g, ' ')),
        ]),
        text,
        html,
        body_purged: false,
        truncated,
      };
    },
  );
}
