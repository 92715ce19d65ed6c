import { DEFAULT_STREAMS, type Stream } from './types.ts';

/**
 * An account's streams: its rows, plus the default streams it has no row for. The defaults are
 * virtual rather than inserted at account creation, so accounts created before streams existed,
 * or by a node of the previous version during a rolling upgrade, have them too. A row named
 * like a default (none can be created yet) would take its place, e.g. to give it a pool.
 */
export function withDefaultStreams(accountId: string, accountCreatedAt: number, rows: Stream[]): Stream[] {
  const defaults = DEFAULT_STREAMS.filter((d) => !rows.some((r) => r.name === d.name)).map(
    (d): Stream => ({
      accountId,
      name: d.name,
      kind: d.kind,
      pool: '',
      createdAt: accountCreatedAt,
      isDefault: true,
    }),
  );
  return [...rows, ...defaults].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function isDefaultStream(name: string): boolean {
  return DEFAULT_STREAMS.some((d) => d.name === name);
}
