/**
 * What an open, a click or an unsubscribe records: the event (with user agent, the IP as the
 * privacy setting allows, the URL of a click, and the machine flag), and for an unsubscribe the
 * suppression of the address on the message's stream.
 */
import type { Store } from '../store/store.ts';
import type { EngagementType, EventData, RecipientRow } from '../store/types.ts';
import type { MachineDetector } from './bots.ts';
import { type IpMode, storedIp } from './ip.ts';
import type { TrackingToken } from './token.ts';

export interface EngagementRequest {
  method: string;
  userAgent: string;
  ip: string;
}

const EVENT_OF: Record<TrackingToken['kind'], EngagementType> = {
  open: 'opened',
  click: 'clicked',
  unsubscribe: 'unsubscribed',
};
const USER_AGENT_MAX = 500;

/** How an unsubscribe arrived: RFC 8058's POST, the confirm page's button, or mail to the mailto: address. */
export type UnsubscribeVia = 'one-click' | 'page' | 'mailto';
const VIA_DETAILS: Record<UnsubscribeVia, string> = {
  'one-click': 'one-click unsubscribe (RFC 8058)',
  page: 'unsubscribe page',
  mailto: 'unsubscribe mail (List-Unsubscribe mailto:)',
};

export function createEngagement(options: {
  store: Store;
  clock: () => number;
  machine: MachineDetector;
  ipMode: IpMode;
  /** bounces/suppressions.ts `suppress`. */
  suppress: (input: {
    accountId: string;
    address: string;
    reason: 'unsubscribe';
    source: string;
    details?: string;
    scope?: string;
  }) => Promise<void>;
}) {
  const { store, clock } = options;

  function data(
    token: TrackingToken,
    request: EngagementRequest,
    recipient: RecipientRow,
    at: number,
  ): EventData {
    const userAgent = request.userAgent.slice(0, USER_AGENT_MAX);
    const ip = storedIp(request.ip, options.ipMode);
    const out: EventData = { userAgent, ...(ip === undefined ? {} : { ip }) };
    if (token.kind === 'click') {
      out.url = token.url;
      out.link = token.link;
    }
    if (token.kind !== 'unsubscribe') {
      const reason = options.machine({
        kind: token.kind,
        method: request.method,
        userAgent: request.userAgent,
        ip: request.ip,
        at,
        deliveredAt: recipient.state === 'delivered' ? recipient.updatedAt : undefined,
      });
      out.machine = reason !== undefined;
      if (reason) out.machineReason = reason;
    }
    return out;
  }

  /**
   * Records the open or click a valid token stands for. Returns false when its recipient is
   * gone (retention deleted the message): nothing is recorded.
   */
  async function record(token: TrackingToken, request: EngagementRequest): Promise<boolean> {
    const recipient = await store.getRecipientAt(token.messageId, token.recipient);
    if (!recipient) return false;
    const at = clock();
    const done = await store.recordEngagement({
      recipientId: recipient.id,
      at,
      type: EVENT_OF[token.kind],
      data: data(token, request, recipient, at),
    });
    return done !== undefined;
  }

  /**
   * Unsubscribes the token's recipient from the message's stream: suppression first (the part
   * that matters), then the event. Returns the address, or undefined when the recipient is gone.
   */
  async function unsubscribe(
    token: TrackingToken,
    request: EngagementRequest & { via: UnsubscribeVia },
  ): Promise<string | undefined> {
    const recipient = await store.getRecipientAt(token.messageId, token.recipient);
    if (!recipient) return undefined;
    await options.suppress({
      accountId: recipient.accountId,
      address: recipient.address,
      reason: 'unsubscribe',
      scope: recipient.stream,
      source: token.messageId,
      details: VIA_DETAILS[request.via],
    });
    const at = clock();
    await store.recordEngagement({
      recipientId: recipient.id,
      at,
      type: 'unsubscribed',
      data: { ...data(token, request, recipient, at), via: request.via, scope: recipient.stream },
    });
    return recipient.address;
  }

  return { record, unsubscribe };
}

export type Engagement = ReturnType<typeof createEngagement>;
