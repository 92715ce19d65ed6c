import type { Command } from 'commander';
import { formatDuration } from '../config/duration.ts';
import { runRetention } from '../maintenance/retention.ts';
import { type GlobalOptions, iso, output, withStore } from './context.ts';

export function registerGc(program: Command, globals: () => GlobalOptions): void {
  program
    .command('gc')
    .description(
      'apply the retention policy now: delete finished messages (and traffic shaping events, webhook deliveries, events about no message) older than retention.metadata and the bodies of those older than retention.bodies',
    )
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withStore(globals(), async (store, config) => {
        const { bodies: bodiesMs, metadata: metadataMs } = config.retention;
        const now = Date.now();
        const result = await runRetention(store, { bodiesMs, metadataMs }, now);
        const row = {
          messages: result.messages,
          bodies: result.bodies,
          shapingEvents: result.shapingEvents,
          eventLog: result.eventLog,
          messagesReceivedBefore: iso(now - metadataMs),
          bodiesReceivedBefore: iso(now - bodiesMs),
          durationMs: Date.now() - now,
        };
        if (opts.json) {
          output([row], true);
          return;
        }
        process.stdout.write(
          `${row.messages} message(s) deleted with their recipients and events: finished and received before ${row.messagesReceivedBefore} (retention.metadata ${formatDuration(metadataMs)})\n` +
            `${row.bodies} message body(ies) deleted: finished and received before ${row.bodiesReceivedBefore} (retention.bodies ${formatDuration(bodiesMs)})\n` +
            `${row.shapingEvents} traffic shaping event(s) deleted: ended before ${row.messagesReceivedBefore} (retention.metadata)\n` +
            `${row.eventLog} webhook attempt(s) and batch(es) and event(s) about no message deleted: before ${row.messagesReceivedBefore} (retention.metadata)\n`,
        );
      });
    });
}
