import type { Command } from 'commander';
import { cliActor, recordAudit } from '../audit/audit.ts';
import { requireAccount } from '../auth/accounts.ts';
import type { Store } from '../store/store.ts';
import { webhookSettings } from '../webhooks/settings.ts';
import { createWebhooks, WebhookError, type Webhooks, type WebhookView } from '../webhooks/webhooks.ts';
import { CliError, type GlobalOptions, iso, output, withStore } from './context.ts';

async function run<T>(globals: GlobalOptions, fn: (w: Webhooks, store: Store) => Promise<T>): Promise<T> {
  return withStore(globals, async (store, config) => {
    try {
      return await fn(createWebhooks({ store, settings: webhookSettings(config) }), store);
    } catch (err) {
      if (err instanceof WebhookError) throw new CliError(`${err.message} (${err.field})`);
      throw err;
    }
  });
}

const view = (w: WebhookView) => ({
  id: w.id,
  url: w.url,
  events: w.eventTypes.length ? w.eventTypes.join(',') : 'all',
  enabled: w.enabled ? 'yes' : `no (${w.disabledReason})`,
  failing_since: iso(w.failingSince),
  created: iso(w.createdAt),
});

/** `postbote webhooks …`: an account's webhook endpoints. */
export function registerWebhooks(program: Command, globals: () => GlobalOptions): void {
  const cmd = program.command('webhooks').description('endpoints that receive the events, signed');
  cmd
    .command('create')
    .description('add an endpoint; prints its signing secret (shown this once)')
    .requiredOption('--account <name>', 'the account')
    .requiredOption('--url <url>', 'http(s) URL of the receiver')
    .option('--events <types>', 'comma-separated event types (default: all)')
    .option('--json', 'print JSON')
    .action(async (opts: { account: string; url: string; events?: string; json?: boolean }) => {
      await run(globals(), async (w, store) => {
        const account = await requireAccount(store, opts.account);
        const created = await w.create({
          accountId: account.id,
          url: opts.url,
          ...(opts.events ? { events: opts.events.split(',').map((t) => t.trim()) } : {}),
        });
        await recordAudit(store, {
          actor: cliActor(),
          accountId: account.id,
          action: 'webhook.create',
          target: created.id,
          details: { url: created.url },
        });
        output([{ ...view(created), secret: created.secret }], opts.json);
      });
    });
  cmd
    .command('list')
    .description("an account's endpoints (never their secrets)")
    .requiredOption('--account <name>', 'the account')
    .option('--json', 'print JSON')
    .action(async (opts: { account: string; json?: boolean }) => {
      await run(globals(), async (w, store) => {
        const account = await requireAccount(store, opts.account);
        output((await w.list(account.id)).map(view), opts.json);
      });
    });
  cmd
    .command('delete <id>')
    .description('remove an endpoint (its pending batches are dropped)')
    .requiredOption('--account <name>', 'the account')
    .action(async (id: string, opts: { account: string }) => {
      await run(globals(), async (w, store) => {
        const account = await requireAccount(store, opts.account);
        await w.remove(account.id, id);
        await recordAudit(store, {
          actor: cliActor(),
          accountId: account.id,
          action: 'webhook.delete',
          target: id,
        });
        process.stdout.write(`deleted ${id}\n`);
      });
    });
  cmd
    .command('test <id>')
    .description('send a sample event now and show the answer')
    .requiredOption('--account <name>', 'the account')
    .action(async (id: string, opts: { account: string }) => {
      await run(globals(), async (w, store) => {
        const r = await w.test((await requireAccount(store, opts.account)).id, id);
        const ok = r.status >= 200 && r.status < 300;
        process.stdout.write(`${ok ? 'ok' : 'failed'}: ${r.status || '-'} ${r.error} (${r.durationMs} ms)\n`);
        if (!ok) process.exitCode = 1;
      });
    });
  cmd
    .command('replay <id>')
    .description('queue the events of a range again for an endpoint')
    .requiredOption('--account <name>', 'the account')
    .option('--from-event <id>', 'first event id (inclusive)')
    .option('--to-event <id>', 'last event id (inclusive)')
    .option('--from <time>', 'RFC 3339, inclusive (instead of --from-event)')
    .option('--to <time>', 'RFC 3339, exclusive')
    .action(
      async (
        id: string,
        opts: { account: string; fromEvent?: string; toEvent?: string; from?: string; to?: string },
      ) => {
        const num = (v: string | undefined, name: string): number | undefined => {
          if (v === undefined) return undefined;
          if (!/^\d{1,15}$/.test(v)) throw new CliError(`${name} must be an event id`, 2);
          return Number(v);
        };
        const range = {
          fromEventId: num(opts.fromEvent, '--from-event'),
          toEventId: num(opts.toEvent, '--to-event'),
          from: opts.from,
          to: opts.to,
        };
        await run(globals(), async (w, store) => {
          const r = await w.replay(
            (await requireAccount(store, opts.account)).id,
            id,
            Object.fromEntries(Object.entries(range).filter(([, v]) => v !== undefined)),
          );
          process.stdout.write(
            `queued ${r.events} events in ${r.batches} batches${r.nextFromEventId === null ? '' : `; more from event ${r.nextFromEventId}`}\n`,
          );
        });
      },
    );
}
