/**
 * A real rspamd (Debian package `rspamd`) for the content-scan tests: the stock configuration
 * with a local override directory in a temp dir (normal worker on a free loopback port, the
 * controller, proxy and fuzzy workers off, logs to the console), started in the foreground and
 * stopped with the test. Undefined with the reason when rspamd is not installed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './postbote-process.ts';
import { tempDir } from './temp-dir.ts';

const BINARY = '/usr/bin/rspamd';
const STOCK_CONFIG = '/etc/rspamd/rspamd.conf';

export interface RunningRspamd {
  url: string;
  stop(): Promise<void>;
}

export function rspamdMissing(): string | undefined {
  try {
    accessSync(BINARY, constants.X_OK);
    accessSync(STOCK_CONFIG, constants.R_OK);
    return undefined;
  } catch {
    return 'rspamd not installed (Debian package rspamd)';
  }
}

export async function startRspamd(timeoutMs = 60_000): Promise<RunningRspamd> {
  const dir = tempDir('postbote-rspamd-');
  const port = await freePort();
  for (const sub of ['local.d', 'override.d', 'db', 'run', 'log'])
    mkdirSync(join(dir.path, sub), { recursive: true });
  writeFileSync(
    join(dir.path, 'local.d', 'worker-normal.inc'),
    `bind_socket = "127.0.0.1:${port}";\ncount = 1;\n`,
  );
  for (const worker of ['controller', 'proxy', 'fuzzy']) {
    writeFileSync(join(dir.path, 'local.d', `worker-${worker}.inc`), 'enabled = false;\n');
  }
  writeFileSync(join(dir.path, 'local.d', 'logging.inc'), 'type = "console";\nlevel = "error";\n');
  const vars = ['LOCAL_CONFDIR', 'DBDIR', 'RUNDIR', 'LOGDIR'].map((name) => {
    const sub = { LOCAL_CONFDIR: '', DBDIR: 'db', RUNDIR: 'run', LOGDIR: 'log' }[name] ?? '';
    return `--var=${name}=${join(dir.path, sub)}`;
  });
  const user = process.getuid?.() === 0 ? ['-u', 'root', '-g', 'root'] : [];
  const child: ChildProcess = spawn(BINARY, ['-f', '-i', ...user, '-c', STOCK_CONFIG, ...vars], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    dir.cleanup();
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`rspamd exited (${child.exitCode}) at start:\n${output}`);
    }
    try {
      const res = await fetch(`${url}/checkv2`, {
        method: 'POST',
        body: 'Subject: ping\r\n\r\nping\r\n',
        signal: AbortSignal.timeout(2000),
      });
      await res.arrayBuffer();
      if (res.ok) return { url, stop };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`rspamd did not answer /checkv2 within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
