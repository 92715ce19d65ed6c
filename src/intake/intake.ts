import { newId } from '../store/ids.ts';
import type { Store } from '../store/store.ts';
import type { MessageDsn, NewMessage, NewRecipient, RecipientDsn } from '../store/types.ts';
import { recipientDomain } from './address.ts';
import { prepareMessage, type TraceInfo } from './prepare.ts';

export interface Submission {
  accountId: string;
  credentialId: string | null;
  mailFrom: string;
  recipients: { address: string; dsn?: RecipientDsn }[];
  raw: Buffer;
  source: 'smtp' | 'api';
  clientIp: string;
  dsn: MessageDsn;
  trace: Omit<TraceInfo, 'hostname' | 'queueId' | 'now' | 'recipient' | 'clientIp'>;
}

export interface IntakeOptions {
  store: Store;
  clock: () => number;
  hostname: string;
  /** Send DSNs on bounce/expiry for SMTP submissions (delivery.dsn). */
  dsnOnFailure: boolean;
  /** Called after each durable commit, to wake the delivery scheduler. */
  onAccepted?: () => void;
}

/** A recipient the intake refuses, with the reason (mapped to SMTP/HTTP errors by callers). */
export class InvalidRecipientError extends Error {
  readonly address: string;
  constructor(address: string) {
    super(`recipient <${address}> has no valid domain`);
    this.name = 'InvalidRecipientError';
    this.address = address;
  }
}

/**
 * Turns a submission into one stored message with one row per recipient. The returned
 * promise resolves only after the store's durable commit: callers answer 250/202 then.
 */
export function createIntake(options: IntakeOptions) {
  const { store, clock, hostname } = options;

  async function submit(submission: Submission): Promise<{ id: string }> {
    const receivedAt = clock();
    const id = newId(receivedAt);
    const recipients: NewRecipient[] = submission.recipients.map((r) => {
      const domain = recipientDomain(r.address);
      if (!domain) throw new InvalidRecipientError(r.address);
      return { address: r.address, domain, ...(r.dsn ? { dsn: r.dsn } : {}) };
    });
    const only = recipients.length === 1 ? recipients[0]?.address : undefined;
    const prepared = prepareMessage(submission.raw, {
      ...submission.trace,
      clientIp: submission.clientIp,
      hostname,
      queueId: id,
      now: new Date(receivedAt),
      ...(only ? { recipient: only } : {}),
    });
    const message: NewMessage = {
      id,
      accountId: submission.accountId,
      credentialId: submission.credentialId,
      mailFrom: submission.mailFrom,
      recipients,
      body: prepared.body,
      messageIdHeader: prepared.messageIdHeader,
      subject: prepared.subject,
      source: submission.source,
      clientIp: submission.clientIp,
      dsn: submission.dsn,
      dsnOnFailure: options.dsnOnFailure && submission.mailFrom !== '',
      receivedAt,
    };
    await store.insertMessages([message]);
    options.onAccepted?.();
    return { id };
  }

  return { submit };
}

export type Intake = ReturnType<typeof createIntake>;
