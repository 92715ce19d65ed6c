import type { Command } from 'commander';
import { createAccount, MAX_WEIGHT, requireAccount, setAccountWeight } from '../auth/accounts.ts';
import { CliError, type GlobalOptions, iso, output, withStore } from './context.ts';

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
          weight: a.weight,
          createdAt: iso(a.createdAt),
        }));
        output(rows, opts.json);
      });
    });
  accounts
    .command('set-weight <name> <weight>')
    .description(
      `set the account's share of each lane against other accounts with due mail (1-${MAX_WEIGHT}, default 1)`,
    )
    .option('--json', 'print JSON')
    .action(async (name: string, value: string, opts: { json?: boolean }) => {
      const weight = Number(value);
      if (!/^\d+$/.test(value) || weight < 1 || weight > MAX_WEIGHT) {
        throw new CliError(`weight must be a whole number from 1 to ${MAX_WEIGHT}, not "${value}"`, 2);
      }
      await withStore(globals(), async (store) => {
        const account = await setAccountWeight(store, await requireAccount(store, name), weight);
        if (opts.json) output([{ name: account.name, weight: account.weight }], true);
        else process.stdout.write(`account "${account.name}" now has weight ${account.weight}\n`);
      });
    });
}
