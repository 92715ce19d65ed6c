/**
 * Permits to open a connection, for limits that must hold across nodes. The session pool
 * counts its own connections per key; with several nodes on one database it also needs one of
 * the cluster's `limit` slots for the destination host before it connects, and keeps that slot
 * for as long as the connection lives (idle ones included), so N nodes never hold more than
 * `limit` connections to one host between them. A node may hold more than its fair share
 * (limit ÷ live nodes) while no other node is refused a slot; once one is, the freed slots go
 * to it (see ConnectionSlotStore.acquireSlot).
 */
import type { ConnectionSlotStore, SlotRef } from '../store/store.ts';

export interface Permit {
  /** The slot expired and another node took it: close the connection after its transaction. */
  readonly lost: boolean;
  /** Gives the slot back (idempotent). */
  release(): void;
}

export interface ConnectionPermits {
  /** One of `limit` slots of `key`, or undefined when every slot is held (by any node). */
  tryAcquire(key: string, limit: number): Promise<Permit | undefined>;
  /** Stops renewing and gives back every slot still held. */
  stop(): Promise<void>;
}

interface HeldPermit extends Permit, SlotRef {
  lost: boolean;
}

export interface ClusterPermitsOptions {
  slots: ConnectionSlotStore;
  /** This node's id (the slot holder). */
  holder: string;
  /** How long a slot outlives its holder's last renewal; renewed every third of it. */
  leaseMs: number;
  /**
   * A node whose last heartbeat is this recent is live (default: every recorded node): a
   * node's fair share of a key is limit ÷ live nodes.
   */
  liveWindowMs?: number;
  clock?: () => number;
  logger?: { warn(obj: object, msg: string): void };
}

/**
 * How long a node refused a slot below its fair share keeps the nodes above theirs from taking
 * freed ones (ConnectionSlotStore.acquireSlot): a few of the pool's retry intervals (250 ms).
 */
const SLOT_DEMAND_MS = 1000;

export function createClusterPermits(options: ClusterPermitsOptions): ConnectionPermits {
  const { slots, holder, leaseMs, logger } = options;
  const clock = options.clock ?? Date.now;
  const held = new Set<HeldPermit>();
  let stopped = false;

  const release = (permit: HeldPermit): void => {
    if (!held.delete(permit)) return;
    if (permit.lost) return;
    // Fire and forget: if this fails the slot comes back when its lease runs out.
    slots
      .releaseSlots(holder, [{ key: permit.key, slot: permit.slot }])
      .catch((err: unknown) => logger?.warn({ err, key: permit.key }, 'could not release a connection slot'));
  };

  let renewing = false;
  const renew = async (): Promise<void> => {
    if (renewing || held.size === 0) return;
    renewing = true;
    try {
      const mine = [...held].filter((p) => !p.lost);
      const kept = await slots.renewSlots({
        holder,
        slots: mine.map((p) => ({ key: p.key, slot: p.slot })),
        until: clock() + leaseMs,
      });
      const still = new Set(kept.map((s) => `${s.slot}|${s.key}`));
      for (const p of mine) {
        // Released while the renewal ran: not lost, just gone.
        if (held.has(p) && !still.has(`${p.slot}|${p.key}`)) {
          p.lost = true;
          logger?.warn(
            { key: p.key, slot: p.slot },
            'a connection slot expired and was taken by another node',
          );
        }
      }
    } catch (err) {
      logger?.warn({ err }, 'could not renew connection slots');
    } finally {
      renewing = false;
    }
  };
  const timer = setInterval(() => void renew(), Math.max(1, Math.floor(leaseMs / 3)));
  timer.unref();

  return {
    async tryAcquire(key, limit) {
      if (stopped) return undefined;
      const now = clock();
      const slot = await slots.acquireSlot({
        key,
        limit,
        liveSince: options.liveWindowMs === undefined ? 0 : now - options.liveWindowMs,
        demandMs: SLOT_DEMAND_MS,
        holder,
        now,
        until: now + leaseMs,
      });
      if (slot === undefined) return undefined;
      const permit: HeldPermit = {
        key,
        slot,
        lost: false,
        release: () => release(permit),
      };
      held.add(permit);
      if (stopped) {
        // stop() ran while the slot was being taken: give it straight back.
        release(permit);
        return undefined;
      }
      return permit;
    },

    async stop() {
      stopped = true;
      clearInterval(timer);
      held.clear();
      await slots.releaseSlots(holder, null);
    },
  };
}
