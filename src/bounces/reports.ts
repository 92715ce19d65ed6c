import type { Logger } from 'pino';
import type { Store } from '../store/store.ts';
import type { RecipientRow } from '../store/types.ts';
import type { BounceFeedback } from './feedback.ts';
import type { ParsedReport } from './parse.ts';

/** Where it came from: the recipients its VERP address (or enclosed token) names. */
export interface ReportOrigin {
  recipientIds: number[];
  to: string[];
  clientIp: string;
}

/**
 * Turns a bounce or a complaint that reached the inbound MX into what it means: the recipient
 * it names (by its VERP address, or the token in the enclosed original message) bounced or
 * complained, with the parser's status, category and diagnostic in the event, and the
 * suppression that follows. Auto-replies and anything else are logged and dropped.
 */
export function createReportHandler(options: {
  store: Store;
  feedback: BounceFeedback;
  clock: () => number;
  logger: Logger;
}) {
  const { store, feedback, clock, logger } = options;

  /** Records one parsed report (src/smtp/inbound.ts reportReceiver parses and finds the ids). */
  return async function record(parsed: ParsedReport, report: ReportOrigin): Promise<void> {
    if (parsed.kind === 'auto_reply' || parsed.kind === 'other') {
      logger.info(
        { event: 'inbound_ignored', kind: parsed.kind, to: report.to, ip: report.clientIp },
        'inbound message is not a bounce',
      );
      return;
    }
    const ids = new Set(report.recipientIds);
    const recipients: RecipientRow[] = [];
    for (const id of ids) {
      const r = await store.getRecipient(id);
      if (r) recipients.push(r);
    }
    // No VERP token (a feedback loop that strips the Return-Path): the enclosed Message-ID names
    // the message, and the report's recipient (or the message's only one) the recipient.
    if (recipients.length === 0 && parsed.originalMessageId) {
      const named = new Set(parsed.recipients.map((p) => p.email.toLowerCase()));
      for (const message of await store.findMessagesByHeader(parsed.originalMessageId)) {
        const rows = await store.getRecipients(message.id);
        const matched = rows.filter((r) => named.has(r.address.toLowerCase()));
        recipients.push(...(matched.length > 0 ? matched : rows.length === 1 ? rows : []));
        if (recipients.length > 0) break;
      }
    }
    if (recipients.length === 0) {
      logger.warn(
        { event: 'inbound_unmatched', kind: parsed.kind, to: report.to, ip: report.clientIp },
        'bounce or complaint names no recipient of ours',
      );
      return;
    }
    const at = clock();
    for (const r of recipients) {
      // The report's block for this address; a VERP bounce of one recipient may name it differently
      // (forwarding, aliases), so a lone block applies to it anyway.
      const block =
        parsed.recipients.find((p) => p.email.toLowerCase() === r.address.toLowerCase()) ??
        (parsed.recipients.length === 1 ? parsed.recipients[0] : undefined);
      if (parsed.kind === 'complaint') {
        await store.recordAsyncReports([
          {
            recipientId: r.id,
            at,
            type: 'complained',
            data: { feedbackType: parsed.feedbackType ?? 'abuse', ip: report.clientIp },
          },
        ]);
        await feedback.complaint({
          accountId: r.accountId,
          address: r.address,
          source: r.messageId,
          details: `feedback report (${parsed.feedbackType ?? 'abuse'})`,
        });
        continue;
      }
      const category = block?.category ?? 'other';
      const permanent = block?.permanent ?? true;
      const data = {
        ...(block?.code === undefined ? {} : { code: block.code }),
        status: block?.status ?? '',
        diagnostic: block?.diagnostic ?? '',
        category,
        permanent,
        async: true,
        ip: report.clientIp,
      };
      if (permanent) await store.recordAsyncReports([{ recipientId: r.id, at, type: 'bounced', data }]);
      await feedback.bounce({
        accountId: r.accountId,
        address: r.address,
        category,
        permanent,
        source: r.messageId,
        details: data.diagnostic || data.status,
      });
      logger.info(
        {
          event: permanent ? 'bounced' : 'soft_bounce',
          messageId: r.messageId,
          recipient: r.address,
          category,
          async: true,
        },
        'bounce received',
      );
    }
  };
}
