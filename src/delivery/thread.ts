import { Worker } from 'node:worker_threads';
import type { Config } from '../config/schema.ts';
import { HandoffCredits } from '../intake/handoff.ts';
import type { Logger } from '../observability/logger.ts';
import type { ServerStore } from '../store/open.ts';
import type { DeliveryEngine } from './engine.ts';

/**
 * Runs the delivery engine on its own thread, sharing the SQLite store thread through a port.
 * wake() calls of one event-loop turn cross as one message. If the thread dies, the process
 * stops: nothing accepted is lost (it is in the store), and a supervisor restarts a whole node.
 */
export async function startDeliveryThread(deps: {
  config: Config;
  /** A port to the SQLite thread, or null when this thread opens its own store (PostgreSQL). */
  store: Pick<ServerStore, 'openPort'>;
  logger: Logger;
}): Promise<DeliveryEngine> {
  const storePort = deps.store.openPort();
  // Intake (this thread) takes the handoff credits the scheduler (that thread) grants.
  const credits = new HandoffCredits();
  const worker = new Worker(new URL('./thread-worker.ts', import.meta.url), {
    name: 'delivery',
    workerData: { config: deps.config, storePort, credits: credits.buffer },
    transferList: storePort ? [storePort] : [],
    // Workers do not inherit --max-semi-space-size. Small limits keep the thread's footprint
    // down (100,000 queued: 330 -> 282 MB peak RSS for the process); what it holds grows with
    // the lease window (a few KB per leased recipient; bodies are external buffers), so the old
    // generation is sized from it with a wide margin.
    resourceLimits: {
      maxYoungGenerationSizeMb: 4,
      maxOldGenerationSizeMb: 128 + Math.ceil(deps.config.delivery.window / 100),
    },
  });
  let stopping = false;
  worker.on('error', (err) => {
    deps.logger.fatal({ err }, 'the delivery engine thread failed; stopping');
    process.exit(1);
  });
  worker.on('exit', (code) => {
    if (stopping) return;
    deps.logger.fatal({ code }, 'the delivery engine thread exited; stopping');
    process.exit(1);
  });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', (message: unknown) => {
      if (message === 'started') resolve();
      else reject(new Error(`the delivery engine did not start: ${(message as { failed?: string }).failed}`));
    });
  });

  let wakeQueued = false;
  return {
    handoff: {
      owner: deps.config.node_id,
      leaseMs: deps.config.delivery.lease,
      credits,
      deliver(handed) {
        try {
          // The bodies are copies made for this crossing: moved, not copied again.
          worker.postMessage(
            { adopt: handed },
            handed.bodies.map(([, body]) => body.buffer as ArrayBuffer),
          );
        } catch (err) {
          // Committed already: the submitter has its answer coming. The recipients keep their
          // lease until it runs out (delivery.lease), then any lease takes them.
          deps.logger.error(
            { err, recipients: handed.recipients.length },
            'could not hand fresh mail to delivery',
          );
        }
      },
    },
    wake() {
      if (wakeQueued) return;
      wakeQueued = true;
      setImmediate(() => {
        wakeQueued = false;
        if (!stopping) worker.postMessage('wake');
      });
    },
    async stop() {
      stopping = true;
      const stopped = new Promise<void>((resolve) => {
        worker.on('message', (message: unknown) => message === 'stopped' && resolve());
        worker.once('exit', () => resolve());
      });
      worker.postMessage('stop');
      await stopped;
      await worker.terminate();
    },
  };
}
