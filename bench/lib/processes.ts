/**
 * Child processes for the benchmark: every one is registered with a Cleanup so that it is
 * stopped on success, on error and on Ctrl-C; plus the /proc readings the report needs
 * (peak resident memory, CPU time, the process tree of a Postfix master).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Stop steps run last-registered first; each is bounded so a stuck step cannot hang the exit. */
export class Cleanup {
  readonly #steps: { name: string; run: () => Promise<void> | void }[] = [];
  #closing = false;

  /**
   * Registers a step; the returned function unregisters it (after a normal stop). Once the
   * teardown has begun (Ctrl-C while a phase still runs), a new step runs at once instead.
   */
  add(name: string, run: () => Promise<void> | void): () => void {
    if (this.#closing) {
      void Promise.resolve()
        .then(run)
        .catch(() => {});
      return () => {};
    }
    const step = { name, run };
    this.#steps.push(step);
    return () => {
      const i = this.#steps.indexOf(step);
      if (i >= 0) this.#steps.splice(i, 1);
    };
  }

  async runAll(): Promise<void> {
    this.#closing = true;
    for (let step = this.#steps.pop(); step; step = this.#steps.pop()) {
      try {
        await withTimeout(Promise.resolve(step.run()), 60_000, `cleanup: ${step.name}`);
      } catch (err) {
        process.stderr.write(`cleanup of ${step.name} failed: ${(err as Error).message}\n`);
      }
    }
  }
}

/** The promise's value, or undefined after `ms`; the timer is cleared either way (no stray timers). */
export async function waitAtMost<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${Math.round(ms / 1000)} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<Exit>;
  readonly running: boolean;
  /** Signal, wait up to graceMs, then SIGKILL. Idempotent. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<Exit>;
}

export interface StartChildOptions {
  name: string;
  cleanup: Cleanup;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Signal used by cleanup (default SIGTERM). */
  stopSignal?: NodeJS.Signals;
}

/** Spawns a process whose stop is registered with the cleanup before anything can fail. */
export function startChild(command: string, args: string[], options: StartChildOptions): Child {
  const proc = spawn(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let settled: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    proc.once('exit', (code, signal) => {
      settled = { code, signal };
      resolve(settled);
    });
    proc.once('error', (error) => {
      settled = { code: null, signal: null, error };
      resolve(settled);
    });
  });
  proc.stdout?.on('data', (chunk: Buffer) => options.onStdout?.(chunk));
  proc.stderr?.on('data', (chunk: Buffer) => options.onStderr?.(chunk));
  const stop = async (signal: NodeJS.Signals = options.stopSignal ?? 'SIGTERM', graceMs = 30_000) => {
    if (settled) return settled;
    proc.kill(signal);
    const exit = await waitAtMost(exited, graceMs);
    if (exit) return exit;
    process.stderr.write(`${options.name} (pid ${proc.pid}) ignored ${signal}; sending SIGKILL\n`);
    proc.kill('SIGKILL');
    return exited;
  };
  const unregister = options.cleanup.add(options.name, () => stop().then(() => undefined));
  void exited.then(unregister);
  return {
    name: options.name,
    proc,
    pid: proc.pid ?? -1,
    exited,
    get running() {
      return settled === undefined;
    },
    stop,
  };
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port (and, if asked, greets with 220). */
export async function waitForListener(
  port: number,
  options: { timeoutMs: number; greeting?: boolean; what: string },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      const done = (result: boolean): void => {
        socket.destroy();
        resolve(result);
      };
      socket.setTimeout(2000, () => done(false));
      socket.once('error', () => done(false));
      socket.once('connect', () => {
        if (!options.greeting) done(true);
      });
      socket.once('data', (data) => {
        socket.write('QUIT\r\n');
        done(data.toString().startsWith('220'));
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${options.what} did not listen on port ${port} in time`);
    await sleep(100);
  }
}

/** A free TCP port on 127.0.0.1 (bind to 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** A field of /proc/PID/status in kB (VmHWM = peak resident set, VmRSS = current). */
export function procStatusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const match = readFileSync(`/proc/${pid}/status`, 'utf8').match(
      new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'),
    );
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** Fields of /proc/PID/stat after the command name (which may contain spaces and parentheses). */
function statFields(pid: number | 'self'): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) used by a process; with children = also its reaped children. */
export function cpuSeconds(pid: number | 'self', withChildren = false): number {
  const f = statFields(pid);
  if (!f) return 0;
  // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
  const own = Number(f[11]) + Number(f[12]);
  const children = withChildren ? Number(f[13]) + Number(f[14]) : 0;
  return (own + children) / TICKS_PER_SECOND;
}

/** Reads one file of every thread of a process (`/proc/PID/task/TID/FILE`); threads that ended are skipped. */
function eachThread(pid: number, file: string, read: (text: string) => void): void {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return;
  }
  for (const tid of tids) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/${file}`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    read(text);
  }
}

/** The key under which threadCpuSeconds keeps the kernel's share of a thread name's CPU. */
const SYSTEM = ' system';

/**
 * CPU seconds (user + system) of a process's threads so far, summed by thread name: Postbote's
 * `MainThread`, `store` and `delivery` workers, V8's `V8Worker` helpers (GC, compilation),
 * libuv's pool (`libuv-worker`); the system part alone under `NAME system`. Threads that ended
 * are not counted.
 */
export function threadCpuSeconds(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  const add = (key: string, seconds: number) => byName.set(key, (byName.get(key) ?? 0) + seconds);
  eachThread(pid, 'stat', (text) => {
    const name = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    add(name, (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND);
    add(name + SYSTEM, Number(f[12]) / TICKS_PER_SECOND);
  });
  return byName;
}

/**
 * Context switches of a process's threads so far (voluntary: it waited for something;
 * involuntary: the kernel took the CPU away from a runnable thread). Threads that ended are not
 * counted.
 */
export function contextSwitches(pid: number): { voluntary: number; involuntary: number } {
  const total = { voluntary: 0, involuntary: 0 };
  eachThread(pid, 'status', (text) => {
    total.voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(text)?.[1] ?? 0);
    total.involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(text)?.[1] ?? 0);
  });
  return total;
}

/**
 * Per-thread-name CPU used between two threadCpuSeconds samples, largest first, as text: seconds,
 * µs per `per`, and the share the kernel spent for the thread (system calls: socket reads and
 * writes, wake-ups, fsync).
 */
export function threadCpuText(before: Map<string, number>, after: Map<string, number>, per: number): string {
  const used = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
  return [...after.keys()]
    .filter((name) => !name.endsWith(SYSTEM))
    .map((name) => [name, used(name), used(name + SYSTEM)] as const)
    .filter(([, s]) => s >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(
      ([name, s, sys]) =>
        `${name} ${s.toFixed(1)} s (${((s * 1e6) / per).toFixed(0)} µs, ${((sys / s) * 100).toFixed(0)}% system)`,
    )
    .join(', ');
}

/** Busy CPU seconds of the whole machine so far (all cores), from /proc/stat. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [, user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  void idle;
  void iowait;
  return (
    ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) /
    TICKS_PER_SECOND
  );
}

/** Every live process below `root` in the process tree (not including root). */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(statFields(Number(entry))?.[1]);
    if (!Number.isFinite(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  for (let pid = stack.pop(); pid !== undefined; pid = stack.pop()) {
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Bytes this process caused to be written to storage so far (`write_bytes` of /proc/PID/io). */
export function storageWriteBytes(pid: number): number | undefined {
  try {
    const match = readFileSync(`/proc/${pid}/io`, 'utf8').match(/^write_bytes:\s+(\d+)/m);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where a process's resident memory is, in kB, from /proc/PID/smaps: anonymous mappings (the
 * V8 heap lives there, with thread stacks), the malloc heap (Buffers, SQLite's page cache),
 * shared memory files (SQLite's -shm) and the executable and libraries (file-backed, clean).
 */
export function rssBreakdownKb(pid: number): Record<string, number> | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return undefined;
  }
  const out: Record<string, number> = {};
  let kind = 'anonymous';
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const name = head[1] ?? '';
      kind =
        name === '' || name.startsWith('[anon') || name.startsWith('[stack')
          ? 'anonymous (V8 heap, stacks)'
          : name === '[heap]'
            ? 'malloc heap'
            : name.endsWith('-shm')
              ? 'SQLite -shm'
              : name.startsWith('[')
                ? 'other'
                : 'executable & libraries';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[kind] = (out[kind] ?? 0) + Number(rss[1]);
  }
  return out;
}

/** Proportional set size in kB (shared pages divided among the processes sharing them). */
export function pssKb(pid: number): number | undefined {
  try {
    const match = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+) kB/m);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Samples the memory of a changing set of processes (summed Pss, so shared libraries and
 * shared memory count once, and summed VmRSS); keeps the peaks.
 */
export function sampleMemory(
  pids: () => number[],
  intervalMs = 250,
): { peakPssKb(): number; peakRssKb(): number; stop(): void } {
  let peakPss = 0;
  let peakRss = 0;
  const sample = (): void => {
    let pss = 0;
    let rss = 0;
    for (const pid of pids()) {
      pss += pssKb(pid) ?? 0;
      rss += procStatusKb(pid, 'VmRSS') ?? 0;
    }
    peakPss = Math.max(peakPss, pss);
    peakRss = Math.max(peakRss, rss);
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    peakPssKb: () => {
      sample();
      return peakPss;
    },
    peakRssKb: () => peakRss,
    stop: () => clearInterval(timer),
  };
}
