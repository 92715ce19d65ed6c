import type { Command } from 'commander';
import { cliActor, createAudit } from '../audit/audit.ts';
import { createAccount, MAX_WEIGHT, requireAccount, setAccountWeight } from '../auth/accounts.ts';
import { formatDuration, parseDuration } from '../config/duration.ts';
import type { Config } from '../config/schema.ts';
import { createGuard, thresholdsFromConfig } from '../guard/guard.ts';
import type { Store } from '../store/store.ts';
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
  registerGuardCommands(accounts, globals);
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

/** A guard for a CLI command: pauses and resumes are the operator's (`cli:<user>` in the audit trail). */
function cliGuard(store: Store, config: Config) {
  const clock = Date.now;
  return createGuard({
    store,
    clock,
    thresholds: thresholdsFromConfig(config.guard),
    audit: createAudit({ store, clock }),
  });
}

/** `--bodies 30d` / `--metadata default`: milliseconds, or null for the configured default. */
function retentionValue(value: string | undefined, flag: string): number | null | undefined {
  if (value === undefined) return undefined;
  if (value === 'default') return null;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0)
    throw new CliError(`${flag} must be a duration such as 30d or 12h, or default`, 2);
  return ms;
}

/** accounts pause | resume | status | set-retention (the reputation guard and data protection). */
function registerGuardCommands(accounts: Command, globals: () => GlobalOptions): void {
  accounts
    .command('pause <name>')
    .description('pause sending: new mail is accepted and held until resumed (the account, or --stream)')
    .option('--stream <stream>', 'pause only this stream')
    .option('--reason <text>', 'why (shown in status, events and the audit trail)')
    .action(async (name: string, opts: { stream?: string; reason?: string }) => {
      await withStore(globals(), async (store, config) => {
        const account = await requireAccount(store, name);
        const stream = (opts.stream ?? '').trim().toLowerCase();
        const changed = await cliGuard(store, config).pause({
          accountId: account.id,
          stream,
          actor: cliActor(),
          reason: opts.reason ?? 'paused by an operator',
        });
        const what = stream ? `stream ${stream} of account "${account.name}"` : `account "${account.name}"`;
        process.stdout.write(changed ? `${what} paused: new mail is held\n` : `${what} was paused already\n`);
      });
    });
  accounts
    .command('resume <name>')
    .description(
      'resume sending and release the mail held meanwhile (the account and its streams, or --stream)',
    )
    .option('--stream <stream>', 'resume only this stream')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { stream?: string; json?: boolean }) => {
      await withStore(globals(), async (store, config) => {
        const account = await requireAccount(store, name);
        const stream = opts.stream === undefined ? undefined : opts.stream.trim().toLowerCase();
        const result = await cliGuard(store, config).resume({
          accountId: account.id,
          ...(stream === undefined ? {} : { stream }),
          actor: cliActor(),
        });
        if (opts.json) {
          output([{ name: account.name, resumed: result.resumed, released: result.released }], true);
          return;
        }
        if (result.resumed.length === 0) {
          process.stdout.write(
            `nothing of account "${account.name}" was paused; ${result.released} held recipient(s) released\n`,
          );
          return;
        }
        const what = result.resumed.map((s) => (s === '' ? 'the account' : `stream ${s}`)).join(', ');
        process.stdout.write(
          `account "${account.name}": resumed ${what}; ${result.released} held recipient(s) released\n`,
        );
      });
    });
  accounts
    .command('status <name>')
    .description("the account's pauses and warnings, its held mail and its retention")
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      await withStore(globals(), async (store, config) => {
        const account = await requireAccount(store, name);
        const states = await store.listGuardStates(account.id);
        const held = (await store.heldSummary()).filter((h) => h.accountId === account.id);
        const retention = (await store.listAccountRetention()).find((r) => r.accountId === account.id);
        const rows = states.map((s) => ({
          stream: s.stream === '' ? '(account)' : s.stream,
          paused: s.pausedAt !== null,
          pausedAt: iso(s.pausedAt),
          pausedBy: s.pausedBy,
          reason: s.reason,
          resumedAt: iso(s.resumedAt),
          warnedAt: iso(s.warnedAt),
        }));
        if (opts.json) {
          output(
            [
              {
                name: account.name,
                paused: account.paused,
                streams: rows,
                held,
                retention: {
                  bodies: formatDuration(retention?.bodiesMs ?? config.retention.bodies),
                  metadata: formatDuration(retention?.metadataMs ?? config.retention.metadata),
                },
              },
            ],
            true,
          );
          return;
        }
        if (rows.length > 0) output(rows, false);
        else process.stdout.write(`account "${account.name}" has never been paused or warned\n`);
        for (const h of held) {
          process.stdout.write(
            `held: ${h.count} recipient(s) of stream ${h.stream} (${h.reason || 'route'})\n`,
          );
        }
        process.stdout.write(
          `retention: bodies ${formatDuration(retention?.bodiesMs ?? config.retention.bodies)}${retention?.bodiesMs != null ? '' : ' (default)'}, ` +
            `metadata ${formatDuration(retention?.metadataMs ?? config.retention.metadata)}${retention?.metadataMs != null ? '' : ' (default)'}\n`,
        );
      });
    });
  accounts
    .command('set-retention <name>')
    .description(
      "the account's own retention of finished messages (default: retention.bodies and retention.metadata)",
    )
    .option('--bodies <duration>', 'delete bodies after this (e.g. 3d), or default')
    .option('--metadata <duration>', 'delete messages with their events after this (e.g. 30d), or default')
    .action(async (name: string, opts: { bodies?: string; metadata?: string }) => {
      const bodies = retentionValue(opts.bodies, '--bodies');
      const metadata = retentionValue(opts.metadata, '--metadata');
      if (bodies === undefined && metadata === undefined)
        throw new CliError('give --bodies and/or --metadata', 2);
      await withStore(globals(), async (store, config) => {
        const account = await requireAccount(store, name);
        const current = (await store.listAccountRetention()).find((r) => r.accountId === account.id);
        const next = {
          accountId: account.id,
          bodiesMs: bodies === undefined ? (current?.bodiesMs ?? null) : bodies,
          metadataMs: metadata === undefined ? (current?.metadataMs ?? null) : metadata,
        };
        const effectiveBodies = next.bodiesMs ?? config.retention.bodies;
        const effectiveMetadata = next.metadataMs ?? config.retention.metadata;
        if (effectiveBodies > effectiveMetadata) {
          throw new CliError(
            `bodies (${formatDuration(effectiveBodies)}) must not be kept longer than metadata (${formatDuration(effectiveMetadata)})`,
            2,
          );
        }
        await store.setAccountRetention(next);
        await createAudit({ store }).record({
          actor: cliActor(),
          accountId: account.id,
          action: 'account.set_retention',
          target: account.name,
          details: { bodiesMs: next.bodiesMs, metadataMs: next.metadataMs },
        });
        process.stdout.write(
          `account "${account.name}" keeps bodies ${formatDuration(effectiveBodies)} and messages ${formatDuration(effectiveMetadata)}\n`,
        );
      });
    });
}
