/**
 * Which tables a privacy erasure (Store.eraseAddress) leaves alone, for both adapters. These
 * hold configuration an operator wrote (accounts, credentials, domains, keys, streams, templates,
 * webhooks, retention, guard state, dashboard logins), bookkeeping with no personal data (schema version, nodes,
 * cursors, rollup counters) or the erasure's own salt: an address in them is not a recipient's
 * trace but the operator's choice (a credential named after a mailbox), and deleting such a row
 * would change how the deployment works. Every other table, including ones added after this list
 * was written, is searched and erased.
 */
export const CONFIGURATION_TABLES: ReadonlySet<string> = new Set([
  'schema_version',
  'accounts',
  'credentials',
  'streams',
  'domains',
  'dkim_keys',
  'templates',
  'template_versions',
  'nodes',
  'webhooks',
  'event_cursors',
  'stats_cursors',
  'stats_rollups',
  'guard_state',
  'account_retention',
  'privacy_secrets',
  'connection_slots',
  // Dashboard logins are operators' accounts, not recipients' data.
  'dashboard_users',
  'dashboard_sessions',
]);

/** The tables an export shows through its messages (not again under `other`). */
export const MESSAGE_TABLES: ReadonlySet<string> = new Set([
  'messages',
  'recipients',
  'events',
  'message_variants',
]);

/** Replaces every case-insensitive occurrence of `needle` (lower case) in `text`. */
export function replaceAll(text: string, needle: string, by: string): string {
  if (needle === '') return text;
  let out = '';
  let from = 0;
  const lower = text.toLowerCase();
  for (let i = lower.indexOf(needle); i >= 0; i = lower.indexOf(needle, from)) {
    out += text.slice(from, i) + by;
    from = i + needle.length;
  }
  return out + text.slice(from);
}
