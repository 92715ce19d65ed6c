import type { Command } from 'commander';
import { createAccount, MAX_WEIGHT, requireAccount, setAccountWeight } from '../auth/accounts.ts';
import { SENDER_POLICIES, type SenderPolicy } from '../store/types.ts';
import { CliError, type GlobalOptions, iso, output, withStore } from './context.ts';

function senderPolicy(value: string): SenderPolicy {
  if (!(SENDER_POLICIES as readonly string[]).includes(value)) {
    throw new CliError(`sender policy must be one of ${SENDER_POLICIES.join(', ')}, not "${value}"`, 2);
  }
  return value as SenderPolicy;
}

export function registerAccounts(program: Command, globals: () => GlobalOptions): void {
  const accounts = program.command('accounts').description('manage accounts (tenants)');
  accounts
    .command('create <name>')
    .description('create an account')
    .option(
      '--sender-policy <policy>',
      'verified (default): it may send only as its verified domains; any: as any domain',
    )
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean; senderPolicy?: string }) => {
      const policy = opts.senderPolicy === undefined ? undefined : senderPolicy(opts.senderPolicy);
      await withStore(globals(), async (store) => {
        let account = await createAccount(store, name, Date.now());
        if (policy && policy !== account.senderPolicy) {
          await store.setAccountSenderPolicy(account.id, policy);
          account = { ...account, senderPolicy: policy };
        }
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
          senderPolicy: a.senderPolicy,
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
  accounts
    .command('set-sender-policy <name> <policy>')
    .description('verified: the account may send only as its verified domains (default); any: as any domain')
    .option('--json', 'print JSON')
    .action(async (name: string, value: string, opts: { json?: boolean }) => {
      const policy = senderPolicy(value);
      await withStore(globals(), async (store) => {
        const account = await requireAccount(store, name);
        await store.setAccountSenderPolicy(account.id, policy);
        if (opts.json) output([{ name: account.name, senderPolicy: policy }], true);
        else process.stdout.write(`account "${account.name}" now has sender policy ${policy}\n`);
      });
    });
}
