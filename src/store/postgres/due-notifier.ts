import { Client } from 'pg';

/** PostgreSQL channel for "new work is due"; the payload is the schema, so deployments sharing a database do not wake each other. */
export const DUE_CHANNEL = 'postbote_due';

export interface DueWatch {
  stop(): Promise<void>;
}

/**
 * LISTENs for due-work notifications of one schema on a dedicated connection (a pooled one
 * would lose its LISTEN when returned) and calls `onDue` for each. If the connection drops it
 * reconnects after a pause; meanwhile the scheduler's slow poll still finds the work.
 */
export async function watchDue(options: {
  url: string;
  schema: string;
  onDue: () => void;
  onError?: (err: Error) => void;
  retryMs?: number;
}): Promise<DueWatch> {
  let client: Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;

  const connect = async (): Promise<void> => {
    const c = new Client({ connectionString: options.url });
    c.on('notification', (n) => {
      if (n.channel === DUE_CHANNEL && n.payload === options.schema) options.onDue();
    });
    const reconnect = (err: Error): void => {
      options.onError?.(err);
      c.removeAllListeners('error');
      c.on('error', () => {});
      c.end().catch(() => {});
      if (client === c) client = undefined;
      if (!stopped && !retry) {
        retry = setTimeout(() => {
          retry = undefined;
          connect().catch((e: Error) => reconnect(e));
        }, options.retryMs ?? 5000);
        retry.unref();
      }
    };
    c.on('error', reconnect);
    await c.connect();
    await c.query(`LISTEN ${DUE_CHANNEL}`);
    client = c;
  };

  await connect();
  return {
    async stop() {
      stopped = true;
      clearTimeout(retry);
      await client?.end().catch(() => {});
    },
  };
}
