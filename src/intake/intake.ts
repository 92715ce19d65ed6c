import { newId } from '../store/ids.ts';
import type { Store } from '../store/store.ts';
import type { MessageDsn, NewMessage, NewRecipient, RecipientDsn } from '../store/types.ts';
import { recipientDomain } from './address.ts';
import { prepareMessage, type TraceInfo } from './prepare.ts';
import { chooseStream, createStreamResolver, UnknownStreamError } from './streams.ts';

export { UnknownStreamError };

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
  /** The stream named by the request itself (the HTTP API); wins over X-Postbote-Stream. */
  stream?: string;
  /** The credential's default stream ('' or absent: `outbound`), when nothing else names one. */
  defaultStream?: string;
}

export interface IntakeOptions {
  store: Store;
  clock: () => number;
  hostname: string;
  /** Send DSNs on bounce/expiry for SMTP submissions (delivery.dsn). */
  dsnOnFailure: boolean;
  /** Called after each durable commit, to wake the delivery scheduler. */
  onAccepted?: () => void;
  /** How long a looked-up stream is remembered (default 10 s). */
  streamCacheMs?: number;
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
 * Turns a submission into one stored message with one row per recipient, in the stream it
 * names (UnknownStreamError when its account has no such stream: nothing is stored). The
 * returned promise resolves only after the store's durable commit: callers answer 250/202 then.
 */
export function createIntake(options: IntakeOptions) {
  const { store, clock, hostname } = options;
  const streams = createStreamResolver({
    store,
    clock,
    ...(options.streamCacheMs === undefined ? {} : { cacheMs: options.streamCacheMs }),
  });

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
    const chosen = chooseStream({
      ...(submission.stream === undefined ? {} : { api: submission.stream }),
      ...(prepared.streamHeader === undefined ? {} : { header: prepared.streamHeader }),
      ...(submission.defaultStream ? { credential: submission.defaultStream } : {}),
    });
    const stream = await streams.resolve(submission.accountId, chosen.name);
    if (!stream) throw new UnknownStreamError(chosen.name, chosen.source);
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
      stream: stream.name,
      kind: stream.kind,
    };
    await store.insertMessages([message]);
    options.onAccepted?.();
    return { id };
  }

  return { submit };
}

export type Intake = ReturnType<typeof createIntake>;
