import type { Pool } from 'pg';
import type { ConnectionSlotStore, SlotRef, SlotRequest } from '../store.ts';
import { num, type Row } from './rows.ts';

/**
 * Cluster-wide connection slots on PostgreSQL: a key (one destination host) has `limit` rows,
 * and a node leases one row before it opens a connection there, like recipients are leased:
 * `FOR UPDATE SKIP LOCKED` so concurrent takers never wait on each other, an expiry so a dead
 * node's slots come back, renewal while the connection lives. Rows are created on first use.
 */
export class PostgresConnectionSlots implements ConnectionSlotStore {
  readonly #pool: Pool;
  /** Keys whose rows exist, with the limit they were created for. */
  readonly #created = new Map<string, number>();

  constructor(pool: Pool) {
    this.#pool = pool;
  }

  async acquireSlot(input: SlotRequest): Promise<number | undefined> {
    const { key, limit } = input;
    if ((this.#created.get(key) ?? 0) < limit) {
      await this.#pool.query(
        `INSERT INTO connection_slots (key, slot) SELECT $1, s FROM generate_series(0, $2::int - 1) AS s
         ON CONFLICT DO NOTHING`,
        [key, limit],
      );
      this.#created.set(key, limit);
    }
    // A slot held by a concurrent taker is skipped, not waited for; one it took and committed
    // meanwhile fails the recheck of the free condition on the newest row version. Fair shares
    // (limit ÷ the nodes with a recent heartbeat, counted here so that a node that just started
    // counts at once): a holder with its share or more takes none while another was refused one
    // lately (the demand kept on slot 0), and a holder refused below its share records its
    // demand there, in the same statement. Without this the split drifted (16 against 3 of 20):
    // a node re-took each slot it freed at once while the other's retry waited its timer, and the
    // mail the starved node had leased waited seconds for a connection.
    const { rows } = await this.#pool.query<Row>(
      `WITH share AS (
         SELECT ceil($2::numeric / greatest(1, count(*))) AS n FROM nodes WHERE heartbeat_at >= $6
       ), mine AS (
         SELECT count(*) AS n FROM connection_slots
         WHERE key = $1 AND slot < $2 AND holder = $3 AND expires_at > $4
       ), taken AS (
         UPDATE connection_slots SET holder = $3, expires_at = $5
         WHERE (key, slot) = (
           SELECT key, slot FROM connection_slots
           WHERE key = $1 AND slot < $2 AND (holder = '' OR expires_at <= $4)
           ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED)
         AND ((SELECT n FROM mine) < (SELECT n FROM share) OR NOT EXISTS (
           SELECT 1 FROM connection_slots
           WHERE key = $1 AND slot = 0 AND wanted_by NOT IN ('', $3) AND wanted_at > $4 - $7))
         RETURNING slot
       ), wanted AS (
         UPDATE connection_slots SET wanted_by = $3, wanted_at = $4
         WHERE key = $1 AND slot = 0 AND NOT EXISTS (SELECT 1 FROM taken)
           AND (SELECT n FROM mine) < (SELECT n FROM share)
       )
       SELECT slot FROM taken`,
      [key, limit, input.holder, input.now, input.until, input.liveSince, input.demandMs],
    );
    return rows[0] ? num(rows[0].slot) : undefined;
  }

  async renewSlots(input: { holder: string; slots: SlotRef[]; until: number }): Promise<SlotRef[]> {
    if (input.slots.length === 0) return [];
    // Only rows still ours: a slot that expired and was taken by another node stays theirs.
    const { rows } = await this.#pool.query<Row>(
      `UPDATE connection_slots c SET expires_at = $2
       FROM unnest($3::text[], $4::int[]) AS s(key, slot)
       WHERE c.key = s.key AND c.slot = s.slot AND c.holder = $1
       RETURNING c.key, c.slot`,
      [input.holder, input.until, input.slots.map((s) => s.key), input.slots.map((s) => s.slot)],
    );
    return rows.map((r) => ({ key: String(r.key), slot: num(r.slot) }));
  }

  async releaseSlots(holder: string, slots: SlotRef[] | null): Promise<number> {
    if (slots === null) {
      return (
        (
          await this.#pool.query(
            `UPDATE connection_slots SET holder = '', expires_at = 0 WHERE holder = $1`,
            [holder],
          )
        ).rowCount ?? 0
      );
    }
    if (slots.length === 0) return 0;
    const result = await this.#pool.query(
      `UPDATE connection_slots c SET holder = '', expires_at = 0
       FROM unnest($2::text[], $3::int[]) AS s(key, slot)
       WHERE c.key = s.key AND c.slot = s.slot AND c.holder = $1`,
      [holder, slots.map((s) => s.key), slots.map((s) => s.slot)],
    );
    return result.rowCount ?? 0;
  }
}
