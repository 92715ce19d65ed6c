/**
 * The SQLite store's thread. node:sqlite is synchronous: every statement, and every COMMIT's
 * fsync, blocks the thread it runs on. Here it blocks this worker, not the event loop that
 * serves SMTP, and it runs on the second core.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Store } from '../store.ts';
import { SqliteStore } from './sqlite-store.ts';

interface Call {
  id: number;
  method: keyof Store;
  args: unknown[];
}

if (!parentPort) throw new Error('the SQLite worker must run in a worker thread');
const port = parentPort;
const store = new SqliteStore((workerData as { path: string }).path);

port.on('message', async ({ id, method, args }: Call) => {
  try {
    const fn = store[method] as (...a: unknown[]) => Promise<unknown>;
    const result = await fn.apply(store, args);
    port.postMessage({ id, result });
    if (method === 'close') port.close();
  } catch (err) {
    const e = err as Error & { code?: unknown };
    port.postMessage({ id, error: { name: e?.name, message: e?.message ?? String(err), code: e?.code } });
  }
});
