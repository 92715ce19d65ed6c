import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { parseDuration, parseSize } from './duration.ts';
import { type Config, defaultNodeId, type Leaf, relations, type Section, schema } from './schema.ts';
import { parseYaml } from './yaml.ts';

/** Thrown when the configuration is invalid; `problems` has one line per key. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string[], options?: { cause?: unknown }) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`, options);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export interface LoadOptions {
  /** Explicit --config path; must exist. Without it, ./postbote.yaml is read when present. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Values applied over file and environment (used by tests). Nested like the YAML. */
  overrides?: Record<string, unknown>;
}

const ENV_PREFIX = 'POSTBOTE_';

function isLeaf(node: Leaf | Section): node is Leaf {
  return typeof (node as Leaf).type === 'string' && 'doc' in node;
}

/** Converts a raw value (YAML scalar or env string) to the leaf's type, or returns a problem. */
function convert(
  leaf: Leaf,
  raw: unknown,
  fromEnv: boolean,
): { value: unknown } | { problem: string } | { problems: string[] } {
  switch (leaf.type) {
    case 'data': {
      let value = raw;
      if (fromEnv) {
        try {
          value = parseYaml(String(raw));
        } catch (err) {
          return { problem: `not valid YAML: ${(err as Error).message.split('\n')[0]}` };
        }
      }
      return leaf.parse?.(value) ?? { value };
    }
    case 'string':
      return typeof raw === 'string' || (fromEnv && raw !== undefined)
        ? { value: String(raw) }
        : { problem: `must be a string, got ${JSON.stringify(raw)}` };
    case 'int': {
      const n = typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
      return typeof n === 'number' && Number.isInteger(n)
        ? { value: n }
        : { problem: `must be a whole number, got ${JSON.stringify(raw)}` };
    }
    case 'bool': {
      if (typeof raw === 'boolean') return { value: raw };
      const s = String(raw).trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(s)) return { value: true };
      if (['false', '0', 'no', 'off'].includes(s)) return { value: false };
      return { problem: `must be true or false, got ${JSON.stringify(raw)}` };
    }
    case 'duration': {
      const ms = parseDuration(raw);
      return ms === undefined
        ? {
            problem: `must be a duration like 30s, 5m, 4h, 5d (bare number = seconds), got ${JSON.stringify(raw)}`,
          }
        : { value: ms };
    }
    case 'size': {
      const bytes = parseSize(raw);
      return bytes === undefined
        ? { problem: `must be a size like 25MB, 512KB or a number of bytes, got ${JSON.stringify(raw)}` }
        : { value: bytes };
    }
    case 'listen': {
      const s = typeof raw === 'string' || typeof raw === 'number' ? String(raw).trim() : undefined;
      if (s === undefined) return { problem: `must be host:port, got ${JSON.stringify(raw)}` };
      if (s === '') return { value: '' };
      return parseHostPort(s)
        ? { value: s }
        : { problem: `must be host:port (e.g. 127.0.0.1:2525), got "${s}"` };
    }
    case 'list':
    case 'hostports': {
      let items: unknown[];
      if (Array.isArray(raw)) items = raw;
      else if (typeof raw === 'string') items = raw.trim() === '' ? [] : raw.split(',').map((x) => x.trim());
      else return { problem: `must be a list, got ${JSON.stringify(raw)}` };
      if (!items.every((x) => typeof x === 'string' || typeof x === 'number')) {
        return { problem: 'must be a list of strings' };
      }
      const strings = items.map(String);
      if (leaf.type === 'hostports') {
        const bad = strings.find((x) => !parseHostPort(x, 53));
        if (bad !== undefined) return { problem: `"${bad}" is not host or host:port` };
      }
      return { value: strings };
    }
  }
}

/** Parses `host:port`, `[v6]:port` or (with a default port) a bare host. */
export function parseHostPort(
  value: string,
  defaultPort?: number,
): { host: string; port: number } | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  let host: string;
  let portText: string | undefined;
  if (bracketed) {
    host = bracketed[1] ?? '';
    portText = bracketed[2];
  } else if (isIP(value) === 6) {
    host = value;
  } else {
    const idx = value.lastIndexOf(':');
    host = idx === -1 ? value : value.slice(0, idx);
    portText = idx === -1 ? undefined : value.slice(idx + 1);
  }
  if (host === '' || /\s/.test(host)) return undefined;
  const port = portText === undefined ? defaultPort : /^\d+$/.test(portText) ? Number(portText) : Number.NaN;
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  return { host, port };
}

function envName(path: readonly string[]): string {
  return ENV_PREFIX + path.map((p) => p.toUpperCase()).join('__');
}

interface Walk {
  problems: string[];
  env: NodeJS.ProcessEnv;
}

function build(
  section: Section,
  fileNode: unknown,
  overrideNode: unknown,
  path: string[],
  walk: Walk,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fileObj = asObject(fileNode, path, walk);
  const overrideObj = asObject(overrideNode, path, walk);
  for (const key of Object.keys(fileObj ?? {})) {
    if (!(key in section)) walk.problems.push(`${[...path, key].join('.')}: unknown key`);
  }
  for (const [key, node] of Object.entries(section)) {
    const keyPath = [...path, key];
    const name = keyPath.join('.');
    if (!isLeaf(node)) {
      out[key] = build(node, fileObj?.[key], overrideObj?.[key], keyPath, walk);
      continue;
    }
    let raw: unknown = node.default;
    let source = 'default';
    let fromEnv = false;
    if (fileObj && key in fileObj && fileObj[key] !== null) {
      raw = fileObj[key];
      source = 'config file';
    }
    const envValue = walk.env[envName(keyPath)];
    if (envValue !== undefined) {
      raw = envValue;
      source = envName(keyPath);
      fromEnv = true;
    }
    if (overrideObj && key in overrideObj) {
      raw = overrideObj[key];
      source = 'override';
    }
    const converted = convert(node, raw, fromEnv);
    if ('problems' in converted) {
      // Each names the place inside the value: `[0].smarthost: …`, `.google.max_connections: …`.
      for (const p of converted.problems) walk.problems.push(`${name}${p} (from ${source})`);
      continue;
    }
    if ('problem' in converted) {
      walk.problems.push(`${name}: ${converted.problem} (from ${source})`);
      continue;
    }
    const checkProblem = node.check?.(converted.value as never);
    if (checkProblem) {
      walk.problems.push(`${name}: ${checkProblem} (from ${source})`);
      continue;
    }
    out[key] = converted.value;
  }
  return out;
}

function asObject(node: unknown, path: string[], walk: Walk): Record<string, unknown> | undefined {
  if (node === undefined || node === null) return undefined;
  if (typeof node === 'object' && !Array.isArray(node)) return node as Record<string, unknown>;
  walk.problems.push(`${path.join('.') || '(top level)'}: must be a mapping of keys`);
  return undefined;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/**
 * Loads defaults ← YAML file ← POSTBOTE_* environment ← overrides, validates every key and
 * returns a frozen Config. Throws ConfigError listing every problem at once.
 */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  let fileNode: unknown;
  const file =
    options.file ??
    env[`${ENV_PREFIX}CONFIG`] ??
    (existsSync(`${cwd}/postbote.yaml`) ? `${cwd}/postbote.yaml` : undefined);
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError([`--config ${file}: cannot read the file (${(err as Error).message})`], {
        cause: err,
      });
    }
    try {
      fileNode = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError([`${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`], {
        cause: err,
      });
    }
  }
  const walk: Walk = { problems: [], env };
  const known = new Set<string>();
  collectEnvNames(schema, [], known);
  for (const name of Object.keys(env)) {
    if (name.startsWith(ENV_PREFIX) && !known.has(name) && name !== `${ENV_PREFIX}CONFIG`) {
      walk.problems.push(`${name}: unknown setting (environment)`);
    }
  }
  const built = build(schema, fileNode, options.overrides, [], walk);
  if (walk.problems.length > 0) throw new ConfigError(walk.problems);
  for (const relation of relations) {
    const problem = relation(built as unknown as Config);
    if (problem) walk.problems.push(problem);
  }
  if (walk.problems.length > 0) throw new ConfigError(walk.problems);
  const config = built as Record<string, unknown> & { hostname: string; node_id: string };
  if (config.hostname === '') config.hostname = osHostname();
  if (config.node_id === '') config.node_id = defaultNodeId(config.hostname);
  return deepFreeze(built) as unknown as Config;
}

function collectEnvNames(section: Section, path: string[], out: Set<string>): void {
  for (const [key, node] of Object.entries(section)) {
    if (isLeaf(node)) out.add(envName([...path, key]));
    else collectEnvNames(node, [...path, key], out);
  }
}
