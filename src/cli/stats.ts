import type { Command } from 'commander';
import { requireAccount } from '../auth/accounts.ts';
import type { Rates } from '../stats/counters.ts';
import { parseStatsQuery, readStats, type StatsEntry, StatsQueryError } from '../stats/query.ts';
import type { Account } from '../store/types.ts';
import { CliError, type GlobalOptions, output, withStore } from './context.ts';

const percent = (rate: number | null): string => (rate === null ? '-' : `${(rate * 100).toFixed(2)}%`);

/** One table line: the bucket or TOTAL, the groups, the main counters and rates. */
function line(
  entry: StatsEntry,
  account: string | undefined,
  dims: readonly string[],
): Record<string, unknown> {
  const c = entry.counters;
  const r: Rates = entry.rates;
  return {
    start: entry.start === undefined ? 'TOTAL' : entry.start.replace(':00.000Z', 'Z').replace('T', ' '),
    ...(account === undefined ? {} : { account }),
    ...Object.fromEntries(dims.map((d) => [d, entry[d as keyof StatsEntry] || '-'])),
    accepted: c.accepted,
    delivered: c.delivered,
    deferred: c.deferred,
    hard: c.hard_bounced,
    soft: c.soft_bounced,
    expired: c.expired,
    suppr: c.suppressed,
    compl: c.complained,
    unsub: c.unsubscribed,
    opens: c.opened_human,
    'opens(m)': c.opened_machine,
    clicks: c.clicked,
    'deliv%': percent(r.delivery_rate),
    'bounce%': percent(r.bounce_rate),
    'compl%': percent(r.complaint_rate),
  };
}

/** `postbote stats`: an account's counters per hour or day as a table (or JSON). */
export function registerStats(program: Command, globals: () => GlobalOptions): void {
  program
    .command('stats')
    .description('delivery and engagement statistics per hour or day (from the rolled-up events)')
    .option('--account <name>', 'one account (default: every account, one block each)')
    .option('--from <time>', 'RFC 3339 time or date (default: 24 hours, or 30 days, before --to)')
    .option('--to <time>', 'RFC 3339 time or date, exclusive (default: now)')
    .option('--group-by <dims>', 'comma-separated: stream, tag, domain, provider')
    .option('--interval <hour|day>', 'bucket size', 'hour')
    .option('--totals', 'only the totals over the range, no buckets')
    .option('--json', 'print the API answer (/v1/stats) as JSON')
    .action(
      async (opts: {
        account?: string;
        from?: string;
        to?: string;
        groupBy?: string;
        interval: string;
        totals?: boolean;
        json?: boolean;
      }) => {
        const now = Date.now();
        const params = { group_by: opts.groupBy, from: opts.from, to: opts.to, interval: opts.interval };
        const queryFor = (accountId: string): ReturnType<typeof parseStatsQuery> => {
          try {
            return parseStatsQuery(accountId, params, now);
          } catch (err) {
            if (err instanceof StatsQueryError) {
              throw new CliError(`--${err.field.replace('_', '-')}: ${err.message}`, 2);
            }
            throw err;
          }
        };
        // Bad options are refused even when there is no account to report on.
        queryFor('');
        await withStore(globals(), async (store) => {
          const accounts: Account[] = opts.account
            ? [await requireAccount(store, opts.account)]
            : await store.listAccounts();
          const answers = [];
          for (const account of accounts) {
            const query = queryFor(account.id);
            answers.push({ account, answer: await readStats(store, query) });
          }
          if (opts.json) {
            const body = answers.map(({ account, answer }) => ({ account: account.name, ...answer }));
            process.stdout.write(`${JSON.stringify(opts.account ? body[0] : body, null, 2)}\n`);
            return;
          }
          const first = answers[0]?.answer;
          if (first) {
            process.stdout.write(`${first.interval}ly from ${first.from} to ${first.to} (UTC)\n`);
          }
          const rows: Record<string, unknown>[] = [];
          for (const { account, answer } of answers) {
            const name = opts.account ? undefined : account.name;
            if (!opts.totals) rows.push(...answer.data.map((e) => line(e, name, answer.group_by)));
            rows.push(...answer.totals.map((e) => line(e, name, answer.group_by)));
          }
          output(rows, false);
        });
      },
    );
}
