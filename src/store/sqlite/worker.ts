/**
 * The SQLite store's thread. node:sqlite is synchronous: every statement blocks the thread it
 * runs on. Here it blocks this worker, not the event loop that serves SMTP, and it runs on the
 * second core. (The WAL's flush to disk runs on libuv's pool: CommitQueue, WalFlusher.)
 *
 * Calls arrive in batches (one postMessage per event-loop turn of the caller); all of a batch's
 * writes land in the CommitQueue before it commits, so they share one transaction and flush.
 * Replies go back batched the same way.
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
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

/** Serves calls arriving on one channel; replies go back on it, batched per event-loop turn. */
function serve(channel: {
  postMessage(v: unknown): void;
  on(e: 'message', l: (m: unknown) => void): unknown;
}): void {
  let outbox: Reply[] = [];
  let scheduled = false;
  const reply = (r: Reply): void => {
    outbox.push(r);
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      const batch = outbox;
      outbox = [];
      channel.postMessage(batch);
    });
  };
  const run = async ({ id, method, args }: Call): Promise<void> => {
    try {
      const fn = store[method] as (...a: unknown[]) => Promise<unknown>;
      reply({ id, result: await fn.apply(store, args) });
    } catch (err) {
      const e = err as Error & { code?: unknown };
      reply({ id, error: { name: e?.name, message: e?.message ?? String(err), code: e?.code } });
    }
  };
  channel.on('message', (message) => {
    // Another thread (the delivery engine) gets its own port to this store.
    if (!Array.isArray(message)) {
      const attach = (message as { attach?: MessagePort }).attach;
      if (attach) serve(attach);
      return;
    }
    for (const call of message as Call[]) void run(call);
  });
}

serve(port);
