import type { ConnectionSlotStore, SlotRef, SlotRequest } from '../../src/store/store.ts';

/** ConnectionSlotStore in memory, with the PostgreSQL adapter's semantics (for pool tests). */
export class MemorySlots implements ConnectionSlotStore {
  readonly rows = new Map<string, { holder: string; expiresAt: number }>();
  /** By key: the last holder refused below its share, and when. */
  readonly wanted = new Map<string, { holder: string; at: number }>();
  /** Live nodes (the adapter counts recent heartbeats): each one's share is limit ÷ this. */
  liveNodes = 1;

  async acquireSlot(input: SlotRequest) {
    let mine = 0;
    for (let slot = 0; slot < input.limit; slot++) {
      const row = this.rows.get(`${input.key}#${slot}`);
      if (row?.holder === input.holder && row.expiresAt > input.now) mine++;
    }
    const demand = this.wanted.get(input.key);
    const share = Math.ceil(input.limit / Math.max(1, this.liveNodes));
    const yields =
      mine >= share &&
      demand !== undefined &&
      demand.holder !== input.holder &&
      demand.at > input.now - input.demandMs;
    for (let slot = 0; slot < input.limit && !yields; slot++) {
      const id = `${input.key}#${slot}`;
      const row = this.rows.get(id);
      if (!row || row.holder === '' || row.expiresAt <= input.now) {
        this.rows.set(id, { holder: input.holder, expiresAt: input.until });
        return slot;
      }
    }
    if (mine < share) this.wanted.set(input.key, { holder: input.holder, at: input.now });
    return undefined;
  }

  async renewSlots(input: { holder: string; slots: SlotRef[]; until: number }) {
    return input.slots.filter((s) => {
      const row = this.rows.get(`${s.key}#${s.slot}`);
      if (row?.holder !== input.holder) return false;
      row.expiresAt = input.until;
      return true;
    });
  }

  async releaseSlots(holder: string, slots: SlotRef[] | null) {
    let n = 0;
    for (const [id, row] of this.rows) {
      if (row.holder !== holder) continue;
      if (slots && !slots.some((s) => id === `${s.key}#${s.slot}`)) continue;
      row.holder = '';
      row.expiresAt = 0;
      n++;
    }
    return n;
  }

  /** Slots currently held by `holder` (any expiry). */
  heldBy(holder: string): number {
    return [...this.rows.values()].filter((r) => r.holder === holder).length;
  }
}
