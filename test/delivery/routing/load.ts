/** Loads a config from overrides alone (no file, no environment), as the routing tests need it. */
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/schema.ts';

export function load(overrides: Record<string, unknown>, env: Record<string, string> = {}): Config {
  return loadConfig({
    env,
    cwd: import.meta.dirname,
    overrides: { hostname: 'node1.example.net', ...overrides },
  });
}

export function problemsOf(
  overrides: Record<string, unknown>,
  env: Record<string, string> = {},
): readonly string[] {
  try {
    load(overrides, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  assert.fail('expected a ConfigError');
}

/** Asserts one problem line matches each pattern, in any order. */
export function assertProblems(problems: readonly string[], ...patterns: RegExp[]): void {
  for (const pattern of patterns) {
    assert.ok(
      problems.some((p) => pattern.test(p)),
      `no problem matches ${pattern}:\n${problems.join('\n')}`,
    );
  }
}
