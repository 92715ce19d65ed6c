import type { Logger } from 'pino';
import { bodyKey, type HandedOff, type HandoffCredits } from '../intake/handoff.ts';
import type { Store } from '../store/store.ts';
import type { LeasedRecipient, Outcome, Reply } from '../store/types.ts';
import { BodyCache } from './body-cache.ts';
import type { Destination, DestinationResult } from './destination.ts';
import { OutcomeBatch } from './outcome-batch.ts';
import type { OutcomeJournal } from './outcome-journal.ts';
import type { RetryPolicy } from './retry-policy.ts';

/** The part of the lease window broadcast mail may fill; the rest is kept for transactional mail. */
const BROADCAST_SHARE = 0.8;
/** A full outcome batch is written at once (outcome-batch.ts). */
const MAX_OUTCOMES_PER_WRITE = 500;

export interface SchedulerOptions {
  store: Store;
  /** Delivers one transaction to a domain (MX resolution, host fallback, SMTP). */
  destination: Destination;
  retryPolicy: RetryPolicy;
  clock: () => number;
  logger: Logger;
  owner: string;
  /** Most recipients in memory (leased) at once. */
  window: number;
  batchSize: number;
  leaseMs: number;
  maxRecipientsPerTransaction: number;
  /** Longest sleep between store polls when nothing is due (a wake() cuts it short). */
  pollMs?: number;
  /** How long a wake-up waits to gather more wake-ups into one lease (default 2 ms). */
  wakeDelayMs?: number;
  /**
   * How long outcomes wait to share one store write with other transactions' (outcome-batch.ts;
   * default 10 ms). Only outcomes no connection waits for: refusals and deferrals.
   */
  outcomeGatherMs?: number;
  /** Called with recipients that just failed for good (bounced/expired), for DSNs. */
  onFinalFailure?: (failures: FinalFailure[]) => void;
  /** Called with every outcome the store applied (metrics: stats/delivery-metrics.ts). */
  onRecorded?: (outcomes: Outcome[]) => void;
  bodyCacheBytes?: number;
  /**
   * Bounce handling (bounces/feedback.ts): the category of each remote refusal goes into its
   * event; recorded outcomes are handed over afterwards (suppression of hard and repeated soft
   * bounces). Its failures never hold up delivery.
   */
  bounces?: {
    classify(reply: Reply): { category: string; permanent: boolean };
    afterOutcomes(recorded: { recipient: LeasedRecipient; outcome: Outcome }[]): Promise<void>;
  };
  /**
   * The envelope sender of one recipient when it has its own (VERP on the return path: a
   * bounce names the recipient); undefined = the message's (LeasedRecipient.mailFrom). Such
   * recipients travel in transactions of their own.
   */
  envelopeFor?: (recipient: LeasedRecipient) => string | undefined;
  /** Delivered outcomes are appended here before they go to the store (crash replay). */
  journal?: OutcomeJournal;
  /**
   * Credits of the window intake may lease fresh mail against and hand over (handoff.ts), granted
   * while the store has no backlog for us. Without it all work comes through leaseDue.
   */
  credits?: HandoffCredits;
}

export interface FinalFailure {
  recipient: LeasedRecipient;
  outcome: Outcome;
  remoteMta?: string;
}

interface Transaction {
  messageId: string;
  /** MAIL FROM of the transaction. */
  mailFrom: string;
  /** The copy of the message its recipients get (LeasedRecipient.variant). */
  variant: number;
  domain: string;
  recipients: LeasedRecipient[];
}

/**
 * The scheduled queue lives in the store; this keeps a bounded window of leased recipients in
 * memory, groups them into SMTP transactions (same message, same domain, same DSN params),
 * hands them to the destination and writes each outcome back. Leases are renewed while a
 * delivery is in flight, and released on stop.
 */
export class Scheduler {
  readonly #o: Required<
    Omit<
      SchedulerOptions,
      'onFinalFailure' | 'bounces' | 'envelopeFor' | 'onRecorded' | 'journal' | 'credits'
    >
  > &
    Pick<
      SchedulerOptions,
      'onFinalFailure' | 'bounces' | 'envelopeFor' | 'onRecorded' | 'journal' | 'credits'
    >;
  readonly #bodies: BodyCache;
  readonly #outcomes: OutcomeBatch;
  readonly #inflight = new Set<number>();
  /** Broadcast recipients among #inflight: they may fill only part of the window. */
  #inflightBroadcast = 0;
  readonly #running = new Set<Promise<void>>();
  #stopping = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #woken = false;
  #renewTimer: NodeJS.Timeout | undefined;
  /** Credits granted to intake and not withdrawn or come back as handed-over recipients. */
  #outstanding = 0;
  /** The limit of the lease in flight (0 when none): room it may fill, not to be granted meanwhile. */
  #leasing = 0;
  /**
   * The last lease may have left due work in the store (it filled its limit or the window or the
   * broadcast share was full): a finished delivery then wakes the loop to lease more. Otherwise
   * it grants its place in the window to intake instead of asking the store for nothing.
   */
  #backlog = true;
  readonly #counts = { delivered: 0, deferred: 0, bounced: 0, expired: 0 };

  constructor(options: SchedulerOptions) {
    this.#o = {
      pollMs: 1000,
      wakeDelayMs: 2,
      outcomeGatherMs: 10,
      bodyCacheBytes: 16 * 1024 * 1024,
      ...options,
    };
    this.#outcomes = new OutcomeBatch((outcomes) => this.#record(outcomes), {
      gatherMs: this.#o.outcomeGatherMs,
      max: MAX_OUTCOMES_PER_WRITE,
    });
    this.#bodies = new BodyCache((key) => {
      const [id = '', variant = '0'] = key.split('\0');
      return options.store.getBody(id, Number(variant));
    }, this.#o.bodyCacheBytes);
  }

  /** Outcomes recorded since start, and recipients in flight now (heartbeats, status). */
  stats(): { delivered: number; deferred: number; bounced: number; expired: number; inflight: number } {
    return { ...this.#counts, inflight: this.#inflight.size };
  }

  start(): void {
    if (this.#loop) return;
    this.#loop = this.#run().catch((err: unknown) => {
      this.#o.logger.fatal({ err }, 'delivery scheduler stopped by an unexpected error');
    });
    this.#renewTimer = setInterval(() => void this.#renew(), Math.max(1000, this.#o.leaseMs / 3));
    this.#renewTimer.unref();
  }

  /** New mail was committed or an operator asked for a retry: look at the store now. */
  wake(): void {
    if (this.#wake) this.#wake();
    else this.#woken = true;
  }

  /**
   * Recipients intake leased to this node in its own commit, against credits it took (handoff.ts):
   * delivered like leased ones. Handed over while stopping, they are released at once (not
   * attempted), so the next lease anywhere sends them.
   */
  adopt(handed: HandedOff): void {
    this.#outstanding = Math.max(0, this.#outstanding - handed.recipients.length);
    if (this.#stopping) {
      const now = this.#o.clock();
      void this.#record(
        handed.recipients.map((r) => ({
          at: now,
          recipientId: r.id,
          messageId: r.messageId,
          accountId: r.accountId,
          recipient: r.address,
          state: r.attempts > 0 ? ('deferred' as const) : ('queued' as const),
          nextAttemptAt: now,
          attempted: false,
          reply: null,
          event: null,
        })),
      );
      return;
    }
    for (const [key, body] of handed.bodies) {
      this.#bodies.put(key, Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    }
    this.#dispatch(handed.recipients);
  }

  /** Stops leasing, lets in-flight deliveries finish within `graceMs`, then releases the rest. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopping = true;
    this.#o.credits?.close();
    this.wake();
    // From now on outcomes go to the store at once (see #settle), and so does what is gathering:
    // the deliveries stop() waits for wait for their outcomes to be recorded.
    void this.#outcomes.flush();
    await this.#loop;
    const within = async (work: Promise<unknown>): Promise<void> => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([work, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
    };
    await within(Promise.allSettled([...this.#running]));
    clearInterval(this.#renewTimer);
    // Outcomes still gathering go first: a lease released under them would refuse them, and
    // their recipients would be sent again. Bounded too, for a store that no longer answers.
    await within(this.#outcomes.flush());
    const released = await this.#o.store.releaseLeases(this.#o.owner, this.#o.clock());
    if (released > 0) this.#o.logger.info({ released }, 'released leases of unfinished deliveries');
  }

  async #run(): Promise<void> {
    const { store, clock, batchSize, window, leaseMs, owner } = this.#o;
    while (!this.#stopping) {
      this.#woken = false;
      // What intake has not taken yet comes back: the store decides what is leased next.
      if (this.#o.credits) this.#outstanding = Math.max(0, this.#outstanding - this.#o.credits.withdraw());
      const room = window - this.#inflight.size - this.#outstanding;
      if (room <= 0) {
        // Full window: a finishing delivery wakes us.
        this.#backlog = true;
        await this.#sleep(this.#o.pollMs);
        continue;
      }
      const limit = Math.min(room, batchSize);
      // Broadcast mail never takes the whole window: transactional mail accepted during a
      // campaign is leased at once, and the pool serves it first (priority 0).
      const broadcastRoom = this.#broadcastRoom();
      const now = clock();
      let leased: LeasedRecipient[] = [];
      this.#leasing = limit;
      try {
        leased = await store.leaseDue({
          owner,
          now,
          limit,
          leaseUntil: now + leaseMs,
          lanes: { broadcast: Math.min(limit, broadcastRoom) },
        });
      } catch (err) {
        this.#o.logger.error({ err }, 'could not lease due recipients; retrying');
      }
      this.#leasing = 0;
      if (leased.length > 0) this.#dispatch(leased);
      if (this.#stopping) break;
      // A full batch means more may be due right now.
      if (leased.length === limit) {
        this.#backlog = true;
        continue;
      }
      // Work is flowing: new work wakes us, so only an empty lease asks when the next is due
      // (a query per loop turn was a third of the statements under load, bench/relay.ts).
      // With the broadcast share full, due broadcast mail waits for a delivery to finish (which
      // wakes us), not for its due time, which has passed.
      const broadcastFull = leased.filter((r) => r.kind === 'broadcast').length >= broadcastRoom;
      this.#backlog = broadcastFull;
      this.#grant();
      await this.#sleep(leased.length > 0 || broadcastFull ? this.#o.pollMs : await this.#untilDue());
    }
  }

  /** Room for broadcast recipients: their share of the window, less those in flight or promised. */
  #broadcastRoom(): number {
    return Math.max(
      0,
      Math.floor(this.#o.window * BROADCAST_SHARE) - this.#inflightBroadcast - this.#outstanding,
    );
  }

  /**
   * Offers intake the room of the window (within the broadcast share: a credit does not know the
   * kind it will be spent on), so fresh mail skips the store's lease round trip.
   */
  #grant(): void {
    const credits = this.#o.credits;
    if (!credits || this.#stopping || this.#backlog) return;
    // A delivery finishing during a lease must not grant what that lease may still fill.
    const free = this.#o.window - this.#inflight.size - this.#outstanding;
    const room = Math.min(free, this.#broadcastRoom()) - this.#leasing;
    if (room <= 0) return;
    credits.grant(room);
    this.#outstanding += room;
  }

  async #untilDue(): Promise<number> {
    if (this.#woken) return 0;
    try {
      const next = await this.#o.store.nextDueAt();
      if (next === null) return this.#o.pollMs;
      return Math.min(this.#o.pollMs, Math.max(0, next - this.#o.clock()));
    } catch {
      return this.#o.pollMs;
    }
  }

  /**
   * Waits `ms` or until wake(). Always through a timer, never a resolved promise: the loop must
   * yield to I/O even when it is woken continuously, or it would starve the event loop.
   */
  #sleep(ms: number): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      // A wake-up waits a moment so the wakes of a burst (every accepted message and every
      // finished delivery wakes us) share one lease round trip instead of one each.
      let timer = setTimeout(done, this.#woken ? this.#o.wakeDelayMs : Math.max(0, ms));
      // The listeners keep the process alive; an idle scheduler alone must not.
      timer.unref();
      this.#wake = () => {
        // Already woken: the timer set above (or rearmed here) ends the sleep.
        if (this.#woken) return;
        this.#woken = true;
        clearTimeout(timer);
        timer = setTimeout(done, this.#o.wakeDelayMs);
        timer.unref();
      };
    });
  }

  #dispatch(leased: LeasedRecipient[]): void {
    const groups = new Map<string, Transaction>();
    for (const r of leased) {
      // Our own delivery whose lease ran out (a stalled event loop, a jumped clock): it is
      // still in flight here, so it must not be sent a second time.
      if (this.#inflight.has(r.id)) continue;
      this.#inflight.add(r.id);
      if (r.kind === 'broadcast') this.#inflightBroadcast++;
      // RFC 3461 NOTIFY/ORCPT are per RCPT but nodemailer applies them per envelope, so
      // recipients with different DSN parameters travel in different transactions.
      // Personalised recipients (variant > 0) each have their own copy, and VERP recipients their
      // own envelope: their own transaction.
      const own = this.#o.envelopeFor?.(r);
      const mailFrom = own ?? r.mailFrom;
      const key = `${r.messageId}\0${r.variant}\0${r.domain}\0${JSON.stringify(r.dsn)}\0${own === undefined ? '' : r.id}`;
      let tx = groups.get(key);
      if (!tx || tx.recipients.length >= this.#o.maxRecipientsPerTransaction) {
        tx = { messageId: r.messageId, mailFrom, variant: r.variant, domain: r.domain, recipients: [] };
        groups.set(key, tx);
      }
      tx.recipients.push(r);
    }
    for (const tx of groups.values()) {
      const job = this.#deliver(tx).finally(() => {
        this.#running.delete(job);
        for (const r of tx.recipients) {
          this.#inflight.delete(r.id);
          if (r.kind === 'broadcast') this.#inflightBroadcast--;
        }
        if (this.#backlog || !this.#o.credits) this.wake();
        else this.#grant();
      });
      this.#running.add(job);
    }
  }

  async #deliver(tx: Transaction): Promise<void> {
    const { clock, logger } = this.#o;
    let result: DestinationResult;
    const body = await this.#bodies.get(bodyKey(tx.messageId, tx.variant)).catch(() => undefined);
    if (!body) {
      // The body is gone (deleted or store error): release, do not guess.
      logger.error({ messageId: tx.messageId }, 'message body not found; recipients released');
      await this.#record(
        tx.recipients.map((r) => ({
          at: clock(),
          recipientId: r.id,
          messageId: r.messageId,
          accountId: r.accountId,
          recipient: r.address,
          state: r.attempts > 0 ? 'deferred' : 'queued',
          nextAttemptAt: clock() + 60_000,
          attempted: false,
          reply: null,
          event: null,
        })),
      );
      return;
    }
    // Outcomes are committed before the connection carries its next transaction (see settle).
    // A transaction may be answered in parts (routing splits it under warm-up caps): each part
    // settles the recipients it answers, once.
    const settled = new Set<number>();
    const settling: Promise<void>[] = [];
    const settle = (answer: DestinationResult): Promise<void> => {
      const part = tx.recipients.filter(
        (r) => !settled.has(r.id) && answer.recipients.some((a) => a.address === r.address),
      );
      for (const r of part) settled.add(r.id);
      if (part.length === 0) return Promise.resolve();
      const { released, recorded } = this.#settle({ ...tx, recipients: part }, answer);
      settling.push(recorded);
      return released;
    };
    try {
      result = await this.#o.destination.deliver({
        domain: tx.domain,
        mailFrom: tx.mailFrom,
        recipients: tx.recipients.map((r) => r.address),
        dsn: tx.recipients[0]?.dsn ?? {},
        body,
        settle,
        account: tx.recipients[0]?.accountId ?? '',
        stream: tx.recipients[0]?.stream ?? '',
        kind: tx.recipients[0]?.kind ?? 'transactional',
        priority: tx.recipients[0]?.kind === 'broadcast' ? 1 : 0,
      });
    } catch (err) {
      // Shutting down: the pool turned the transaction away before it reached a server. Not an
      // attempt; stop() releases its lease and the next start sends it at once.
      if ((err as { code?: unknown }).code === 'POOL_CLOSED' && this.#stopping) {
        await Promise.all(settling);
        return;
      }
      logger.error({ err, messageId: tx.messageId, domain: tx.domain }, 'delivery failed unexpectedly');
      result = {
        recipients: tx.recipients.map((r) => ({
          address: r.address,
          outcome: 'temporary',
          reply: {
            code: 451,
            enhanced: '4.3.0',
            text: `local error during delivery: ${(err as Error).message}`,
          },
        })),
      };
    }
    // DNS, policy and connection failures never reached a session: settle them now, and
    // whatever no part answered (as 'no result', deferred).
    await settle(result);
    const unanswered = tx.recipients.filter((r) => !settled.has(r.id));
    for (const r of unanswered) settled.add(r.id);
    if (unanswered.length > 0)
      settling.push(this.#settle({ ...tx, recipients: unanswered }, result).recorded);
    // The recipients stay in flight (and leased) until the store has their outcomes.
    await Promise.all(settling);
  }

  /**
   * Turns one transaction's answer into outcomes, records them, and queues DSNs. `released`:
   * the connection may carry its next transaction; `recorded`: the store has the outcomes.
   */
  #settle(tx: Transaction, result: DestinationResult): { released: Promise<void>; recorded: Promise<void> } {
    const { clock, logger } = this.#o;
    const now = clock();
    const outcomes: Outcome[] = [];
    const finals: FinalFailure[] = [];
    for (const r of tx.recipients) {
      const res = result.recipients.find((x) => x.address === r.address);
      const reply = res?.reply ?? { code: 451, enhanced: '4.3.0', text: 'no result for this recipient' };
      const attempt = r.attempts + 1;
      // A refusal gets its bounce category (unknown_user, mailbox_full, …) in its event.
      const refused =
        res?.outcome === 'permanent' || (res?.outcome === 'temporary' && res.reply !== undefined);
      const classified = refused && this.#o.bounces ? this.#o.bounces.classify(reply) : undefined;
      const data = {
        reply,
        ...(result.connection ?? {}),
        attempt,
        durationMs: result.durationMs,
        queueMs: now - r.createdAt,
        ...(classified ? { category: classified.category, permanent: classified.permanent } : {}),
      };
      const base = {
        at: now,
        recipientId: r.id,
        messageId: r.messageId,
        accountId: r.accountId,
        recipient: r.address,
        ...(result.site !== undefined ? { site: result.site } : {}),
        ...(result.source !== undefined ? { source: result.source } : {}),
      };
      let outcome: Outcome;
      if (res?.outcome === 'held') {
        outcome = { ...base, state: 'held', attempted: false, reply, event: { type: 'held', data } };
      } else if (res?.outcome === 'delivered') {
        outcome = { ...base, state: 'delivered', attempted: true, reply, event: { type: 'delivered', data } };
      } else if (res?.outcome === 'permanent') {
        outcome = { ...base, state: 'bounced', attempted: true, reply, event: { type: 'bounced', data } };
      } else {
        const decision = this.#o.retryPolicy.next(attempt, r.createdAt, now);
        // A suspended site or an open circuit says when it is worth trying again.
        if ('retryAt' in decision && result.retryAt !== undefined && result.retryAt > decision.retryAt) {
          decision.retryAt = result.retryAt;
        }
        outcome =
          'expired' in decision
            ? {
                ...base,
                state: 'expired',
                attempted: true,
                reply,
                event: {
                  type: 'expired',
                  data: { ...data, reason: 'gave up retrying: the message is too old' },
                },
              }
            : {
                ...base,
                state: 'deferred',
                nextAttemptAt: decision.retryAt,
                attempted: true,
                reply,
                event: { type: 'deferred', data: { ...data, nextAttemptAt: decision.retryAt } },
              };
      }
      outcomes.push(outcome);
      if (outcome.state === 'bounced' || outcome.state === 'expired') {
        finals.push({
          recipient: r,
          outcome,
          ...(result.connection?.mxHost ? { remoteMta: result.connection.mxHost } : {}),
        });
      }
      logger.info(
        {
          event: outcome.event?.type,
          messageId: r.messageId,
          recipient: r.address,
          domain: tx.domain,
          attempt,
          mx: result.connection?.mxHost,
          ip: result.connection?.ip,
          response: `${reply.code} ${reply.enhanced ?? ''} ${reply.text}`.replace(/\s+/g, ' ').trim(),
        },
        'delivery attempt',
      );
    }
    // The remote side has it: on disk before anything else can be cut short by a kill.
    const journaled = this.#o.journal?.append(outcomes) ?? false;
    // A connection carries its next transaction only once the store has this one's deliveries
    // (architecture.md, "Delivery"): their write goes at once, as everything does while
    // stopping. A transaction without a delivery (refusals, deferrals: resent after a crash, they
    // reach nobody) frees its connection at once, and its outcomes wait a moment to share one
    // store write with other transactions'.
    const urgent = this.#stopping || outcomes.some((o) => o.state === 'delivered');
    const recorded = this.#outcomes.add(outcomes, urgent).then((stored) => {
      // Left in the journal when the store never took it: the next start replays it.
      if (journaled && stored) this.#o.journal?.recorded();
      this.#afterRecorded(tx, outcomes, finals, stored ?? new Set<number>());
    });
    return { released: urgent ? recorded : Promise.resolve(), recorded };
  }

  /** Counts, metrics, DSNs and bounce handling for the outcomes the store applied. */
  #afterRecorded(tx: Transaction, outcomes: Outcome[], finals: FinalFailure[], applied: Set<number>): void {
    const { logger } = this.#o;
    this.#o.onRecorded?.(outcomes.filter((o) => applied.has(o.recipientId)));
    const counts = this.#counts;
    for (const o of outcomes) {
      if (applied.has(o.recipientId) && o.state in counts) counts[o.state as keyof typeof counts]++;
    }
    const recorded = finals.filter((f) => applied.has(f.recipient.id));
    if (recorded.length > 0) this.#o.onFinalFailure?.(recorded);
    const bounces = this.#o.bounces;
    if (bounces) {
      const byId = new Map(tx.recipients.map((r) => [r.id, r]));
      const handed = outcomes.flatMap((o) => {
        const recipient = byId.get(o.recipientId);
        return recipient && applied.has(o.recipientId) && (o.state === 'bounced' || o.state === 'deferred')
          ? [{ recipient, outcome: o }]
          : [];
      });
      if (handed.length > 0) {
        bounces.afterOutcomes(handed).catch((err: unknown) => {
          logger.error({ err }, 'could not apply bounce handling (suppressions) to delivery outcomes');
        });
      }
    }
  }

  /**
   * Writes outcomes; returns the recipient ids applied (a cancelled or released one is not), or
   * undefined when the store could not take them after every retry.
   */
  async #record(outcomes: Outcome[]): Promise<Set<number> | undefined> {
    // The remote side has answered; if our commit fails we keep trying (the lease would
    // otherwise expire and the mail be sent again).
    for (let attempt = 0; ; attempt++) {
      try {
        const applied = new Set(await this.#o.store.recordOutcomes(this.#o.owner, outcomes));
        for (const o of outcomes) {
          if (!applied.has(o.recipientId)) {
            this.#o.logger.info(
              { messageId: o.messageId, recipient: o.recipient, outcome: o.state },
              'outcome not recorded: the recipient was cancelled or released during the attempt',
            );
          }
        }
        return applied;
      } catch (err) {
        this.#o.logger.error({ err, attempt }, 'could not record delivery outcomes; retrying');
        if (attempt >= 20) return undefined;
        await new Promise((r) => setTimeout(r, Math.min(30_000, 250 * 2 ** attempt)));
      }
    }
  }

  async #renew(): Promise<void> {
    if (this.#inflight.size === 0) return;
    try {
      await this.#o.store.renewLeases({
        owner: this.#o.owner,
        ids: [...this.#inflight],
        leaseUntil: this.#o.clock() + this.#o.leaseMs,
      });
    } catch (err) {
      this.#o.logger.warn({ err }, 'could not renew leases');
    }
  }
}
