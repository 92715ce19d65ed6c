import type { Command } from 'commander';
import { requireAccount } from '../auth/accounts.ts';
import { createStream, isStreamKind, nameProblem, normaliseStreamName } from '../auth/streams.ts';
import { STREAM_KINDS } from '../store/types.ts';
import { CliError, type GlobalOptions, iso, output, withStore } from './context.ts';

interface CreateOptions {
  account: string;
  kind: string;
  pool?: string;
  json?: boolean;
}

export function registerStreams(program: Command, globals: () => GlobalOptions): void {
  const streams = program
    .command('streams')
    .description('manage streams: the lanes of an account (transactional before broadcast)');
  streams
    .command('create <stream>')
    .description('create a stream; messages name it in X-Postbote-Stream or through a credential default')
    .requiredOption('--account <name>', 'the account it belongs to')
    .requiredOption('--kind <kind>', `${STREAM_KINDS.join(' or ')}`)
    .option('--pool <pool>', "the egress pool its mail leaves from (default: the kind's default pool)")
    .option('--json', 'print JSON')
    .action(async (name: string, opts: CreateOptions) => {
      if (!isStreamKind(opts.kind)) throw new CliError(`--kind must be ${STREAM_KINDS.join(' or ')}`, 2);
      const problem =
        nameProblem('stream', normaliseStreamName(name)) ??
        (opts.pool === undefined ? undefined : nameProblem('pool', normaliseStreamName(opts.pool)));
      if (problem) throw new CliError(problem, 2);
      await withStore(globals(), async (store, config) => {
        // Pools come from the config (egress.pools): a stream naming another would not send.
        if (opts.pool !== undefined && opts.pool !== '' && !(opts.pool in config.egress.pools)) {
          const known = Object.keys(config.egress.pools).join(', ');
          throw new CliError(
            `--pool: no egress pool named "${opts.pool}" in the configuration (egress.pools: ${known})`,
            2,
          );
        }
        const account = await requireAccount(store, opts.account);
        const stream = await createStream(
          store,
          account,
          { name, kind: opts.kind, ...(opts.pool === undefined ? {} : { pool: opts.pool }) },
          Date.now(),
        );
        const row = { account: account.name, name: stream.name, kind: stream.kind, pool: stream.pool };
        if (opts.json) output([{ ...row, createdAt: iso(stream.createdAt) }], true);
        else
          process.stdout.write(
            `${stream.kind} stream "${stream.name}" created for account "${account.name}"` +
              `${stream.pool ? ` (pool ${stream.pool})` : ''}\n`,
          );
      });
    });
  streams
    .command('list')
    .description("list an account's streams, the defaults (outbound, broadcast) included")
    .requiredOption('--account <name>', 'the account')
    .option('--json', 'print JSON')
    .action(async (opts: { account: string; json?: boolean }) => {
      await withStore(globals(), async (store) => {
        const account = await requireAccount(store, opts.account);
        output(
          (await store.listStreams(account.id)).map((s) => ({
            name: s.name,
            kind: s.kind,
            pool: opts.json ? s.pool : s.pool || '(default)',
            default: s.isDefault,
            createdAt: iso(s.createdAt),
          })),
          opts.json,
        );
      });
    });
}
