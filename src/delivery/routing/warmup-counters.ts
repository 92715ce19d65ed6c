/**
 * What each warm-up source has sent this UTC day and hour, and what it may still send.
 *
 *   const counters = createWarmupCounters(sources);            // every source; those without warm-up are never capped
 *   counters.room('ip-1', now)          → Infinity | how many more may leave now (0 = capped)
 *   counters.reserve('ip-1', 20, now)   // the router handed 20 recipients to this source
 *   counters.recordSent('ip-1', 18, now)  // 18 of them were sent: counted, reservation consumed
 *   counters.release('ip-1', 2, now)      // 2 were not (deferred before DATA): reservation freed
 *   counters.availableAt('ip-1', now)   → when room > 0 again (next UTC hour or day, or sooner)
 *   counters.status(now)                → per warm-up source, for `postbote queue summary`
 *
 * Reservations: between the router's choice and the remote's answer many transactions are in
 * flight (a lease window holds thousands of recipients); counting only what was sent would let
 * all of them through at a cap's edge. So a choice reserves its recipients, and the cap holds
 * for sent + reserved. A reservation that is neither consumed nor released within
 * `reservationTtlMs` (a lost callback, a crashed attempt) lapses.
 *
 * The counters are in memory and per node: a restart forgets today's counts (the caller may
 * seed them with recordSent from the store's events), and in a cluster each node counts alone,
 * so N nodes could send up to N times a cap (docs/architecture.md, "Routing and egress").
 */

import {
  capsAt,
  DAY_MS,
  firstSendingDay,
  HOUR_MS,
  type Overflow,
  utcDay,
  utcHour,
  type WarmupSchedule,
  warmupFinished,
} from './warmup.ts';

export interface WarmupSource {
  readonly name: string;
  readonly warmup?: WarmupSchedule;
}

/** One warm-up source's state, for `postbote queue summary`. */
export interface CapsStatus {
  readonly source: string;
  /** Warm-up day (1 = start date); past the schedule when `finished`. */
  readonly day: number;
  readonly finished: boolean;
  /** Caps of the current UTC day and hour; absent = none. */
  readonly dailyCap?: number;
  readonly hourlyCap?: number;
  readonly sentToday: number;
  readonly sentThisHour: number;
  /** Recipients handed to the source and not yet reported sent or released. */
  readonly reserved: number;
  readonly overflow: Overflow;
  /** Capped now: no more may leave until `availableAt`. */
  readonly capped: boolean;
  readonly availableAt?: number;
}

export interface WarmupCounters {
  room(source: string, now: number): number;
  reserve(source: string, n: number, now: number): void;
  recordSent(source: string, n: number, now: number): void;
  release(source: string, n: number, now: number): void;
  /** When the source may send again; `now` when it may send now. */
  availableAt(source: string, now: number): number;
  status(now: number): CapsStatus[];
}

export interface WarmupCounterOptions {
  /** How long an unreported reservation holds; default 10 minutes. */
  readonly reservationTtlMs?: number;
  /**
   * When a source is capped only by reservations (in-flight mail that may yet be released),
   * how soon to look again at the latest; default 1 minute.
   */
  readonly recheckMs?: number;
  /**
   * How many nodes share the caps (a cluster counts per node): each node keeps to
   * ⌊cap / share⌋, so together they stay within the cap. Default 1.
   */
  readonly share?: () => number;
}

interface Reservation {
  n: number;
  expiresAt: number;
}

interface State {
  readonly schedule: WarmupSchedule;
  day: number;
  dayCount: number;
  hour: number;
  hourCount: number;
  /** Oldest first; with one TTL they also expire oldest first. */
  reservations: Reservation[];
  /** The sum of `reservations`. */
  held: number;
}

export function createWarmupCounters(
  sources: readonly WarmupSource[],
  options: WarmupCounterOptions = {},
): WarmupCounters {
  const reservationTtlMs = options.reservationTtlMs ?? 600_000;
  const recheckMs = options.recheckMs ?? 60_000;
  const states = new Map<string, State>();
  for (const source of sources) {
    if (source.warmup) {
      states.set(source.name, {
        schedule: source.warmup,
        day: Number.NEGATIVE_INFINITY,
        dayCount: 0,
        hour: Number.NEGATIVE_INFINITY,
        hourCount: 0,
        reservations: [],
        held: 0,
      });
    }
  }

  const count = (n: number): number => (Number.isFinite(n) && n > 0 ? Math.floor(n) : 0);

  function reserved(state: State, now: number): number {
    while (state.reservations.length > 0 && state.reservations[0]!.expiresAt <= now) {
      state.held -= state.reservations.shift()!.n;
    }
    return state.held;
  }

  /** Takes up to n off the oldest reservations. */
  function consume(state: State, n: number): void {
    let left = n;
    while (left > 0 && state.reservations.length > 0) {
      const first = state.reservations[0]!;
      const take = Math.min(first.n, left);
      first.n -= take;
      state.held -= take;
      left -= take;
      if (first.n === 0) state.reservations.shift();
    }
  }

  function sent(state: State, now: number): { today: number; thisHour: number } {
    return {
      today: state.day === utcDay(now) ? state.dayCount : 0,
      thisHour: state.hour === utcHour(now) ? state.hourCount : 0,
    };
  }

  /** The caps in force now, this node's share of them. */
  function capsNow(state: State, now: number): { daily?: number; hourly?: number } {
    const caps = capsAt(state.schedule, now);
    const share = Math.max(1, Math.floor(options.share?.() ?? 1));
    if (share === 1) return caps;
    return {
      ...(caps.daily !== undefined ? { daily: Math.floor(caps.daily / share) } : {}),
      ...(caps.hourly !== undefined ? { hourly: Math.floor(caps.hourly / share) } : {}),
    };
  }

  function room(state: State, now: number): number {
    if (warmupFinished(state.schedule, now)) return Number.POSITIVE_INFINITY;
    const caps = capsNow(state, now);
    const { today, thisHour } = sent(state, now);
    const held = reserved(state, now);
    let left = Number.POSITIVE_INFINITY;
    if (caps.daily !== undefined) left = Math.min(left, caps.daily - today - held);
    if (caps.hourly !== undefined) left = Math.min(left, caps.hourly - thisHour - held);
    return Math.max(0, left);
  }

  function availableAt(state: State, now: number): number {
    if (room(state, now) > 0) return now;
    const caps = capsNow(state, now);
    const { today, thisHour } = sent(state, now);
    if (caps.daily !== undefined && today >= caps.daily) {
      return firstSendingDay(state.schedule, utcDay(now) + 1) * DAY_MS;
    }
    if (caps.hourly === 0) return firstSendingDay(state.schedule, utcDay(now) + 1) * DAY_MS;
    if (caps.hourly !== undefined && thisHour >= caps.hourly) return (utcHour(now) + 1) * HOUR_MS;
    // Full only with the mail in flight: look again when some of it may have been released.
    const lapse = state.reservations[0]?.expiresAt ?? now + recheckMs;
    return Math.min(now + recheckMs, lapse);
  }

  return {
    room(source, now) {
      const state = states.get(source);
      return state ? room(state, now) : Number.POSITIVE_INFINITY;
    },

    reserve(source, n, now) {
      const state = states.get(source);
      const k = count(n);
      if (state && k > 0) {
        state.reservations.push({ n: k, expiresAt: now + reservationTtlMs });
        state.held += k;
      }
    },

    recordSent(source, n, now) {
      const state = states.get(source);
      const k = count(n);
      if (!state || k === 0) return;
      consume(state, k);
      const day = utcDay(now);
      if (day > state.day) {
        state.day = day;
        state.dayCount = 0;
      }
      if (day === state.day) state.dayCount += k;
      const hour = utcHour(now);
      if (hour > state.hour) {
        state.hour = hour;
        state.hourCount = 0;
      }
      if (hour === state.hour) state.hourCount += k;
      // A late report for an earlier day or hour no longer matters for any cap in force.
    },

    release(source, n, _now) {
      const state = states.get(source);
      if (state) consume(state, count(n));
    },

    availableAt(source, now) {
      const state = states.get(source);
      return state ? availableAt(state, now) : now;
    },

    status(now) {
      const list: CapsStatus[] = [];
      for (const [source, state] of states) {
        const caps = capsAt(state.schedule, now);
        const { today, thisHour } = sent(state, now);
        const finished = warmupFinished(state.schedule, now);
        const capped = room(state, now) === 0;
        list.push({
          source,
          day: caps.day,
          finished,
          ...(caps.daily !== undefined ? { dailyCap: caps.daily } : {}),
          ...(caps.hourly !== undefined ? { hourlyCap: caps.hourly } : {}),
          sentToday: today,
          sentThisHour: thisHour,
          reserved: reserved(state, now),
          overflow: state.schedule.overflow,
          capped,
          ...(capped ? { availableAt: availableAt(state, now) } : {}),
        });
      }
      return list;
    },
  };
}
