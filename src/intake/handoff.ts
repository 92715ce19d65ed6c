/**
 * Fresh mail handed from intake straight to this node's delivery engine: the intake commit
 * itself leases the recipients to this node (state `delivering`, owner and expiry, in the same
 * transaction as the message), and the leased recipients and their bodies go to the scheduler
 * in memory. The store's lease round trip (finding due work, leasing it, reading the body back)
 * is skipped; the lease is still committed before any network I/O, renewed while in flight and
 * taken over by another node (or released at the next start) if this one dies.
 *
 * Intake may do this only within credits the scheduler grants: recipients the delivery window
 * has room for, and only while the scheduler found no backlog in the store on its last lease.
 * With a backlog the credits are withdrawn and fresh mail waits its turn in the store's lane
 * order like any other (fairness between accounts and the broadcast share are decided there).
 * The credits live in a SharedArrayBuffer so intake (main thread) and the scheduler (delivery
 * thread) read them without a message round trip.
 */
import type { LeasedRecipient } from '../store/types.ts';

/** Credits of the delivery window intake may lease against; one shared counter and a closed flag. */
export class HandoffCredits {
  readonly buffer: SharedArrayBuffer;
  readonly #cells: Int32Array;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(8)) {
    this.buffer = buffer;
    this.#cells = new Int32Array(buffer);
  }

  /** Intake: takes `n` credits if that many are there (all or none). */
  take(n: number): boolean {
    if (n <= 0) return true;
    for (;;) {
      if (Atomics.load(this.#cells, 1) !== 0) return false;
      const have = Atomics.load(this.#cells, 0);
      if (have < n) return false;
      if (Atomics.compareExchange(this.#cells, 0, have, have - n) === have) return true;
    }
  }

  /** Intake: gives back credits it took and did not use (a failed commit, fewer recipients leased). */
  giveBack(n: number): void {
    if (n > 0) Atomics.add(this.#cells, 0, n);
  }

  /** Scheduler: adds credits. */
  grant(n: number): void {
    if (n > 0) Atomics.add(this.#cells, 0, n);
  }

  /** Scheduler: withdraws every credit not taken yet; returns how many. */
  withdraw(): number {
    return Atomics.exchange(this.#cells, 0, 0);
  }

  /** Scheduler, when stopping: no credit is taken from now on. */
  close(): void {
    Atomics.store(this.#cells, 1, 1);
  }

  /** Credits there now (tests, status). */
  available(): number {
    return Atomics.load(this.#cells, 0);
  }
}

/** What intake hands over after its commit: the leased recipients and their copies' bodies. */
export interface HandedOff {
  recipients: LeasedRecipient[];
  /** Bodies by the delivery body cache's key (`messageId\0variant`). */
  bodies: [key: string, body: Uint8Array][];
}

/** Intake's side of the handoff (intake/intake.ts). */
export interface Handoff {
  /** The lease owner (the node id) and how long the lease runs. */
  owner: string;
  leaseMs: number;
  credits: HandoffCredits;
  /** Hands committed, leased recipients to the scheduler. */
  deliver(handed: HandedOff): void;
}

/** Bodies larger than this are not copied to the delivery thread; it reads them from the store. */
export const HANDOFF_BODY_MAX_BYTES = 1024 * 1024;

/** The body cache's key of one copy of a message. */
export function bodyKey(messageId: string, variant: number): string {
  return `${messageId}\0${variant}`;
}
