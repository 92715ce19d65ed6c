import { Client } from 'pg';
import type { LeaderLock } from '../store.ts';

// Arbitrary class id of the leader advisory lock; the second key is the schema, so deployments
// sharing a database each elect their own leader.
const LEADER_LOCK = 0x6c656164; // 'lead'

/**
 * Leader election by a session-level advisory lock on a dedicated connection: the node whose
 * session holds `pg_advisory_lock(LEADER_LOCK, schema)` is the leader until that session ends.
 * A node that dies (kill -9, crash, lost network) loses its session and so the lock, which the
 * next node to try takes within `checkMs`. The leader checks its session every `checkMs` and
 * steps down the moment that fails, so two leaders can overlap by at most one check interval
 * (when the database dropped the session before the old leader noticed): periodic tasks must be
 * safe to run twice at once, which row locks with SKIP LOCKED make them.
 */
export async function startLeaderLock(options: {
  url: string;
  schema: string;
  checkMs?: number;
  onChange?: (leader: boolean) => void;
  onError?: (err: Error) => void;
}): Promise<LeaderLock> {
  const checkMs = options.checkMs ?? 5000;
  let client: Client | undefined;
  let leader = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const setLeader = (value: boolean): void => {
    if (value === leader) return;
    leader = value;
    options.onChange?.(value);
  };
  const drop = (err: Error): void => {
    setLeader(false);
    const c = client;
    client = undefined;
    c?.end().catch(() => {});
    if (!stopped) options.onError?.(err);
  };

  const check = async (): Promise<void> => {
    try {
      if (!client) {
        const c = new Client({ connectionString: options.url });
        // An error of an idle connection (server restart, network cut) ends leadership.
        c.on('error', (err) => {
          if (client === c) drop(err);
        });
        client = c;
        await c.connect();
      }
      if (leader) {
        // The session is alive, so its lock is still held.
        await client.query('SELECT 1');
      } else {
        const { rows } = await client.query<{ ok: boolean }>(
          'SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok',
          [LEADER_LOCK, options.schema],
        );
        if (!stopped) setLeader(rows[0]?.ok === true);
      }
    } catch (err) {
      drop(err as Error);
    }
  };
  const loop = (): void => {
    if (stopped) return;
    running = check().then(() => {
      if (stopped) return;
      timer = setTimeout(loop, checkMs);
      timer.unref();
    });
  };
  loop();
  await running;

  return {
    isLeader: () => leader,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      setLeader(false);
      // Ending the session releases the lock at once: another node takes over at its next check.
      await client?.end().catch(() => {});
      client = undefined;
    },
  };
}
