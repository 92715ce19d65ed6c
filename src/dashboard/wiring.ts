import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Store } from '../store/store.ts';
import type { DashboardDeps } from './routes.ts';
import { createSessions } from './sessions.ts';
import { loadAssets } from './static.ts';

/** The dashboard as configured: sessions and the built SPA (read once, at start). */
export function createDashboardDeps(options: {
  store: Store;
  clock: () => number;
  config: Config;
  logger: Logger;
}): DashboardDeps {
  const { config } = options;
  const assets = loadAssets();
  if (assets.size === 0) {
    options.logger.warn('the dashboard is not built (web/dist is missing): run npm run build:web; / says so');
  }
  return {
    store: options.store,
    assets,
    secureCookie: config.dashboard.secure_cookie,
    sessions: createSessions({
      store: options.store,
      clock: options.clock,
      idleMs: config.dashboard.session_idle,
      maxMs: config.dashboard.session_max,
      maxFailures: config.dashboard.max_failures,
      failureWindowMs: config.dashboard.failure_window,
      lockoutMs: config.dashboard.lockout,
    }),
  };
}
