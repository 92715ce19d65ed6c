import type { Command } from 'commander';
import type { QueueSelector } from '../store/types.ts';
import { CliError, type GlobalOptions, output, withStore } from './context.ts';
import { buildQueueSummary, printQueueSummary } from './queue-summary.ts';

function selector(id: string | undefined, opts: { domain?: string }): QueueSelector {
  if ((id === undefined) === (opts.domain === undefined))
    throw new CliError('give a message ID or --domain DOMAIN', 2);
  return id !== undefined ? { messageId: id } : { domain: opts.domain ?? '' };
}

export function registerQueue(program: Command, globals: () => GlobalOptions): void {
  const queue = program.command('queue').description('the delivery queue');
  queue
    .command('summary')
    .description(
      'waiting recipients by domain and by site (ready, scheduled), connections, current limits, and the throttles, suspensions and open circuits in force',
    )
    .option('--json', 'print JSON: { at, domains, sites, inForce }')
    .action(async (opts: { json?: boolean }) => {
      await withStore(globals(), async (store, config) => {
        const report = await buildQueueSummary(store, config, Date.now());
        if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        else printQueueSummary(report);
      });
    });
  queue
    .command('retry [id]')
    .description('attempt queued/deferred recipients now, and release held ones (a message ID or --domain)')
    .option('--domain <domain>', 'every waiting recipient at this domain')
    .option('--json', 'print JSON')
    .action(async (id: string | undefined, opts: { domain?: string; json?: boolean }) => {
      const sel = selector(id, opts);
      await withStore(globals(), async (store) => {
        const count = await store.retryNow(sel, Date.now());
        if (opts.json) output([{ ...sel, retried: count }], true);
        else process.stdout.write(`${count} recipient(s) scheduled for immediate delivery\n`);
      });
    });
  queue
    .command('delete [id]')
    .description('cancel recipients that are not yet delivered (a message ID or --domain)')
    .option('--domain <domain>', 'every waiting recipient at this domain')
    .option('--json', 'print JSON')
    .action(async (id: string | undefined, opts: { domain?: string; json?: boolean }) => {
      const sel = selector(id, opts);
      await withStore(globals(), async (store) => {
        const count = await store.cancel(sel, Date.now());
        if (opts.json) output([{ ...sel, cancelled: count }], true);
        else process.stdout.write(`${count} recipient(s) cancelled\n`);
      });
    });
}
