import type { Command } from 'commander';
import { createAccount } from '../auth/accounts.ts';
import { type GlobalOptions, iso, output, withStore } from './context.ts';

export function registerAccounts(program: Command, globals: () => GlobalOptions): void {
  const accounts = program.command('accounts').description('manage accounts (tenants)');
  accounts
    .command('create <name>')
    .description('create an account')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const account = await createAccount(store, name, Date.now());
        if (opts.json) output([{ ...account, createdAt: iso(account.createdAt) }], true);
        else process.stdout.write(`account "${account.name}" created (id ${account.id})\n`);
      });
    });
  accounts
    .command('list')
    .description('list accounts')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const rows = (await store.listAccounts()).map((a) => ({
          id: a.id,
          name: a.name,
          paused: a.paused,
          createdAt: iso(a.createdAt),
        }));
        output(rows, opts.json);
      });
    });
}
