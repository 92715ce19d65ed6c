/**
 * JSON Schemas of the native API, for the OpenAPI document (/openapi.json). Requests are
 * checked by api/message-request.ts (so a batch item fails alone, with the same codes); these
 * schemas describe the same shapes and must change with it.
 */

const address = {
  description: '"Name <email>" or "email", or an object',
  oneOf: [
    { type: 'string', examples: ['Ada <ada@example.com>'] },
    {
      type: 'object',
      required: ['email'],
      additionalProperties: false,
      properties: { email: { type: 'string', format: 'email' }, name: { type: 'string' } },
    },
  ],
} as const;

const addressList = {
  description: 'One address or a list (a string may hold a comma-separated list)',
  oneOf: [address, { type: 'array', items: address }],
} as const;

const tags = { type: 'array', maxItems: 10, items: { type: 'string', maxLength: 128 } } as const;
const metadata = {
  type: 'object',
  description: 'String values, echoed in every event and webhook of the message',
  additionalProperties: { type: 'string', maxLength: 1000 },
} as const;
const sendAt = {
  type: 'string',
  format: 'date-time',
  description: 'RFC 3339; first delivery attempt no earlier (any future time)',
} as const;
const track = {
  type: 'object',
  additionalProperties: false,
  properties: { opens: { type: 'boolean' }, clicks: { type: 'boolean' } },
} as const;

export const messageSchema = {
  type: 'object',
  required: ['from'],
  additionalProperties: false,
  properties: {
    from: address,
    to: addressList,
    cc: addressList,
    bcc: addressList,
    reply_to: addressList,
    subject: { type: 'string' },
    text: { type: 'string' },
    html: { type: 'string' },
    attachments: {
      type: 'array',
      items: {
        type: 'object',
        required: ['filename', 'content'],
        additionalProperties: false,
        properties: {
          filename: { type: 'string' },
          content: { type: 'string', contentEncoding: 'base64' },
          content_type: { type: 'string' },
          content_id: { type: 'string', description: 'Set: an inline part, referenced as cid:<content_id>' },
        },
      },
    },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    tags,
    metadata,
    stream: { type: 'string', description: 'Default: the key\'s stream, else "outbound"' },
    template: {
      type: 'object',
      additionalProperties: false,
      description: 'A stored template by id or alias; subject/text/html given here win over it',
      properties: {
        id: { type: 'string' },
        alias: { type: 'string' },
        version: { type: 'integer', minimum: 1 },
        variables: { type: 'object' },
      },
    },
    send_at: sendAt,
    track,
    recipients: {
      type: 'array',
      description: 'Personalisation, instead of to: each recipient gets its own rendered copy',
      items: {
        type: 'object',
        required: ['email'],
        additionalProperties: false,
        properties: { email: { type: 'string' }, name: { type: 'string' }, variables: { type: 'object' } },
      },
    },
  },
} as const;

export const rawMessageSchema = {
  type: 'object',
  required: ['mail_from', 'rcpt_to', 'raw'],
  additionalProperties: false,
  properties: {
    mail_from: { type: 'string', description: 'Envelope sender ("" for the null sender)' },
    rcpt_to: { type: 'array', minItems: 1, items: { type: 'string' } },
    raw: { type: 'string', contentEncoding: 'base64', description: 'The RFC 5322 message, base64' },
    tags,
    metadata,
    stream: { type: 'string' },
    send_at: sendAt,
    track,
  },
} as const;

const recipientResult = {
  type: 'object',
  properties: {
    email: { type: 'string' },
    id: { type: 'string' },
    status: { type: 'string', enum: ['queued', 'scheduled'] },
  },
} as const;

export const sendResultSchema = {
  type: 'object',
  properties: { id: { type: 'string' }, recipients: { type: 'array', items: recipientResult } },
} as const;

export const errorSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' }, field: { type: 'string' } },
    },
  },
} as const;

export const batchSchema = {
  type: 'object',
  required: ['messages'],
  additionalProperties: false,
  properties: { messages: { type: 'array', maxItems: 1000, items: messageSchema } },
} as const;

export const batchResultSchema = {
  type: 'object',
  properties: {
    data: {
      type: 'array',
      items: {
        ...sendResultSchema,
        properties: { ...sendResultSchema.properties, index: { type: 'integer' } },
      },
    },
    errors: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          index: { type: 'integer' },
          code: { type: 'string' },
          message: { type: 'string' },
          field: { type: 'string' },
        },
      },
    },
  },
} as const;

export const templateBodySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string' },
    alias: { type: 'string' },
    subject: { type: 'string' },
    html: { type: 'string' },
    text: { type: 'string' },
  },
} as const;

/** Bearer API keys, for every /v1 route. */
export const security = [{ apiKey: [] }];
