import type { Logger } from 'pino';
import { recipientDomain } from '../intake/address.ts';
import { newId } from '../store/ids.ts';
import type { Store } from '../store/store.ts';
import type { DsnNotify } from '../store/types.ts';
import { buildDsn, type DsnRecipient } from './dsn.ts';
import type { FinalFailure } from './scheduler.ts';

/**
 * Turns recipients that failed for good into one delivery status notification per original
 * message, queued like any other mail from the null sender (so it can never bounce back).
 * Honours RFC 3461 NOTIFY (NEVER, or a list without FAILURE, means no DSN).
 */
export function createDsnSender(deps: {
  store: Store;
  clock: () => number;
  hostname: string;
  logger: Logger;
}) {
  const { store, clock, hostname, logger } = deps;

  function wantsFailureNotice(notify: DsnNotify[] | undefined): boolean {
    if (!notify || notify.length === 0) return true;
    return notify.includes('FAILURE') && !notify.includes('NEVER');
  }

  async function sendFor(messageId: string, failures: FinalFailure[]): Promise<boolean> {
    const message = await store.getMessage(messageId);
    if (!message?.dsnOnFailure || message.mailFrom === '') return false;
    const wanted = failures.filter((f) => wantsFailureNotice(f.recipient.dsn.notify));
    if (wanted.length === 0) return false;
    const domain = recipientDomain(message.mailFrom);
    if (!domain) return false;
    const original = (await store.getBody(messageId)) ?? Buffer.alloc(0);
    const now = clock();
    const id = newId(now);
    const dsnMessageId = `<${id}.dsn@${hostname}>`;
    const recipients: DsnRecipient[] = wanted.map((f) => {
      const reply = f.outcome.reply;
      const expired = f.outcome.state === 'expired';
      // The remote's own enhanced code when it gave one; otherwise 4.4.7 (delivery time expired)
      // or 5.0.0 (other permanent failure), RFC 3463.
      const status =
        reply?.enhanced && /^[45]\./.test(reply.enhanced) ? reply.enhanced : expired ? '4.4.7' : '5.0.0';
      return {
        address: f.recipient.address,
        ...(f.recipient.dsn.orcpt ? { originalRecipient: f.recipient.dsn.orcpt } : {}),
        action: 'failed',
        status,
        ...(f.remoteMta ? { remoteMta: f.remoteMta } : {}),
        ...(reply && reply.code >= 400
          ? {
              diagnosticCode: `smtp; ${reply.code} ${reply.enhanced ?? ''} ${reply.text}`.replace(
                /\s+/g,
                ' ',
              ),
            }
          : reply
            ? { diagnosticCode: `x-postbote; ${reply.text}` }
            : {}),
        lastAttemptDate: new Date(f.outcome.at),
      };
    });
    const body = buildDsn({
      reportingMta: hostname,
      postmaster: `postmaster@${hostname}`,
      ...(message.dsn.envid ? { originalEnvelopeId: message.dsn.envid } : {}),
      arrivalDate: new Date(message.receivedAt),
      originalMessage: original,
      ...(message.dsn.ret ? { ret: message.dsn.ret } : {}),
      originalMailFrom: message.mailFrom,
      recipients,
      now: new Date(now),
      messageId: dsnMessageId,
    });
    await store.insertMessages([
      {
        id,
        accountId: message.accountId,
        credentialId: null,
        mailFrom: '',
        recipients: [{ address: message.mailFrom, domain }],
        body,
        messageIdHeader: dsnMessageId,
        subject: 'Undelivered Mail Returned to Sender',
        source: 'dsn',
        clientIp: '',
        dsn: {},
        dsnOnFailure: false,
        receivedAt: now,
      },
    ]);
    logger.info(
      { event: 'dsn_queued', messageId: id, originalMessageId: messageId, recipients: recipients.length },
      'delivery status notification queued for the sender',
    );
    return true;
  }

  return {
    /** Queues DSNs for these failures; returns how many DSN messages were queued. */
    async send(failures: FinalFailure[]): Promise<number> {
      const byMessage = new Map<string, FinalFailure[]>();
      for (const f of failures) {
        const list = byMessage.get(f.recipient.messageId) ?? [];
        list.push(f);
        byMessage.set(f.recipient.messageId, list);
      }
      let queued = 0;
      for (const [messageId, list] of byMessage) {
        try {
          if (await sendFor(messageId, list)) queued++;
        } catch (err) {
          logger.error({ err, messageId }, 'could not queue a delivery status notification');
        }
      }
      return queued;
    },
  };
}
