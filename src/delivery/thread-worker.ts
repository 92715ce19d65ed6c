/**
 * The delivery engine's thread: outbound SMTP, DNS and scheduling run here, so the event loop
 * that answers submitting clients never waits behind delivery work (measured in bench/relay.ts).
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config/schema.ts';
import { type HandedOff, HandoffCredits } from '../intake/handoff.ts';
import { createLogger } from '../observability/logger.ts';
import { logPrivacy } from '../privacy/privacy.ts';
import { openStore } from '../store/open.ts';
import { storeFromPort } from '../store/sqlite/threaded-store.ts';
import { startDeliveryEngine } from './engine.ts';

if (!parentPort) throw new Error('the delivery engine thread must run in a worker thread');
const port = parentPort;
const { config, storePort, credits } = workerData as {
  config: Config;
  storePort: MessagePort | null;
  credits: SharedArrayBuffer;
};
const logger = createLogger({ level: config.log.level, nodeId: config.node_id, ...logPrivacy(config) });
// SQLite: the store thread's port. PostgreSQL: this thread's own pool.
const store = storePort ? storeFromPort(storePort) : await openStore(config);

try {
  const engine = await startDeliveryEngine({ config, store, logger, credits: new HandoffCredits(credits) });
  port.on('message', async (message: 'wake' | 'stop' | { adopt: HandedOff }) => {
    if (message === 'wake') {
      engine.wake();
      return;
    }
    if (typeof message === 'object') {
      engine.handoff.deliver(message.adopt);
      return;
    }
    await engine.stop();
    await store.close();
    port.postMessage('stopped');
  });
  port.postMessage('started');
} catch (err) {
  logger.fatal({ err }, 'the delivery engine could not start');
  port.postMessage({ failed: (err as Error).message });
}
