/**
 * Choosing the egress source of a pool for one transaction.
 *
 *   chooseSource(members, caps, random)
 *     → { source: 'ip-2', room: 40 }      deliver from ip-2; at most 40 recipients fit under its caps
 *     → { until: 1764547200000 }          every way out is capped: defer the mail to then
 *
 * A weighted draw among the members with weight > 0 (ip-1 with weight 3 and ip-2 with 1 send
 * 3:1). When the drawn source is capped by its warm-up:
 * - overflow `spill`: a second weighted draw among the members that are not capped; when every
 *   one is, wait until the first of them may send again;
 * - overflow `wait`: its share waits until it may send again (the others keep their share and
 *   take none of its excess).
 * `random` returns [0, 1) like Math.random and is called once per draw.
 */

import type { Overflow } from './warmup.ts';

export interface Member {
  readonly source: string;
  readonly weight: number;
}

/** What the choice needs to know of the warm-up counters. */
export interface CapsView {
  /** How many recipients may leave the source now (Infinity: no cap). */
  room(source: string): number;
  /** When a capped source may send again. */
  availableAt(source: string): number;
  /** The source's overflow policy; undefined when it has no warm-up. */
  overflow(source: string): Overflow | undefined;
}

export type SourceChoice = { readonly source: string; readonly room: number } | { readonly until: number };

/** Index drawn with probability weight / total; -1 when no weight is positive. */
export function weightedIndex(weights: readonly number[], random: () => number): number {
  let total = 0;
  for (const w of weights) if (w > 0) total += w;
  if (total <= 0) return -1;
  const r = Math.min(Math.max(random(), 0), 1 - Number.EPSILON) * total;
  let sum = 0;
  let last = -1;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]!;
    if (w <= 0) continue;
    sum += w;
    last = i;
    if (r < sum) return i;
  }
  return last; // float rounding at the very top of the range
}

export function chooseSource(members: readonly Member[], caps: CapsView, random: () => number): SourceChoice {
  const live = members.filter((m) => m.weight > 0);
  const drawn =
    live[
      weightedIndex(
        live.map((m) => m.weight),
        random,
      )
    ];
  if (drawn === undefined) throw new RangeError('a pool needs a source with weight > 0');
  const room = caps.room(drawn.source);
  if (room > 0) return { source: drawn.source, room };
  if (caps.overflow(drawn.source) === 'wait') return { until: caps.availableAt(drawn.source) };
  const open = live.map((m) => ({ member: m, room: caps.room(m.source) })).filter((x) => x.room > 0);
  const spill =
    open[
      weightedIndex(
        open.map((x) => x.member.weight),
        random,
      )
    ];
  if (spill) return { source: spill.member.source, room: spill.room };
  let until = Number.POSITIVE_INFINITY;
  for (const m of live) until = Math.min(until, caps.availableAt(m.source));
  return { until };
}
