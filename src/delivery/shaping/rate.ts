/**
 * Rates as operators write them: `10/s`, `600/min`, `5000/h` (also `/sec`, `/second`, `/m`,
 * `/minute`, `/hr`, `/hour`). A rate is a count per window; the windows are a second, a minute
 * and an hour, the ones mailbox providers speak in. Used for message rates, adaptive throttles
 * and adaptive-rule thresholds ("3 matches per hour").
 *
 *   parseRate('600/min')        → { rate: { count: 600, perMs: 60_000 } }
 *   parseRate('fast')           → { problem: 'must be a rate like 10/s, 600/min or 5000/h, got "fast"' }
 *   formatRate({ count: 5, perMs: 3_600_000 }) → '5/h'
 */

export interface Rate {
  /** Events allowed per window; a whole number ≥ 1. */
  readonly count: number;
  /** The window: 1000 (second), 60 000 (minute) or 3 600 000 (hour). */
  readonly perMs: number;
}

export const SECOND = 1000;
export const MINUTE = 60_000;
export const HOUR = 3_600_000;

/** Larger counts are surely a typo (a billion per window) and would only disable the limit. */
export const MAX_RATE_COUNT = 1_000_000_000;

const units: Record<string, number> = {
  s: SECOND,
  sec: SECOND,
  second: SECOND,
  m: MINUTE,
  min: MINUTE,
  minute: MINUTE,
  h: HOUR,
  hr: HOUR,
  hour: HOUR,
};

const unitNames = new Map<number, string>([
  [SECOND, 's'],
  [MINUTE, 'min'],
  [HOUR, 'h'],
]);

/** Parses `N/unit`; returns the rate or a problem sentence (without the key's path). */
export function parseRate(value: unknown): { rate: Rate } | { problem: string } {
  const shape = 'must be a rate like 10/s, 600/min or 5000/h';
  if (typeof value !== 'string') return { problem: `${shape}, got ${JSON.stringify(value) ?? 'nothing'}` };
  const match = /^\s*(\d+)\s*\/\s*([a-z]+)\s*$/i.exec(value);
  const perMs = match ? units[match[2]!.toLowerCase()] : undefined;
  if (!match || perMs === undefined) return { problem: `${shape}, got "${value}"` };
  const count = Number(match[1]);
  if (count < 1) return { problem: `must allow at least 1 per window, got "${value}"` };
  if (count > MAX_RATE_COUNT)
    return { problem: `must be at most ${MAX_RATE_COUNT} per window, got "${value}"` };
  return { rate: { count, perMs } };
}

/** `10/s`, `600/min`, `5000/h`; other windows as `N/<ms>ms` (never produced by parseRate). */
export function formatRate(rate: Rate): string {
  const unit = unitNames.get(rate.perMs);
  return unit ? `${rate.count}/${unit}` : `${rate.count}/${rate.perMs}ms`;
}

/** Events per millisecond, for comparing rates of different windows. */
export function perMs(rate: Rate): number {
  return rate.count / rate.perMs;
}
