/**
 * Periodic tasks of the cluster (retention, forgetting dead nodes; later DNS re-checks and
 * statistics rollups): each runs on the elected node only, one task at a time, every `everyMs`.
 * When leadership moves, the new leader runs every task at once (it cannot know when the old
 * one last ran) and then on its own schedule.
 */

export interface PeriodicTask {
  name: string;
  everyMs: number;
  /** `signal` aborts when this node stops or loses leadership; what is done stays done. */
  run(now: number, signal: AbortSignal): Promise<Record<string, unknown> | undefined>;
}

export interface PeriodicLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface PeriodicTasks {
  /** A task is running or will run on this node. */
  isLeader(): boolean;
  /** Last run of each task on this node (heartbeat info, tests). */
  lastRuns(): Record<string, { at: number; ok: boolean }>;
  stop(): Promise<void>;
}

export function startPeriodicTasks(options: {
  tasks: PeriodicTask[];
  isLeader: () => boolean;
  clock?: () => number;
  logger: PeriodicLogger;
  /** How often leadership and due tasks are looked at (default 1 s). */
  tickMs?: number;
}): PeriodicTasks {
  const { tasks, logger } = options;
  const clock = options.clock ?? Date.now;
  const next = new Map<string, number>();
  const last: Record<string, { at: number; ok: boolean }> = {};
  let stopped = false;
  let wasLeader = false;
  let current: { controller: AbortController; done: Promise<void> } | undefined;

  const runDue = async (controller: AbortController): Promise<void> => {
    for (const task of tasks) {
      if (controller.signal.aborted) return;
      const now = clock();
      if ((next.get(task.name) ?? 0) > now) continue;
      next.set(task.name, now + task.everyMs);
      try {
        const result = await task.run(now, controller.signal);
        last[task.name] = { at: now, ok: true };
        if (result) logger.info({ task: task.name, ...result, ms: clock() - now }, 'periodic task done');
      } catch (err) {
        last[task.name] = { at: now, ok: false };
        logger.warn({ err, task: task.name }, 'periodic task failed; it runs again at its next turn');
      }
    }
  };

  const tick = (): void => {
    if (stopped) return;
    const leader = options.isLeader();
    if (leader !== wasLeader) {
      wasLeader = leader;
      logger.info({ leader }, leader ? 'this node runs the periodic tasks now' : 'no longer the leader');
      // A new term starts every task afresh.
      if (leader) next.clear();
      else current?.controller.abort();
    }
    if (!leader || current) return;
    const controller = new AbortController();
    const done = runDue(controller).finally(() => {
      current = undefined;
    });
    current = { controller, done };
  };
  const timer = setInterval(tick, options.tickMs ?? 1000);
  timer.unref();
  tick();

  return {
    isLeader: () => wasLeader,
    lastRuns: () => ({ ...last }),
    async stop() {
      stopped = true;
      clearInterval(timer);
      current?.controller.abort();
      await current?.done;
    },
  };
}
