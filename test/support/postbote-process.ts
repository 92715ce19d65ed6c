import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { testDatabaseUrl } from './postgres.ts';

const root = join(import.meta.dirname, '..', '..');
const main = join(root, 'src', 'cli', 'main.ts');
const run = promisify(execFile);

/** A free TCP port on 127.0.0.1 (bind to port 0, read it, close). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/**
 * With POSTBOTE_TEST_STORE=postgres the processes run on PostgreSQL: one schema and one stable
 * node id per data dir, so a restart on the same data dir finds its database and its leases.
 */
export const testStore = process.env.POSTBOTE_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';
/** Schemas created by this test process (drop them with dropTestSchemas). */
export const testSchemas = new Set<string>();

function storeEnv(dataDir: string): Record<string, string> {
  if (testStore !== 'postgres') return {};
  const id = createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
  testSchemas.add(`postbote_e2e_${id}`);
  return {
    POSTBOTE_DATABASE__URL: testDatabaseUrl,
    POSTBOTE_DATABASE__SCHEMA: `postbote_e2e_${id}`,
    POSTBOTE_NODE_ID: `e2e-${id}`,
  };
}

export interface PostboteProcess {
  child: ChildProcess;
  submissionPort: number;
  httpPort: number;
  env: Record<string, string>;
  /** Log lines printed so far (JSON, one per line). */
  logs: string[];
  /** Runs a CLI command against the same data dir and returns stdout (throws on non-zero exit). */
  cli(args: string[]): Promise<string>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL (crash) and wait for exit. */
  kill(): Promise<void>;
}

/**
 * Starts `postbote start` as a real process on fresh ports with the given environment
 * (POSTBOTE_* settings), and resolves once it logs that it started.
 */
export async function startPostboteProcess(options: {
  dataDir: string;
  env?: Record<string, string>;
  submissionPort?: number;
  httpPort?: number;
  timeoutMs?: number;
}): Promise<PostboteProcess> {
  const submissionPort = options.submissionPort ?? (await freePort());
  const httpPort = options.httpPort ?? (await freePort());
  const env: Record<string, string> = {
    ...storeEnv(options.dataDir),
    POSTBOTE_DATA_DIR: options.dataDir,
    POSTBOTE_SMTP__SUBMISSION__LISTEN: `127.0.0.1:${submissionPort}`,
    POSTBOTE_HTTP__LISTEN: `127.0.0.1:${httpPort}`,
    POSTBOTE_HOSTNAME: 'postbote.test',
    POSTBOTE_LOG__LEVEL: 'info',
    ...options.env,
  };
  const childEnv = { ...withoutPostboteVars(process.env), ...env };
  const child = spawn(process.execPath, [main, 'start'], {
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let buffered = '';
  let started: () => void = () => {};
  let failed: (err: Error) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    started = resolve;
    failed = reject;
  });
  const onData = (chunk: Buffer): void => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      logs.push(line);
      if (line.includes('"Postbote started"')) started();
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then((code) =>
    failed(new Error(`postbote exited with ${code} before starting:\n${logs.join('\n')}`)),
  );
  const timeout = setTimeout(
    () => failed(new Error(`postbote did not start in time:\n${logs.join('\n')}`)),
    options.timeoutMs ?? 15_000,
  );
  try {
    await ready;
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timeout);
  }
  return {
    child,
    submissionPort,
    httpPort,
    env,
    logs,
    cli: (args) => runCli(args, env),
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

function withoutPostboteVars(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (!k.startsWith('POSTBOTE_') && v !== undefined) out[k] = v;
  return out;
}

/** Runs the CLI with the given POSTBOTE_* environment; resolves stdout, rejects with stderr. */
export async function runCli(args: string[], env: Record<string, string>): Promise<string> {
  const { stdout } = await run(process.execPath, [main, ...args], {
    env: { ...withoutPostboteVars(process.env), ...storeEnv(env.POSTBOTE_DATA_DIR ?? ''), ...env },
    timeout: 30_000,
  });
  return stdout;
}

/**
 * An account with an IP credential, made with the CLI before the process starts (a running
 * process would see the credential only at its next reload, every 5 s).
 */
export async function createIpAccount(
  env: Record<string, string>,
  account = 'shop',
  cidrs = '127.0.0.1/32',
): Promise<void> {
  await runCli(['accounts', 'create', account, '--sender-policy', 'any'], env);
  await runCli(['credentials', 'create', '--account', account, '--ip', cidrs], env);
}

/** Polls `check` until it returns a value or the time is up. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${options.what ?? 'a condition'}`);
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
  }
}
