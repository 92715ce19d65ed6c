import type { GuardCount, GuardState } from './types.ts';

/** Row mapping shared by both adapters' guard queries (sqlite/guard-store.ts, postgres/guard-store.ts). */

/** Rows (account_id, stream, type, n) → one GuardCount per account and stream. */
export function foldCounts(rows: Record<string, unknown>[]): GuardCount[] {
  const out = new Map<string, GuardCount>();
  for (const r of rows) {
    const accountId = String(r.account_id);
    const stream = String(r.stream);
    const key = `${accountId}\u0000${stream}`;
    let c = out.get(key);
    if (!c) {
      c = { accountId, stream, sent: 0, bounced: 0, complained: 0 };
      out.set(key, c);
    }
    const n = Number(r.n);
    if (r.type === 'delivered') c.sent += n;
    else if (r.type === 'bounced') {
      c.sent += n;
      c.bounced += n;
    } else if (r.type === 'complained') c.complained += n;
  }
  return [...out.values()];
}

export function toGuardState(r: Record<string, unknown>): GuardState {
  const n = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
  return {
    accountId: String(r.account_id),
    stream: String(r.stream),
    pausedAt: n(r.paused_at),
    pausedBy: String(r.paused_by ?? ''),
    reason: String(r.reason ?? ''),
    resumedAt: n(r.resumed_at),
    warnedAt: n(r.warned_at),
  };
}
