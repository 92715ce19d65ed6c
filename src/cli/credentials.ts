import type { Command } from 'commander';
import { cliActor, recordAudit } from '../audit/audit.ts';
import { type CredentialRequest, createCredential, requireAccount } from '../auth/accounts.ts';
import type { ApiScope } from '../auth/scopes.ts';
import { nameProblem, normaliseStreamName } from '../auth/streams.ts';
import { CliError, type GlobalOptions, iso, output, withStore } from './context.ts';

interface CreateOptions {
  account: string;
  smtp?: string;
  api?: boolean;
  ip?: string;
  stream?: string;
  scopes?: string;
  json?: boolean;
}

export function registerCredentials(program: Command, globals: () => GlobalOptions): void {
  const credentials = program
    .command('credentials')
    .description('manage SMTP logins, API keys and IP credentials');
  credentials
    .command('create')
    .description('create a credential; its secret is shown once')
    .requiredOption('--account <name>', 'the account it belongs to')
    .option('--smtp <username>', 'an SMTP AUTH username (a password is generated)')
    .option('--api', 'an API key')
    .option('--ip <cidrs>', 'comma-separated CIDRs allowed to relay without AUTH')
    .option('--stream <name>', 'the stream of messages that name none (default: outbound); must exist')
    .option('--scopes <list>', 'API keys: what it may do, from send,read,admin (default: send,read)')
    .option('--json', 'print JSON')
    .action(async (opts: CreateOptions) => {
      if (opts.scopes !== undefined && !opts.api)
        throw new CliError('--scopes applies to API keys (--api) only', 2);
      const kinds = [opts.smtp !== undefined, opts.api === true, opts.ip !== undefined].filter(
        Boolean,
      ).length;
      if (kinds !== 1) throw new CliError('give exactly one of --smtp USER, --api or --ip CIDR[,CIDR]', 2);
      const problem =
        opts.stream === undefined ? undefined : nameProblem('stream', normaliseStreamName(opts.stream));
      if (problem) throw new CliError(problem, 2);
      const request: CredentialRequest = {
        ...(opts.smtp !== undefined
          ? { kind: 'smtp', username: opts.smtp }
          : opts.api
            ? {
                kind: 'api',
                ...(opts.scopes === undefined
                  ? {}
                  : {
                      scopes: opts.scopes
                        .split(',')
                        .map((s) => s.trim())
                        .filter(Boolean) as ApiScope[],
                    }),
              }
            : { kind: 'ip', cidrs: (opts.ip ?? '').split(',').filter((c) => c.trim() !== '') }),
        ...(opts.stream === undefined ? {} : { stream: opts.stream }),
      };
      await withStore(globals(), async (store) => {
        const account = await requireAccount(store, opts.account);
        const { credential, secret } = await createCredential(store, account, request, Date.now());
        await recordAudit(store, {
          actor: cliActor(),
          accountId: account.id,
          action: 'credential.create',
          target: credential.id,
          details: { kind: credential.kind, name: credential.name },
        });
        const row = {
          id: credential.id,
          account: account.name,
          kind: credential.kind,
          name: credential.name,
          stream: credential.defaultStream || 'outbound',
          ...(credential.kind === 'api' ? { scopes: credential.scopes } : {}),
          ...(credential.kind === 'ip' ? { cidrs: credential.cidrs } : {}),
          ...(secret !== undefined ? { secret } : {}),
        };
        if (opts.json) {
          output([row], true);
          return;
        }
        process.stdout.write(
          `${credential.kind} credential created (id ${credential.id}) for account "${account.name}"\n`,
        );
        if (credential.kind === 'smtp') {
          process.stdout.write(`  username: ${credential.name}\n  password: ${secret}\n`);
        } else if (credential.kind === 'api') {
          process.stdout.write(`  api key:  ${secret}\n  scopes:   ${credential.scopes.join(',')}\n`);
        } else {
          process.stdout.write(`  allowed:  ${credential.cidrs.join(', ')}\n`);
        }
        if (credential.defaultStream) process.stdout.write(`  stream:   ${credential.defaultStream}\n`);
        if (secret !== undefined)
          process.stdout.write('  The secret is shown only now; it is stored hashed.\n');
      });
    });
  credentials
    .command('list')
    .description('list credentials (secrets are never shown)')
    .option('--account <name>', 'only this account')
    .option('--all', 'include revoked credentials')
    .option('--json', 'print JSON')
    .action(async (opts: { account?: string; all?: boolean; json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const accounts = new Map((await store.listAccounts()).map((a) => [a.id, a.name]));
        const accountId = opts.account ? (await requireAccount(store, opts.account)).id : undefined;
        const list = await store.listCredentials({
          ...(accountId ? { accountId } : {}),
          ...(opts.all ? { includeRevoked: true } : {}),
        });
        output(
          list.map((c) => ({
            id: c.id,
            account: accounts.get(c.accountId) ?? c.accountId,
            kind: c.kind,
            name: c.name,
            stream: c.defaultStream || 'outbound',
            scopes: c.kind === 'api' ? c.scopes.join(',') : '',
            createdAt: iso(c.createdAt),
            revokedAt: iso(c.revokedAt),
          })),
          opts.json,
        );
      });
    });
  credentials
    .command('revoke <id>')
    .description('revoke a credential')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const existing = await store.getCredential(id);
        if (!existing) throw new CliError(`no credential with id ${id} (see: postbote credentials list)`);
        const revoked = await store.revokeCredential(id, Date.now());
        if (revoked)
          await recordAudit(store, {
            actor: cliActor(),
            accountId: existing.accountId,
            action: 'credential.revoke',
            target: id,
            details: { kind: existing.kind, name: existing.name },
          });
        if (opts.json) output([{ id, revoked }], true);
        else
          process.stdout.write(
            revoked ? `credential ${id} revoked\n` : `credential ${id} was already revoked\n`,
          );
      });
    });
}
