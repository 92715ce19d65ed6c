import type { Command } from 'commander';
import { cliActor, createAudit } from '../audit/audit.ts';
import { requireAccount } from '../auth/accounts.ts';
import { createPrivacy, PrivacyError } from '../privacy/privacy.ts';
import { CliError, type GlobalOptions, iso, output, withStore } from './context.ts';

/** `postbote privacy export|erase EMAIL [--account NAME]`: data-protection requests (privacy/privacy.ts). */
export function registerPrivacy(program: Command, globals: () => GlobalOptions): void {
  const privacy = program.command('privacy').description('export or erase what is stored about one address');
  const run = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof PrivacyError) throw new CliError(err.message, 2);
      throw err;
    }
  };
  privacy
    .command('export <email>')
    .description(
      'print everything stored about the address as JSON (messages, its events, suppressions, mentions)',
    )
    .option('--account <name>', 'only this account (default: every account)')
    .action(async (email: string, opts: { account?: string }) => {
      await withStore(globals(), async (store, config) => {
        const account = opts.account === undefined ? undefined : await requireAccount(store, opts.account);
        const service = createPrivacy({ store, exportLimit: config.privacy.export_limit });
        const result = await run(() =>
          service.exportAddress({ email, ...(account ? { accountId: account.id } : {}) }),
        );
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      });
    });
  privacy
    .command('erase <email>')
    .description(
      'erase the address: messages naming it, its events and other mentions; its suppressions stay as a salted hash',
    )
    .option('--account <name>', 'only this account (default: every account)')
    .option('--yes', 'do it (without --yes nothing is erased)')
    .option('--json', 'print JSON')
    .action(async (email: string, opts: { account?: string; yes?: boolean; json?: boolean }) => {
      if (!opts.yes) throw new CliError('erasure cannot be undone: add --yes to erase', 2);
      await withStore(globals(), async (store) => {
        const account = opts.account === undefined ? undefined : await requireAccount(store, opts.account);
        const service = createPrivacy({ store, audit: createAudit({ store }) });
        const result = await run(() =>
          service.erase({ email, actor: cliActor(), ...(account ? { accountId: account.id } : {}) }),
        );
        if (opts.json) {
          output([{ ...result }], true);
          return;
        }
        process.stdout.write(
          `erased: ${result.messages} message(s); ${result.suppressionsHashed} suppression(s) kept as ${result.token}\n` +
            Object.entries(result.tables)
              .map(([table, n]) => `  ${table}: ${n} row(s)\n`)
              .join(''),
        );
      });
    });
}

/** `postbote audit [--account NAME]`: the audit trail, newest first. */
export function registerAudit(program: Command, globals: () => GlobalOptions): void {
  program
    .command('audit')
    .description(
      'who changed what: credentials, domains, suppressions, pauses, retention, erasures (newest first)',
    )
    .option('--account <name>', 'only this account')
    .option('--limit <n>', 'at most this many entries (default 50)', '50')
    .option('--json', 'print JSON')
    .action(async (opts: { account?: string; limit: string; json?: boolean }) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw new CliError('--limit must be a whole number from 1 to 1000', 2);
      }
      await withStore(globals(), async (store) => {
        const account = opts.account === undefined ? undefined : await requireAccount(store, opts.account);
        const names = new Map((await store.listAccounts()).map((a) => [a.id, a.name]));
        const rows = await store.listAudit({ limit, ...(account ? { accountId: account.id } : {}) });
        output(
          rows.map((e) => ({
            at: iso(e.at),
            actor: e.actor,
            account: names.get(e.accountId) ?? e.accountId,
            action: e.action,
            target: e.target,
            details: opts.json ? e.details : JSON.stringify(e.details),
          })),
          opts.json,
        );
      });
    });
}
