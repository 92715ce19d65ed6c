import type { Command } from 'commander';
import { configFrom, type GlobalOptions } from './context.ts';

export function registerStart(program: Command, globals: () => GlobalOptions): void {
  program
    .command('start')
    .description('run Postbote (submission SMTP, delivery, HTTP) until SIGTERM/SIGINT')
    .action(async () => {
      const config = configFrom(globals());
      // Loaded here, not with the CLI: every other command starts without the whole server
      // (HTTP, SMTP, delivery, logging), in a third of the time.
      const [{ startPostbote }, { createLogger }, { logPrivacy }] = await Promise.all([
        import('../postbote.ts'),
        import('../observability/logger.ts'),
        import('../privacy/privacy.ts'),
      ]);
      const logger = createLogger({ level: config.log.level, nodeId: config.node_id, ...logPrivacy(config) });
      const running = await startPostbote(config, logger);
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: string): void => {
          if (stopping) return;
          stopping = true;
          logger.info({ signal }, 'shutting down');
          // A second signal, or a shutdown that hangs, must still end the process: 20 s past
          // the deliveries' grace (listeners, leases and the store close after it).
          setTimeout(() => process.exit(1), config.delivery.shutdown_grace + 20_000).unref();
          running.close().then(resolve, resolve);
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGINT', () => stop('SIGINT'));
      });
      logger.info('stopped');
    });
}
