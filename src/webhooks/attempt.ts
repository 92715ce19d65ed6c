import type { Store } from '../store/store.ts';
import type { WebhookBatch, WebhookEndpoint } from '../store/types.ts';
import { type PostResult, postJson } from './http-post.ts';
import type { WebhookSettings } from './settings.ts';
import { signedHeaders } from './signing.ts';
import { type LookupAll, resolveTarget, WebhookTargetError } from './target.ts';

/** Longest wait between two attempts of a batch. */
const MAX_BACKOFF_MS = 60 * 60_000;

/** The wait after the n-th failed attempt: retryFirst · 2^(n−1), at most an hour, ±20 %. */
export function backoffMs(failures: number, retryFirstMs: number, random: () => number): number {
  const base = Math.min(retryFirstMs * 2 ** Math.max(0, failures - 1), MAX_BACKOFF_MS);
  return Math.round(base * (0.8 + 0.4 * random()));
}

export interface AttemptDeps {
  store: Store;
  settings: WebhookSettings;
  clock: () => number;
  random: () => number;
  lookupAll?: LookupAll;
  /** Something happened to an endpoint the log should say (disabled, and why). */
  onDisabled?: (endpoint: WebhookEndpoint, reason: string) => void;
}

/** One signed POST of a batch to its endpoint, with the SSRF check; never throws. */
export async function post(
  deps: Pick<AttemptDeps, 'settings' | 'clock' | 'lookupAll'>,
  endpoint: WebhookEndpoint,
  batch: Pick<WebhookBatch, 'id' | 'body'>,
): Promise<PostResult> {
  const started = deps.clock();
  try {
    const target = await resolveTarget(new URL(endpoint.url), deps.settings.policy, deps.lookupAll);
    const headers = signedHeaders(endpoint.secret, batch.id, Math.floor(deps.clock() / 1000), batch.body);
    return await postJson({
      target,
      headers,
      body: batch.body,
      timeoutMs: deps.settings.timeoutMs,
      clock: deps.clock,
    });
  } catch (err) {
    const error = err instanceof WebhookTargetError ? err.message : `error: ${(err as Error).message}`;
    return { status: 0, error: error.slice(0, 500), durationMs: deps.clock() - started };
  }
}

/**
 * Sends a pending batch once and records the attempt: 2xx delivers it; 410 Gone disables the
 * endpoint (the receiver said it is gone for good); anything else (another status, no answer,
 * a refused target) schedules the next attempt with backoff until `retry_for` after the batch
 * was made, then drops it. An endpoint whose every attempt has failed for `disable_after` is
 * disabled, with a `webhook_disabled` event, and its pending batches are failed.
 */
export async function attemptBatch(
  deps: AttemptDeps,
  endpoint: WebhookEndpoint,
  batch: WebhookBatch,
): Promise<void> {
  const { store, settings, clock } = deps;
  const result = await post(deps, endpoint, batch);
  const now = clock();
  const attempts = batch.attempts + 1;
  const attempt = {
    batchId: batch.id,
    webhookId: endpoint.id,
    at: now,
    status: result.status,
    error: result.error,
    durationMs: result.durationMs,
  };
  if (result.status >= 200 && result.status < 300) {
    await store.recordWebhookAttempt(attempt, {
      state: 'delivered',
      attempts,
      nextAttemptAt: now,
      lastError: '',
    });
    if (endpoint.failingSince !== null) {
      endpoint.failingSince = null;
      await store.updateWebhook(endpoint.id, { failingSince: null });
    }
    return;
  }
  if (result.status === 410) {
    await store.recordWebhookAttempt(attempt, {
      state: 'failed',
      attempts,
      nextAttemptAt: now,
      lastError: result.error,
    });
    await disable(deps, endpoint, 'gone', 'the endpoint answered 410 Gone', now);
    return;
  }
  const giveUp = now - batch.createdAt >= settings.retryForMs;
  await store.recordWebhookAttempt(attempt, {
    state: giveUp ? 'failed' : 'pending',
    attempts,
    nextAttemptAt: giveUp ? now : now + backoffMs(attempts, settings.retryFirstMs, deps.random),
    lastError: result.error,
  });
  if (endpoint.failingSince === null) {
    endpoint.failingSince = now;
    await store.updateWebhook(endpoint.id, { failingSince: now });
  } else if (now - endpoint.failingSince >= settings.disableAfterMs) {
    await disable(
      deps,
      endpoint,
      'failing',
      `every attempt failed since ${new Date(endpoint.failingSince).toISOString()}`,
      now,
    );
  }
}

async function disable(
  deps: AttemptDeps,
  endpoint: WebhookEndpoint,
  reason: 'gone' | 'failing',
  details: string,
  now: number,
): Promise<void> {
  if (!endpoint.enabled) return;
  endpoint.enabled = false;
  await deps.store.updateWebhook(endpoint.id, { enabled: false, disabledReason: reason, disabledAt: now });
  const failed = await deps.store.failWebhookBatches(endpoint.id, `endpoint disabled (${reason})`, now);
  await deps.store.appendEvents([
    {
      at: now,
      type: 'webhook_disabled',
      accountId: endpoint.accountId,
      data: { webhookId: endpoint.id, url: endpoint.url, reason, details, droppedBatches: failed },
    },
  ]);
  deps.onDisabled?.(endpoint, reason);
}
