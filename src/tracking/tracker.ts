/**
 * Intake's tracking step (between the suppression check and DKIM signing): when the message's
 * settings ask for it, every recipient that will be sent gets a copy of its own, with tracked
 * links, the open pixel, its unsubscribe URL and, on broadcast streams, List-Unsubscribe and
 * List-Unsubscribe-Post (RFC 8058) in the header, so the signature covers them.
 *
 * Each distinct body (the shared one, each personalised copy) is planned once (mime.ts,
 * html.ts); a recipient's copy is then only its tokens filled in and its parts re-encoded.
 * Suppressed recipients are never sent and get no copy.
 *
 * List-Unsubscribe names a `mailto:` unsubscribe address (mailto.ts) beside the URL only when
 * the inbound MX is on and the sending domain's return path is known (`mailtoDomain`): a dead
 * address is worse than none (RFC 8058 needs only the HTTPS URI).
 */
import { authorDomains } from '../domains/sender-gate.ts';
import type { TrackOptions } from '../intake/send-request.ts';
import type { NewRecipient, StreamKind } from '../store/types.ts';
import type { TrackingHosts } from './hosts.ts';
import type { Slot } from './html.ts';
import { mailtoAddress, mailtoUri } from './mailto.ts';
import {
  ByteWriter,
  type Header,
  hasHeaderField,
  type MessagePlan,
  planMessage,
  writeMessage,
} from './mime.ts';
import { effectiveTracking, type StreamTrackingLookup } from './settings.ts';
import { signToken, type TrackingToken } from './token.ts';

export interface TrackInput {
  accountId: string;
  messageId: string;
  stream: { name: string; kind: StreamKind };
  /** The API request's `track` (wins over the stream). */
  track?: TrackOptions;
  /** The content holds `{{unsubscribe_url}}` (intake/send.ts): copies are needed even without tracking. */
  unsubscribeLink?: boolean;
  /** Changed in place: each recipient sent gets `variant` = its own copy. */
  recipients: NewRecipient[];
  /** The shared body (variant 0; empty when every recipient is personalised). */
  body: Buffer;
  /** Personalised copies (variant n = variants[n - 1]). */
  variants: Buffer[];
}

export interface TrackResult {
  body: Buffer;
  variants: Buffer[];
  /** What was left alone and why (malformed markup, charsets), for the log. */
  notes: string[];
}

/** The paths of the tracking endpoints (tracking/routes.ts). */
export const TRACKING_PATHS = { open: '/o/', click: '/c/', unsubscribe: '/u/' } as const;

export function createTracker(options: {
  streams: StreamTrackingLookup;
  hosts: TrackingHosts;
  /** HMAC key of the tokens (token.ts trackingKey). */
  key: Buffer;
  /** `http.public_url`, or the listener's own address once it is known. */
  publicUrl: () => string;
  /**
   * The return-path domain for the `mailto:` of List-Unsubscribe (hosts.ts returnPathFor), given
   * only when the inbound MX that receives such mail is on.
   */
  mailtoDomain?: (accountId: string, fromDomain: string | undefined) => Promise<string | undefined>;
}) {
  const { key } = options;

  /** The copies to store, or undefined when nothing changes (tracking off, nothing to rewrite). */
  async function apply(input: TrackInput): Promise<TrackResult | undefined> {
    const stream = await options.streams.get(input.accountId, input.stream.name);
    const settings = effectiveTracking(input.stream.kind, stream, input.track);
    const listUnsubscribe = settings.listUnsubscribe;
    if (!settings.opens && !settings.clicks && !listUnsubscribe && !input.unsubscribeLink) return undefined;
    const sent = input.recipients.filter((r) => !r.suppressed);
    if (sent.length === 0) return undefined;

    const first =
      input.body.length > 0 ? input.body : (input.variants.find((v) => v.length > 0) ?? input.body);
    const fromDomain = authorDomains(first)[0];
    const base = (await options.hosts.baseFor(input.accountId, fromDomain)) ?? options.publicUrl();
    const mailtoDomain =
      listUnsubscribe && options.mailtoDomain
        ? await options.mailtoDomain(input.accountId, fromDomain)
        : undefined;
    const notes: string[] = [];
    const plans = new Map<number, { plan: MessagePlan; bytes: Buffer; hasListUnsubscribe: boolean }>();
    // A plan is dropped after its last recipient: a personalised copy's plan (its text and
    // segments) then dies young instead of living, and being promoted, until the batch ends.
    const uses = new Map<number, number>();
    for (const r of sent) uses.set(r.variant ?? 0, (uses.get(r.variant ?? 0) ?? 0) + 1);
    // Personalised copies of one template have the same part headers: read once.
    const headerCache = new Map<string, Header>();
    const planOf = (variant: number) => {
      let found = plans.get(variant);
      if (!found) {
        const bytes = variant === 0 ? input.body : (input.variants[variant - 1] ?? Buffer.alloc(0));
        const raw = bytes.toString('latin1');
        const plan = planMessage(raw, {
          clicks: settings.clicks,
          textLinks: settings.clicks && settings.textLinks,
          opens: settings.opens,
          headerCache,
        });
        notes.push(...plan.notes);
        const hasListUnsubscribe = hasHeaderField(raw, plan.headerEnd, 'list-unsubscribe');
        if (listUnsubscribe && hasListUnsubscribe)
          notes.push('the message has its own List-Unsubscribe: kept');
        found = { plan, bytes, hasListUnsubscribe };
        plans.set(variant, found);
      }
      return found;
    };

    const url = (token: TrackingToken, suffix = '') => {
      const path = TRACKING_PATHS[token.kind];
      return `${base}${path}${signToken(token, key)}${suffix}`;
    };
    const variants: Buffer[] = [];
    // Each copy is written here and copied out (mime.ts ByteWriter); `scratch` holds a part's text.
    const out = new ByteWriter();
    const scratch = new ByteWriter();
    for (const [index, r] of input.recipients.entries()) {
      if (r.suppressed) {
        r.variant = 0;
        continue;
      }
      const variant = r.variant ?? 0;
      const { plan, bytes, hasListUnsubscribe } = planOf(variant);
      const left = (uses.get(variant) ?? 1) - 1;
      uses.set(variant, left);
      if (left <= 0) plans.delete(variant);
      const unsubscribeUrl = url({ kind: 'unsubscribe', messageId: input.messageId, recipient: index });
      const fill = (slot: Slot): string => {
        if (slot.kind === 'unsubscribe') return unsubscribeUrl;
        if (slot.kind === 'open')
          return url({ kind: 'open', messageId: input.messageId, recipient: index }, '.gif');
        return url({
          kind: 'click',
          messageId: input.messageId,
          recipient: index,
          link: slot.link,
          url: slot.url,
        });
      };
      let fields = '';
      if (listUnsubscribe && !hasListUnsubscribe) {
        const mailto =
          mailtoDomain === undefined
            ? undefined
            : mailtoUri(mailtoAddress({ messageId: input.messageId, recipient: index }, mailtoDomain, key));
        fields = listUnsubscribeFields(unsubscribeUrl, mailto);
      }
      if (!plan.changed && fields === '') variants.push(bytes);
      else {
        out.pos = 0;
        writeMessage(plan, fill, out, scratch, fields);
        variants.push(out.take());
      }
      r.variant = variants.length;
    }
    const shared = input.recipients.some((r) => !r.variant);
    return { body: shared ? input.body : Buffer.alloc(0), variants, notes: [...new Set(notes)] };
  }

  return { apply };
}

export type Tracker = ReturnType<typeof createTracker>;

/**
 * List-Unsubscribe (the URL, then the mailto: URI when given, on a folded line of its own) and
 * List-Unsubscribe-Post, as header fields with their CRLFs.
 */
export function listUnsubscribeFields(unsubscribeUrl: string, mailto?: string): string {
  const value = mailto === undefined ? `<${unsubscribeUrl}>` : `<${unsubscribeUrl}>,\r\n <${mailto}>`;
  return `List-Unsubscribe: ${value}\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n`;
}
