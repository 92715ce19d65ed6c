import { createRequire } from 'node:module';

/**
 * Parses YAML with the `yaml` package, loaded on first use: a CLI command run without a config
 * file never needs it, and it is the largest module tree a command would otherwise load (72
 * modules, about a sixth of a command's start-up).
 */
export function parseYaml(text: string): unknown {
  const { parse } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return parse(text);
}
