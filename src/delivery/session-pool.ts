/**
 * A pool of outbound SMTP sessions, keyed by everything that makes two connections
 * interchangeable: the site (the MX host set of a destination, or a smarthost) and port,
 * source address, EHLO name, STARTTLS policy and AUTH user. A new connection tries the site's
 * hosts in order (MX preference) until one holds a session, skipping hosts that failed within
 * the last minute while another is left; so the limits count connections to the site, whichever
 * of its hosts they reach. A session carries up to `maxMessagesPerConnection` transactions
 * (connect → [AUTH] → send → send …, RSET after a failed one), which is what receivers expect from a
 * well-behaved sender and saves a TCP + TLS handshake per message.
 *
 * Limits: never more than `maxConnectionsPerKey` sessions (connecting, busy or idle) per key;
 * further deliveries wait in a bounded FIFO queue. The pool does not decide *whether* to send
 * (that is the shaper's job) — it only bounds connections and reuses them.
 */
import { rootCertificates, type SecureVersion } from 'node:tls';
import type { ConnectionPermits, Permit } from './connection-permits.ts';
import type { CircuitBreaker } from './shaping/circuit.ts';
import type { RateLimiter, Throttle } from './shaping/rate-limiter.ts';
import type { MessageRates } from './shaping/spec.ts';
import { type ReplyPeer, replyFromError } from './smtp-reply.ts';
import {
  openSession,
  type RecipientResult,
  type SessionTls,
  type SmtpSession,
  type StartTlsPolicy,
  type TransactionEnvelope,
} from './smtp-session.ts';

export type { DsnParams, RecipientResult, StartTlsPolicy, TransactionEnvelope } from './smtp-session.ts';

export interface PoolLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface SessionPoolOptions {
  maxConnectionsPerKey: number;
  /** Transactions per connection before it is closed with QUIT (default 100). */
  maxMessagesPerConnection?: number;
  /** Close a connection idle this long (default 5000). */
  idleTimeoutMs?: number;
  /** TCP connect (default 30 s, Postfix's smtp_connect_timeout). */
  connectTimeoutMs?: number;
  /** Banner, EHLO and STARTTLS (default 60 s: RFC 5321 §4.5.3.2 allows 5 min, tarpits abuse that). */
  greetingTimeoutMs?: number;
  /** Inactivity during a transaction (default 5 min, RFC 5321 §4.5.3.2 for MAIL/RCPT/DATA). */
  socketTimeoutMs?: number;
  ehloName: string;
  /** Deliveries that may wait for a connection per key (default 1000); more are refused. */
  maxQueuePerKey?: number;
  logger?: PoolLogger;
  /** MX certificates are rarely valid for the MX name (RFC 7435): verify nothing by default. */
  tls?: { rejectUnauthorized?: boolean; minVersion?: SecureVersion };
  /**
   * Extra CA certificates (PEM) trusted beside the system's for targets with `verifyTls`
   * (MTA-STS: delivery.mta_sts.ca_file; a private CA or tests).
   */
  trustedCa?: string;
  /**
   * Cluster-wide limit: before it opens a connection the pool also takes one of the cluster's
   * `maxConnectionsPerKey` permits for the destination host (IP, port, source address), and
   * keeps it while the connection lives. When every permit is held elsewhere, deliveries wait
   * and the pool asks again after `permitRetryMs` (default 250, jittered).
   */
  permits?: ConnectionPermits;
  permitRetryMs?: number;
  /**
   * Traffic shaping per (source, site): message rates and new connections per minute from the
   * target's limits (shaping/rate-limiter.ts), and a circuit breaker that stops connecting to a
   * site after consecutive connection failures (shaping/circuit.ts). Times from `clock`.
   */
  limiter?: RateLimiter;
  circuit?: CircuitBreaker;
  clock?: () => number;
}

export interface TargetHost {
  /** The MX host name (reply texts, connection info). */
  host: string;
  ip: string;
}

export interface DeliveryTarget {
  /** What the limits count (delivery/shaping/site.ts): all connections to these hosts. */
  site: string;
  /** Where to connect, in order of preference; at least one. */
  hosts: TargetHost[];
  port: number;
  /** Per-site limits (traffic shaping); the pool's options where absent. */
  limits?: {
    maxConnections?: number;
    maxMessagesPerConnection?: number;
    rates?: MessageRates;
    /** An adaptive rule's slow-down in force. */
    throttle?: Throttle;
    maxNewConnectionsPerMinute?: number;
  };
  /** The egress source's name (shaping keys); '*' when there is one default source. */
  source?: string;
  /** TLS from the first byte (a smarthost's port 465), instead of STARTTLS. */
  implicitTls?: boolean;
  /** A route's trial while it is down (routing/failover.ts): it connects even with the circuit open. */
  trial?: boolean;
  /** Source IP to bind (the egress source). */
  localAddress?: string;
  starttls: StartTlsPolicy;
  /** Overrides the pool's EHLO name for this egress source. */
  ehloName?: string;
  /** Smarthost credentials. */
  auth?: { user: string; pass: string };
  /**
   * The certificate must verify (system CAs plus `trustedCa`) and name the MX host (MTA-STS
   * enforce, REQUIRETLS); a failure fails the connection. Use with `starttls: 'required'`.
   */
  verifyTls?: boolean;
}

export interface DeliveryConnection {
  mxHost: string;
  ip: string;
  port: number;
  localAddress: string | undefined;
  /** Present when the transaction ran over TLS. */
  tls?: SessionTls;
  /** The session had carried an earlier transaction. */
  reused: boolean;
  /** The MX offered STARTTLS but the handshake failed; delivered in plaintext instead. */
  tlsFallback?: boolean;
}

export interface DeliveryResult {
  connection: DeliveryConnection;
  recipients: RecipientResult[];
  /**
   * No session could be set up (refused, timeout, greeting 421/554, TLS failure under
   * 'required', EHLO/AUTH failure): every recipient is temporary and nothing was sent, so
   * the caller may try the next MX host. Failures after MAIL FROM are never flagged: the
   * message may have reached the server.
   */
  connectionFailed: boolean;
  durationMs: number;
  /** Not before this time (epoch ms): the site's circuit is open after repeated connection failures. */
  retryAt?: number;
}

export interface PoolKeyStats {
  key: string;
  site: string;
  port: number;
  localAddress: string | undefined;
  ehloName: string;
  /** Connecting + busy + idle. */
  open: number;
  busy: number;
  idle: number;
  waiting: number;
}

export type BeforeRelease = (result: DeliveryResult) => Promise<void>;

export interface SessionPool {
  /**
   * One transaction. `beforeRelease`, when given, runs with the answer of a transaction that
   * reached the server, before its connection is used again (the scheduler commits outcomes there).
   */
  deliver(
    target: DeliveryTarget,
    envelope: TransactionEnvelope,
    body: Buffer,
    beforeRelease?: BeforeRelease,
    options?: { priority?: number },
  ): Promise<DeliveryResult>;
  /** Rejects waiting deliveries, lets running ones finish within `graceMs` (default 5 s), QUITs every connection. */
  close(graceMs?: number): Promise<void>;
  stats(): PoolKeyStats[];
}

export type SessionPoolErrorCode = 'POOL_CLOSED' | 'QUEUE_FULL';

/** Thrown by `deliver` when the pool refuses the work; nothing was sent. */
export class SessionPoolError extends Error {
  readonly code: SessionPoolErrorCode;
  constructor(code: SessionPoolErrorCode, message: string) {
    super(message);
    this.name = 'SessionPoolError';
    this.code = code;
  }
}

interface PooledSession {
  session: SmtpSession;
  transactions: number;
  idleTimer?: NodeJS.Timeout;
  retired: boolean;
  /** The last transaction ended with every recipient accepted: the server is ready for MAIL. */
  clean: boolean;
  /** performance.now() when it went idle. */
  idleSince: number;
  /** The cluster permit this connection holds (options.permits). */
  permit: Permit | undefined;
  /** The host it is connected to. */
  peer: TargetHost;
}

// A session idle longer than this is probed with RSET before reuse; a hot one is not, as
// nodemailer's own pool does: RSET per message was a round trip per message for nothing.
const PROBE_AFTER_IDLE_MS = 1000;

// After QUIT the session ends within its close grace (1 s); past this, free its slot anyway.
const SLOT_RELEASE_BACKSTOP_MS = 3000;
const SLOT_LINGER_MS = 5;

type SessionFailure = ReturnType<typeof replyFromError> & { peer: TargetHost };

interface Waiter {
  /** Lower first (0 transactional, 1 broadcast); first come, first served within one. */
  priority: number;
  resolve(session: PooledSession | undefined): void;
  reject(err: Error): void;
}

// A host that refused a connection is tried last for this long (another host of the site first).
const HOST_PENALTY_MS = 60_000;

interface KeyState {
  key: string;
  target: DeliveryTarget;
  ehloName: string;
  /** Slots taken: sessions connecting, busy or idle. */
  open: number;
  /** Most recently used last: reuse takes from the end so older sessions idle out. */
  idle: PooledSession[];
  /** Sorted by priority, then arrival. */
  waiters: Waiter[];
  maxConnections: number;
  maxMessages: number;
  /** Hosts whose last connection attempt failed: ip → when. */
  failedHosts: Map<string, number>;
  /** Deliveries waiting for the site's message rate, by priority then arrival. */
  paced: { priority: number; resolve: () => void; reject: (err: Error) => void }[];
  paceTimer: NodeJS.Timeout | undefined;
  /** Every cluster permit was taken at the last try: open nothing new until the retry timer. */
  permitsExhausted: boolean;
  /**
   * Permit requests of this key go one at a time: when the cluster's slots are all held, the
   * first refusal spares the others their statement (all waiters used to ask at once, every
   * retry: 0.2 statements per message with two nodes, bench/relay.ts --store postgres).
   */
  permitTurn: Promise<void>;
}

export function createSessionPool(options: SessionPoolOptions): SessionPool {
  const maxConnections = options.maxConnectionsPerKey;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new RangeError(`maxConnectionsPerKey must be a positive integer, got ${maxConnections}`);
  }
  const maxMessages = options.maxMessagesPerConnection ?? 100;
  const idleTimeoutMs = options.idleTimeoutMs ?? 5000;
  const maxQueue = options.maxQueuePerKey ?? 1000;
  const timeouts = {
    connectTimeoutMs: options.connectTimeoutMs ?? 30_000,
    greetingTimeoutMs: options.greetingTimeoutMs ?? 60_000,
    socketTimeoutMs: options.socketTimeoutMs ?? 300_000,
  };
  // RFC 8996: no TLS 1.0/1.1 outbound either. Under opportunistic STARTTLS a peer that speaks
  // nothing newer fails the handshake and gets the one plaintext retry (smtp-session.ts): its
  // mail goes out as it would to a peer without STARTTLS, never over a deprecated protocol.
  const tlsOptions = { rejectUnauthorized: false, minVersion: 'TLSv1.2' as SecureVersion, ...options.tls };
  const verifiedTlsOptions = {
    ...tlsOptions,
    rejectUnauthorized: true,
    ...(options.trustedCa ? { ca: [...rootCertificates, options.trustedCa] } : {}),
  };
  const log = options.logger;
  const permits = options.permits;
  const limiter = options.limiter;
  const circuit = options.circuit;
  const clock = options.clock ?? Date.now;
  const permitRetryMs = options.permitRetryMs ?? 250;

  const states = new Map<string, KeyState>();
  const live = new Set<SmtpSession>();
  const running = new Set<Promise<unknown>>();
  let closed = false;

  function stateFor(target: DeliveryTarget): KeyState {
    const ehloName = target.ehloName ?? options.ehloName;
    const key = [
      target.site,
      target.port,
      target.localAddress ?? '*',
      ehloName,
      target.starttls,
      target.implicitTls ? 'implicit-tls' : '',
      target.auth?.user ?? '',
      target.verifyTls ? 'verify-tls' : '',
    ]
      .map(String)
      .join('|');
    let state = states.get(key);
    if (!state) {
      state = {
        key,
        target,
        ehloName,
        open: 0,
        idle: [],
        waiters: [],
        maxConnections,
        maxMessages,
        failedHosts: new Map(),
        paced: [],
        paceTimer: undefined,
        permitsExhausted: false,
        permitTurn: Promise.resolve(),
      };
      states.set(key, state);
    }
    // The latest limits apply (an adaptive rule may have changed them); the latest host list too.
    state.target = target;
    state.maxConnections = target.limits?.maxConnections ?? maxConnections;
    state.maxMessages = target.limits?.maxMessagesPerConnection ?? maxMessages;
    return state;
  }

  function forget(state: KeyState): void {
    if (
      state.open === 0 &&
      state.waiters.length === 0 &&
      state.paced.length === 0 &&
      !state.permitsExhausted
    ) {
      states.delete(state.key);
    }
  }

  /** `<source>|<site>`: what rates, throttles and circuits are kept per. */
  function shapingKey(target: DeliveryTarget): string {
    return `${target.source ?? '*'}|${target.site}`;
  }

  function rateLimited(target: DeliveryTarget): boolean {
    const l = target.limits;
    return !!l && (!!l.throttle || !!l.rates?.perSecond || !!l.rates?.perMinute || !!l.rates?.perHour);
  }

  /**
   * Resolves when the site's message rate allows one more transaction (counted then). Waiters
   * go in priority order: a transactional message is the next one sent, not the last in line.
   */
  function pace(state: KeyState, priority: number): Promise<void> {
    if (!limiter || !rateLimited(state.target)) return Promise.resolve();
    if (state.paced.length === 0 && !state.paceTimer) {
      const limits = state.target.limits ?? {};
      if (
        limiter.reserve(
          shapingKey(state.target),
          { rates: limits.rates ?? {}, ...(limits.throttle ? { throttle: limits.throttle } : {}) },
          clock(),
        ) === 0
      ) {
        return Promise.resolve();
      }
    }
    return new Promise((resolve, reject) => {
      const waiter = { priority, resolve, reject };
      const at = state.paced.findIndex((w) => w.priority > priority);
      if (at === -1) state.paced.push(waiter);
      else state.paced.splice(at, 0, waiter);
      releasePaced(state);
    });
  }

  function releasePaced(state: KeyState): void {
    if (state.paceTimer || !limiter) return;
    while (state.paced.length > 0) {
      const limits = state.target.limits ?? {};
      const wait = rateLimited(state.target)
        ? limiter.reserve(
            shapingKey(state.target),
            { rates: limits.rates ?? {}, ...(limits.throttle ? { throttle: limits.throttle } : {}) },
            clock(),
          )
        : 0;
      if (wait > 0) {
        state.paceTimer = setTimeout(() => {
          state.paceTimer = undefined;
          releasePaced(state);
        }, wait);
        return;
      }
      state.paced.shift()!.resolve();
    }
    forget(state);
  }

  /**
   * A cluster permit for a new connection of `state`, or undefined after giving back the local
   * slot reserved for it: every permit is held elsewhere, so new connections wait for the retry
   * timer while idle sessions of this node still serve the waiters.
   */
  async function takePermit(state: KeyState, target: DeliveryTarget): Promise<Permit | undefined> {
    if (!permits) return undefined;
    const turn = state.permitTurn.then(async (): Promise<Permit | undefined> => {
      // An earlier request of this key was just refused: so would this one be.
      if (state.permitsExhausted) return undefined;
      try {
        return await permits.tryAcquire(
          [target.site, target.port, target.localAddress ?? '*'].map(String).join('|'),
          state.maxConnections,
        );
      } catch (err) {
        log?.warn({ key: state.key, err }, 'could not take a cluster connection slot; retrying');
        return undefined;
      }
    });
    state.permitTurn = turn.then(() => undefined);
    const permit = await turn;
    if (permit) return permit;
    state.open--;
    if (!state.permitsExhausted) {
      state.permitsExhausted = true;
      const timer = setTimeout(
        () => {
          state.permitsExhausted = false;
          pump(state);
        },
        permitRetryMs * (0.5 + Math.random()),
      );
      timer.unref();
    }
    pump(state);
    return undefined;
  }

  /** An idle session to reuse, or undefined meaning "a slot is reserved: open one". */
  function acquire(state: KeyState, priority: number): Promise<PooledSession | undefined> {
    // Waiters of a higher priority go first, even ahead of an idle session's next taker.
    const ahead = state.waiters.length > 0 && state.waiters[0]!.priority <= priority;
    if (!ahead) {
      const idle = takeIdle(state);
      if (idle) return Promise.resolve(idle);
      if (state.open < state.maxConnections && !state.permitsExhausted) {
        state.open++;
        return Promise.resolve(undefined);
      }
    }
    if (state.waiters.length >= maxQueue) {
      return Promise.reject(
        new SessionPoolError('QUEUE_FULL', `more than ${maxQueue} deliveries waiting for ${state.key}`),
      );
    }
    return new Promise((resolve, reject) => {
      const waiter = { priority, resolve, reject };
      const at = state.waiters.findIndex((w) => w.priority > priority);
      if (at === -1) state.waiters.push(waiter);
      else state.waiters.splice(at, 0, waiter);
    });
  }

  function takeIdle(state: KeyState): PooledSession | undefined {
    const pooled = state.idle.pop();
    if (pooled) clearTimeout(pooled.idleTimer);
    return pooled;
  }

  /** Hands freed capacity to waiters in arrival order. */
  function pump(state: KeyState): void {
    while (state.waiters.length > 0) {
      const idle = takeIdle(state);
      if (idle) {
        state.waiters.shift()!.resolve(idle);
      } else if (state.open < state.maxConnections && !state.permitsExhausted) {
        state.open++;
        state.waiters.shift()!.resolve(undefined);
      } else {
        break;
      }
    }
    forget(state);
  }

  function retire(state: KeyState, pooled: PooledSession, reason: string): void {
    if (pooled.retired) return;
    pooled.retired = true;
    clearTimeout(pooled.idleTimer);
    const index = state.idle.indexOf(pooled);
    if (index >= 0) state.idle.splice(index, 1);
    pooled.session.quit();
    log?.debug({ key: state.key, reason, transactions: pooled.transactions }, 'smtp session closed');
    // The slot stays taken until the connection is closed: the receiver counts it until then,
    // and a limit of N must mean N at its end. QUIT gives the peer 1 s before the socket is
    // destroyed; the timer is a backstop so a slot can never leak.
    let backstop: NodeJS.Timeout | undefined;
    void Promise.race([
      pooled.session.whenEnded,
      new Promise<void>((resolve) => {
        backstop = setTimeout(resolve, SLOT_RELEASE_BACKSTOP_MS);
      }),
    ])
      // Our close reaches the receiver a moment after our socket ends; a new connection opened
      // at once could arrive first and be counted beside the old one.
      .then(() => new Promise((resolve) => setTimeout(resolve, SLOT_LINGER_MS)))
      .then(() => {
        clearTimeout(backstop);
        pooled.permit?.release();
        state.open--;
        pump(state);
      });
  }

  function release(
    state: KeyState,
    pooled: PooledSession,
    result: { reusable: boolean; clean: boolean },
  ): void {
    pooled.clean = result.clean;
    pooled.idleSince = performance.now();
    if (!result.reusable || closed || pooled.session.ended) {
      retire(state, pooled, 'not reusable');
    } else if (pooled.permit?.lost) {
      retire(state, pooled, 'cluster connection slot lost');
    } else if (pooled.transactions >= state.maxMessages || state.open > state.maxConnections) {
      retire(state, pooled, 'max messages per connection');
    } else {
      state.idle.push(pooled);
      pooled.idleTimer = setTimeout(() => retire(state, pooled, 'idle timeout'), idleTimeoutMs);
      pump(state);
    }
  }

  function track(
    state: KeyState,
    session: SmtpSession,
    peer: TargetHost,
    permit: Permit | undefined,
  ): PooledSession {
    const pooled: PooledSession = {
      session,
      peer,
      transactions: 0,
      retired: false,
      clean: true,
      idleSince: 0,
      permit,
    };
    live.add(session);
    // A server may close an idle session at any time (its own idle timeout, a 421).
    void session.whenEnded.then(() => {
      live.delete(session);
      if (state.idle.includes(pooled)) retire(state, pooled, 'closed by server');
    });
    return pooled;
  }

  async function run(
    state: KeyState,
    target: DeliveryTarget,
    envelope: TransactionEnvelope,
    body: Buffer,
    started: number,
    beforeRelease: BeforeRelease | undefined,
    priority: number,
  ): Promise<DeliveryResult> {
    let pooled = await acquire(state, priority);
    // Without an idle session, a slot was reserved; in a cluster it also needs a permit.
    let permit: Permit | undefined;
    while (!pooled && permits) {
      permit = await takePermit(state, target);
      if (permit) break;
      pooled = await acquire(state, priority);
    }
    let reused = false;
    if (pooled && (!pooled.clean || performance.now() - pooled.idleSince > PROBE_AFTER_IDLE_MS)) {
      // RSET clears a failed transaction and doubles as a liveness probe: a session the server
      // dropped while idle fails here, before our transaction started, and the slot (with its
      // permit) is reused.
      try {
        await pooled.session.reset();
      } catch {
        retireKeepingSlot(state, pooled);
        permit = pooled.permit;
        pooled = undefined;
      }
    }
    if (pooled) reused = true;
    if (!pooled) {
      const key = shapingKey(target);
      // A site that failed at connection level too often is left alone for a while: its mail
      // waits (deferred until then), nothing is sent, no connection is tried.
      const closedFor = target.trial ? 0 : (circuit?.check(key, clock()) ?? 0);
      const opened =
        closedFor > 0
          ? { failure: circuitOpen(target, closedFor) }
          : await (async () => {
              for (;;) {
                const wait =
                  limiter?.reserveConnection(key, target.limits?.maxNewConnectionsPerMinute, clock()) ?? 0;
                if (wait === 0) break;
                await new Promise((resolve) => setTimeout(resolve, wait));
              }
              const result = await open(state, target);
              if ('failure' in result) circuit?.failure(key, clock());
              else circuit?.success(key, clock());
              return result;
            })();
      if ('failure' in opened) {
        permit?.release();
        state.open--;
        pump(state);
        const { reply, outcome, peer } = opened.failure;
        return {
          connection: connectionInfo(target, peer, undefined, false),
          recipients: envelope.to.map((address) => ({ address, outcome, reply })),
          connectionFailed: true,
          durationMs: performance.now() - started,
          ...(closedFor > 0 ? { retryAt: clock() + closedFor } : {}),
        };
      }
      pooled = track(state, opened.session, opened.peer, permit);
    }
    // The rate is taken with a connection in hand: taken earlier, transactions admitted while
    // every connection was busy (a stalled receiver) would all go out at once when one frees.
    await pace(state, priority);
    pooled.transactions++;
    const result = await pooled.session.send(envelope, body);
    const delivery: DeliveryResult = {
      connection: connectionInfo(target, pooled.peer, pooled.session, reused),
      recipients: result.recipients,
      connectionFailed: false,
      durationMs: performance.now() - started,
    };
    // The caller records the answer before this connection carries another transaction, so a
    // crash can leave at most one answered-but-unrecorded transaction per connection.
    if (beforeRelease) {
      try {
        await beforeRelease(delivery);
      } catch (err) {
        log?.warn({ key: state.key, err }, 'recording a delivery result failed');
      }
    }
    release(state, pooled, {
      reusable: result.reusable,
      clean: result.recipients.every((r) => r.outcome === 'delivered'),
    });
    return delivery;
  }

  /**
   * A session with the first of the site's hosts that holds one (MX preference), trying hosts
   * that failed in the last minute only after the others. Any failure to set up a session
   * (refused, timeout, greeting 4xx/5xx, TLS or EHLO/AUTH failure) moves on to the next host;
   * when all fail, the last failure is the answer.
   */
  async function open(
    state: KeyState,
    target: DeliveryTarget,
  ): Promise<{ session: SmtpSession; peer: TargetHost } | { failure: SessionFailure }> {
    const now = performance.now();
    const recent = (h: TargetHost): boolean =>
      now - (state.failedHosts.get(h.ip) ?? -Infinity) < HOST_PENALTY_MS;
    const order = [...target.hosts.filter((h) => !recent(h)), ...target.hosts.filter(recent)];
    let failure: SessionFailure | undefined;
    for (const host of order) {
      const peer: ReplyPeer = { host: host.host, ip: host.ip, port: target.port };
      try {
        const session = await openSession({
          peer,
          localAddress: target.localAddress,
          ehloName: state.ehloName,
          starttls: target.starttls,
          auth: target.auth,
          ...(target.implicitTls ? { implicitTls: true } : {}),
          tls: target.verifyTls ? verifiedTlsOptions : tlsOptions,
          ...timeouts,
        });
        state.failedHosts.delete(host.ip);
        if (session.tlsFallback) {
          log?.warn({ key: state.key, mx: host.host }, 'STARTTLS handshake failed, delivering in plaintext');
        }
        log?.debug({ key: state.key, mx: host.host, tls: session.tls }, 'smtp session opened');
        return { session, peer: host };
      } catch (err) {
        state.failedHosts.set(host.ip, performance.now());
        const { reply, outcome } = replyFromError(err, peer, 'session');
        log?.info({ key: state.key, mx: host.host, ip: host.ip, reply }, 'smtp session failed');
        failure = { reply, outcome, peer: host };
      }
    }
    if (!failure) throw new RangeError(`no host to connect to for ${state.key}`);
    return { failure };
  }

  function circuitOpen(target: DeliveryTarget, ms: number): SessionFailure {
    const status = circuit?.status(shapingKey(target));
    return {
      outcome: 'temporary',
      reply: {
        code: 451,
        enhanced: '4.4.1',
        text: `not connecting to ${target.site} for ${Math.ceil(ms / 1000)} s: ${status?.failures ?? 'repeated'} connection failures in a row`,
      },
      peer: target.hosts[0]!,
    };
  }

  /** Closes a dead reused session but keeps its slot for the replacement connection. */
  function retireKeepingSlot(state: KeyState, pooled: PooledSession): void {
    pooled.retired = true;
    pooled.session.quit();
    log?.debug({ key: state.key }, 'idle smtp session failed RSET, reconnecting');
  }

  return {
    deliver(target, envelope, body, beforeRelease, options = {}) {
      if (closed) return Promise.reject(new SessionPoolError('POOL_CLOSED', 'session pool is closed'));
      if (target.hosts.length === 0)
        return Promise.reject(new RangeError(`no hosts for site ${target.site}`));
      const started = performance.now();
      const state = stateFor(target);
      const promise = run(state, target, envelope, body, started, beforeRelease, options.priority ?? 0);
      running.add(promise);
      const untrack = () => running.delete(promise);
      promise.then(untrack, untrack);
      return promise;
    },

    async close(graceMs = 5000) {
      closed = true;
      for (const state of states.values()) {
        for (const waiter of [...state.waiters.splice(0), ...state.paced.splice(0)]) {
          waiter.reject(new SessionPoolError('POOL_CLOSED', 'session pool closed while waiting'));
        }
        clearTimeout(state.paceTimer);
        for (const pooled of [...state.idle]) retire(state, pooled, 'pool closed');
      }
      // Running deliveries get `graceMs` to finish (their release() sees `closed` and QUITs);
      // a peer that stalls past that is cut off, so shutdown stays bounded.
      let timer: NodeJS.Timeout | undefined;
      const wait = (ms: number) => new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
      const finished = await Promise.race([
        Promise.allSettled([...running]).then(() => true),
        wait(graceMs).then(() => false),
      ]);
      clearTimeout(timer);
      // Sessions that finished are QUITting; only a stalled one is cut off.
      if (!finished) for (const session of live) session.abort();
      await Promise.race([Promise.all([...live].map((session) => session.whenEnded)), wait(2000)]);
      clearTimeout(timer);
    },

    stats() {
      return [...states.values()].map((state) => ({
        key: state.key,
        site: state.target.site,
        port: state.target.port,
        localAddress: state.target.localAddress,
        ehloName: state.ehloName,
        open: state.open,
        busy: state.open - state.idle.length,
        idle: state.idle.length,
        waiting: state.waiters.length,
      }));
    },
  };
}

function connectionInfo(
  target: DeliveryTarget,
  peer: TargetHost,
  session: SmtpSession | undefined,
  reused: boolean,
): DeliveryConnection {
  const info: DeliveryConnection = {
    mxHost: peer.host,
    ip: peer.ip,
    port: target.port,
    localAddress: session?.localAddress ?? target.localAddress,
    reused,
  };
  if (session?.tls) info.tls = session.tls;
  if (session?.tlsFallback) info.tlsFallback = true;
  return info;
}
