import type { Logger } from 'pino';
import type { Store } from '../store/store.ts';
import type { LeasedRecipient, Outcome } from '../store/types.ts';
import type { Suppressions } from './suppressions.ts';

/**
 * Refusals that say something about the recipient's mailbox. Others (reputation, policy,
 * content, rate, network, system, protocol) are about the sender or the path, and never
 * suppress a recipient.
 */
const RECIPIENT_CATEGORIES = new Set([
  'unknown_user',
  'unknown_domain',
  'mailbox_disabled',
  'mailbox_full',
  'message_too_large',
]);
/** A permanent refusal of these suppresses at once; the others count as soft bounces. */
const HARD_CATEGORIES = new Set(['unknown_user', 'unknown_domain', 'mailbox_disabled']);

export interface FeedbackOptions {
  store: Store;
  suppressions: Suppressions;
  clock: () => number;
  logger: Logger;
  /** Soft bounces within `softWindowMs` that suppress an address. */
  softLimit: number;
  softWindowMs: number;
}

/**
 * What bounces do to suppression lists, for refusals during delivery and for bounces that come
 * back later (the inbound MX): a hard bounce of the mailbox suppresses the address at once;
 * soft ones (a full mailbox, a temporary "no such user") suppress it after `softLimit` within
 * `softWindowMs`; a complaint suppresses it.
 */
export function createBounceFeedback(options: FeedbackOptions) {
  const { store, suppressions, clock, logger } = options;

  async function bounce(input: {
    accountId: string;
    address: string;
    category: string;
    permanent: boolean;
    source: string;
    details: string;
  }): Promise<void> {
    if (!RECIPIENT_CATEGORIES.has(input.category)) return;
    if (input.permanent && HARD_CATEGORIES.has(input.category)) {
      await suppressions.suppress({ ...input, reason: 'hard_bounce' });
      logger.info(
        { event: 'suppressed', account: input.accountId, recipient: input.address, category: input.category },
        'address suppressed after a hard bounce',
      );
      return;
    }
    const now = clock();
    await store.recordSoftBounce({ accountId: input.accountId, address: input.address, at: now });
    const count = await store.countSoftBounces({
      accountId: input.accountId,
      address: input.address,
      since: now - options.softWindowMs,
    });
    if (count >= options.softLimit) {
      await suppressions.suppress({
        ...input,
        reason: 'soft_bounces',
        details: `${count} soft bounces; last: ${input.details}`,
      });
      logger.info(
        { event: 'suppressed', account: input.accountId, recipient: input.address, softBounces: count },
        'address suppressed after repeated soft bounces',
      );
    }
  }

  /** The delivery engine's recorded refusals (SchedulerOptions.bounces.afterOutcomes). */
  async function afterOutcomes(recorded: { recipient: LeasedRecipient; outcome: Outcome }[]): Promise<void> {
    for (const { recipient, outcome } of recorded) {
      const data = (outcome.event?.data ?? {}) as { category?: unknown; permanent?: unknown };
      if (typeof data.category !== 'string') continue;
      await bounce({
        accountId: recipient.accountId,
        address: recipient.address,
        category: data.category,
        permanent: outcome.state === 'bounced' && data.permanent === true,
        source: recipient.messageId,
        details: outcome.reply
          ? `${outcome.reply.code} ${outcome.reply.enhanced ?? ''} ${outcome.reply.text}`
          : '',
      });
    }
  }

  /** A complaint (ARF) about a message to this address. */
  async function complaint(input: { accountId: string; address: string; source: string; details: string }) {
    await suppressions.suppress({ ...input, reason: 'complaint' });
    logger.info(
      { event: 'suppressed', account: input.accountId, recipient: input.address },
      'address suppressed after a complaint',
    );
  }

  return { afterOutcomes, bounce, complaint };
}

export type BounceFeedback = ReturnType<typeof createBounceFeedback>;
