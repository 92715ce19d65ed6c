import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { applyAddressPolicy } from '../dns/address-policy.ts';
import { MxError, type MxLookup, resolveMxTargets } from '../dns/mx.ts';
import { headerValue, readHeaders } from '../intake/headers.ts';
import type { RecipientDsn, Reply, StreamKind } from '../store/types.ts';
import { type MtaSts, mxMatches } from './mta-sts.ts';
import type { EgressChoice, RouteDecision, Router } from './routing/router.ts';
import type { DeliveryResult, DeliveryTarget, SessionPool, TargetHost } from './session-pool.ts';
import type { AdaptiveShaper } from './shaping/adaptive.ts';
import { shareOfRates } from './shaping/limits.ts';
import type { ShapingPolicy } from './shaping/policy.ts';
import type { Site } from './shaping/site.ts';

/** `held`: a route holds this mail (state held, until an operator releases it). */
export type AttemptOutcome = 'delivered' | 'temporary' | 'permanent' | 'held';

export interface DeliveryRequest {
  domain: string;
  mailFrom: string;
  recipients: string[];
  dsn: RecipientDsn;
  body: Buffer;
  /**
   * Called with the answer of a transaction a server took part in, before its connection is
   * used again. A request may become several transactions (routing hands out fewer recipients
   * under a warm-up cap): each part is settled with the recipients it carried.
   */
  settle?: (result: DestinationResult) => Promise<void>;
  /** Lower goes first when connections are scarce (0 transactional, 1 broadcast). */
  priority?: number;
  /** Whose mail: routes, pools and adaptive rules match on these. */
  account?: string;
  stream?: string;
  kind?: StreamKind;
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
  /** The route and egress source it took (routing), when routed. */
  route?: string;
  source?: string;
  /** Not before this time (epoch ms): the site is suspended, its circuit open, a cap reached. */
  retryAt?: number;
  /** No host took a session (nothing was sent). */
  connectionFailed?: boolean;
  durationMs?: number;
}

export interface Destination {
  deliver(request: DeliveryRequest): Promise<DestinationResult>;
}

/** Names the store knows by id, for routing rules written with names. */
export interface Directory {
  accountName(accountId: string): Promise<string>;
  /** The stream's pool ('' = the kind's default). */
  streamPool(accountId: string, stream: string): Promise<string>;
}

export interface MxDestinationOptions {
  resolver: MxLookup;
  pool: Pick<SessionPool, 'deliver'>;
  port: number;
  allowPrivate: boolean;
  starttls: 'opportunistic' | 'required' | 'none';
  /** Sites (MX rollup) and their limits; without it each MX host set is its own site with the pool's limits. */
  shaping?: Pick<ShapingPolicy, 'siteOf' | 'limitsFor' | 'smarthostSite'>;
  /** Adaptive rules: replies may throttle or suspend a site, a stream or an account. */
  adaptive?: AdaptiveShaper;
  /** Routes (MX, smarthost, hold, failover) and egress sources; without it: MX from the default source. */
  router?: Router;
  directory?: Directory;
  /** Nodes sharing each site's message rates (a cluster paces per node): this node's share. */
  share?: () => number;
  /** MTA-STS (RFC 8461) policies of recipient domains, applied to MX legs (delivery.mta_sts). */
  mtaSts?: MtaSts;
  clock?: () => number;
  random?: () => number;
  logger: Logger;
}

const NON_ASCII = /[^\x00-\x7f]/;
// A request is split into at most this many parts (routing rounds).
const MAX_PARTS = 100;
// Mail deferred by a warm-up cap is spread over this much after the cap lifts, so a day's
// waiting mail does not all come due at midnight UTC.
const WARMUP_SPREAD_MS = 10 * 60_000;

type Answer = DestinationResult['recipients'][number];

function allOf(recipients: string[], outcome: AttemptOutcome, reply: Reply): Answer[] {
  return recipients.map((address) => ({ address, outcome, reply }));
}

/** Where one part of a request goes: the hosts to try, the site, and the source to send from. */
interface Leg {
  site: string;
  provider?: string;
  hosts: TargetHost[];
  port: number;
  starttls: DeliveryTarget['starttls'];
  implicitTls?: boolean;
  auth?: { user: string; pass: string };
  limitsSite?: Site;
  /** An MTA-STS policy in enforce mode applies: verified TLS only, to the policy's MX hosts. */
  mtaSts?: { domain: string; id: string };
}

/**
 * Delivery of one transaction: routing (routing/router.ts: MX, a smarthost, or hold; the
 * egress source; failover), then for MX the RFC 5321 §5.1 resolution with the address policy,
 * the site (MX rollup by provider) and its limits (shaping/), adaptive suspensions, and the pool,
 * which connects to the first address that holds a session. Connection-level failures move on
 * to the next address; anything said inside a session is the answer.
 */
export function createMxDestination(options: MxDestinationOptions): Destination {
  const { resolver, pool, logger } = options;
  const clock = options.clock ?? Date.now;
  const random = options.random ?? Math.random;
  const defaultSource: EgressChoice = { name: '*', address: '', ehlo: '' };

  /** MX resolution and policy: the leg, or the answer for every recipient when there is none. */
  async function mxLeg(domain: string): Promise<Leg | { refused: AttemptOutcome; reply: Reply }> {
    let hosts: Awaited<ReturnType<typeof resolveMxTargets>>['hosts'];
    try {
      const targets = await resolveMxTargets(
        resolver,
        domain,
        options.random ? { random: options.random } : {},
      );
      const policy = applyAddressPolicy(targets.hosts, { allowPrivate: options.allowPrivate });
      for (const refused of policy.refused) logger.warn({ domain, mx: refused.name }, refused.reason);
      if (policy.hosts.length === 0) {
        const reason = policy.refused.map((r) => r.reason).join('; ') || `no usable MX host for ${domain}`;
        return { refused: 'permanent', reply: { code: 550, enhanced: '5.4.4', text: reason } };
      }
      hosts = policy.hosts;
    } catch (err) {
      if (err instanceof MxError) {
        return {
          refused: err.permanent ? 'permanent' : 'temporary',
          reply: { code: err.permanent ? 550 : 451, enhanced: err.enhancedCode, text: err.reason },
        };
      }
      throw err;
    }
    const names = hosts.map((h) => h.name);
    const site = options.shaping?.siteOf(names);
    return {
      site: site?.key ?? [...new Set(names.map((n) => n.toLowerCase()))].sort().join(','),
      ...(site?.provider ? { provider: site.provider } : {}),
      // Every address of every host, in preference order: the pool tries them in turn.
      hosts: hosts.flatMap((h) => h.addresses.map((ip) => ({ host: h.name, ip }))),
      port: options.port,
      starttls: options.starttls,
      ...(site ? { limitsSite: site } : {}),
    };
  }

  async function smarthostLeg(
    smarthost: NonNullable<Extract<RouteDecision, { action: 'deliver' }>['route']['smarthost']>,
  ): Promise<Leg | { refused: AttemptOutcome; reply: Reply }> {
    let ips: string[];
    if (isIP(smarthost.host)) {
      ips = [smarthost.host];
    } else {
      const [v4, v6] = await Promise.allSettled([resolver.a(smarthost.host), resolver.aaaa(smarthost.host)]);
      ips = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
      if (ips.length === 0) {
        return {
          refused: 'temporary',
          reply: { code: 451, enhanced: '4.4.3', text: `smarthost ${smarthost.host} does not resolve` },
        };
      }
    }
    let site: Site | undefined;
    try {
      site = options.shaping?.smarthostSite(smarthost.host, smarthost.port);
    } catch {
      site = undefined;
    }
    return {
      site: site?.key ?? `host:${smarthost.host}:${smarthost.port}`,
      hosts: ips.map((ip) => ({ host: smarthost.host, ip })),
      port: smarthost.port,
      // A smarthost is ours to trust: STARTTLS means required, tls means implicit TLS.
      starttls: smarthost.tls === 'starttls' ? 'required' : 'none',
      ...(smarthost.tls === 'tls' ? { implicitTls: true } : {}),
      ...(smarthost.user !== undefined
        ? { auth: { user: smarthost.user, pass: smarthost.password ?? '' } }
        : {}),
      ...(site ? { limitsSite: site } : {}),
    };
  }

  /** One transaction over one leg from one source. */
  async function send(
    request: DeliveryRequest,
    recipients: string[],
    leg: Leg,
    source: EgressChoice,
    route: string | undefined,
    trial = false,
  ): Promise<DestinationResult> {
    const limits = leg.limitsSite && options.shaping?.limitsFor(leg.limitsSite, source.name);
    const context = {
      source: source.name,
      site: leg.site,
      ...(leg.provider ? { provider: leg.provider } : {}),
      ...(request.account ? { account: request.account } : {}),
      ...(request.stream ? { stream: request.stream } : {}),
    };
    const tag = { site: leg.site, ...(route ? { route } : {}), source: source.name };
    const adaptive = options.adaptive;
    const suspendedUntil = adaptive?.suspendedUntil(context, clock());
    if (suspendedUntil !== undefined) {
      const why = adaptive?.active(clock()).find((a) => a.kind !== 'throttle' && a.until === suspendedUntil);
      return {
        recipients: allOf(recipients, 'temporary', {
          code: 451,
          enhanced: '4.7.0',
          text: `sending suspended until ${new Date(suspendedUntil).toISOString()}${why ? ` by rule ${why.rule} (${why.reply})` : ''}`,
        }),
        ...tag,
        retryAt: suspendedUntil,
      };
    }
    const throttle = adaptive?.throttleFor(source.name, leg.site, clock());
    const size = request.body.length;
    const smtputf8 = NON_ASCII.test(request.mailFrom) || recipients.some((r) => NON_ASCII.test(r));
    const dsn = {
      ...(request.dsn.notify ? { notify: request.dsn.notify } : {}),
      ...(request.dsn.orcpt ? { orcpt: request.dsn.orcpt } : {}),
    };
    // RFC 8689: REQUIRETLS needs TLS with a certificate verified for the host, on every route.
    const requireTls = request.dsn.requireTls === true;
    const verifyTls = requireTls || leg.mtaSts !== undefined;
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
      ...tag,
      durationMs: Date.now() - started,
      ...(res.retryAt !== undefined ? { retryAt: res.retryAt } : {}),
      ...(res.connectionFailed ? { connectionFailed: true } : {}),
    });
    const target: DeliveryTarget = {
      site: leg.site,
      hosts: leg.hosts,
      port: leg.port,
      starttls: verifyTls && !leg.implicitTls ? 'required' : (limits?.tls ?? leg.starttls),
      ...(verifyTls ? { verifyTls: true } : {}),
      source: source.name,
      ...(source.address ? { localAddress: source.address } : {}),
      ...(source.ehlo ? { ehloName: source.ehlo } : {}),
      ...(leg.implicitTls ? { implicitTls: true } : {}),
      ...(trial ? { trial: true } : {}),
      ...(leg.auth ? { auth: leg.auth } : {}),
      ...(limits || throttle
        ? {
            limits: {
              ...(limits
                ? {
                    maxConnections: limits.maxConnections,
                    maxMessagesPerConnection: limits.maxMessagesPerConnection,
                    rates: shareOfRates(limits.rates, options.share?.() ?? 1),
                    ...(limits.maxNewConnectionsPerMinute !== undefined
                      ? { maxNewConnectionsPerMinute: limits.maxNewConnectionsPerMinute }
                      : {}),
                  }
                : {}),
              ...(throttle ? { throttle } : {}),
            },
          }
        : {}),
    };
    const settle = request.settle;
    const res = await pool.deliver(
      target,
      { from: request.mailFrom, to: recipients, size, dsn, smtputf8, ...(requireTls ? { requireTls } : {}) },
      request.body,
      settle && ((answered) => settle(toResult(answered))),
      { priority: request.priority ?? 0 },
    );
    if (res.connectionFailed) {
      logger.debug({ domain: request.domain, ...tag }, 'no host of the site took a session');
      if (
        requireTls &&
        res.retryAt === undefined &&
        res.recipients.every((r) => r.reply.enhanced?.startsWith('4.7.'))
      ) {
        // No STARTTLS or no valid certificate: RFC 8689 §5 returns the message (5.7.30)
        // rather than letting it wait for a host that will not change its TLS.
        res.recipients = res.recipients.map((r) => ({
          ...r,
          outcome: 'permanent',
          reply: { code: 550, enhanced: '5.7.30', text: `REQUIRETLS: ${r.reply.text}` },
        }));
      } else if (leg.mtaSts) {
        // Say why plaintext or an unverified certificate was not good enough: the MTA-STS policy.
        const why = `MTA-STS policy ${leg.mtaSts.id} of ${leg.mtaSts.domain} (enforce) requires verified TLS`;
        res.recipients = res.recipients.map((r) => ({
          ...r,
          reply: { ...r.reply, text: `${why}: ${r.reply.text}` },
        }));
      }
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
  }

  /**
   * RFC 8461 §5: under a policy in `enforce` mode, only the MX hosts the policy lists, over
   * STARTTLS with a certificate valid for the MX name; none listed defers (never bounces: the
   * policy or the MX may be mid-change). `testing` delivers as usual and logs what enforce would
   * have refused. `TLS-Required: No` (RFC 8689 §4) in the message opts it out.
   */
  async function withMtaSts(
    request: DeliveryRequest,
    leg: Leg | { refused: AttemptOutcome; reply: Reply },
  ): Promise<Leg | { refused: AttemptOutcome; reply: Reply }> {
    if (!options.mtaSts || 'refused' in leg) return leg;
    const policy = await options.mtaSts.policyFor(request.domain);
    if (!policy || policy.mode === 'none') return leg;
    const listed = leg.hosts.filter((h) => policy.mx.some((p) => mxMatches(p, h.host)));
    const unlisted = [...new Set(leg.hosts.filter((h) => !listed.includes(h)).map((h) => h.host))];
    if (policy.mode === 'testing') {
      if (unlisted.length > 0) {
        logger.warn(
          { domain: request.domain, mtaSts: 'testing', id: policy.id, unlisted, patterns: policy.mx },
          'MTA-STS (testing): MX hosts not in the policy; delivering as usual',
        );
      }
      return leg;
    }
    // RFC 8689 §4.1: with REQUIRETLS on the envelope, TLS-Required: No is ignored.
    if (!request.dsn.requireTls && tlsNotRequired(request.body)) {
      logger.info(
        { domain: request.domain, mtaSts: 'enforce', id: policy.id },
        'TLS-Required: No: MTA-STS policy not applied to this message',
      );
      return leg;
    }
    if (listed.length === 0) {
      return {
        refused: 'temporary',
        reply: {
          code: 451,
          enhanced: '4.7.5',
          text: `MTA-STS policy ${policy.id} of ${request.domain} (enforce) lists none of its MX hosts (${unlisted.join(', ')})`,
        },
      };
    }
    return { ...leg, hosts: listed, starttls: 'required', mtaSts: { domain: request.domain, id: policy.id } };
  }

  /** Without a router: MX from the default source. */
  async function direct(request: DeliveryRequest): Promise<DestinationResult> {
    const leg = await withMtaSts(request, await mxLeg(request.domain));
    if ('refused' in leg) return { recipients: allOf(request.recipients, leg.refused, leg.reply) };
    return send(request, request.recipients, leg, defaultSource, undefined);
  }

  async function routed(request: DeliveryRequest, router: Router): Promise<DestinationResult> {
    const account = request.account
      ? ((await options.directory?.accountName(request.account)) ?? request.account)
      : '';
    const streamPool =
      request.account && request.stream
        ? ((await options.directory?.streamPool(request.account, request.stream)) ?? '')
        : '';
    const parts: DestinationResult[] = [];
    // A part no server answered is settled here; a server's answer was settled by the pool.
    const done = async (part: DestinationResult): Promise<void> => {
      parts.push(part);
      if (!part.connection || part.connectionFailed) await request.settle?.(part);
    };
    let remaining = request.recipients;
    // Each round routes what is left; a warm-up cap may hand out fewer recipients per source.
    for (let round = 0; remaining.length > 0 && round < MAX_PARTS; round++) {
      const decision = router.route({
        domain: request.domain,
        stream: request.stream || 'outbound',
        kind: request.kind ?? 'transactional',
        streamPool,
        account,
        recipients: remaining.length,
      });
      if (decision.action === 'hold') {
        await done({
          recipients: allOf(remaining, 'held', {
            code: 450,
            enhanced: '4.7.0',
            text: `held by route ${decision.route.name}`,
          }),
          route: decision.route.name,
        });
        break;
      }
      if (decision.action === 'defer') {
        const text =
          decision.reason === 'warmup'
            ? `warm-up caps of pool ${decision.pool} reached; next room ${new Date(decision.until).toISOString()}`
            : `no egress pool named ${decision.pool}`;
        await done({
          recipients: allOf(remaining, 'temporary', { code: 451, enhanced: '4.7.0', text }),
          route: decision.route.name,
          ...(decision.reason === 'warmup'
            ? { retryAt: decision.until + Math.floor(random() * WARMUP_SPREAD_MS) }
            : {}),
        });
        break;
      }
      const batch = remaining.slice(0, Math.max(1, decision.recipients));
      remaining = remaining.slice(batch.length);
      const smarthost = decision.route.via === 'smarthost' ? decision.route.smarthost : undefined;
      const leg = smarthost
        ? await smarthostLeg(smarthost)
        : await withMtaSts(request, await mxLeg(request.domain));
      let result: DestinationResult;
      if ('refused' in leg) {
        result = { recipients: allOf(batch, leg.refused, leg.reply), route: decision.route.name };
      } else {
        try {
          result = await send(request, batch, leg, decision.source, decision.route.name, decision.probe);
        } catch (err) {
          if (decision.reserved > 0) router.release(decision.source.name, decision.reserved, clock());
          throw err;
        }
      }
      report(router, decision, result, request, batch);
      // A trial of a down route that found it still down: its mail goes where the rest goes
      // now (the fallback), not back to the queue. Nothing was sent, so nothing is settled.
      if (decision.probe && result.connectionFailed === true && parts.length + 1 < MAX_PARTS) {
        remaining = [...batch, ...remaining];
        continue;
      }
      await done(result);
    }
    return merge(parts);
  }

  /** Warm-up counters and route health learn from what happened. */
  function report(
    router: Router,
    decision: Extract<RouteDecision, { action: 'deliver' }>,
    result: DestinationResult,
    request: DeliveryRequest,
    batch: string[],
  ): void {
    const now = clock();
    const sent = result.recipients.filter(
      (r) => r.outcome === 'delivered' || r.outcome === 'permanent',
    ).length;
    if (decision.reserved > 0 || sent > 0) {
      if (decision.route.via === 'mx' && sent > 0) router.recordSent(decision.source.name, sent, now);
      const unused = Math.max(0, decision.reserved - sent);
      if (unused > 0) router.release(decision.source.name, unused, now);
    }
    if (result.retryAt !== undefined) return; // suspended or circuit open: says nothing of the route
    const said421 = result.recipients.length > 0 && result.recipients.every((r) => r.reply.code === 421);
    const connectionFailed = result.connectionFailed === true || !result.connection;
    if (connectionFailed || said421) {
      router.failover.recordFailure(decision.route.name, connectionFailed ? 'connection' : '421', now);
    } else {
      router.failover.recordSuccess(decision.route.name, now);
    }
    if (decision.probe) {
      logger.info(
        {
          route: decision.route.name,
          domain: request.domain,
          recipients: batch.length,
          ok: !connectionFailed,
        },
        'trial delivery to a route that was down',
      );
    }
  }

  return {
    deliver(request: DeliveryRequest): Promise<DestinationResult> {
      return options.router ? routed(request, options.router) : direct(request);
    },
  };
}

/** RFC 8689 §4: the sender asks that opportunistic TLS policies (MTA-STS, DANE) be ignored. */
export function tlsNotRequired(body: Buffer): boolean {
  return headerValue(readHeaders(body), 'tls-required')?.trim().toLowerCase() === 'no';
}

/** One result from the parts of a request: every recipient's answer, the first connection. */
function merge(parts: DestinationResult[]): DestinationResult {
  if (parts.length === 1) return parts[0]!;
  const first = parts.find((p) => p.connection) ?? parts[0];
  const retryAt = parts.reduce<number | undefined>(
    (at, p) => (p.retryAt === undefined ? at : Math.max(at ?? 0, p.retryAt)),
    undefined,
  );
  return {
    recipients: parts.flatMap((p) => p.recipients),
    ...(first?.connection ? { connection: first.connection } : {}),
    ...(first?.site ? { site: first.site } : {}),
    ...(first?.route ? { route: first.route } : {}),
    ...(first?.source ? { source: first.source } : {}),
    ...(first?.durationMs !== undefined ? { durationMs: first.durationMs } : {}),
    ...(retryAt !== undefined ? { retryAt } : {}),
  };
}
