/**
 * `postbote bounces …` without main.ts (the integrator registers the command there): a tiny
 * entry point for cli.test.ts, which runs it as a child process so that its stdout is its own.
 */
import { Command, CommanderError } from 'commander';
import { registerBounces } from '../../src/cli/bounces.ts';
import { describeError } from '../../src/cli/context.ts';

const program = new Command('postbote').exitOverride();
registerBounces(program, () => program.opts());
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  const { message, exitCode } = describeError(err);
  process.stderr.write(`postbote: ${message}\n`);
  process.exit(exitCode);
}
