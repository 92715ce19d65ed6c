import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { cliActor, recordAudit } from '../audit/audit.ts';
import { requireAccount } from '../auth/accounts.ts';
import { createSuppressions, SuppressionError } from '../bounces/suppressions.ts';
import type { Config } from '../config/schema.ts';
import type { Store } from '../store/store.ts';
import { SUPPRESSION_REASONS, type SuppressionReason } from '../store/types.ts';
import { CliError, type GlobalOptions, iso, output, withStore } from './context.ts';

function service(store: Store, config: Config) {
  return createSuppressions({
    store,
    clock: Date.now,
    transactionalIgnoresUnsubscribes: config.suppressions.transactional_ignores_unsubscribes,
  });
}

async function run<T>(
  globals: GlobalOptions,
  fn: (s: ReturnType<typeof service>, store: Store) => Promise<T>,
) {
  return withStore(globals, async (store, config) => {
    try {
      return await fn(service(store, config), store);
    } catch (err) {
      if (err instanceof SuppressionError) throw new CliError(`${err.message} (${err.field})`);
      throw err;
    }
  });
}

/** `postbote suppressions …`: an account's suppression list. */
export function registerSuppressions(program: Command, globals: () => GlobalOptions): void {
  const cmd = program.command('suppressions').description('addresses an account no longer sends to');
  cmd
    .command('list')
    .description('list suppressed addresses')
    .requiredOption('--account <name>', 'the account')
    .option('--reason <reason>', `only this reason (${SUPPRESSION_REASONS.join(', ')})`)
    .option('--address <address>', 'only this address')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'print JSON')
    .action(
      async (opts: { account: string; reason?: string; address?: string; limit: string; json?: boolean }) => {
        if (opts.reason && !(SUPPRESSION_REASONS as readonly string[]).includes(opts.reason)) {
          throw new CliError(`--reason must be one of ${SUPPRESSION_REASONS.join(', ')}`, 2);
        }
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
          throw new CliError('--limit must be 1-1000', 2);
        await run(globals(), async (s, store) => {
          const account = await requireAccount(store, opts.account);
          const rows = await s.list({
            accountId: account.id,
            limit,
            ...(opts.reason ? { reason: opts.reason as SuppressionReason } : {}),
            ...(opts.address ? { address: opts.address.toLowerCase() } : {}),
          });
          output(
            rows.map((r) => ({
              address: r.address,
              scope: r.scope || '(account)',
              reason: r.reason,
              category: r.category,
              source: r.source,
              createdAt: iso(r.createdAt),
              expiresAt: iso(r.expiresAt),
              details: r.details,
            })),
            opts.json,
          );
        });
      },
    );
  cmd
    .command('add <address...>')
    .description('suppress addresses by hand')
    .requiredOption('--account <name>', 'the account')
    .option('--stream <name>', 'only for this stream (default: the whole account)')
    .option('--reason <reason>', `reason (default manual; ${SUPPRESSION_REASONS.join(', ')})`)
    .option('--details <text>', 'a note')
    .action(
      async (
        addresses: string[],
        opts: { account: string; stream?: string; reason?: string; details?: string },
      ) => {
        await run(globals(), async (s, store) => {
          const account = await requireAccount(store, opts.account);
          const added = await s.add(
            account.id,
            addresses.map((address) => ({
              address,
              ...(opts.stream ? { scope: opts.stream } : {}),
              ...(opts.reason ? { reason: opts.reason as SuppressionReason } : {}),
              ...(opts.details ? { details: opts.details } : {}),
            })),
            'cli',
          );
          process.stdout.write(`${added.length} address(es) suppressed for account "${account.name}"\n`);
        });
      },
    );
  cmd
    .command('remove <address>')
    .description('remove an address from the list')
    .requiredOption('--account <name>', 'the account')
    .option('--stream <name>', 'the stream entry (default: the account-wide one)')
    .action(async (address: string, opts: { account: string; stream?: string }) => {
      await run(globals(), async (s, store) => {
        const account = await requireAccount(store, opts.account);
        if (!(await s.remove(account.id, address, opts.stream ?? ''))) {
          throw new CliError(
            `${address} is not suppressed${opts.stream ? ` for stream ${opts.stream}` : ''}`,
          );
        }
        await recordAudit(store, {
          actor: cliActor(),
          accountId: account.id,
          action: 'suppression.remove',
          target: address.trim().toLowerCase(),
          details: { scope: opts.stream ?? '' },
        });
        process.stdout.write(`${address} removed\n`);
      });
    });
  cmd
    .command('import <file>')
    .description(
      'import CSV (header with address[,scope,reason,details,expires_at], or one address per line)',
    )
    .requiredOption('--account <name>', 'the account')
    .action(async (file: string, opts: { account: string }) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
      }
      await run(globals(), async (s, store) => {
        const account = await requireAccount(store, opts.account);
        const n = await s.importCsv(account.id, text);
        process.stdout.write(`${n} address(es) imported for account "${account.name}"\n`);
      });
    });
  cmd
    .command('export')
    .description('print the whole list as CSV')
    .requiredOption('--account <name>', 'the account')
    .action(async (opts: { account: string }) => {
      await run(globals(), async (s, store) => {
        const account = await requireAccount(store, opts.account);
        process.stdout.write(await s.exportCsv(account.id));
      });
    });
}
