/**
 * The CLI at its edges, as a process: a reader that goes away (`postbote queue summary | head
 * -1`) ends the output quietly with exit code 0, as with any Unix tool, not with an unhandled
 * EPIPE and a stack trace; bad options are refused even when there is nothing to report on.
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
  async function cli(args: string[], closeStdout = false) {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', POSTBOTE_DATA_DIR: dir.path };
    if (process.env.NODE_COMPILE_CACHE) env.NODE_COMPILE_CACHE = process.env.NODE_COMPILE_CACHE;
    const child = spawn(process.execPath, [main, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
});
