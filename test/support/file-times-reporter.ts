/**
 * A node:test reporter for finding what makes `npm test` slow: the failures with their errors,
 * then every test file with the time its tests took, slowest first, and the sum.
 *
 *   npm run test:times      (npm test's run with this reporter)
 *
 * The sum over files is what the two slots share: the run takes about half of it.
 */
import type { TestEvent } from 'node:test/reporters';

export default async function* fileTimes(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const perFile = new Map<string, number>();
  let failed = 0;
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { data } = event;
    if (event.type === 'test:fail') {
      const error = (data.details as { error?: { cause?: unknown; message?: string } }).error;
      const cause = error?.cause instanceof Error ? error.cause.message : undefined;
      const text = String(cause ?? error?.message ?? error).slice(0, 2000);
      yield `FAIL ${data.file ?? '?'} :: ${data.name}\n  ${text.replaceAll('\n', '\n  ')}\n`;
    }
    if (data.nesting !== 0) continue;
    if (event.type === 'test:fail') failed++;
    const file = data.file ?? '?';
    perFile.set(file, (perFile.get(file) ?? 0) + (data.details.duration_ms ?? 0));
  }
  let total = 0;
  for (const [file, ms] of [...perFile].sort((a, b) => b[1] - a[1])) {
    total += ms;
    yield `${(ms / 1000).toFixed(1).padStart(7)} s  ${file.replace(/^.*\/test\//, 'test/')}\n`;
  }
  yield `total ${(total / 1000).toFixed(0)} s over ${perFile.size} files, ${failed} failed\n`;
}
