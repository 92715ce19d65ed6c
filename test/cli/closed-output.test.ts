/**
 * A CLI whose reader goes away (`postbote queue summary | head -1`): the output ends quietly with
 * exit code 0, as with any Unix tool, not with an unhandled EPIPE and a stack trace.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../support/temp-dir.ts';

const main = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

describe('CLI output to a closed pipe', () => {
  it('exits 0 without a word on stderr when stdout is closed before it writes', async () => {
    const dir = tempDir('postbote-cli-epipe-');
    try {
      const env: Record<string, string> = { PATH: process.env.PATH ?? '', POSTBOTE_DATA_DIR: dir.path };
      if (process.env.NODE_COMPILE_CACHE) env.NODE_COMPILE_CACHE = process.env.NODE_COMPILE_CACHE;
      // queue summary writes its sections one by one: every write after the first meets the
      // closed pipe.
      const child = spawn(process.execPath, [main, 'queue', 'summary'], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.destroy();
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(stderr, '');
      assert.equal(code, 0);
    } finally {
      dir.cleanup();
    }
  });
});
