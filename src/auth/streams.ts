import { isDefaultStream } from '../store/default-streams.ts';
import type { Store } from '../store/store.ts';
import {
  type Account,
  STREAM_KINDS,
  type Stream,
  type StreamKind,
  type StreamTracking,
} from '../store/types.ts';
import { AuthInputError } from './errors.ts';

// Stream and pool names travel in a header (X-Postbote-Stream), URLs and config keys: keep them
// to a safe, case-insensitive alphabet. Stored in lower case.
const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** The stored form of a stream name as a user or a header gives it. */
export function normaliseStreamName(name: string): string {
  return name.trim().toLowerCase();
}

/** Why `name` (normalised) cannot name a stream or pool, or undefined when it can. */
export function nameProblem(what: 'stream' | 'pool', name: string): string | undefined {
  return NAME.test(name)
    ? undefined
    : `${what} name "${name}" is not valid: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`;
}

export function isStreamKind(kind: string): kind is StreamKind {
  return (STREAM_KINDS as readonly string[]).includes(kind);
}

/** Creates a stream of the account; the default streams exist already and cannot be created. */
export async function createStream(
  store: Store,
  account: Account,
  input: { name: string; kind: string; pool?: string },
  now: number,
): Promise<Stream> {
  const name = normaliseStreamName(input.name);
  const pool = normaliseStreamName(input.pool ?? '');
  const problem = nameProblem('stream', name) ?? (pool === '' ? undefined : nameProblem('pool', pool));
  if (problem) throw new AuthInputError(problem);
  if (!isStreamKind(input.kind)) {
    throw new AuthInputError(`stream kind "${input.kind}" is not valid: use ${STREAM_KINDS.join(' or ')}`);
  }
  if (isDefaultStream(name)) {
    throw new AuthInputError(`"${name}" is a default stream: every account has it already`);
  }
  if (await store.getStream(account.id, name)) {
    throw new AuthInputError(`account "${account.name}" already has a stream "${name}"`);
  }
  return store.createStream({ accountId: account.id, name, kind: input.kind, pool, createdAt: now });
}

/**
 * Changes a stream's tracking switches (tracking/settings.ts): the ones given change, the others
 * keep their value; a switch set to `null` goes back to the kind's default. A default stream gets
 * a row for it. Returns the stream as stored.
 */
export async function updateStreamTracking(
  store: Store,
  account: Account,
  name: string,
  changes: { [K in keyof StreamTracking]?: boolean | null | undefined },
): Promise<Stream> {
  const stream = await requireStream(store, account, name);
  const tracking: StreamTracking = { ...(stream.settings?.tracking ?? {}) };
  for (const [key, value] of Object.entries(changes) as [
    keyof StreamTracking,
    boolean | null | undefined,
  ][]) {
    if (value === null) delete tracking[key];
    else if (value !== undefined) tracking[key] = value;
  }
  const settings = { ...(stream.settings ?? {}), tracking };
  await store.setStreamSettings({
    accountId: account.id,
    name: stream.name,
    kind: stream.kind,
    createdAt: stream.createdAt,
    settings,
  });
  return { ...stream, settings };
}

/** The account's stream of that name (a default one too), or an error naming what exists. */
export async function requireStream(store: Store, account: Account, name: string): Promise<Stream> {
  const stream = await store.getStream(account.id, normaliseStreamName(name));
  if (!stream) {
    throw new AuthInputError(
      `account "${account.name}" has no stream "${name}" (see: postbote streams list --account ${account.name})`,
    );
  }
  return stream;
}
