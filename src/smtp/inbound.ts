/**
 * The inbound MX: where bounces (to VERP return paths), feedback-loop complaints (to the
 * configured feedback addresses) and unsubscribe mail (to the `mailto:` of List-Unsubscribe,
 * tracking/mailto.ts) arrive. Written as SMTP phase hooks like `submission.ts`.
 *
 * It is a sink, never a relay: a recipient is accepted only when it is a VERP or unsubscribe
 * address whose MAC checks out for one of our return-path domains, or a configured feedback
 * address; everything else gets `550 5.7.1`. Nothing received here is ever sent on, and nothing received here ever
 * makes us send mail (no DSN of a DSN: RFC 3464 §2, and no backscatter).
 */
import type { AddressInfo } from 'node:net';
import type tls from 'node:tls';
import type { ParsedReport } from '../bounces/parse.ts';
import { readVerp, readVerpAddress, VERP_PREFIX } from '../bounces/verp.ts';
import { MAILTO_PREFIX, type MailtoToken, readMailto } from '../tracking/mailto.ts';
import { replies } from './replies.ts';
import { createSmtpServer, type SmtpServer } from './server/index.ts';
import type { SmtpHandlers, SmtpLogger, SmtpSession } from './server/types.ts';

/** RCPTs per transaction. A bounce has one, a report one or two; more is someone probing. */
export const INBOUND_MAX_RECIPIENTS = 50;

/** What one accepted message hands to the bounce pipeline. */
export interface InboundReport {
  /** Recipient ids from the VERP tokens of the RCPTs, without repeats; empty for feedback mail. */
  recipientIds: number[];
  /** Every accepted RCPT address, as the client wrote it. */
  to: string[];
  /** The message as received (dot-stuffing undone). */
  raw: Buffer;
  clientIp: string;
}

/** One message to an unsubscribe address (the `mailto:` of List-Unsubscribe). */
export interface InboundUnsubscribe {
  token: MailtoToken;
  /** The RCPT address as the client wrote it. */
  address: string;
  clientIp: string;
}

export interface InboundDeps {
  /** Whether `domain` (lower case) is the return-path domain of one of our sending domains. */
  isOurReturnPath(domain: string): boolean;
  /** Feedback-loop addresses; matched exactly, ignoring case. */
  feedbackAddresses: Set<string>;
  /** The VERP secret (`loadBounceSecret`). */
  secret: Buffer;
  /**
   * Takes one received message. Resolve once it is safely recorded; reject only when it could
   * not be (store down): the client then gets 451 and retries. Content that cannot be
   * understood must not reject, or every retry fails the same way (see `reportReceiver`).
   */
  onReport(input: InboundReport): Promise<void>;
  /**
   * Unsubscribe mail (tracking/mailto.ts): `key` is the tracking key its addresses are signed
   * with; `onUnsubscribe` records one, resolving once it is recorded (a recipient that is gone
   * resolves too) and rejecting only when it could not be (451, the sender retries). Without
   * it, `u+` addresses are refused like any other unknown address.
   */
  unsubscribe?: { key: Buffer; onUnsubscribe(input: InboundUnsubscribe): Promise<void> };
  logger: SmtpLogger;
}

function splitAddress(address: string): { local: string; domain: string } | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  return { local: address.slice(0, at), domain: address.slice(at + 1).toLowerCase() };
}

/**
 * The inbound MX policy: no AUTH, any MAIL FROM (bounces come from `<>`), RCPT only for our
 * VERP and feedback addresses, DATA handed to `onReport` and answered 250, or 451 when it
 * could not be recorded.
 */
export function inboundHandlers(deps: InboundDeps): SmtpHandlers {
  const { isOurReturnPath, secret, onReport, logger, unsubscribe } = deps;
  const feedback = new Set([...deps.feedbackAddresses].map((a) => a.toLowerCase()));

  /** The token of an unsubscribe address on a return-path domain of ours, else undefined. */
  const mailtoToken = (address: string): MailtoToken | undefined => {
    if (!unsubscribe || feedback.has(address.toLowerCase())) return undefined;
    const parts = splitAddress(address);
    if (!parts?.local.toLowerCase().startsWith(MAILTO_PREFIX) || !isOurReturnPath(parts.domain))
      return undefined;
    return readMailto(parts.local, parts.domain, unsubscribe.key);
  };

  /** The recipient id of an accepted VERP address; `undefined` for feedback addresses. */
  const verpId = (address: string): number | undefined =>
    feedback.has(address.toLowerCase()) ? undefined : readVerpAddress(address, secret);

  /** A VERP address with a genuine token, on a return-path domain of ours. */
  const isOurVerp = ({ local, domain }: { local: string; domain: string }): boolean =>
    local.toLowerCase().startsWith(VERP_PREFIX) &&
    isOurReturnPath(domain) &&
    readVerp(local, domain, secret) !== undefined;

  return {
    onRcptTo(session: SmtpSession, address: string) {
      // The server enforces its own maxRecipients; this keeps the policy whatever it was given.
      if (session.envelope.rcptTo.length >= INBOUND_MAX_RECIPIENTS) return replies.tooManyRecipients;
      if (feedback.has(address.toLowerCase())) return undefined;
      const parts = splitAddress(address);
      if (parts && isOurVerp(parts)) return undefined;
      if (mailtoToken(address)) return undefined;
      logger.info(
        { session: session.id, ip: session.remoteAddress, domain: parts?.domain ?? '' },
        'RCPT refused: not a bounce, feedback or unsubscribe address',
      );
      return replies.notOurAddress;
    },

    async onData(session: SmtpSession, message: Buffer) {
      const all = session.envelope.rcptTo.map((r) => r.address);
      // Unsubscribe mail is not a report: its RCPTs are handled here, the rest goes on.
      const unsubscribes = new Map<string, InboundUnsubscribe>();
      const to: string[] = [];
      for (const address of all) {
        const token = mailtoToken(address);
        if (!token) to.push(address);
        else
          unsubscribes.set(`${token.messageId}-${token.recipient}`, {
            token,
            address,
            clientIp: session.remoteAddress,
          });
      }
      const recipientIds: number[] = [];
      for (const address of to) {
        const id = verpId(address);
        if (id !== undefined && !recipientIds.includes(id)) recipientIds.push(id);
      }
      try {
        for (const input of unsubscribes.values()) await unsubscribe?.onUnsubscribe(input);
        if (to.length > 0)
          await onReport({ recipientIds, to, raw: message, clientIp: session.remoteAddress });
      } catch (err) {
        logger.error(
          { err, session: session.id, ip: session.remoteAddress },
          'could not record the report; answered 451',
        );
        return replies.storeUnavailable;
      }
      logger.info(
        {
          event: 'report_received',
          session: session.id,
          ip: session.remoteAddress,
          recipients: to.length,
          recipientIds: recipientIds.length,
          unsubscribes: unsubscribes.size,
          size: message.length,
        },
        'report received',
      );
      return replies.ok;
    },
  };
}

/**
 * An `onReport` that parses and records: a parser that throws is logged and the message is
 * dropped (answered 250, a sender retrying the same bytes would fail forever), while a failing
 * `record` rejects (451, the sender retries later). A complaint sent to a feedback address has
 * no VERP RCPT; its recipient comes from the original message's return path, when that carries
 * a valid token.
 */
export function reportReceiver(deps: {
  parseReport(raw: Buffer): ParsedReport;
  record(report: ParsedReport, input: InboundReport): Promise<void>;
  secret: Buffer;
  logger: SmtpLogger;
}): (input: InboundReport) => Promise<void> {
  const { parseReport, record, secret, logger } = deps;
  return async (input) => {
    let report: ParsedReport;
    try {
      report = parseReport(input.raw);
    } catch (err) {
      logger.warn(
        { err, ip: input.clientIp, recipientIds: input.recipientIds.length, size: input.raw.length },
        'unreadable report dropped',
      );
      return;
    }
    let recipientIds = input.recipientIds;
    if (recipientIds.length === 0 && report.returnPathToken) {
      const id = readVerpAddress(report.returnPathToken, secret);
      if (id !== undefined) recipientIds = [id];
    }
    await record(report, { ...input, recipientIds });
  };
}

export interface InboundMxOptions {
  listen: { host: string; port: number };
  /** Name in the greeting and the EHLO reply: the MX host name. */
  hostname: string;
  /** Certificate getter; STARTTLS is offered when given. */
  tls?: () => tls.SecureContext | undefined;
  /** Largest message in bytes (SIZE, 552 above). */
  sizeLimit: number;
  handlers: SmtpHandlers;
  logger?: SmtpLogger;
  /**
   * Pause before the greeting; a client talking into it is a spam engine and is cut off
   * (RFC 5321 §4.3.1, the Postfix postscreen/sendmail greet_pause idea). Real MTAs wait up
   * to 5 minutes for a greeting (RFC 5321 §4.5.3.2.1), so 2 s costs them nothing. Default 2000.
   */
  greetingDelayMs?: number;
  /** Default 5 minutes, the server timeout RFC 5321 §4.5.3.2.7 asks for. */
  idleTimeoutMs?: number;
  /** Default 500. */
  maxConnections?: number;
  /** Default 20. */
  maxConnectionsPerIp?: number;
}

export interface InboundMx {
  server: SmtpServer;
  address: AddressInfo;
  close(): Promise<void>;
}

/** Listen as the inbound MX: no AUTH ever, STARTTLS when a certificate is given. */
export async function startInboundMx(options: InboundMxOptions): Promise<InboundMx> {
  const server = createSmtpServer({
    hostname: options.hostname,
    ...(options.tls ? { tls: options.tls } : {}),
    sizeLimit: options.sizeLimit,
    maxRecipients: INBOUND_MAX_RECIPIENTS,
    idleTimeoutMs: options.idleTimeoutMs ?? 300_000,
    maxConnections: options.maxConnections ?? 500,
    maxConnectionsPerIp: options.maxConnectionsPerIp ?? 20,
    greetingDelayMs: options.greetingDelayMs ?? 2000,
    authMethods: [],
    handlers: options.handlers,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const address = await server.listen(options.listen.port, options.listen.host);
  return { server, address, close: () => server.close() };
}
