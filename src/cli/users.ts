import type { Command } from 'commander';
import { cliActor, recordAudit } from '../audit/audit.ts';
import { requireAccount } from '../auth/accounts.ts';
import {
  createDashboardUser,
  DASHBOARD_ROLES,
  requireDashboardUser,
  resetDashboardPassword,
} from '../dashboard/users.ts';
import type { DashboardRole } from '../store/types.ts';
import { CliError, type GlobalOptions, iso, output, withStore } from './context.ts';

/** The first line of stdin (`--password-stdin`), without its line end; bounded. */
async function readPasswordFromStdin(): Promise<string> {
  if (process.stdin.isTTY)
    throw new CliError('--password-stdin reads a pipe: echo "$PASSWORD" | postbote users …', 2);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += b.length;
    if (size > 4096) throw new CliError('the password on stdin is longer than 4096 bytes', 2);
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return (text.split(/\r?\n/)[0] ?? '').trimEnd();
}

function printPassword(password: string | undefined): void {
  if (password === undefined) return;
  process.stdout.write(`  password: ${password}\n  The password is shown only now; it is stored hashed.\n`);
}

/** `postbote users`: the people who log in to the web dashboard. */
export function registerUsers(program: Command, globals: () => GlobalOptions): void {
  const users = program.command('users').description('manage web dashboard users');
  users
    .command('create')
    .description('create a dashboard user; without --password-stdin a password is generated and shown once')
    .requiredOption('--account <name>', 'the account the user sees and manages')
    .requiredOption('--email <address>', 'the login name')
    .option(
      '--role <role>',
      `${DASHBOARD_ROLES.join(' or ')} (admin: everything; viewer: read only)`,
      'admin',
    )
    .option('--password-stdin', 'read the password from the first line of stdin')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        account: string;
        email: string;
        role: string;
        passwordStdin?: boolean;
        json?: boolean;
      }) => {
        if (!(DASHBOARD_ROLES as readonly string[]).includes(opts.role))
          throw new CliError(`--role must be one of ${DASHBOARD_ROLES.join(', ')}`, 2);
        const password = opts.passwordStdin ? await readPasswordFromStdin() : undefined;
        await withStore(globals(), async (store) => {
          const account = await requireAccount(store, opts.account);
          const now = Date.now();
          const { user, generatedPassword } = await createDashboardUser(
            store,
            {
              account,
              email: opts.email,
              role: opts.role as DashboardRole,
              ...(password === undefined ? {} : { password }),
            },
            now,
          );
          await recordAudit(store, {
            actor: cliActor(),
            accountId: account.id,
            action: 'dashboard_user.create',
            target: user.email,
            details: { role: user.role },
          });
          if (opts.json) {
            output(
              [
                {
                  id: user.id,
                  account: account.name,
                  email: user.email,
                  role: user.role,
                  ...(generatedPassword === undefined ? {} : { password: generatedPassword }),
                },
              ],
              true,
            );
            return;
          }
          process.stdout.write(
            `dashboard user ${user.email} (${user.role}) created for account "${account.name}"\n`,
          );
          printPassword(generatedPassword);
        });
      },
    );
  users
    .command('list')
    .description('list dashboard users')
    .option('--account <name>', 'only this account')
    .option('--json', 'print JSON')
    .action(async (opts: { account?: string; json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const account = opts.account === undefined ? undefined : await requireAccount(store, opts.account);
        const accounts = new Map((await store.listAccounts()).map((a) => [a.id, a.name]));
        const list = await store.listDashboardUsers(account?.id);
        output(
          list.map((u) => ({
            email: u.email,
            account: accounts.get(u.accountId) ?? u.accountId,
            role: u.role,
            created: iso(u.createdAt),
            password_changed: iso(u.passwordChangedAt),
          })),
          opts.json,
        );
      });
    });
  users
    .command('delete')
    .description('delete a dashboard user (its sessions end at once)')
    .argument('<email>')
    .action(async (email: string) => {
      await withStore(globals(), async (store) => {
        const user = await requireDashboardUser(store, email);
        await store.deleteDashboardUser(user.id);
        await recordAudit(store, {
          actor: cliActor(),
          accountId: user.accountId,
          action: 'dashboard_user.delete',
          target: user.email,
        });
        process.stdout.write(`dashboard user ${user.email} deleted\n`);
      });
    });
  users
    .command('reset-password')
    .description('set a new password (generated unless --password-stdin); the user’s sessions end')
    .argument('<email>')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .action(async (email: string, opts: { passwordStdin?: boolean }) => {
      const password = opts.passwordStdin ? await readPasswordFromStdin() : undefined;
      await withStore(globals(), async (store) => {
        const user = await requireDashboardUser(store, email);
        const { generatedPassword } = await resetDashboardPassword(store, user, password, Date.now());
        await recordAudit(store, {
          actor: cliActor(),
          accountId: user.accountId,
          action: 'dashboard_user.reset_password',
          target: user.email,
        });
        process.stdout.write(`password of ${user.email} changed; its sessions ended\n`);
        printPassword(generatedPassword);
      });
    });
}
