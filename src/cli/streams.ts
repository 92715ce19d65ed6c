import type { Command } from 'commander';
import { requireAccount } from '../auth/accounts.ts';
import {
  createStream,
  isStreamKind,
  nameProblem,
  normaliseStreamName,
  updateStreamTracking,
} from '../auth/streams.ts';
import { STREAM_KINDS } from '../store/types.ts';
import { effectiveTracking, type TrackingSettings } from '../tracking/settings.ts';
import { CliError, type GlobalOptions, iso, output, withStore } from './context.ts';

interface UpdateOptions {
  account: string;
  trackOpens?: string;
  trackClicks?: string;
  trackTextLinks?: string;
  listUnsubscribe?: string;
  json?: boolean;
}

/** on | off | default (= the kind's default: null) | absent (unchanged: undefined). */
function switchOf(value: string | undefined, option: string): boolean | null | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  if (v === 'on' || v === 'true' || v === 'yes') return true;
  if (v === 'off' || v === 'false' || v === 'no') return false;
  if (v === 'default') return null;
  throw new CliError(`${option} must be on, off or default`, 2);
}

/** `opens clicks list-unsubscribe`, or `none`. */
function trackingText(t: TrackingSettings): string {
  const on = [
    t.opens ? 'opens' : '',
    t.clicks ? 'clicks' : '',
    t.textLinks ? 'text-links' : '',
    t.listUnsubscribe ? 'list-unsubscribe' : '',
  ].filter(Boolean);
  return on.length > 0 ? `tracks ${on.join(' ')}` : 'tracks nothing';
}

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
    .command('update <stream>')
    .description(
      'change what a stream tracks (a default stream too); a switch not given keeps its value, "default" = the kind\'s default',
    )
    .requiredOption('--account <name>', 'the account')
    .option('--track-opens <on|off|default>', 'the open pixel (broadcast default: on)')
    .option('--track-clicks <on|off|default>', 'tracked links (broadcast default: on)')
    .option('--track-text-links <on|off|default>', 'links in plain-text parts too (default: off)')
    .option(
      '--list-unsubscribe <on|off|default>',
      'List-Unsubscribe and one-click List-Unsubscribe-Post fields (broadcast default: on)',
    )
    .option('--json', 'print JSON')
    .action(async (name: string, opts: UpdateOptions) => {
      const changes = {
        opens: switchOf(opts.trackOpens, '--track-opens'),
        clicks: switchOf(opts.trackClicks, '--track-clicks'),
        textLinks: switchOf(opts.trackTextLinks, '--track-text-links'),
        listUnsubscribe: switchOf(opts.listUnsubscribe, '--list-unsubscribe'),
      };
      if (Object.values(changes).every((v) => v === undefined)) {
        throw new CliError(
          'nothing to change: give --track-opens, --track-clicks, --track-text-links or --list-unsubscribe',
          2,
        );
      }
      await withStore(globals(), async (store) => {
        const account = await requireAccount(store, opts.account);
        const stream = await updateStreamTracking(store, account, name, changes);
        const tracking = effectiveTracking(stream.kind, stream.settings?.tracking, undefined);
        if (opts.json)
          output([{ account: account.name, name: stream.name, kind: stream.kind, tracking }], true);
        else
          process.stdout.write(
            `stream "${stream.name}" of account "${account.name}": ${trackingText(tracking)} (a running node applies it within 10 s)\n`,
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
            tracking: opts.json
              ? effectiveTracking(s.kind, s.settings?.tracking, undefined)
              : trackingText(effectiveTracking(s.kind, s.settings?.tracking, undefined)),
            createdAt: iso(s.createdAt),
          })),
          opts.json,
        );
      });
    });
}
