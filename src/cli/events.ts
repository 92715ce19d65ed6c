import type { Command } from 'commander';
import { requireAccount } from '../auth/accounts.ts';
import { eventCsvHeader, eventCsvRow } from '../events/csv.ts';
import { createEventFeed } from '../events/feed.ts';
import { EventQueryError, type EventQueryInput, parseEventQuery } from '../events/query.ts';
import { internalEventType, isPublicEventType, PUBLIC_EVENT_TYPES, toPublicEvent } from '../events/schema.ts';
import type { EnrichedEventRow } from '../store/types.ts';
import { CliError, type GlobalOptions, output, withStore } from './context.ts';

const row = (e: EnrichedEventRow) => {
  const p = toPublicEvent(e);
  const reply = (e.data.reply as { code?: number; text?: string } | undefined) ?? undefined;
  return {
    id: p.id,
    at: p.at,
    type: p.type,
    message: p.message_id || '-',
    recipient: p.recipient,
    stream: p.stream || '-',
    details: reply
      ? `${reply.code ?? ''} ${reply.text ?? ''}`.trim()
      : Object.keys(p.details).length
        ? p.details
        : null,
  };
};

/** `postbote events …`: an account's event log, listed or followed live. */
export function registerEvents(program: Command, globals: () => GlobalOptions): void {
  const cmd = program.command('events').description('the event log: what happened to every message');
  cmd
    .command('list')
    .description("an account's events, newest first")
    .requiredOption('--account <name>', 'the account')
    .option('--type <types>', `comma-separated (${PUBLIC_EVENT_TYPES.join(', ')})`)
    .option('--recipient <address>', 'only this recipient')
    .option('--message <id>', 'only this message')
    .option('--tag <tag>', 'only messages with this tag')
    .option('--stream <name>', 'only this stream')
    .option('--from <time>', 'RFC 3339 or epoch ms, inclusive')
    .option('--to <time>', 'RFC 3339 or epoch ms, exclusive')
    .option('--limit <n>', 'at most this many (1-1000)', '50')
    .option('--csv', 'print CSV (the API export format)')
    .option('--json', 'print JSON (the API format)')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      await withStore(globals(), async (store) => {
        const account = await requireAccount(store, String(opts.account));
        const q: EventQueryInput = {};
        for (const [key, opt] of [
          ['type', 'type'],
          ['recipient', 'recipient'],
          ['message_id', 'message'],
          ['tag', 'tag'],
          ['stream', 'stream'],
          ['from', 'from'],
          ['to', 'to'],
          ['limit', 'limit'],
        ] as const) {
          if (typeof opts[opt] === 'string') q[key] = opts[opt] as string;
        }
        let filter: ReturnType<typeof parseEventQuery>;
        try {
          filter = parseEventQuery(account.id, q, { defaultLimit: 50, maxLimit: 1000 });
        } catch (err) {
          if (err instanceof EventQueryError) throw new CliError(`--${err.field}: ${err.message}`, 2);
          throw err;
        }
        const events = await store.listEvents(filter);
        if (opts.csv) {
          process.stdout.write(eventCsvHeader() + events.map((e) => eventCsvRow(toPublicEvent(e))).join(''));
        } else if (opts.json) {
          process.stdout.write(`${JSON.stringify(events.map(toPublicEvent), null, 2)}\n`);
        } else {
          output(events.map(row), false);
        }
      });
    });

  cmd
    .command('tail')
    .description('follow new events live (every account, or one); Ctrl-C ends it')
    .option('--account <name>', 'only this account')
    .option('--type <types>', 'only these types (comma-separated)')
    .option('--interval <ms>', 'how often to look for new events', '500')
    .option('--json', 'one JSON event per line')
    .action(async (opts: { account?: string; type?: string; interval: string; json?: boolean }) => {
      const types = opts.type?.split(',').map((t) => t.trim());
      for (const t of types ?? []) {
        if (!isPublicEventType(t)) throw new CliError(`--type: unknown event type "${t}"`, 2);
      }
      const wanted = types ? new Set(types.map((t) => internalEventType(t as never) as string)) : undefined;
      const interval = Number(opts.interval);
      if (!Number.isInteger(interval) || interval < 50 || interval > 60_000)
        throw new CliError('--interval must be 50-60000 (ms)', 2);
      await withStore(globals(), async (store) => {
        const accountId = opts.account ? (await requireAccount(store, opts.account)).id : undefined;
        // Its own position in memory only: tailing never moves a consumer's persisted cursor.
        const feed = createEventFeed({ store, name: 'tail', start: 'end', ephemeral: true });
        let stopped = false;
        const stop = (): void => {
          stopped = true;
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        while (!stopped) {
          const events = await feed.read(500);
          for (const e of events) {
            if (accountId !== undefined && e.accountId !== accountId) continue;
            if (wanted && !wanted.has(e.type)) continue;
            const r = row(e);
            process.stdout.write(
              opts.json
                ? `${JSON.stringify(toPublicEvent(e))}\n`
                : `${r.at}  ${r.type.padEnd(12)} ${r.message}  ${r.recipient ?? '-'}  ${r.details === null ? '' : typeof r.details === 'string' ? r.details : JSON.stringify(r.details)}\n`,
            );
          }
          const last = events.at(-1);
          if (last) await feed.ack(last.id);
          if (events.length < 500) await new Promise((resolve) => setTimeout(resolve, interval));
        }
      });
    });
}
