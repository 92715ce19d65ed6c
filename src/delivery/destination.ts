import type { Logger } from 'pino';
import { applyAddressPolicy } from '../dns/address-policy.ts';
import { MxError, type MxLookup, resolveMxTargets } from '../dns/mx.ts';
import type { RecipientDsn, Reply } from '../store/types.ts';
import type { DeliveryResult, SessionPool, TargetHost } from './session-pool.ts';
import type { AdaptiveShaper } from './shaping/adaptive.ts';
import type { ShapingPolicy } from './shaping/policy.ts';

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
  /** Lower goes first when connections are scarce (0 transactional, 1 broadcast). */
  priority?: number;
  /** Whose mail (adaptive shaping rules may suspend an account or one of its streams). */
  account?: string;
  stream?: string;
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
  /** The site it went to (shaping), when the domain resolved. */
  site?: string;
  /** Not before this time (epoch ms): the site is suspended or its circuit is open. */
  retryAt?: number;
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
  /** Sites (MX rollup) and their limits; without it each MX host set is its own site with the pool's limits. */
  shaping?: Pick<ShapingPolicy, 'siteOf' | 'limitsFor'>;
  /** Adaptive rules: replies may throttle or suspend a site, a stream or an account. */
  adaptive?: AdaptiveShaper;
  clock?: () => number;
  random?: () => number;
  logger: Logger;
}

const NON_ASCII = /[^\x00-\x7f]/;

function all(request: DeliveryRequest, outcome: AttemptOutcome, reply: Reply): DestinationResult {
  return { recipients: request.recipients.map((address) => ({ address, outcome, reply })) };
}

/**
 * Delivery by MX (RFC 5321 §5.1): resolve, drop addresses the policy refuses, and hand the
 * site (the MX host set, rolled up by provider: shaping/site.ts) with every address in
 * preference order to the pool, which connects to the first that holds a session.
 * Connection-level failures move on to the next address; anything said inside a session is the
 * answer.
 */
export function createMxDestination(options: MxDestinationOptions): Destination {
  const { resolver, pool, logger } = options;
  const clock = options.clock ?? Date.now;

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
      // Every address of every host, in preference order: the pool tries them in turn.
      const targets: TargetHost[] = hosts.flatMap((h) => h.addresses.map((ip) => ({ host: h.name, ip })));
      const names = hosts.map((h) => h.name);
      const site = options.shaping ? options.shaping.siteOf(names) : undefined;
      const siteKey = site?.key ?? [...new Set(names.map((n) => n.toLowerCase()))].sort().join(',');
      const limits = site && options.shaping?.limitsFor(site);
      const starttls = limits?.tls ?? options.starttls;
      const source = '*';
      const context = {
        source,
        site: siteKey,
        ...(site?.provider ? { provider: site.provider } : {}),
        ...(request.account ? { account: request.account } : {}),
        ...(request.stream ? { stream: request.stream } : {}),
      };
      const adaptive = options.adaptive;
      const suspendedUntil = adaptive?.suspendedUntil(context, clock());
      if (suspendedUntil !== undefined) {
        const why = adaptive
          ?.active(clock())
          .find((a) => a.kind !== 'throttle' && a.until === suspendedUntil);
        return {
          ...all(request, 'temporary', {
            code: 451,
            enhanced: '4.7.0',
            text: `sending suspended until ${new Date(suspendedUntil).toISOString()}${why ? ` by rule ${why.rule} (${why.reply})` : ''}`,
          }),
          site: siteKey,
          retryAt: suspendedUntil,
        };
      }
      const throttle = adaptive?.throttleFor(source, siteKey, clock());
      const started = Date.now();
      const toResult = (res: DeliveryResult): DestinationResult => ({
        recipients: res.recipients,
        connection: {
          mxHost: res.connection.mxHost,
          ip: res.connection.ip,
          port: res.connection.port,
          ...(res.connection.localAddress ? { sourceIp: res.connection.localAddress } : {}),
          tls: res.connection.tls ?? null,
        },
        site: siteKey,
        durationMs: Date.now() - started,
        ...(res.retryAt !== undefined ? { retryAt: res.retryAt } : {}),
      });
      const settle = request.settle;
      const res = await pool.deliver(
        {
          site: siteKey,
          hosts: targets,
          port: options.port,
          starttls,
          source,
          ...(limits || throttle
            ? {
                limits: {
                  ...(limits
                    ? {
                        maxConnections: limits.maxConnections,
                        maxMessagesPerConnection: limits.maxMessagesPerConnection,
                        rates: limits.rates,
                        ...(limits.maxNewConnectionsPerMinute !== undefined
                          ? { maxNewConnectionsPerMinute: limits.maxNewConnectionsPerMinute }
                          : {}),
                      }
                    : {}),
                  ...(throttle ? { throttle } : {}),
                },
              }
            : {}),
        },
        { from: request.mailFrom, to: request.recipients, size, dsn, smtputf8 },
        request.body,
        settle && ((answered) => settle(toResult(answered))),
        { priority: request.priority ?? 0 },
      );
      if (res.connectionFailed) {
        logger.debug({ domain: request.domain, site: siteKey }, 'no MX host of the site took a session');
      }
      // Each distinct answer counts once per transaction towards the rules' thresholds.
      if (adaptive && res.retryAt === undefined) {
        const seen = new Set<string>();
        for (const { reply } of res.recipients) {
          const key = `${reply.code} ${reply.enhanced ?? ''} ${reply.text}`;
          if (seen.has(key)) continue;
          seen.add(key);
          adaptive.observe(reply, context, clock());
        }
      }
      return toResult(res);
    },
  };
}
