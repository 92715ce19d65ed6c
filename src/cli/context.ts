import { AuthInputError } from '../auth/accounts.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { openStore } from '../store/open.ts';
import type { Store } from '../store/store.ts';

/** An error the user can fix; printed as one line without a stack trace. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export interface GlobalOptions {
  config?: string;
}

export function configFrom(options: GlobalOptions): Config {
  return loadConfig(options.config ? { file: options.config } : {});
}

/** Runs a command with the store open, closing it afterwards whatever happens. */
export async function withStore<T>(
  options: GlobalOptions,
  fn: (store: Store, config: Config) => Promise<T>,
): Promise<T> {
  const config = configFrom(options);
  const store = await openStore(config);
  try {
    return await fn(store, config);
  } finally {
    await store.close();
  }
}

/** Prints rows as JSON or as an aligned table. */
export function output(rows: Record<string, unknown>[], json: boolean | undefined, columns?: string[]): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cols = columns ?? Object.keys(rows[0] ?? {});
  const cell = (v: unknown): string =>
    v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]): string =>
    values
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${line(cols.map((c) => c.toUpperCase()))}\n`);
  for (const r of rows) process.stdout.write(`${line(cols.map((c) => cell(r[c])))}\n`);
}

export function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}

/** Maps known errors to a message and exit code. */
export function describeError(err: unknown): { message: string; exitCode: number } {
  if (err instanceof ConfigError) return { message: err.message, exitCode: 2 };
  if (err instanceof CliError) return { message: err.message, exitCode: err.exitCode };
  if (err instanceof AuthInputError) return { message: err.message, exitCode: 1 };
  const e = err as Error;
  const cause = e?.cause instanceof Error ? `: ${e.cause.message}` : '';
  return { message: `${e?.message ?? String(err)}${cause}`, exitCode: 1 };
}
