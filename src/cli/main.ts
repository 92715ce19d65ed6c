#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { registerAccounts } from './accounts.ts';
import { registerBounces } from './bounces.ts';
import { registerCluster } from './cluster.ts';
import { describeError, type GlobalOptions } from './context.ts';
import { registerCredentials } from './credentials.ts';
import { registerDomains } from './domains.ts';
import { registerEvents } from './events.ts';
import { registerGc } from './gc.ts';
import { registerMessages } from './messages.ts';
import { registerAudit, registerPrivacy } from './privacy.ts';
import { registerQueue } from './queue.ts';
import { registerSend } from './send.ts';
import { registerStart } from './start.ts';
import { registerStats } from './stats.ts';
import { registerStreams } from './streams.ts';
import { registerSuppressions } from './suppressions.ts';
import { registerUsers } from './users.ts';
import { registerWebhooks } from './webhooks.ts';

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

registerStart(program, globals);
registerAccounts(program, globals);
registerStreams(program, globals);
registerCredentials(program, globals);
registerDomains(program, globals);
registerMessages(program, globals);
registerSend(program, globals);
registerSuppressions(program, globals);
registerEvents(program, globals);
registerWebhooks(program, globals);
registerBounces(program, globals);
registerQueue(program, globals);
registerCluster(program, globals);
registerStats(program, globals);
registerGc(program, globals);
registerPrivacy(program, globals);
registerAudit(program, globals);
registerUsers(program, globals);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  const { message, exitCode } = describeError(err);
  process.stderr.write(`postbote: ${message}\n`);
  process.exit(exitCode);
}
