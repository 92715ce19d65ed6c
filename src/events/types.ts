/**
 * The public event type names (events/schema.ts maps them to and from the stored ones). On its
 * own, without imports, so the dashboard (web/) uses the same list as the API.
 */
export const PUBLIC_EVENT_TYPES = [
  'accepted',
  'scheduled',
  'deferred',
  'delivered',
  'bounced',
  'expired',
  'suppressed',
  'held',
  'cancelled',
  'complained',
  'opened',
  'clicked',
  'unsubscribed',
  'domain_status_changed',
  'account_paused',
  'account_resumed',
  'account_warned',
  'content_warning',
  'dsn_sent',
  'webhook_disabled',
] as const;
