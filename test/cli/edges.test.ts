/**
 * The CLI at its edges, as a process: a reader that goes away (`postbote queue summary | head
 * -1`) ends the output quietly with exit code 0, as with any Unix tool, not with an unhandled
 * EPIPE and a stack trace; bad options are refused even when there is nothing to report on; a
 * command loads only what it uses (start-up time).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir } from '../support/temp-dir.ts';

const main = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

describe('CLI edges', () => {
  const dir = tempDir('postbote-cli-edges-');
  after(() => dir.cleanup());

  /** Runs the CLI on an empty data dir; `closeStdout` closes its output before it writes. */
  async function cli(args: string[], closeStdout = false, nodeArgs: string[] = []) {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', POSTBOTE_DATA_DIR: dir.path };
    if (process.env.NODE_COMPILE_CACHE) env.NODE_COMPILE_CACHE = process.env.NODE_COMPILE_CACHE;
    const child = spawn(process.execPath, [...nodeArgs, main, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    if (closeStdout) child.stdout.destroy();
    else child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    return { code, stdout, stderr };
  }

  it('exits 0 without a word on stderr when stdout is closed before it writes', async () => {
    // queue summary writes its sections one by one: every write after the first meets the
    // closed pipe.
    assert.deepEqual(await cli(['queue', 'summary'], true), { code: 0, stdout: '', stderr: '' });
  });

  it('stats refuses a bad --from or --interval with exit code 2, with no account to report on', async () => {
    const from = await cli(['stats', '--from', 'yesterday']);
    assert.equal(from.code, 2);
    assert.match(from.stderr, /--from: .*RFC 3339/);
    const interval = await cli(['stats', '--interval', 'week']);
    assert.equal(interval.code, 2);
    assert.match(interval.stderr, /--interval: interval must be hour or day/);
    assert.deepEqual(await cli(['stats']), { code: 0, stdout: '(none)\n', stderr: '' });
  });

  it('a command loads its own file and no heavy package: not the PostgreSQL driver on SQLite, no YAML parser without a config file', async () => {
    // A loader hook that prints, at exit, every package and every CLI file the process loaded.
    const hook = `import { registerHooks } from 'node:module';
      const seen = new Set();
      registerHooks({ load(url, context, next) {
        const m = /node_modules\\/((@[^/]+\\/)?[^/]+)|src\\/(cli\\/[^/]+)$/.exec(url);
        if (m) seen.add(m[1] ?? m[3]);
        return next(url, context);
      } });
      process.on('exit', () => process.stderr.write('loaded: ' + [...seen].sort().join(' ')));`;
    const nodeArgs = ['--import', `data:text/javascript,${encodeURIComponent(hook)}`];
    const loaded = async (
      args: string[],
      heavy = ['pg', 'yaml', 'pino', 'libmime', 'fastify'],
    ): Promise<string[]> => {
      const run = await cli(args, false, nodeArgs);
      assert.equal(run.code, 0, run.stderr);
      const names = /loaded: (.*)/.exec(run.stderr)?.[1]?.split(' ') ?? [];
      assert.ok(names.includes('commander'), `the hook saw what was loaded: ${run.stderr}`);
      for (const name of heavy) {
        assert.ok(!names.includes(name), `${args.join(' ')} loaded ${name}: ${names.join(' ')}`);
      }
      return names.filter((name) => name.startsWith('cli/'));
    };
    assert.deepEqual(await loaded(['accounts', 'list']), [
      'cli/accounts.ts',
      'cli/context.ts',
      'cli/main.ts',
    ]);
    assert.deepEqual(await loaded(['messages', 'list']), [
      'cli/context.ts',
      'cli/main.ts',
      'cli/messages.ts',
    ]);
    // The command is found after the global options (a config file needs the YAML parser).
    assert.deepEqual(await loaded(['-c', '/dev/null', 'messages', 'list'], ['pg']), [
      'cli/context.ts',
      'cli/main.ts',
      'cli/messages.ts',
    ]);
    // --help lists every command, so it loads every command's file.
    assert.ok((await loaded(['--help'])).length > 15);
  });
});
