/**
 * The SQLite store's thread. node:sqlite is synchronous: every statement, and every COMMIT's
 * fsync, blocks the thread it runs on. Here it blocks this worker, not the event loop that
 * serves SMTP, and it runs on the second core.
 *
 * Calls arrive in batches (one postMessage per event-loop turn of the caller); all of a batch's
 * writes land in the CommitQueue before it flushes, so they share one transaction and one fsync.
 * Replies go back batched the same way.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Store } from '../store.ts';
import { SqliteStore } from './sqlite-store.ts';

export interface Call {
  id: number;
  method: keyof Store;
  args: unknown[];
}

export interface Reply {
  id: number;
  result?: unknown;
  error?: { name?: string; message: string; code?: unknown };
}

if (!parentPort) throw new Error('the SQLite worker must run in a worker thread');
const port = parentPort;
const store = new SqliteStore((workerData as { path: string }).path);

let outbox: Reply[] = [];
let scheduled = false;
function reply(r: Reply): void {
  outbox.push(r);
  if (scheduled) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    const batch = outbox;
    outbox = [];
    port.postMessage(batch);
  });
}

async function run({ id, method, args }: Call): Promise<void> {
  try {
    const fn = store[method] as (...a: unknown[]) => Promise<unknown>;
    reply({ id, result: await fn.apply(store, args) });
  } catch (err) {
    const e = err as Error & { code?: unknown };
    reply({ id, error: { name: e?.name, message: e?.message ?? String(err), code: e?.code } });
  }
}

port.on('message', (calls: Call[]) => {
  for (const call of calls) void run(call);
});
