import type { Audit } from '../audit/audit.ts';
import { systemActor } from '../audit/audit.ts';
import type { Logger } from '../observability/logger.ts';
import type { Store } from '../store/store.ts';
import type { GuardCount, GuardState } from '../store/types.ts';

/**
 * The reputation guard. Per account and stream it compares the bounce rate (bounced / sent)
 * and the complaint rate (complained / sent) over a rolling window with two thresholds each,
 * like SES: over `warn` an `account_warned` event (once per window), over `pause` the stream is
 * paused: intake keeps accepting its mail but stores it `held` (never leased) until an operator
 * resumes it, which releases what was held. "Sent" is delivered + bounced events in the window:
 * what reached a verdict. A stream with fewer sends than `minVolume` is not judged (ten messages
 * with one bounce are not a 10 % problem).
 *
 * After a resume only traffic after it counts, so the same window does not pause it again at
 * the next run; a stream that keeps bouncing is paused again once it has `minVolume` new sends.
 */

export interface GuardThresholds {
  windowMs: number;
  minVolume: number;
  /** Fractions (0.05 = 5 %). */
  bounceWarn: number;
  bouncePause: number;
  complaintWarn: number;
  complaintPause: number;
}

/** `5%` → 0.05 (config values are checked by the schema). */
export function parsePercent(text: string): number {
  return Number.parseFloat(text.trim().replace(/%$/, '')) / 100;
}

export function thresholdsFromConfig(guard: {
  window: number;
  min_volume: number;
  bounce_warn: string;
  bounce_pause: string;
  complaint_warn: string;
  complaint_pause: string;
}): GuardThresholds {
  return {
    windowMs: guard.window,
    minVolume: guard.min_volume,
    bounceWarn: parsePercent(guard.bounce_warn),
    bouncePause: parsePercent(guard.bounce_pause),
    complaintWarn: parsePercent(guard.complaint_warn),
    complaintPause: parsePercent(guard.complaint_pause),
  };
}

export type GuardLevel = 'ok' | 'warn' | 'pause';

export interface Verdict {
  level: GuardLevel;
  bounceRate: number;
  complaintRate: number;
  /** For humans: "bounce rate 12.0 % (30 of 250 sends in 24h)". */
  reason: string;
}

const pct = (rate: number): string => `${(rate * 100).toFixed(rate < 0.01 ? 2 : 1)} %`;

/** Judges one stream's counts against the thresholds. */
export function judge(count: GuardCount, t: GuardThresholds): Verdict {
  const bounceRate = count.sent > 0 ? count.bounced / count.sent : 0;
  const complaintRate = count.sent > 0 ? count.complained / count.sent : 0;
  if (count.sent < t.minVolume) return { level: 'ok', bounceRate, complaintRate, reason: '' };
  const bounce = `bounce rate ${pct(bounceRate)} (${count.bounced} of ${count.sent} sends)`;
  const complaint = `complaint rate ${pct(complaintRate)} (${count.complained} of ${count.sent} sends)`;
  if (bounceRate >= t.bouncePause) return { level: 'pause', bounceRate, complaintRate, reason: bounce };
  if (complaintRate >= t.complaintPause)
    return { level: 'pause', bounceRate, complaintRate, reason: complaint };
  if (bounceRate >= t.bounceWarn) return { level: 'warn', bounceRate, complaintRate, reason: bounce };
  if (complaintRate >= t.complaintWarn)
    return { level: 'warn', bounceRate, complaintRate, reason: complaint };
  return { level: 'ok', bounceRate, complaintRate, reason: '' };
}

export type GuardStore = Pick<
  Store,
  | 'guardCounts'
  | 'listGuardStates'
  | 'saveGuardState'
  | 'releaseHeld'
  | 'heldSummary'
  | 'appendEvents'
  | 'recordAudit'
  | 'listAudit'
>;

export interface GuardOptions {
  store: GuardStore;
  clock: () => number;
  thresholds: GuardThresholds;
  audit: Audit;
  logger?: Logger;
  /** How long intake trusts its copy of the paused streams (default 1 s). */
  cacheMs?: number;
}

/** What a run did, for the periodic task's log line. */
export interface GuardRunResult {
  warned: string[];
  paused: string[];
  /** Held recipients released because their stream is no longer paused (a resume on another node). */
  released: number;
}

const key = (accountId: string, stream: string): string => `${accountId}/${stream}`;

function blankState(accountId: string, stream: string): GuardState {
  return { accountId, stream, pausedAt: null, pausedBy: '', reason: '', resumedAt: null, warnedAt: null };
}

export function createGuard(options: GuardOptions) {
  const { store, clock, thresholds, audit } = options;
  const cacheMs = options.cacheMs ?? 1000;
  let cache: { at: number; paused: Map<string, GuardState> } | undefined;

  async function states(accountId?: string): Promise<Map<string, GuardState>> {
    return new Map((await store.listGuardStates(accountId)).map((s) => [key(s.accountId, s.stream), s]));
  }

  async function event(
    type: 'account_warned' | 'account_paused' | 'account_resumed',
    s: GuardState,
    data: object,
  ) {
    await store.appendEvents([
      { at: clock(), type, accountId: s.accountId, data: { stream: s.stream, ...data } },
    ]);
  }

  /**
   * Why mail of this account's stream is held now, or undefined when it may be sent: the account
   * or the stream is paused. Read from a copy refreshed every `cacheMs`.
   */
  async function holdReason(accountId: string, stream: string): Promise<string | undefined> {
    const now = clock();
    if (!cache || now - cache.at >= cacheMs || now < cache.at) {
      const all = await store.listGuardStates();
      cache = {
        at: now,
        paused: new Map(all.filter((s) => s.pausedAt !== null).map((s) => [key(s.accountId, s.stream), s])),
      };
    }
    const hit = cache.paused.get(key(accountId, '')) ?? cache.paused.get(key(accountId, stream));
    if (!hit) return undefined;
    return hit.stream === '' ? `account paused: ${hit.reason}` : `stream ${hit.stream} paused: ${hit.reason}`;
  }

  /** Pauses an account (stream '') or one stream of it. False when it was paused already. */
  async function pause(input: {
    accountId: string;
    stream: string;
    actor: string;
    reason: string;
  }): Promise<boolean> {
    const current = (await states(input.accountId)).get(key(input.accountId, input.stream));
    if (current?.pausedAt != null) return false;
    const s: GuardState = {
      ...(current ?? blankState(input.accountId, input.stream)),
      pausedAt: clock(),
      pausedBy: input.actor,
      reason: input.reason,
    };
    await store.saveGuardState(s);
    cache = undefined;
    await event('account_paused', s, { reason: input.reason, by: input.actor });
    await audit.record({
      actor: input.actor,
      accountId: input.accountId,
      action: 'account.pause',
      target: input.stream,
      details: { reason: input.reason },
    });
    options.logger?.warn(
      {
        event: 'account_paused',
        accountId: input.accountId,
        stream: input.stream,
        reason: input.reason,
        by: input.actor,
      },
      'sending paused',
    );
    return true;
  }

  /**
   * Resumes a paused account (stream omitted: the account and every paused stream of it) or one
   * stream, and releases the mail held meanwhile (not while the account itself stays paused).
   * Returns the streams resumed ('' = the account) and how many recipients were released.
   */
  async function resume(input: {
    accountId: string;
    stream?: string;
    actor: string;
  }): Promise<{ resumed: string[]; released: number }> {
    const now = clock();
    const all = await states(input.accountId);
    const targets = [...all.values()].filter(
      (s) => s.pausedAt !== null && (input.stream === undefined || s.stream === input.stream),
    );
    // Released before the pauses end: a node's guard pass releases what no pause holds (run), so
    // once they ended it could take the held mail first and this count would miss it. Mail held
    // between the two (a node's cached pause state) is left to that pass.
    const accountStillPaused =
      input.stream !== undefined && all.get(key(input.accountId, ''))?.pausedAt != null;
    const released = accountStillPaused
      ? 0
      : await store.releaseHeld({
          accountId: input.accountId,
          ...(input.stream === undefined ? {} : { stream: input.stream }),
          reason: 'paused',
          now,
          note: `released: sending resumed by ${input.actor}`,
        });
    for (const s of targets) {
      await store.saveGuardState({ ...s, pausedAt: null, resumedAt: now });
      await event('account_resumed', s, { by: input.actor });
      await audit.record({
        actor: input.actor,
        accountId: input.accountId,
        action: 'account.resume',
        target: s.stream,
        details: { pausedBy: s.pausedBy, reason: s.reason },
      });
      options.logger?.info(
        { event: 'account_resumed', accountId: input.accountId, stream: s.stream, by: input.actor },
        'sending resumed',
      );
    }
    cache = undefined;
    return { resumed: targets.map((s) => s.stream), released };
  }

  /** One pass: judge every stream with traffic in the window, warn and pause; release what no pause holds. */
  async function run(): Promise<GuardRunResult> {
    const now = clock();
    const windowStart = now - thresholds.windowMs;
    const known = await states();
    const counts = new Map(
      (await store.guardCounts({ since: windowStart })).map((c) => [key(c.accountId, c.stream), c]),
    );
    // Streams resumed within the window count only what came after the resume.
    for (const s of known.values()) {
      if (s.resumedAt === null || s.resumedAt <= windowStart || s.stream === '') continue;
      const k = key(s.accountId, s.stream);
      if (!counts.has(k)) continue;
      const [after] = await store.guardCounts({
        since: s.resumedAt,
        accountId: s.accountId,
        stream: s.stream,
      });
      counts.set(
        k,
        after ?? { accountId: s.accountId, stream: s.stream, sent: 0, bounced: 0, complained: 0 },
      );
    }
    const result: GuardRunResult = { warned: [], paused: [], released: 0 };
    for (const [k, count] of counts) {
      const accountWide = known.get(key(count.accountId, ''));
      if (accountWide?.resumedAt != null && accountWide.resumedAt > windowStart) {
        const [after] = await store.guardCounts({
          since: Math.max(accountWide.resumedAt, known.get(k)?.resumedAt ?? 0),
          accountId: count.accountId,
          stream: count.stream,
        });
        if (!after) continue;
        Object.assign(count, after);
      }
      const verdict = judge(count, thresholds);
      if (verdict.level === 'ok') continue;
      const state = known.get(k) ?? blankState(count.accountId, count.stream);
      if (state.pausedAt !== null || accountWide?.pausedAt != null) continue;
      const window = `${Math.round(thresholds.windowMs / 3_600_000)}h`;
      if (verdict.level === 'pause') {
        const reason = `${verdict.reason} in ${window}`;
        if (
          await pause({
            accountId: count.accountId,
            stream: count.stream,
            actor: systemActor('guard'),
            reason,
          })
        ) {
          result.paused.push(k);
        }
      } else if (state.warnedAt === null || state.warnedAt <= windowStart) {
        const warned = { ...state, warnedAt: now };
        await store.saveGuardState(warned);
        await event('account_warned', warned, {
          reason: `${verdict.reason} in ${window}`,
          bounceRate: verdict.bounceRate,
          complaintRate: verdict.complaintRate,
        });
        options.logger?.warn(
          {
            event: 'account_warned',
            accountId: count.accountId,
            stream: count.stream,
            reason: verdict.reason,
          },
          'sending over a warning threshold',
        );
        result.warned.push(k);
      }
    }
    // Mail held for a pause that has ended (a resume raced with a node's cached pause state).
    const paused = new Set(
      [...(await states()).values()]
        .filter((s) => s.pausedAt !== null)
        .map((s) => key(s.accountId, s.stream)),
    );
    for (const h of await store.heldSummary()) {
      if (h.reason !== 'paused') continue;
      if (paused.has(key(h.accountId, '')) || paused.has(key(h.accountId, h.stream))) continue;
      result.released += await store.releaseHeld({
        accountId: h.accountId,
        stream: h.stream,
        reason: 'paused',
        now,
        note: 'released: sending is no longer paused',
      });
    }
    return result;
  }

  return { holdReason, pause, resume, run, states: (accountId?: string) => store.listGuardStates(accountId) };
}

export type Guard = ReturnType<typeof createGuard>;
