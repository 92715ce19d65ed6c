/**
 * What every relay benchmark report shares: number formatting, plain-text tables, the machine
 * and code the figures were measured on, and the CPU other processes took during a phase.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, machineBusySeconds } from './processes.ts';

export const int = (v: number): string => Math.round(v).toLocaleString('en-US');
export const rate = (v: number | undefined): string =>
  v === undefined || !Number.isFinite(v) ? '-' : int(v);
export const dur = (ms: number | undefined): string =>
  ms === undefined ? '-' : ms < 10_000 ? `${int(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
export const mb = (kb: number | undefined): string =>
  kb === undefined ? '-' : `${(kb / 1024).toFixed(0)} MB`;
export const pct = (part: number, whole: number, digits = 1): string =>
  whole === 0 ? '-' : `${((100 * part) / whole).toFixed(digits)}%`;
export const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};
export const percentile = (sorted: number[], p: number): number | undefined =>
  sorted.length === 0
    ? undefined
    : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
export const verdict = (ok: boolean | undefined): string =>
  ok === undefined ? 'not measured' : ok ? 'PASS' : 'FAIL';

export function table(headers: string[], rows: string[][], rightAligned: Set<number>): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]): string =>
    cells
      .map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [fmt(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)];
}

export interface CpuReading {
  wallS: number;
  /** CPU of the bench process and its (reaped and live) children. */
  oursS: number;
  /** CPU of `alsoMeasured` (e.g. the PostgreSQL server), seconds. */
  measuredS: number;
  /** Cores used on average by every other process on the machine. */
  othersCores: number;
}

/**
 * CPU used on the machine during a phase by us (bench + children), by processes we do not
 * own but account for (`alsoMeasured`: cumulative CPU seconds of, say, the database server),
 * and by everything else.
 */
export function cpuMeter(alsoMeasured?: () => number): () => CpuReading {
  const t0 = Date.now();
  const m0 = machineBusySeconds();
  const s0 = cpuSeconds('self', true);
  const a0 = alsoMeasured?.() ?? 0;
  return () => {
    const wallS = (Date.now() - t0) / 1000;
    const oursS = cpuSeconds('self', true) - s0;
    const measuredS = (alsoMeasured?.() ?? 0) - a0;
    const othersS = Math.max(0, machineBusySeconds() - m0 - oursS - measuredS);
    return { wallS, oursS, measuredS, othersCores: othersS / Math.max(wallS, 0.001) };
  };
}

/** The note a phase gets when the machine was busy with other work (shared dev machines). */
export function backgroundNote(reading: CpuReading): string | undefined {
  return reading.othersCores >= 0.15
    ? `other processes on the machine used ${reading.othersCores.toFixed(2)} cores on average during this phase: figures are pessimistic`
    : undefined;
}

/** The commit measured, and whether the work tree differed from it (others edit src/ too). */
export function codeVersion(): string {
  const git = (args: string[]): string =>
    execFileSync('git', args, {
      cwd: join(import.meta.dirname, '..', '..'),
      encoding: 'utf8',
      timeout: 10_000,
    });
  try {
    const head = git(['rev-parse', '--short', 'HEAD']).trim();
    const changed = git(['status', '--porcelain', '--', 'src'])
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3));
    return changed.length === 0
      ? `${head} (src/ clean)`
      : `${head} + uncommitted changes in src/: ${changed.join(', ')}`;
  } catch {
    return 'unknown (not a git work tree)';
  }
}

/** The header lines every report starts with; `software` and the lines after `load` vary. */
export function machineLines(software: string): string[] {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model;
  return [
    `date      ${new Date().toISOString()}`,
    `machine   ${cpu}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GB RAM, Linux ${os.release()}`,
    `software  ${software}`,
    `code      ${codeVersion()}`,
    `load      ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (1/5/15 min load average at start)`,
  ];
}
