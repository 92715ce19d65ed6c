import { type LeaseRequest, STREAM_KINDS, type StreamKind } from './types.ts';

/**
 * How one `leaseDue` batch is shared out, the same for every adapter:
 *
 * 1. expired leases (a dead node's work; few) first, in lane order;
 * 2. then the transactional lane, then the broadcast lane (strict priority);
 * 3. within a lane, the accounts with due work share its budget in proportion to their weights,
 *    max-min fair: an account with less due than its share gets all it has, and what it leaves
 *    goes to the others by weight. So one account's backlog cannot starve another's.
 *
 * The adapters tell the plan what they found (expired leases per kind; per lane the accounts
 * with due work, their weights and, where counted, how many are due), then lease pass by pass:
 * each pass takes every account's share with one bounded index range scan per account. An
 * account that came up short has nothing more (or another node took it); one that filled its
 * share may have more, and the next pass gives it what the short ones left. The passes converge
 * to the weighted max-min fair split without counting every account's backlog first.
 */

/** An account with due work in a lane. */
export interface LaneClaim {
  kind: StreamKind;
  accountId: string;
  weight: number;
  /** How many recipients are due (a lower bound is fine); Infinity when not counted. */
  due: number;
}

/** What a pass leases: expired leases per kind (first pass only), then each account's share. */
export interface LeasePass {
  expired: Record<StreamKind, number>;
  shares: { kind: StreamKind; accountId: string; share: number }[];
}

/** One leased recipient as the plan needs to see it. */
export interface LeasedInLane {
  kind: StreamKind;
  accountId: string;
  /** Taken as an expired lease rather than as a due recipient. */
  expired: boolean;
}

/**
 * Splits `budget` between claims by weight, capped by what each has due (water-filling), in
 * whole recipients. Fractions are resolved by a draw weighted by the fractional parts, so
 * every account gets its exact share on average: with a budget of 1 and weights 3:1 the second
 * account gets the slot one time in four, where a fixed tie-break would starve it.
 */
export function weightedShares(
  claims: readonly Pick<LaneClaim, 'accountId' | 'weight' | 'due'>[],
  budget: number,
  random: () => number = Math.random,
): Map<string, number> {
  const exact = new Map<string, number>();
  let open = claims.filter((c) => c.due > 0 && c.weight > 0);
  const demand = open.reduce((sum, c) => sum + c.due, 0);
  let left = budget;
  while (open.length > 0 && left > 0) {
    const level = left / open.reduce((sum, c) => sum + c.weight, 0);
    const full = open.filter((c) => c.due <= level * c.weight);
    if (full.length === 0) {
      for (const c of open) exact.set(c.accountId, level * c.weight);
      break;
    }
    for (const c of full) {
      exact.set(c.accountId, c.due);
      left -= c.due;
    }
    open = open.filter((c) => c.due > level * c.weight);
  }
  const shares = new Map<string, number>();
  const fractions: { accountId: string; part: number }[] = [];
  let given = 0;
  for (const [accountId, x] of exact) {
    const whole = Math.floor(x);
    shares.set(accountId, whole);
    given += whole;
    if (x - whole > 1e-9) fractions.push({ accountId, part: x - whole });
  }
  // The fractional parts add up to the slots still to give (up to rounding): one slot each to
  // that many accounts, drawn without replacement in proportion to their parts.
  let extra = Math.min(budget, demand) - given;
  while (extra > 0 && fractions.length > 0) {
    const total = fractions.reduce((sum, f) => sum + f.part, 0);
    let x = random() * total;
    let i = 0;
    while (i < fractions.length - 1 && x >= (fractions[i]?.part ?? 0)) x -= fractions[i++]?.part ?? 0;
    const [drawn] = fractions.splice(i, 1);
    if (drawn) shares.set(drawn.accountId, (shares.get(drawn.accountId) ?? 0) + 1);
    extra--;
  }
  return shares;
}

const laneKey = (kind: StreamKind, accountId: string): string => `${kind}\0${accountId}`;

/** Non-negative whole number, or Infinity for "no limit". */
const count = (n: number | undefined): number =>
  n === undefined ? Number.POSITIVE_INFINITY : Math.max(0, Math.floor(n));

/** The passes of one `leaseDue` call (see the top of this file). */
export class LeasePlan {
  #left: number;
  readonly #laneLeft: Record<StreamKind, number>;
  #expired: Record<StreamKind, number> | undefined;
  readonly #claims = new Map<string, LaneClaim>();
  readonly #random: () => number;

  constructor(
    request: Pick<LeaseRequest, 'limit' | 'lanes'>,
    found: { expired: Partial<Record<StreamKind, number>>; claims: readonly LaneClaim[] },
    random: () => number = Math.random,
  ) {
    this.#left = count(request.limit);
    this.#laneLeft = {
      transactional: count(request.lanes?.transactional),
      broadcast: count(request.lanes?.broadcast),
    };
    this.#expired = {
      transactional: count(found.expired.transactional ?? 0),
      broadcast: count(found.expired.broadcast ?? 0),
    };
    for (const c of found.claims) this.#claims.set(laneKey(c.kind, c.accountId), { ...c });
    this.#random = random;
  }

  /** The largest number of due recipients a lane could get in this call (a cap for counting). */
  laneBudget(kind: StreamKind): number {
    return Math.min(this.#left, this.#laneLeft[kind]);
  }

  /** What to lease next, or undefined when the batch is full or nothing more is due. */
  next(): LeasePass | undefined {
    const pass: LeasePass = { expired: { transactional: 0, broadcast: 0 }, shares: [] };
    let planned = 0;
    const laneRoom = (kind: StreamKind): number =>
      Math.min(this.#left - planned, this.#laneLeft[kind] - pass.expired[kind]);
    if (this.#expired) {
      for (const kind of STREAM_KINDS) {
        pass.expired[kind] = Math.max(0, Math.min(laneRoom(kind), this.#expired[kind]));
        planned += pass.expired[kind];
      }
      this.#expired = undefined;
    }
    for (const kind of STREAM_KINDS) {
      const room = laneRoom(kind);
      if (room <= 0) continue;
      const claims = [...this.#claims.values()].filter((c) => c.kind === kind);
      for (const [accountId, share] of weightedShares(claims, room, this.#random)) {
        if (share <= 0) continue;
        pass.shares.push({ kind, accountId, share });
        planned += share;
      }
    }
    return planned > 0 ? pass : undefined;
  }

  /** What the pass leased: accounts that came up short are done, the others may have more. */
  record(pass: LeasePass, leased: readonly LeasedInLane[]): void {
    const got = new Map<string, number>();
    for (const r of leased) {
      this.#left--;
      this.#laneLeft[r.kind]--;
      if (!r.expired) got.set(laneKey(r.kind, r.accountId), (got.get(laneKey(r.kind, r.accountId)) ?? 0) + 1);
    }
    for (const s of pass.shares) {
      const key = laneKey(s.kind, s.accountId);
      const claim = this.#claims.get(key);
      if (!claim) continue;
      const n = got.get(key) ?? 0;
      claim.due -= n;
      if (n < s.share || claim.due <= 0) this.#claims.delete(key);
    }
  }
}
