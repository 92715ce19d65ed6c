/**
 * What each event counts for, and the rates derived from the counts. Counter names are part of
 * the API (/v1/stats): add, never rename. Definitions (docs/architecture.md, "Statistics"):
 *
 * - accepted: recipients accepted for delivery (`accepted` events); suppressed ones count as
 *   `suppressed` instead.
 * - delivered: remote 2xx. deferred: every attempt that will be retried (one recipient can
 *   count several times). expired: given up after `delivery.retry.max_age`.
 * - hard_bounced: recipients that bounced (`bounced`: a 5xx during delivery, or a bounce report
 *   that came back later), each also under `hard_bounced:<category>`.
 * - soft_bounced: deferrals the remote server answered with a refusal (a 4xx reply it gave,
 *   not a connection or DNS failure), each also under `soft_bounced:<category>`.
 * - complained, unsubscribed, clicked; opened_human / opened_machine (`data.machine`: an open by
 *   a proxy or scanner, not a person); opened_unique / clicked_unique: the recipient's first
 *   open or click (`data.first`).
 */
import { CATEGORIES } from '../bounces/classify.ts';

export const COUNTERS = [
  'accepted',
  'delivered',
  'deferred',
  'hard_bounced',
  'soft_bounced',
  'expired',
  'suppressed',
  'complained',
  'unsubscribed',
  'opened_human',
  'opened_machine',
  'opened_unique',
  'clicked',
  'clicked_unique',
] as const;
export type Counter = (typeof COUNTERS)[number];

const categories: ReadonlySet<string> = new Set(CATEGORIES);

/** A bounce category as stored in an event's data; anything else (or none) is `other`. */
function categoryOf(data: Record<string, unknown>): string {
  const c = data.category;
  return typeof c === 'string' && categories.has(c) ? c : 'other';
}

/** The counters one event adds 1 to (none for the types statistics do not count). */
export function countersOf(event: { type: string; data: Record<string, unknown> }): string[] {
  const data = event.data ?? {};
  switch (event.type) {
    case 'accepted':
    case 'delivered':
    case 'expired':
    case 'suppressed':
    case 'complained':
    case 'unsubscribed':
      return [event.type];
    case 'deferred':
      // A category is given to refusals the remote side answered (delivery/scheduler.ts).
      return typeof data.category === 'string'
        ? ['deferred', 'soft_bounced', `soft_bounced:${categoryOf(data)}`]
        : ['deferred'];
    case 'bounced':
      return ['hard_bounced', `hard_bounced:${categoryOf(data)}`];
    case 'opened': {
      const kind = data.machine === true ? 'opened_machine' : 'opened_human';
      return data.first === true ? [kind, 'opened_unique'] : [kind];
    }
    case 'clicked':
      return data.first === true ? ['clicked', 'clicked_unique'] : ['clicked'];
    default:
      return [];
  }
}

export interface Rates {
  delivery_rate: number | null;
  bounce_rate: number | null;
  complaint_rate: number | null;
  open_rate: number | null;
  click_rate: number | null;
}

const ratio = (part: number, whole: number): number | null =>
  whole > 0 ? Math.round((part / whole) * 1e6) / 1e6 : null;

/**
 * The derived rates of a set of counters (null when the denominator is 0):
 * - delivery_rate = delivered / (delivered + hard_bounced + expired): of the recipients that
 *   reached an outcome, how many were delivered;
 * - bounce_rate = hard_bounced / (delivered + hard_bounced + expired) (what a reputation guard
 *   watches; deferrals are not outcomes);
 * - complaint_rate = complained / delivered; open_rate = opened_unique / delivered;
 *   click_rate = clicked_unique / delivered.
 * Counts are per event time: a message accepted at 23:59 and delivered at 00:01 counts in two
 * buckets, so rates of short intervals can exceed what a single message suggests.
 */
export function ratesOf(counts: Readonly<Record<string, number>>): Rates {
  const n = (c: Counter): number => counts[c] ?? 0;
  const outcomes = n('delivered') + n('hard_bounced') + n('expired');
  return {
    delivery_rate: ratio(n('delivered'), outcomes),
    bounce_rate: ratio(n('hard_bounced'), outcomes),
    complaint_rate: ratio(n('complained'), n('delivered')),
    open_rate: ratio(n('opened_unique'), n('delivered')),
    click_rate: ratio(n('clicked_unique'), n('delivered')),
  };
}
