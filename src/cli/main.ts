#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { describeError, type GlobalOptions } from './context.ts';

type Register = (program: Command, globals: () => GlobalOptions) => void;

/**
 * Every top-level command, in the order `--help` lists them, with the module that defines it.
 * A command line that names one loads that module alone: a command starts without parsing the
 * code of the other eighteen (and what they import).
 */
const COMMANDS: [name: string, load: () => Promise<Register>][] = [
  ['start', async () => (await import('./start.ts')).registerStart],
  ['accounts', async () => (await import('./accounts.ts')).registerAccounts],
  ['streams', async () => (await import('./streams.ts')).registerStreams],
  ['credentials', async () => (await import('./credentials.ts')).registerCredentials],
  ['domains', async () => (await import('./domains.ts')).registerDomains],
  ['messages', async () => (await import('./messages.ts')).registerMessages],
  ['send', async () => (await import('./send.ts')).registerSend],
  ['suppressions', async () => (await import('./suppressions.ts')).registerSuppressions],
  ['events', async () => (await import('./events.ts')).registerEvents],
  ['webhooks', async () => (await import('./webhooks.ts')).registerWebhooks],
  ['bounces', async () => (await import('./bounces.ts')).registerBounces],
  ['queue', async () => (await import('./queue.ts')).registerQueue],
  ['cluster', async () => (await import('./cluster.ts')).registerCluster],
  ['stats', async () => (await import('./stats.ts')).registerStats],
  ['gc', async () => (await import('./gc.ts')).registerGc],
  ['privacy', async () => (await import('./privacy.ts')).registerPrivacy],
  ['audit', async () => (await import('./privacy.ts')).registerAudit],
  ['users', async () => (await import('./users.ts')).registerUsers],
];

/**
 * The commands to define for this command line: the one it names after the global options, or
 * all of them when it names none we know (`--help`, a typo: commander then lists them all).
 */
function commandsFor(args: readonly string[]): typeof COMMANDS {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '-c' || arg === '--config') {
      i++;
      continue;
    }
    if (arg.startsWith('--config=')) continue;
    if (arg.startsWith('-')) break;
    const named = COMMANDS.filter(([name]) => name === arg);
    return named.length > 0 ? named : COMMANDS;
  }
  return COMMANDS;
}

// A reader that stops early (`postbote messages list | head`) ends the output, quietly, as it
// does for any Unix tool: not with an unhandled EPIPE and its stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const program = new Command('postbote')
  .description('Postbote: self-hosted email delivery (SMTP relay and send API)')
  .option('-c, --config <file>', 'config file (default: ./postbote.yaml when present)')
  .showHelpAfterError()
  .exitOverride();
const globals = (): GlobalOptions => program.opts<GlobalOptions>();

const registers = await Promise.all(commandsFor(process.argv.slice(2)).map(([, load]) => load()));
for (const register of registers) register(program, globals);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  const { message, exitCode } = describeError(err);
  process.stderr.write(`postbote: ${message}\n`);
  process.exit(exitCode);
}
