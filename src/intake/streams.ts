import { nameProblem, normaliseStreamName } from '../auth/streams.ts';
import type { Store } from '../store/store.ts';
import { DEFAULT_STREAM, DEFAULT_STREAMS, type StreamKind } from '../store/types.ts';

/** Where a message's stream name came from, strongest first. */
export type StreamSource = 'api' | 'header' | 'credential' | 'default';

/** A submission names a stream its account does not have: refused, nothing is stored. */
export class UnknownStreamError extends Error {
  readonly stream: string;
  readonly source: StreamSource;
  constructor(stream: string, source: StreamSource) {
    super(`the account has no stream "${stream}" (named by the ${source === 'api' ? 'request' : source})`);
    this.name = 'UnknownStreamError';
    this.stream = stream;
    this.source = source;
  }
}

/**
 * The stream a message goes to: the one the API request names, else the X-Postbote-Stream
 * header, else the credential's default, else `outbound`.
 */
export function chooseStream(choices: { api?: string; header?: string; credential?: string }): {
  name: string;
  source: StreamSource;
} {
  if (choices.api !== undefined) return { name: choices.api, source: 'api' };
  if (choices.header !== undefined) return { name: choices.header, source: 'header' };
  if (choices.credential) return { name: choices.credential, source: 'credential' };
  return { name: DEFAULT_STREAM, source: 'default' };
}

/**
 * Finds a stream's kind for intake. The default streams need no store call (their kind is
 * fixed); others are remembered for `cacheMs`, since streams are created by the CLI in another
 * process and never change kind. A name not found is asked again every time, so a stream made
 * a moment ago is found at once.
 */
export function createStreamResolver(options: { store: Store; clock: () => number; cacheMs?: number }) {
  const { store, clock } = options;
  const cacheMs = options.cacheMs ?? 10_000;
  const cache = new Map<string, { stream: { name: string; kind: StreamKind }; until: number }>();

  async function resolve(
    accountId: string,
    given: string,
  ): Promise<{ name: string; kind: StreamKind } | undefined> {
    const name = normaliseStreamName(given);
    if (nameProblem('stream', name)) return undefined;
    const fixed = DEFAULT_STREAMS.find((d) => d.name === name);
    if (fixed) return fixed;
    const key = `${accountId}\0${name}`;
    const now = clock();
    const hit = cache.get(key);
    if (hit && hit.until > now) return hit.stream;
    const found = await store.getStream(accountId, name);
    if (!found) return undefined;
    const stream = { name: found.name, kind: found.kind };
    if (cache.size > 10_000) cache.clear();
    cache.set(key, { stream, until: now + cacheMs });
    return stream;
  }

  return { resolve };
}
