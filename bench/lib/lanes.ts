/**
 * Per lane (the recipient's `kind`: transactional or broadcast), what the store recorded: when
 * each recipient was accepted and delivered. Read after the run, from SQLite (read-only) or a
 * PostgreSQL schema, the same way as the relay benchmark's figures (postbote-node.ts).
 */
import { DatabaseSync } from 'node:sqlite';
import { type Client, escapeIdentifier } from 'pg';

export type Lane = 'transactional' | 'broadcast';

export interface LaneFigures {
  accepted: number;
  delivered: number;
  /** accept → delivered per recipient, ms, ascending. */
  latenciesMs: number[];
  /** `delivered` event times, ascending. */
  deliveredAt: number[];
  /** `deferred` events (a slow sink should cause none). */
  deferred: number;
}

interface Row {
  type: string;
  at: number;
  recipientId: number;
  kind: string;
}

function lanesFrom(rows: Iterable<Row>): Record<Lane, LaneFigures> {
  const acceptedAt = new Map<number, number>();
  const delivered: Row[] = [];
  const lanes: Record<Lane, LaneFigures> = {
    transactional: { accepted: 0, delivered: 0, latenciesMs: [], deliveredAt: [], deferred: 0 },
    broadcast: { accepted: 0, delivered: 0, latenciesMs: [], deliveredAt: [], deferred: 0 },
  };
  const laneOf = (kind: string): LaneFigures | undefined =>
    kind === 'transactional' || kind === 'broadcast' ? lanes[kind] : undefined;
  for (const row of rows) {
    const lane = laneOf(row.kind);
    if (!lane) continue;
    if (row.type === 'accepted') {
      acceptedAt.set(row.recipientId, row.at);
      lane.accepted++;
    } else if (row.type === 'delivered') delivered.push(row);
    else if (row.type === 'deferred') lane.deferred++;
  }
  for (const row of delivered) {
    const lane = laneOf(row.kind);
    const accepted = acceptedAt.get(row.recipientId);
    if (!lane || accepted === undefined) continue;
    lane.delivered++;
    lane.latenciesMs.push(row.at - accepted);
    lane.deliveredAt.push(row.at);
  }
  for (const lane of Object.values(lanes)) {
    lane.latenciesMs.sort((a, b) => a - b);
    lane.deliveredAt.sort((a, b) => a - b);
  }
  return lanes;
}

const EVENTS_SQL = (events: string, recipients: string): string =>
  `SELECT e.type AS type, e.at AS at, e.recipient_id AS recipient_id, r.kind AS kind
   FROM ${events} e JOIN ${recipients} r ON r.id = e.recipient_id
   WHERE e.type IN ('accepted', 'delivered', 'deferred')`;

/** From Postbote's SQLite store (WAL allows reading while it runs; read it after the run). */
export function readLanes(dbPath: string): Record<Lane, LaneFigures> {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    const rows = db.prepare(EVENTS_SQL('events', 'recipients')).all();
    return lanesFrom(
      rows.map((r) => ({
        type: String(r.type),
        at: Number(r.at),
        recipientId: Number(r.recipient_id),
        kind: String(r.kind),
      })),
    );
  } finally {
    db.close();
  }
}

/** From a PostgreSQL schema. */
export async function readLanesPg(client: Client, schema: string): Promise<Record<Lane, LaneFigures>> {
  const s = escapeIdentifier(schema);
  const result = await client.query<{ type: string; at: string; recipient_id: string; kind: string }>(
    EVENTS_SQL(`${s}.events`, `${s}.recipients`),
  );
  return lanesFrom(
    result.rows.map((r) => ({
      type: r.type,
      at: Number(r.at),
      recipientId: Number(r.recipient_id),
      kind: r.kind,
    })),
  );
}

/** Deliveries per second between `from` and `to` (ms epoch), from sorted delivery times. */
export function ratePerS(sortedTimes: readonly number[], from: number, to: number): number | undefined {
  if (to <= from) return undefined;
  let n = 0;
  for (const t of sortedTimes) if (t >= from && t <= to) n++;
  return (n * 1000) / (to - from);
}
