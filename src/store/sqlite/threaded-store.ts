import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { SchemaTooNewError } from '../errors.ts';
import type { Store } from '../store.ts';
import type { NewMessage } from '../types.ts';
import type { Call, Reply } from './worker.ts';

/** Every Store method; the worker runs each on the SqliteStore it owns. */
const METHODS = [
  'migrate',
  'close',
  'createAccount',
  'getAccount',
  'getAccountByName',
  'listAccounts',
  'setAccountWeight',
  'setAccountSenderPolicy',
  'createDomain',
  'getDomain',
  'listDomains',
  'setDomainVerified',
  'recordDomainCheck',
  'deleteDomain',
  'listDkimKeys',
  'addDkimKey',
  'setDkimKeyState',
  'setDkimPrivateKey',
  'signingDomains',
  'createCredential',
  'getCredential',
  'findCredential',
  'listCredentials',
  'revokeCredential',
  'createStream',
  'listStreams',
  'getStream',
  'setStreamSettings',
  'getRecipientAt',
  'recordEngagement',
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
  'queueSiteSummary',
  'retryNow',
  'hold',
  'cancel',
  'countByState',
  'purgeBodies',
  'purgeMessages',
  'purgeShapingEvents',
  'purgeEventLog',
  'recordShapingEvents',
  'activeShaping',
  'createTemplate',
  'addTemplateVersion',
  'getTemplate',
  'getTemplateVersion',
  'listTemplates',
  'deleteTemplate',
  'upsertSuppressions',
  'removeSuppression',
  'listSuppressions',
  'findSuppressions',
  'purgeExpiredSuppressions',
  'getRecipient',
  'findMessagesByHeader',
  'recordAsyncReports',
  'countSoftBounces',
  'recordSoftBounce',
  'purgeSoftBounces',
  'claimIdempotencyKey',
  'completeIdempotencyKey',
  'releaseIdempotencyKey',
  'purgeIdempotencyKeys',
  'heartbeat',
  'clusterStatus',
  'forgetNodes',
  'recordAudit',
  'listAudit',
  'guardCounts',
  'listGuardStates',
  'saveGuardState',
  'releaseHeld',
  'heldSummary',
  'setAccountRetention',
  'listAccountRetention',
  'privacySecret',
  'exportAddress',
  'eraseAddress',
  'appendEvents',
  'listEvents',
  'eventsAfter',
  'lastEventId',
  'getEventCursor',
  'setEventCursor',
  'createWebhook',
  'getWebhook',
  'listWebhooks',
  'deleteWebhook',
  'updateWebhook',
  'enqueueWebhookBatches',
  'dueWebhookBatches',
  'recordWebhookAttempt',
  'webhookBacklog',
  'failWebhookBatches',
  'listWebhookAttempts',
  'listWebhookBatches',
  'applyRollup',
  'rollupCursor',
  'queryStats',
  'statsLookup',
  'queueDepth',
  'createDashboardUser',
  'getDashboardUser',
  'findDashboardUser',
  'listDashboardUsers',
  'deleteDashboardUser',
  'setDashboardPassword',
  'createDashboardSession',
  'getDashboardSession',
  'touchDashboardSession',
  'deleteDashboardSession',
  'purgeDashboardSessions',
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

/** A Worker or a MessagePort: what a store client talks through. */
interface Channel {
  postMessage(value: unknown): void;
  on(event: 'message', listener: (replies: Reply[]) => void): unknown;
}

/** A Store whose calls go to the SQLite worker, plus a way to share that worker with another thread. */
export interface ThreadedStore extends Store {
  /** A port another thread turns into a Store with `storeFromPort` (transfer it). */
  openPort(): MessagePort;
}

/**
 * The Store interface over a channel to the SQLite worker. Calls made in one event-loop turn
 * cross in one message (so a turn's writes share a commit); replies come back batched too.
 */
function createStoreClient(
  channel: Channel,
  close: (call: (m: keyof Store) => Promise<unknown>) => Promise<void>,
) {
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let failure: Error | undefined;

  channel.on('message', (replies: Reply[]) => {
    for (const reply of replies) {
      const call = pending.get(reply.id);
      if (!call) continue;
      pending.delete(reply.id);
      if (reply.error) call.reject(revive(reply.error));
      else call.resolve(reply.result);
    }
  });

  let outbox: Call[] = [];
  let scheduled = false;
  const send = (): void => {
    scheduled = false;
    const batch = outbox;
    outbox = [];
    if (failure) return;
    try {
      channel.postMessage(batch);
    } catch (err) {
      // An argument that cannot be cloned fails its batch, not the process.
      for (const c of batch) {
        pending
          .get(c.id)
          ?.reject(new Error(`store call ${c.method} could not be sent to the store thread`, { cause: err }));
        pending.delete(c.id);
      }
    }
  };

  function call(method: keyof Store, args: unknown[] = []): Promise<unknown> {
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
  // A Buffer crosses with the whole ArrayBuffer under it: a body that is a slice of Node's
  // buffer pool (any Buffer.concat under 32 KB) would copy the 64 KB pool each time.
  store.insertMessages = (messages, options) =>
    call('insertMessages', [(messages as NewMessage[]).map(withOwnBuffers), options]);
  store.getBody = async (messageId, variant) => {
    const body = (await call('getBody', [messageId, variant ?? 0])) as Uint8Array | undefined;
    return body && Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  };
  store.close = async () => {
    if (!failure) await close(call);
    failure ??= new Error('the store is closed');
  };
  return {
    store: store as unknown as Store,
    fail(err: Error): void {
      failure = err;
      for (const c of pending.values()) c.reject(err);
      pending.clear();
    },
  };
}

/** The message with its body and copies in buffers of their own (see insertMessages above). */
function withOwnBuffers(message: NewMessage): NewMessage {
  const own = (b: Buffer): Buffer =>
    b.byteLength === b.buffer.byteLength ? b : Buffer.from(new Uint8Array(b).buffer);
  const variants = message.variants?.map(own);
  return { ...message, body: own(message.body), ...(variants ? { variants } : {}) };
}

/**
 * The embedded SQLite store on a worker thread, behind the same async Store interface: commits
 * and queries run off the event loop. Group commit happens in the worker.
 * Buffers cross the thread boundary as copies (structured clone); bodies come back as Buffers.
 */
export function createThreadedSqliteStore(path: string): ThreadedStore {
  const worker = new Worker(new URL('./worker.ts', import.meta.url), {
    name: 'store',
    workerData: { path },
    // The worker holds no large JS state (bodies are external buffers, results are handed back
    // at once): small heap limits keep its footprint down (measured: 100,000 queued, 333 → 283 MB
    // peak RSS for the process). If it ever ran out, every store call fails and SMTP answers 451.
    resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 },
  });
  const client = createStoreClient(worker, async (call) => {
    await call('close');
    await worker.terminate();
  });
  worker.on('error', (err) => client.fail(new Error('the SQLite store thread failed', { cause: err })));
  worker.on('exit', (code) => client.fail(new Error(`the SQLite store thread exited (code ${code})`)));
  return Object.assign(client.store, {
    openPort(): MessagePort {
      const { port1, port2 } = new MessageChannel();
      worker.postMessage({ attach: port2 }, [port2]);
      return port1;
    },
  });
}

/** The Store of another thread's `openPort()`; closing it closes the port, not the database. */
export function storeFromPort(port: MessagePort): Store {
  const client = createStoreClient(port, async () => {
    port.close();
  });
  port.on('close', () => client.fail(new Error('the store port was closed')));
  return client.store;
}
