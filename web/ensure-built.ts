/**
 * `npm start` runs this first (prestart): builds the dashboard when web/dist is missing, so a
 * fresh checkout works with `npm ci && npm start` even when install scripts were skipped.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('./dist/index.html', import.meta.url));
if (!existsSync(dist)) {
  process.stderr.write('the dashboard is not built yet: building it (npm run build:web)\n');
  const result = spawnSync('npm', ['run', 'build:web'], { stdio: 'inherit' });
  // A failed build does not stop Postbote: the API works without it, and / says what is missing.
  if (result.status !== 0) process.stderr.write('the dashboard build failed; starting without it\n');
}
