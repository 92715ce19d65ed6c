import type { Screening } from '../content/screen.ts';
import { newId } from '../store/ids.ts';
import type { Store } from '../store/store.ts';
import {
  type InsertOptions,
  type IntakeLease,
  type LeasedRecipient,
  leasedAtIntake,
  type MessageDsn,
  type NewMessage,
  type NewRecipient,
  type RecipientDsn,
  type StreamKind,
  type Suppression,
  type SuppressionCheck,
} from '../store/types.ts';
import { recipientDomain } from './address.ts';
import { bodyKey, HANDOFF_BODY_MAX_BYTES, type Handoff } from './handoff.ts';
import { checkMetadata, checkTags } from './labels.ts';
import { type PreparedMessage, prepareMessage, type TraceInfo } from './prepare.ts';
import { SendError } from './send-errors.ts';
import type { TrackOptions } from './send-request.ts';
import { chooseStream, createStreamResolver, UnknownStreamError } from './streams.ts';

export { UnknownStreamError };

export interface Submission {
  accountId: string;
  credentialId: string | null;
  mailFrom: string;
  /** `variant` n gets `variants[n - 1]` instead of `raw`. */
  recipients: { address: string; dsn?: RecipientDsn; variant?: number }[];
  raw: Buffer;
  /** Personalised copies (the API's `recipients`); `raw` may then be empty. */
  variants?: Buffer[];
  source: 'smtp' | 'api';
  clientIp: string;
  dsn: MessageDsn;
  trace: Omit<TraceInfo, 'hostname' | 'queueId' | 'now' | 'recipient' | 'clientIp'>;
  /** The stream named by the request itself (the HTTP API); wins over X-Postbote-Stream. */
  stream?: string;
  /** The credential's default stream ('' or absent: `outbound`), when nothing else names one. */
  defaultStream?: string;
  /** Checked already (intake/labels.ts); X-Postbote-Tags/-Metadata add to them. */
  tags?: string[];
  metadata?: Record<string, string>;
  /** `<template id>@<version>` the content was rendered from. */
  template?: string;
  /** No delivery attempt before this time (epoch ms; the API's send_at). */
  notBefore?: number;
  /** The API request's tracking switches (win over the stream's: tracking/settings.ts). */
  track?: TrackOptions;
  /** The content holds the `{{unsubscribe_url}}` placeholder (intake/send.ts). */
  unsubscribeLink?: boolean;
}

/**
 * Renders an SMTP submission's X-Postbote-Template with X-Postbote-Variables over the message
 * (intake/smtp-template.ts): the new bytes, subject and template reference.
 */
export type SmtpTemplateRenderer = (input: {
  accountId: string;
  template: string;
  variables: string | undefined;
  body: Buffer;
}) => Promise<{ body: Buffer; subject: string; template: string }>;

export interface IntakeOptions {
  store: Store;
  clock: () => number;
  hostname: string;
  /** Send DSNs on bounce/expiry for SMTP submissions (delivery.dsn). */
  dsnOnFailure: boolean;
  /** Called after a durable commit that left due mail in the store, to wake the delivery scheduler. */
  onAccepted?: () => void;
  /**
   * This node's delivery takes fresh mail straight from the commit, leased to it there, while its
   * scheduler grants credits (intake/handoff.ts). Without it every commit wakes the scheduler.
   */
  handoff?: Handoff;
  /** How long a looked-up stream is remembered (default 10 s). */
  streamCacheMs?: number;
  /** What tracking left alone in a message and why (malformed markup, charsets): for the log. */
  onTrackingNotes?: (messageId: string, notes: string[]) => void;
  /** X-Postbote-Template support; without it such a submission is refused. */
  smtpTemplates?: SmtpTemplateRenderer;
  /**
   * Suppression lists (bounces/suppressions.ts): listed recipients are stored `suppressed`, never
   * sent. An API submission is checked before it is built (its answer gives each recipient's
   * status, and tracking skips the suppressed); an SMTP one by the store, inside the intake
   * commit (its 250 names no recipient's status): one store round trip less per message.
   */
  suppressions?: {
    check(input: {
      accountId: string;
      stream: string;
      kind: StreamKind;
      addresses: string[];
    }): Promise<Map<string, Pick<Suppression, 'reason' | 'scope'>>>;
    storeCheck(input: { kind: StreamKind; addresses: string[] }): Promise<SuppressionCheck>;
  };
  /**
   * Open and click tracking, unsubscribe URLs and List-Unsubscribe (tracking/tracker.ts): gives
   * each recipient sent its own copy. Runs after the API's suppression check (an SMTP message's
   * is the store's), before signing.
   */
  tracking?: {
    apply(input: {
      accountId: string;
      messageId: string;
      stream: { name: string; kind: StreamKind };
      track?: TrackOptions;
      unsubscribeLink?: boolean;
      /** Each recipient sent gets `variant` = its own copy (changed in place). */
      recipients: NewRecipient[];
      body: Buffer;
      variants: Buffer[];
    }): Promise<{ body: Buffer; variants: Buffer[]; notes: string[] } | undefined>;
  };
  /**
   * Paused accounts and content checks (content/screen.ts), on the final bytes: refuses
   * (SendError `content_rejected`), holds the recipients, or notes warnings.
   */
  screening?: Screening;
  /**
   * The sending-domain step (domains/sender-gate.ts): sender policy and DKIM signing of every
   * copy. Without it nothing is checked or signed (tests of other parts).
   */
  senderGate?: {
    apply(input: { accountId: string; messageId: string; bodies: Buffer[] }): Promise<{
      bodies: Buffer[];
      envelopeFrom?: string;
    }>;
  };
}

/** X-Postbote-Tags (comma list) and X-Postbote-Metadata (a JSON object), checked like the API's. */
function controlLabels(controls: PreparedMessage['controls']): {
  tags?: string[];
  metadata?: Record<string, string>;
} {
  const out: { tags?: string[]; metadata?: Record<string, string> } = {};
  if (controls.tags !== undefined) {
    out.tags = checkTags(
      controls.tags.split(',').filter((t) => t.trim() !== ''),
      'X-Postbote-Tags',
    );
  }
  if (controls.metadata !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(controls.metadata);
    } catch {
      throw new SendError(
        'invalid_metadata',
        'X-Postbote-Metadata is not a JSON object',
        'X-Postbote-Metadata',
      );
    }
    out.metadata = checkMetadata(parsed, 'X-Postbote-Metadata');
  }
  return out;
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

  /**
   * Checks a submission and turns it into the message to store (nothing is stored yet):
   * InvalidRecipientError, UnknownStreamError or SendError when it is refused.
   */
  async function build(submission: Submission): Promise<NewMessage> {
    const receivedAt = clock();
    const id = newId(receivedAt);
    const recipients: NewRecipient[] = submission.recipients.map((r) => {
      const domain = recipientDomain(r.address);
      if (!domain) throw new InvalidRecipientError(r.address);
      return {
        address: r.address,
        domain,
        ...(r.dsn ? { dsn: r.dsn } : {}),
        ...(r.variant ? { variant: r.variant } : {}),
      };
    });
    const trace = (recipient: string | undefined) => ({
      ...submission.trace,
      clientIp: submission.clientIp,
      hostname,
      queueId: id,
      now: new Date(receivedAt),
      ...(recipient ? { recipient } : {}),
    });
    const shared = recipients.filter((r) => !r.variant);
    const only = shared.length === 1 ? shared[0]?.address : undefined;
    let prepared = prepareMessage(submission.raw, trace(only));
    let template = submission.template ?? '';
    if (prepared.controls.template !== undefined) {
      if (!options.smtpTemplates) {
        throw new SendError(
          'template_not_found',
          'X-Postbote-Template is not supported here',
          'X-Postbote-Template',
        );
      }
      const rendered = await options.smtpTemplates({
        accountId: submission.accountId,
        template: prepared.controls.template,
        variables: prepared.controls.variables,
        body: prepared.body,
      });
      prepared = { ...prepared, body: rendered.body, subject: rendered.subject };
      template = rendered.template;
    }
    const labels = controlLabels(prepared.controls);
    const tags = [...new Set([...(submission.tags ?? []), ...(labels.tags ?? [])])];
    if (tags.length > 0) checkTags(tags);
    const metadata = { ...(submission.metadata ?? {}), ...(labels.metadata ?? {}) };
    // Each personalised copy gets its own trace field naming its one recipient.
    const owners = new Map(recipients.filter((r) => r.variant).map((r) => [r.variant, r.address]));
    const variants = (submission.variants ?? []).map((copy, i) =>
      prepareMessage(copy, trace(owners.get(i + 1))),
    );
    const first = shared.length === 0 ? (variants[0] ?? prepared) : prepared;
    const chosen = chooseStream({
      ...(submission.stream === undefined ? {} : { api: submission.stream }),
      ...(prepared.streamHeader === undefined ? {} : { header: prepared.streamHeader }),
      ...(submission.defaultStream ? { credential: submission.defaultStream } : {}),
    });
    const stream = await streams.resolve(submission.accountId, chosen.name);
    if (!stream) throw new UnknownStreamError(chosen.name, chosen.source);
    const addresses = recipients.map((r) => r.address);
    const inStore = submission.source === 'smtp';
    const suppressionCheck =
      options.suppressions && inStore
        ? await options.suppressions.storeCheck({ kind: stream.kind, addresses })
        : undefined;
    const suppressed =
      options.suppressions && !inStore
        ? await options.suppressions.check({
            accountId: submission.accountId,
            stream: stream.name,
            kind: stream.kind,
            addresses,
          })
        : undefined;
    if (suppressed && suppressed.size > 0) {
      for (const r of recipients) {
        const hit = suppressed.get(r.address.toLowerCase());
        if (hit) r.suppressed = { reason: hit.reason, scope: hit.scope };
      }
    }
    let body = shared.length === 0 && variants.length > 0 ? Buffer.alloc(0) : prepared.body;
    let copies = variants.map((v) => v.body);
    const tracked = options.tracking
      ? await options.tracking.apply({
          accountId: submission.accountId,
          messageId: id,
          stream,
          ...(submission.track ? { track: submission.track } : {}),
          ...(submission.unsubscribeLink ? { unsubscribeLink: true } : {}),
          recipients,
          body,
          variants: copies,
        })
      : undefined;
    if (tracked) {
      body = tracked.body;
      copies = tracked.variants;
      if (tracked.notes.length > 0) options.onTrackingNotes?.(id, tracked.notes);
    }
    // Signing comes last: nothing may change the bytes after it.
    const gated = options.senderGate
      ? await options.senderGate.apply({
          accountId: submission.accountId,
          messageId: id,
          bodies: [body, ...copies],
        })
      : undefined;
    const screened = options.screening
      ? await options.screening.screen({
          accountId: submission.accountId,
          messageId: id,
          stream: stream.name,
          kind: stream.kind,
          raw: gated?.bodies[0] ?? (body.length > 0 ? body : (copies[0] ?? body)),
          ...(submission.source === 'smtp' ? { original: submission.raw } : {}),
          mailFrom: submission.mailFrom,
          recipients: addresses,
          clientIp: submission.clientIp,
          credentialId: submission.credentialId,
        })
      : undefined;
    if (screened?.held) for (const r of recipients) r.held = screened.held;
    return {
      id,
      accountId: submission.accountId,
      credentialId: submission.credentialId,
      mailFrom: submission.mailFrom,
      recipients,
      body: gated?.bodies[0] ?? body,
      messageIdHeader: first.messageIdHeader,
      subject: first.subject,
      source: submission.source,
      clientIp: submission.clientIp,
      dsn: submission.dsn,
      // API senders learn about bounces from events and webhooks, not from DSN mail.
      dsnOnFailure: options.dsnOnFailure && submission.source === 'smtp' && submission.mailFrom !== '',
      receivedAt,
      ...(submission.notBefore !== undefined && submission.notBefore > receivedAt
        ? { notBefore: submission.notBefore }
        : {}),
      stream: stream.name,
      kind: stream.kind,
      ...(tags.length > 0 ? { tags } : {}),
      ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
      ...(template ? { template } : {}),
      ...(copies.length > 0 ? { variants: gated?.bodies.slice(1) ?? copies } : {}),
      ...(gated?.envelopeFrom ? { envelopeFrom: gated.envelopeFrom } : {}),
      ...(screened && screened.warnings.length > 0 ? { contentWarnings: screened.warnings } : {}),
      ...(suppressionCheck ? { suppressionCheck } : {}),
    };
  }

  /**
   * Stores built messages in one durable commit (with what `insertOptions` names), then hands
   * what is due to this node's delivery: leased in the commit when the scheduler has granted
   * room for all of it (intake/handoff.ts), else left queued and the scheduler woken.
   */
  async function commit(messages: NewMessage[], insertOptions?: InsertOptions): Promise<void> {
    if (messages.length === 0) return;
    const handoff = options.handoff;
    let lease: IntakeLease | undefined;
    let wanted = 0;
    if (handoff) {
      const now = clock();
      const terms = { owner: handoff.owner, until: now + handoff.leaseMs, now };
      for (const m of messages) for (const r of m.recipients) if (leasedAtIntake(m, r, terms)) wanted++;
      if (wanted > 0 && handoff.credits.take(wanted)) lease = terms;
    }
    let leased: LeasedRecipient[];
    try {
      leased = await store.insertMessages(messages, lease ? { ...insertOptions, lease } : insertOptions);
    } catch (err) {
      if (lease) handoff?.credits.giveBack(wanted);
      throw err;
    }
    if (handoff && lease) {
      handoff.credits.giveBack(wanted - leased.length);
      if (leased.length > 0) handoff.deliver({ recipients: leased, bodies: handedBodies(messages, leased) });
    } else {
      options.onAccepted?.();
    }
  }

  async function submit(submission: Submission): Promise<{ id: string }> {
    const message = await build(submission);
    await commit([message]);
    return { id: message.id };
  }

  return { build, commit, submit };
}

/**
 * The copies the handed-over recipients need, each in a buffer of its own (moved to the delivery
 * thread, not copied again); a copy over HANDOFF_BODY_MAX_BYTES is left for delivery to read
 * from the store.
 */
function handedBodies(messages: NewMessage[], leased: LeasedRecipient[]): [string, Uint8Array][] {
  const byId = new Map(messages.map((m) => [m.id, m]));
  const bodies = new Map<string, Uint8Array>();
  for (const r of leased) {
    const key = bodyKey(r.messageId, r.variant);
    if (bodies.has(key)) continue;
    const m = byId.get(r.messageId);
    const copy = r.variant === 0 ? m?.body : m?.variants?.[r.variant - 1];
    if (copy && copy.byteLength <= HANDOFF_BODY_MAX_BYTES) bodies.set(key, new Uint8Array(copy));
  }
  return [...bodies];
}

export type Intake = ReturnType<typeof createIntake>;
