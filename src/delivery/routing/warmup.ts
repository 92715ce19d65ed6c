/**
 * Warm-up schedules of egress sources: the written form, its validation, and the caps in force
 * at a moment. A new IP address earns its reputation by sending little at first and more each
 * day; receivers that see a sudden flood from an unknown address defer or junk it.
 *
 *   warmup:
 *     start: 2026-12-01        # day 1 (UTC)
 *     daily: [50, 100, 200, 500, 1000, 2000, 5000]   # cap of day 1, day 2, …
 *     hourly: [10, 20, 40]     # optional, cap per hour on day 1, day 2, …; shorter = no hourly cap after
 *     overflow: spill          # spill: over the cap, mail leaves from other sources of the pool
 *                              # wait:  over the cap, this source's share waits for the cap to reset
 *
 * Days and hours are UTC calendar days and hours: on 2026-12-01 the cap is daily[0] from 00:00
 * to 24:00 UTC. Before the start date the day-1 caps apply (the address is new either way).
 * After the last `daily` entry the warm-up is over and the source has no cap. Caps count
 * messages (recipients) sent from the source by MX; see warmup-counters.ts.
 */

export const DAY_MS = 86_400_000;
export const HOUR_MS = 3_600_000;
/** Longest schedule: a year of days. Longer lists are a generated typo, not a warm-up. */
export const MAX_WARMUP_DAYS = 366;
/** Highest cap: beyond it a cap is no cap. */
export const MAX_CAP = 1_000_000_000;

export type Overflow = 'spill' | 'wait';

export interface WarmupSchedule {
  /** As written, `YYYY-MM-DD`. */
  readonly start: string;
  /** The start date as a UTC day number (days since 1970-01-01). */
  readonly startDay: number;
  /** Cap per UTC day, day 1 first; at least one entry. */
  readonly daily: readonly number[];
  /** Cap per UTC hour, day 1 first; may be shorter than `daily` (or empty). */
  readonly hourly: readonly number[];
  readonly overflow: Overflow;
}

/** The caps in force at a moment; `undefined` = no cap of that kind. */
export interface Caps {
  /** 1 on the start date (and before it); past the schedule, `daily.length + 1` and more. */
  readonly day: number;
  readonly daily?: number;
  readonly hourly?: number;
}

export const utcDay = (ms: number): number => Math.floor(ms / DAY_MS);
export const utcHour = (ms: number): number => Math.floor(ms / HOUR_MS);

/** The warm-up day number of a UTC day (1 = the start date; days before it count as 1). */
export function warmupDay(schedule: WarmupSchedule, day: number): number {
  return Math.max(1, day - schedule.startDay + 1);
}

export function capsAt(schedule: WarmupSchedule, now: number): Caps {
  const day = warmupDay(schedule, utcDay(now));
  const daily = schedule.daily[day - 1];
  const hourly = schedule.hourly[day - 1];
  return {
    day,
    ...(daily !== undefined ? { daily } : {}),
    ...(hourly !== undefined ? { hourly } : {}),
  };
}

/** True once the schedule is over: no cap from this moment on. */
export function warmupFinished(schedule: WarmupSchedule, now: number): boolean {
  return warmupDay(schedule, utcDay(now)) > schedule.daily.length;
}

/**
 * The first UTC day at or after `day` whose caps are not 0 (a schedule may rest on some days).
 * Past the schedule every day qualifies.
 */
export function firstSendingDay(schedule: WarmupSchedule, day: number): number {
  let d = day;
  for (;;) {
    const n = warmupDay(schedule, d);
    if (n > schedule.daily.length || (schedule.daily[n - 1] !== 0 && schedule.hourly[n - 1] !== 0)) return d;
    d++;
  }
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Parses `warmup` of a source; problems start with `path` (e.g. `[2].warmup`). */
export function parseWarmup(raw: unknown, path: string, problems: string[]): WarmupSchedule | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push(`${path}: must be a mapping { start, daily, hourly?, overflow }`);
    return undefined;
  }
  const entry = raw as Record<string, unknown>;
  const before = problems.length;
  for (const key of Object.keys(entry)) {
    if (!['start', 'daily', 'hourly', 'overflow'].includes(key)) {
      problems.push(`${path}.${key}: unknown key (known: start, daily, hourly, overflow)`);
    }
  }
  const start = parseDate(entry.start, `${path}.start`, problems);
  const daily = parseCaps(entry.daily, `${path}.daily`, problems, true);
  const hourly = entry.hourly === undefined ? [] : parseCaps(entry.hourly, `${path}.hourly`, problems, false);
  let overflow: Overflow | undefined;
  if (entry.overflow === 'spill' || entry.overflow === 'wait') overflow = entry.overflow;
  else if (entry.overflow === undefined) {
    problems.push(`${path}.overflow: required: spill (other sources take the excess) or wait`);
  } else problems.push(`${path}.overflow: must be spill or wait, got ${JSON.stringify(entry.overflow)}`);
  if (daily && hourly) {
    if (hourly.length > daily.length) {
      problems.push(
        `${path}.hourly: ${hourly.length} days, longer than daily (${daily.length}); the warm-up ends after the last daily cap`,
      );
    }
    hourly.forEach((cap, i) => {
      const dayCap = daily[i];
      if (dayCap !== undefined && cap > dayCap) {
        problems.push(
          `${path}.hourly[${i}]: ${cap} per hour is more than day ${i + 1}'s daily cap (${dayCap}); it could never apply`,
        );
      }
    });
  }
  if (problems.length > before || !start || !daily || !hourly || !overflow) return undefined;
  return { start: start.text, startDay: start.day, daily, hourly, overflow };
}

function parseDate(
  raw: unknown,
  path: string,
  problems: string[],
): { text: string; day: number } | undefined {
  // A YAML 1.1 timestamp arrives as a Date; YAML 1.2 (the default) keeps the text.
  const text = raw instanceof Date && !Number.isNaN(raw.getTime()) ? raw.toISOString().slice(0, 10) : raw;
  const match = typeof text === 'string' ? DATE.exec(text.trim()) : null;
  if (typeof text !== 'string' || !match) {
    problems.push(`${path}: must be a date YYYY-MM-DD (UTC), got ${JSON.stringify(raw) ?? String(raw)}`);
    return undefined;
  }
  const [, y, m, d] = match.map(Number) as [number, number, number, number];
  const ms = Date.UTC(y, m - 1, d);
  const back = new Date(ms);
  if (y < 2000 || y > 2999 || back.getUTCMonth() !== m - 1 || back.getUTCDate() !== d) {
    problems.push(`${path}: ${text.trim()} is not a calendar date between 2000 and 2999`);
    return undefined;
  }
  return { text: text.trim(), day: utcDay(ms) };
}

function parseCaps(raw: unknown, path: string, problems: string[], required: boolean): number[] | undefined {
  if (!Array.isArray(raw) || (required && raw.length === 0)) {
    const what = required ? 'a non-empty list' : 'a list';
    problems.push(`${path}: must be ${what} of caps per day, day 1 first, e.g. [50, 100, 200]`);
    return undefined;
  }
  if (raw.length > MAX_WARMUP_DAYS) {
    problems.push(`${path}: at most ${MAX_WARMUP_DAYS} days, got ${raw.length}`);
    return undefined;
  }
  const caps: number[] = [];
  raw.forEach((item, i) => {
    if (typeof item !== 'number' || !Number.isInteger(item) || item < 0 || item > MAX_CAP) {
      problems.push(
        `${path}[${i}]: must be a whole number from 0 to ${MAX_CAP}, got ${JSON.stringify(item) ?? String(item)}`,
      );
    } else caps.push(item);
  });
  return caps.length === raw.length ? caps : undefined;
}
