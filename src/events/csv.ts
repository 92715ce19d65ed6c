import type { PublicEvent } from './schema.ts';

/** The CSV export's columns, in order (one row per event; labels and details as JSON). */
export const EVENT_CSV_COLUMNS = [
  'id',
  'type',
  'at',
  'message_id',
  'recipient',
  'recipient_id',
  'account',
  'stream',
  'tags',
  'metadata',
  'details',
] as const;

/**
 * One CSV field (RFC 4180). A value a spreadsheet would run as a formula (=, +, -, @, tab, CR
 * first) gets a leading apostrophe: recipients, tags and metadata are the sender's input, and
 * an export opened in a spreadsheet must not execute them (CSV injection).
 */
export function csvField(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

export function eventCsvHeader(): string {
  return `${EVENT_CSV_COLUMNS.join(',')}\r\n`;
}

export function eventCsvRow(e: PublicEvent): string {
  const cells = [
    String(e.id),
    e.type,
    e.at,
    e.message_id,
    e.recipient ?? '',
    e.recipient_id ?? '',
    e.account,
    e.stream,
    JSON.stringify(e.tags),
    JSON.stringify(e.metadata),
    JSON.stringify(e.details),
  ];
  return `${cells.map(csvField).join(',')}\r\n`;
}
