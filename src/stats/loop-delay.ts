import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Event-loop delay of the thread that calls it, in seconds, since the previous `read()`. */
export interface LoopDelayMonitor {
  read(): { p50: number; p99: number; max: number };
  stop(): void;
}

/**
 * A sampling monitor (node:perf_hooks, 20 ms resolution: cheap enough to leave on). Each read
 * resets it, so a value covers the interval since the last read (a scrape, a heartbeat).
 */
export function createLoopDelayMonitor(): LoopDelayMonitor {
  const histogram = monitorEventLoopDelay({ resolution: 20 });
  histogram.enable();
  const seconds = (ns: number): number => (Number.isFinite(ns) && ns > 0 ? ns / 1e9 : 0);
  return {
    read() {
      const value =
        histogram.count > 0
          ? {
              p50: seconds(histogram.percentile(50)),
              p99: seconds(histogram.percentile(99)),
              max: seconds(histogram.max),
            }
          : { p50: 0, p99: 0, max: 0 };
      histogram.reset();
      return value;
    },
    stop: () => histogram.disable(),
  };
}
