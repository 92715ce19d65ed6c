/**
 * A circuit breaker per (egress source, site): after `failures` consecutive connection failures,
 * stop connecting for `backoff` ± jitter instead of hammering a site that is down or refusing us;
 * then let one trial connection through (half-open); its success closes the circuit, its failure
 * opens it again for another backoff. Messages for the site stay deferred meanwhile: the caller
 * reschedules them for the time check() returns, never bounces them.
 *
 *   const circuit = createCircuitBreaker({ failures: 5, backoffMs: 300_000, jitter: 0.2 }, Math.random);
 *   circuit.check(key, now)    → 0: connect (in half-open: this caller holds the one trial)
 *                              → ms until a connection may be tried
 *   circuit.failure(key, now)  // a connection attempt failed (TCP, greeting, EHLO, STARTTLS)
 *   circuit.success(key, now)  // a session was established
 *   circuit.open()             → circuits not closed, for `postbote queue summary`
 *
 * What counts as a failure is the caller's call: failures before a usable session (the
 * `session` phase of delivery/smtp-reply.ts). A 4xx/5xx inside a session is an answer, not a
 * connection failure: adaptive rules deal with those.
 *
 * The backoff is `backoffMs × (1 + jitter × (2·random() − 1))`, uniform in ±jitter, so sources that
 * lost a site at the same moment do not all come back in the same second. `random` is injected
 * and called once per opening. A trial that reports neither success nor failure within
 * `trialTimeoutMs` (a lost callback) is given up, and the next check() takes a new trial.
 * A closed circuit's failure count is forgotten by sweep() once no failure came for a backoff.
 */

export interface CircuitOptions {
  /** Consecutive failures that open the circuit (≥ 1). */
  readonly failures: number;
  /** How long it stays open before a trial, before jitter. */
  readonly backoffMs: number;
  /** Relative spread of the backoff in [0, 1): 0.2 = ±20 %. */
  readonly jitter: number;
  /** How long a half-open trial may take before another is allowed; default 2 minutes. */
  readonly trialTimeoutMs?: number;
}

export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitStatus {
  readonly key: string;
  readonly state: CircuitState;
  /** Consecutive failures so far. */
  readonly failures: number;
  /** Open: when the trial is allowed. Half-open: when the current trial is given up. */
  readonly retryAt?: number;
}

export interface CircuitEvent {
  readonly type: 'opened' | 'half_open' | 'closed';
  readonly key: string;
  readonly failures: number;
  readonly at: number;
  /** `opened` only: when a trial will be allowed. */
  readonly until?: number;
}

export interface CircuitBreaker {
  check(key: string, now: number): number;
  failure(key: string, now: number): void;
  success(key: string, now: number): void;
  status(key: string): CircuitStatus;
  /** Every circuit open or half-open (an open one whose retryAt has passed awaits its trial). */
  open(): CircuitStatus[];
  /** Forgets closed circuits whose last failure is older than the backoff; returns how many. */
  sweep(now: number): number;
}

interface Record {
  failures: number;
  lastFailureAt: number;
  /** Open until (a trial is then allowed). */
  openUntil?: number;
  /** Half-open: when the trial started. */
  trialAt?: number;
}

export function createCircuitBreaker(
  options: CircuitOptions,
  random: () => number,
  onEvent?: (event: CircuitEvent) => void,
): CircuitBreaker {
  const { failures: threshold, backoffMs, jitter } = options;
  const trialTimeoutMs = options.trialTimeoutMs ?? 120_000;
  if (!Number.isInteger(threshold) || threshold < 1) {
    throw new RangeError(`failures must be a whole number ≥ 1, got ${threshold}`);
  }
  if (!Number.isFinite(backoffMs) || backoffMs <= 0)
    throw new RangeError(`backoffMs must be > 0, got ${backoffMs}`);
  // jitter ≥ 1 could make the backoff zero or negative: no backoff at all.
  if (!Number.isFinite(jitter) || jitter < 0 || jitter >= 1) {
    throw new RangeError(`jitter must be in [0, 1), got ${jitter}`);
  }
  if (!Number.isFinite(trialTimeoutMs) || trialTimeoutMs <= 0) {
    throw new RangeError(`trialTimeoutMs must be > 0, got ${trialTimeoutMs}`);
  }
  const records = new Map<string, Record>();

  function openFor(key: string, record: Record, now: number): void {
    const r = Math.min(Math.max(random(), 0), 1);
    record.openUntil = now + Math.round(backoffMs * (1 + jitter * (2 * r - 1)));
    record.trialAt = undefined;
    onEvent?.({ type: 'opened', key, failures: record.failures, at: now, until: record.openUntil });
  }

  function statusOf(key: string, record: Record | undefined): CircuitStatus {
    if (record === undefined) return { key, state: 'closed', failures: 0 };
    if (record.trialAt !== undefined) {
      return { key, state: 'half_open', failures: record.failures, retryAt: record.trialAt + trialTimeoutMs };
    }
    if (record.openUntil !== undefined) {
      return { key, state: 'open', failures: record.failures, retryAt: record.openUntil };
    }
    return { key, state: 'closed', failures: record.failures };
  }

  return {
    check(key, now) {
      const record = records.get(key);
      if (record === undefined) return 0;
      if (record.trialAt !== undefined) {
        const wait = record.trialAt + trialTimeoutMs - now;
        if (wait > 0) return wait;
        record.trialAt = now; // the last trial never reported back: this caller takes a new one
        return 0;
      }
      if (record.openUntil === undefined) return 0;
      if (now < record.openUntil) return record.openUntil - now;
      record.openUntil = undefined;
      record.trialAt = now;
      onEvent?.({ type: 'half_open', key, failures: record.failures, at: now });
      return 0;
    },

    failure(key, now) {
      let record = records.get(key);
      if (record === undefined) {
        record = { failures: 0, lastFailureAt: now };
        records.set(key, record);
      }
      record.failures++;
      record.lastFailureAt = now;
      if (record.trialAt !== undefined) openFor(key, record, now);
      else if (record.openUntil === undefined && record.failures >= threshold) openFor(key, record, now);
      // Failures of attempts started before the circuit opened do not push the trial back.
    },

    success(key, now) {
      const record = records.get(key);
      if (record === undefined) return;
      records.delete(key);
      if (record.openUntil !== undefined || record.trialAt !== undefined) {
        onEvent?.({ type: 'closed', key, failures: record.failures, at: now });
      }
    },

    status: (key) => statusOf(key, records.get(key)),

    open() {
      const list: CircuitStatus[] = [];
      for (const [key, record] of records) {
        const status = statusOf(key, record);
        if (status.state !== 'closed') list.push(status);
      }
      return list.sort((a, b) => (a.retryAt ?? 0) - (b.retryAt ?? 0) || a.key.localeCompare(b.key));
    },

    sweep(now) {
      let dropped = 0;
      for (const [key, record] of records) {
        const closed = record.openUntil === undefined && record.trialAt === undefined;
        if (closed && record.lastFailureAt <= now - backoffMs) {
          records.delete(key);
          dropped++;
        }
      }
      return dropped;
    },
  };
}
