import type { Logger } from 'pino';
import { applyAddressPolicy } from '../dns/address-policy.ts';
import { MxError, type MxLookup, resolveMxTargets } from '../dns/mx.ts';
import type { RecipientDsn, Reply } from '../store/types.ts';
import type { DeliveryResult, SessionPool } from './session-pool.ts';

export type AttemptOutcome = 'delivered' | 'temporary' | 'permanent';

export interface DeliveryRequest {
  domain: string;
  mailFrom: string;
  recipients: string[];
  dsn: RecipientDsn;
  body: Buffer;
  /**
   * Called with the answer of a transaction a server took part in, before its connection is
   * used again; the result returned afterwards is the same.
   */
  settle?: (result: DestinationResult) => Promise<void>;
}

export interface ConnectionInfo {
  mxHost: string;
  ip: string;
  port: number;
  sourceIp?: string;
  tls: { protocol: string; cipher: string } | null;
}

export interface DestinationResult {
  recipients: { address: string; outcome: AttemptOutcome; reply: Reply }[];
  connection?: ConnectionInfo;
  durationMs?: number;
}

export interface Destination {
  deliver(request: DeliveryRequest): Promise<DestinationResult>;
}

export interface MxDestinationOptions {
  resolver: MxLookup;
  pool: Pick<SessionPool, 'deliver'>;
  port: number;
  allowPrivate: boolean;
  starttls: 'opportunistic' | 'required' | 'none';
  random?: () => number;
  logger: Logger;
}

const NON_ASCII = /[^\x00-\x7f]/;

function all(request: DeliveryRequest, outcome: AttemptOutcome, reply: Reply): DestinationResult {
  return { recipients: request.recipients.map((address) => ({ address, outcome, reply })) };
}

/**
 * Delivery by MX (RFC 5321 §5.1): resolve, drop addresses the policy refuses, then try each
 * host's addresses in order until one accepts a session. Connection-level failures move on to
 * the next address; anything said inside a session is the answer.
 */
export function createMxDestination(options: MxDestinationOptions): Destination {
  const { resolver, pool, logger } = options;

  return {
    async deliver(request: DeliveryRequest): Promise<DestinationResult> {
      let hosts: Awaited<ReturnType<typeof resolveMxTargets>>['hosts'];
      try {
        const targets = await resolveMxTargets(
          resolver,
          request.domain,
          options.random ? { random: options.random } : {},
        );
        const policy = applyAddressPolicy(targets.hosts, { allowPrivate: options.allowPrivate });
        for (const refused of policy.refused)
          logger.warn({ domain: request.domain, mx: refused.name }, refused.reason);
        if (policy.hosts.length === 0) {
          const reason =
            policy.refused.map((r) => r.reason).join('; ') || `no usable MX host for ${request.domain}`;
          return all(request, 'permanent', { code: 550, enhanced: '5.4.4', text: reason });
        }
        hosts = policy.hosts;
      } catch (err) {
        if (err instanceof MxError) {
          return all(request, err.permanent ? 'permanent' : 'temporary', {
            code: err.permanent ? 550 : 451,
            enhanced: err.enhancedCode,
            text: err.reason,
          });
        }
        throw err;
      }

      const size = request.body.length;
      const smtputf8 = NON_ASCII.test(request.mailFrom) || request.recipients.some((r) => NON_ASCII.test(r));
      const dsn = {
        ...(request.dsn.notify ? { notify: request.dsn.notify } : {}),
        ...(request.dsn.orcpt ? { orcpt: request.dsn.orcpt } : {}),
      };
      let last: DestinationResult | undefined;
      const started = Date.now();
      for (const host of hosts) {
        for (const ip of host.addresses) {
          const toResult = (res: DeliveryResult): DestinationResult => ({
            recipients: res.recipients,
            connection: {
              mxHost: res.connection.mxHost,
              ip: res.connection.ip,
              port: res.connection.port,
              ...(res.connection.localAddress ? { sourceIp: res.connection.localAddress } : {}),
              tls: res.connection.tls ?? null,
            },
            durationMs: Date.now() - started,
          });
          const settle = request.settle;
          const res = await pool.deliver(
            { host: host.name, ip, port: options.port, starttls: options.starttls },
            { from: request.mailFrom, to: request.recipients, size, dsn, smtputf8 },
            request.body,
            settle && ((answered) => settle(toResult(answered))),
          );
          last = toResult(res);
          if (!res.connectionFailed) return last;
          logger.debug(
            { domain: request.domain, mx: host.name, ip },
            'MX address failed; trying the next one',
          );
        }
      }
      // Every address failed at connection level: a temporary failure for all.
      return (
        last ?? all(request, 'temporary', { code: 451, enhanced: '4.4.1', text: 'no MX host reachable' })
      );
    },
  };
}
