/**
 * Where the time went in a V8 CPU profile (`node --cpu-prof`): top functions by self time
 * (with their inclusive time), and self time summed by area (a file under src/, an npm
 * package, Node internals, GC, idle).
 *
 *   node bench/cpuprofile-summary.ts FILE.cpuprofile [--top 30]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const root = fileURLToPath(new URL('..', import.meta.url));

function shortUrl(url: string): string {
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) return path.slice(nm + '/node_modules/'.length);
  return path.startsWith(root) ? path.slice(root.length) : path;
}

function area(frame: CallFrame): string {
  const name = frame.functionName;
  if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') return name;
  const url = shortUrl(frame.url);
  if (url === '') return '(native: V8 builtins, node:sqlite, syscalls)';
  if (url.startsWith('node:'))
    return url.split('/')[0] === 'node:internal' ? url.split('/').slice(0, 3).join('/') : url;
  if (url.startsWith('src/') || url.startsWith('bench/') || url.startsWith('test/')) return url;
  if (!frame.url.includes('/node_modules/')) return url;
  const parts = url.split('/');
  return parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] ?? url);
}

function label(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)';
  const url = shortUrl(frame.url);
  return url ? `${name}  ${url}:${frame.lineNumber + 1}` : name;
}

export interface ProfileSummary {
  wallMs: number;
  busyMs: number;
  /** By self time; `callers` = the immediate JS callers of that self time. */
  top: { label: string; selfMs: number; totalMs: number; callers: { label: string; ms: number }[] }[];
  /** Functions of this repository (src/) by inclusive time. */
  project: { label: string; selfMs: number; totalMs: number }[];
  areas: { area: string; selfMs: number }[];
}

export function summariseCpuProfile(file: string, top = 30): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const callers = new Map<string, Map<string, number>>();
  const areas = new Map<string, number>();
  let idle = 0;
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    // DevTools' convention: a sample stands for the interval until the next one.
    const dt = (timeDeltas[i + 1] ?? 0) / 1000;
    const node = byId.get(samples[i] ?? -1);
    if (!node) continue;
    const key = label(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + dt);
    const a = area(node.callFrame);
    areas.set(a, (areas.get(a) ?? 0) + dt);
    if (node.callFrame.functionName === '(idle)') idle += dt;
    const up = byId.get(parent.get(node.id) ?? -1)?.callFrame;
    if (up && up.functionName !== '(root)') {
      const byCaller = callers.get(key) ?? new Map<string, number>();
      byCaller.set(label(up), (byCaller.get(label(up)) ?? 0) + dt);
      callers.set(key, byCaller);
    }
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame;
      if (!frame || frame.functionName === '(root)') continue;
      const k = label(frame);
      if (seen.has(k)) continue; // recursion: count a sample once per function
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + dt);
    }
  }
  const wallMs = (profile.endTime - profile.startTime) / 1000;
  return {
    wallMs,
    busyMs: wallMs - idle,
    top: [...self]
      .filter(([k]) => k !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, ms]) => ({
        label: k,
        selfMs: ms,
        totalMs: total.get(k) ?? ms,
        callers: [...(callers.get(k) ?? [])]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 3)
          .map(([c, cms]) => ({ label: c, ms: cms })),
      })),
    project: [...total]
      .filter(([k]) => k.includes('  src/'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, ms]) => ({ label: k, selfMs: self.get(k) ?? 0, totalMs: ms })),
    areas: [...areas]
      .filter(([k]) => k !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .map(([k, ms]) => ({ area: k, selfMs: ms })),
  };
}

export function formatProfileSummary(
  s: ProfileSummary,
  title: string,
  options: { areaRows?: number; callerRows?: number } = {},
): string {
  const areaRows = options.areaRows ?? 15;
  const callerRows = options.callerRows ?? 12;
  const pct = (ms: number): string => `${((100 * ms) / Math.max(1, s.busyMs)).toFixed(1)}%`.padStart(6);
  const ms = (v: number): string => `${Math.round(v).toLocaleString('en-US')}`.padStart(8);
  const lines = [
    `${title}: ${(s.wallMs / 1000).toFixed(1)} s profiled, ${(s.busyMs / 1000).toFixed(1)} s on CPU (${((100 * s.busyMs) / Math.max(1, s.wallMs)).toFixed(0)}% of one core); percentages are of on-CPU time`,
    '  top functions by self time:',
    `  ${'self ms'.padStart(8)} ${'self'.padStart(6)} ${'incl.'.padStart(6)}  function  location`,
    ...s.top.flatMap((t, i) => [
      `  ${ms(t.selfMs)} ${pct(t.selfMs)} ${pct(t.totalMs)}  ${t.label}`,
      ...(i < callerRows && t.callers.length > 0
        ? [
            `  ${''.padStart(22)}    ← ${t.callers.map((c) => `${c.label} (${((100 * c.ms) / Math.max(1, t.selfMs)).toFixed(0)}%)`).join(', ')}`,
          ]
        : []),
    ]),
    '  functions of src/ by inclusive time:',
    `  ${'incl. ms'.padStart(8)} ${'incl.'.padStart(6)} ${'self'.padStart(6)}  function  location`,
    ...s.project.map((t) => `  ${ms(t.totalMs)} ${pct(t.totalMs)} ${pct(t.selfMs)}  ${t.label}`),
    '  self time by area:',
    ...s.areas.slice(0, areaRows).map((a) => `  ${ms(a.selfMs)} ${pct(a.selfMs)}  ${a.area}`),
  ];
  return lines.join('\n');
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '30' } },
  });
  if (positionals.length === 0) {
    process.stderr.write('usage: node bench/cpuprofile-summary.ts FILE.cpuprofile [--top 30]\n');
    process.exit(2);
  }
  for (const file of positionals) {
    process.stdout.write(`${formatProfileSummary(summariseCpuProfile(file, Number(values.top)), file)}\n\n`);
  }
}
