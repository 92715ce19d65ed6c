import type { Config } from '../config/schema.ts';
import type { TargetPolicy } from './target.ts';

/** The `webhooks.*` config as the dispatcher and the API use it (durations in ms). */
export interface WebhookSettings {
  batchSize: number;
  batchWaitMs: number;
  timeoutMs: number;
  retryFirstMs: number;
  retryForMs: number;
  disableAfterMs: number;
  concurrency: number;
  policy: TargetPolicy;
}

export function webhookSettings(config: Config): WebhookSettings {
  const w = config.webhooks;
  return {
    batchSize: w.batch_size,
    batchWaitMs: w.batch_wait,
    timeoutMs: w.timeout,
    retryFirstMs: w.retry_first,
    retryForMs: w.retry_for,
    disableAfterMs: w.disable_after,
    concurrency: w.concurrency,
    policy: { allowPrivate: w.allow_private, allowHosts: w.allow_hosts.map((h) => h.toLowerCase()) },
  };
}
