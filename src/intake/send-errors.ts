/**
 * Why intake refuses a send request: a stable `code` (the API's contract; never rename one),
 * a message for humans, and the offending field as a path (`to[2].email`, `attachments[0]`).
 * HTTP statuses are the API's business (api/errors.ts).
 */
export const SEND_ERROR_CODES = [
  'invalid_request',
  'invalid_address',
  'missing_recipients',
  'too_many_recipients',
  'missing_content',
  'invalid_header',
  'invalid_attachment',
  'too_many_attachments',
  'payload_too_large',
  'invalid_send_at',
  'invalid_metadata',
  'invalid_tag',
  'unknown_stream',
  'sender_not_allowed',
  'template_not_found',
  'template_render_error',
  'invalid_template',
  'content_rejected',
] as const;
export type SendErrorCode = (typeof SEND_ERROR_CODES)[number];

export class SendError extends Error {
  readonly code: SendErrorCode;
  readonly field: string | undefined;
  constructor(code: SendErrorCode, message: string, field?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SendError';
    this.code = code;
    this.field = field;
  }
}
