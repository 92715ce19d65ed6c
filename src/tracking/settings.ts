/**
 * What tracking does for one message: its stream's switches (Stream.settings.tracking) over
 * the defaults of the stream's kind, and the API request's `track` over both.
 *
 * Defaults: broadcast mail tracks opens and clicks and carries List-Unsubscribe (Gmail and
 * Yahoo require one-click unsubscribe for bulk mail); transactional mail is left as it was
 * written (a password reset needs no pixel). Links in plain-text parts are rewritten only when
 * a stream asks: a long tracking URL in a text part is what readers see.
 */
import type { TrackOptions } from '../intake/send-request.ts';
import type { Store } from '../store/store.ts';
import type { StreamKind, StreamTracking } from '../store/types.ts';

export interface TrackingSettings {
  opens: boolean;
  clicks: boolean;
  textLinks: boolean;
  listUnsubscribe: boolean;
}

export const TRACKING_SWITCHES = ['opens', 'clicks', 'textLinks', 'listUnsubscribe'] as const;

export function defaultTracking(kind: StreamKind): TrackingSettings {
  const on = kind === 'broadcast';
  return { opens: on, clicks: on, textLinks: false, listUnsubscribe: on };
}

/** The settings in force: the kind's defaults, then the stream's own, then the message's `track`. */
export function effectiveTracking(
  kind: StreamKind,
  stream: StreamTracking | undefined,
  message: TrackOptions | undefined,
): TrackingSettings {
  const out = defaultTracking(kind);
  for (const name of TRACKING_SWITCHES) {
    const value = stream?.[name];
    if (typeof value === 'boolean') out[name] = value;
  }
  if (message?.opens !== undefined) out.opens = message.opens;
  if (message?.clicks !== undefined) out.clicks = message.clicks;
  return out;
}

/**
 * Streams' tracking switches for intake, remembered for `cacheMs` per account and stream (they
 * are changed by the CLI in another process: a change shows within that time).
 */
export function createStreamTracking(options: { store: Store; clock: () => number; cacheMs?: number }) {
  const { store, clock } = options;
  const cacheMs = options.cacheMs ?? 10_000;
  const cache = new Map<string, { tracking: StreamTracking | undefined; until: number }>();

  async function get(accountId: string, stream: string): Promise<StreamTracking | undefined> {
    const key = `${accountId}\0${stream}`;
    const now = clock();
    const hit = cache.get(key);
    if (hit && hit.until > now) return hit.tracking;
    const tracking = (await store.getStream(accountId, stream))?.settings?.tracking;
    if (cache.size > 10_000) cache.clear();
    cache.set(key, { tracking, until: now + cacheMs });
    return tracking;
  }

  return { get };
}

export type StreamTrackingLookup = ReturnType<typeof createStreamTracking>;
