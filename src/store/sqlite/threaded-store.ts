import { Worker } from 'node:worker_threads';
import type { Store } from '../store.ts';
import { SchemaTooNewError } from './sqlite-store.ts';
import type { Call, Reply } from './worker.ts';

/** Every Store method; the worker runs each on the SqliteStore it owns. */
const METHODS = [
  'migrate',
  'close',
  'createAccount',
  'getAccount',
  'getAccountByName',
  'listAccounts',
  'createCredential',
  'getCredential',
  'findCredential',
  'listCredentials',
  'revokeCredential',
  'insertMessages',
  'leaseDue',
  'renewLeases',
  'releaseLeases',
  'nextDueAt',
  'getBody',
  'recordOutcomes',
  'getMessage',
  'listMessages',
  'getRecipients',
  'getEvents',
  'queueSummary',
  'retryNow',
  'cancel',
  'countByState',
] as const satisfies readonly (keyof Store)[];

type Missing = Exclude<keyof Store, (typeof METHODS)[number]>;
// A Store method added without being listed here is a compile error.
const _allListed: [Missing] extends [never] ? true : Missing = true;
void _allListed;

/** The error as the caller would have seen it in-process (class kept where it matters). */
function revive(error: NonNullable<Reply['error']>): Error {
  if (error.name === 'SchemaTooNewError') {
    const err = Object.create(SchemaTooNewError.prototype) as Error;
    err.name = error.name;
    err.message = error.message;
    return err;
  }
  const err = new Error(error.message) as Error & { code?: unknown };
  if (error.name) err.name = error.name;
  if (error.code !== undefined) err.code = error.code;
  return err;
}

/**
 * The embedded SQLite store on a worker thread, behind the same async Store interface: commits
 * (and their fsyncs) and queries run off the event loop. Group commit happens in the worker.
 * Buffers cross the thread boundary as copies (structured clone); bodies come back as Buffers.
 */
export function createThreadedSqliteStore(path: string): Store {
  const worker = new Worker(new URL('./worker.ts', import.meta.url), {
    workerData: { path },
    // The worker holds no large JS state (bodies are external buffers, results are handed back
    // at once): small heap limits keep its footprint down (measured: 100,000 queued, 333 → 283 MB
    // peak RSS for the process). If it ever ran out, every store call fails and SMTP answers 451.
    resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
  });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let failure: Error | undefined;

  worker.on('message', (replies: Reply[]) => {
    for (const reply of replies) {
      const call = pending.get(reply.id);
      if (!call) continue;
      pending.delete(reply.id);
      if (reply.error) call.reject(revive(reply.error));
      else call.resolve(reply.result);
    }
  });
  const failAll = (err: Error): void => {
    failure = err;
    for (const call of pending.values()) call.reject(err);
    pending.clear();
  };
  worker.on('error', (err) => failAll(new Error('the SQLite store thread failed', { cause: err })));
  worker.on('exit', (code) => failAll(new Error(`the SQLite store thread exited (code ${code})`)));

  // Calls made in one event-loop turn cross to the worker in one message (and so share a commit).
  let outbox: Call[] = [];
  let scheduled = false;
  const send = (): void => {
    scheduled = false;
    const batch = outbox;
    outbox = [];
    if (!failure) worker.postMessage(batch);
  };

  function call(method: keyof Store, args: unknown[]): Promise<unknown> {
    if (failure) return Promise.reject(failure);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      outbox.push({ id, method, args });
      if (!scheduled) {
        scheduled = true;
        setImmediate(send);
      }
    });
  }

  const store: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
  for (const method of METHODS) store[method] = (...args) => call(method, args);
  store.getBody = async (messageId) => {
    const body = (await call('getBody', [messageId])) as Uint8Array | undefined;
    return body && Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  };
  store.close = async () => {
    if (failure) return;
    await call('close', []);
    await worker.terminate();
  };
  return store as unknown as Store;
}
