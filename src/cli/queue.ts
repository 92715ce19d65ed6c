import type { Command } from 'commander';
import type { QueueSelector } from '../store/types.ts';
import { CliError, type GlobalOptions, iso, output, withStore } from './context.ts';

function selector(id: string | undefined, opts: { domain?: string }): QueueSelector {
  if ((id === undefined) === (opts.domain === undefined))
    throw new CliError('give a message ID or --domain DOMAIN', 2);
  return id !== undefined ? { messageId: id } : { domain: opts.domain ?? '' };
}

export function registerQueue(program: Command, globals: () => GlobalOptions): void {
  const queue = program.command('queue').description('the delivery queue');
  queue
    .command('summary')
    .description('waiting recipients by destination domain and age, with the commonest deferral reasons')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const now = Date.now();
        const summary = await store.queueSummary(now);
        if (opts.json) {
          output(
            summary.map((s) => ({ ...s, oldestAt: iso(s.oldestAt) })),
            true,
          );
          return;
        }
        output(
          summary.map((s) => ({
            domain: s.domain,
            queued: s.queued,
            deferred: s.deferred,
            delivering: s.delivering,
            '<1h': s.ages.underHour,
            '<1d': s.ages.underDay,
            older: s.ages.older,
            oldest: iso(s.oldestAt),
          })),
          false,
        );
        for (const s of summary.filter((x) => x.reasons.length > 0)) {
          process.stdout.write(`\n${s.domain}: deferred because\n`);
          for (const r of s.reasons) process.stdout.write(`  ${String(r.count).padStart(6)}  ${r.text}\n`);
        }
      });
    });
  queue
    .command('retry [id]')
    .description('attempt queued/deferred recipients now (a message ID or --domain)')
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
