/**
 * Durations and sizes as operators write them in YAML or environment variables:
 * `300` (seconds), `90s`, `5m`, `4h`, `5d`, `250ms`; sizes `26214400`, `25MB`, `512KB`.
 */

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const sizeUnits: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** Parses a duration into milliseconds; a bare number means seconds. Returns undefined when invalid. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  if (typeof value !== 'string') return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(value);
  if (!match) return undefined;
  const unit = (match[2] ?? 's').toLowerCase();
  return Math.round(Number(match[1]) * (durationUnits[unit] ?? 1000));
}

/** A duration in the largest unit that writes it exactly: `7d`, `90m`, `1500ms`. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of Object.entries(durationUnits).reverse()) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Parses a byte size; a bare number means bytes. Returns undefined when invalid. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(value);
  if (!match) return undefined;
  const unit = (match[2] ?? 'b').toLowerCase();
  return Math.round(Number(match[1]) * (sizeUnits[unit] ?? 1));
}
