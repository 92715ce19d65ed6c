import { SendError } from './send-errors.ts';

/** Tags per message, and the longest tag. */
export const MAX_TAGS = 10;
export const MAX_TAG_LENGTH = 128;
/** Metadata keys per message, the longest key and value, and the whole map as JSON. */
export const MAX_METADATA_KEYS = 50;
export const MAX_METADATA_KEY = 128;
export const MAX_METADATA_VALUE = 1000;
export const MAX_METADATA_BYTES = 10 * 1024;

// Printable characters and spaces; no control characters (they end up in logs and webhooks).
const PRINTABLE = /^[^\p{Cc}]+$/u;

/** Checks tags (the API's `tags`, X-Postbote-Tags) and returns them trimmed, without duplicates. */
export function checkTags(tags: readonly unknown[], field = 'tags'): string[] {
  const out: string[] = [];
  for (const [i, raw] of tags.entries()) {
    if (typeof raw !== 'string')
      throw new SendError('invalid_tag', 'a tag must be a string', `${field}[${i}]`);
    const tag = raw.trim();
    if (tag === '' || tag.length > MAX_TAG_LENGTH || !PRINTABLE.test(tag)) {
      throw new SendError(
        'invalid_tag',
        `tag "${tag.slice(0, 40)}" is not valid: use 1-${MAX_TAG_LENGTH} printable characters`,
        `${field}[${i}]`,
      );
    }
    if (!out.includes(tag)) out.push(tag);
  }
  if (out.length > MAX_TAGS)
    throw new SendError('invalid_tag', `at most ${MAX_TAGS} tags per message`, field);
  return out;
}

/** Checks a metadata map: string keys to string values (numbers and booleans become strings). */
export function checkMetadata(value: unknown, field = 'metadata'): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SendError('invalid_metadata', 'metadata must be an object of strings', field);
  }
  const out: Record<string, string> = {};
  const entries = Object.entries(value);
  if (entries.length > MAX_METADATA_KEYS) {
    throw new SendError('invalid_metadata', `at most ${MAX_METADATA_KEYS} metadata keys`, field);
  }
  for (const [key, v] of entries) {
    if (key === '' || key.length > MAX_METADATA_KEY || !PRINTABLE.test(key)) {
      throw new SendError(
        'invalid_metadata',
        `metadata key "${key.slice(0, 40)}" is not valid`,
        `${field}.${key}`,
      );
    }
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw new SendError(
        'invalid_metadata',
        `metadata value of "${key}" must be a string`,
        `${field}.${key}`,
      );
    }
    const text = String(v);
    if (text.length > MAX_METADATA_VALUE) {
      throw new SendError(
        'invalid_metadata',
        `metadata value of "${key}" is longer than ${MAX_METADATA_VALUE} characters`,
        `${field}.${key}`,
      );
    }
    out[key] = text;
  }
  if (Buffer.byteLength(JSON.stringify(out)) > MAX_METADATA_BYTES) {
    throw new SendError(
      'invalid_metadata',
      `metadata is larger than ${MAX_METADATA_BYTES} bytes as JSON`,
      field,
    );
  }
  return out;
}
