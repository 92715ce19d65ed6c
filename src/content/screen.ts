import { SendError } from '../intake/send-errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { HoldReason, StreamKind } from '../store/types.ts';
import { builtInChecks } from './checks.ts';
import { RspamdError, rspamdCheck } from './rspamd.ts';

/**
 * Intake's screening step (the last one, on the final bytes): is the account or stream paused
 * (guard/), and what do the content checks say. A refusal throws SendError `content_rejected`;
 * otherwise the message is stored, its recipients `held` when something holds it, and its
 * findings become a `content_warning` event in the same commit (NewMessage.contentWarnings).
 */

export interface ContentConfig {
  action: string;
  max_image_size: number;
  rspamd: { url: string; timeout: number; hold_score: string; reject_score: string; fail_open: boolean };
}

export interface ScreenInput {
  accountId: string;
  messageId: string;
  stream: string;
  kind: StreamKind;
  /** The first stored copy (signed). */
  raw: Buffer;
  /** The submission's bytes as the client sent them (SMTP), for the Message-ID and Date checks. */
  original?: Buffer;
  mailFrom: string;
  recipients: string[];
  clientIp: string;
  credentialId: string | null;
}

export interface ScreenResult {
  held?: { reason: HoldReason; details: string };
  warnings: string[];
}

/** rspamd could not be asked and `content.rspamd.fail_open` is off: the client should retry. */
export class ContentScanUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ContentScanUnavailableError';
  }
}

const threshold = (text: string): number | undefined => (text.trim() === '' ? undefined : Number(text));

export function createScreening(options: {
  /** guard.holdReason: why mail of the account's stream is held now. */
  paused?: (accountId: string, stream: string) => Promise<string | undefined>;
  content?: ContentConfig;
  logger?: Logger;
  fetch?: typeof fetch;
}) {
  const content = options.content;

  async function screen(input: ScreenInput): Promise<ScreenResult> {
    const warnings: string[] = [];
    let hold: string | undefined;
    let reject: string | undefined;
    if (content) {
      const findings =
        content.action === 'off'
          ? []
          : builtInChecks({
              raw: input.raw,
              ...(input.original ? { original: input.original } : {}),
              kind: input.kind,
              maxImageSize: content.max_image_size,
            });
      for (const f of findings) warnings.push(`${f.check}: ${f.message}`);
      if (findings.length > 0 && content.action === 'hold')
        hold = `content checks: ${findings.map((f) => f.check).join(', ')}`;
      if (findings.length > 0 && content.action === 'reject') {
        reject = `refused by content checks: ${findings.map((f) => f.message).join('; ')}`;
      }
      if (content.rspamd.url !== '' && !reject) {
        try {
          const scan = await rspamdCheck({
            url: content.rspamd.url,
            timeoutMs: content.rspamd.timeout,
            raw: input.raw,
            from: input.mailFrom,
            recipients: input.recipients,
            ip: input.clientIp,
            ...(input.credentialId ? { user: input.credentialId } : {}),
            queueId: input.messageId,
            ...(options.fetch ? { fetch: options.fetch } : {}),
          });
          const holdAt = threshold(content.rspamd.hold_score);
          const rejectAt = threshold(content.rspamd.reject_score);
          const what = `rspamd score ${scan.score}${scan.symbols.length ? ` (${scan.symbols.slice(0, 5).join(', ')})` : ''}`;
          if (rejectAt !== undefined && scan.score >= rejectAt)
            reject = `refused by the content scan: ${what}`;
          else if (holdAt !== undefined && scan.score >= holdAt) {
            hold = hold ? `${hold}; ${what}` : what;
            warnings.push(`rspamd: ${what}`);
          }
        } catch (err) {
          if (!(err instanceof RspamdError)) throw err;
          if (!content.rspamd.fail_open) {
            throw new ContentScanUnavailableError(`content scan unavailable: ${err.message}`, { cause: err });
          }
          // Fail open: the message goes on unscanned, and says so.
          options.logger?.warn(
            { err: err.message, messageId: input.messageId },
            'rspamd scan failed; accepted unscanned',
          );
          warnings.push(`rspamd: not scanned (${err.message})`);
        }
      }
    }
    if (reject) throw new SendError('content_rejected', reject);
    const paused = options.paused ? await options.paused(input.accountId, input.stream) : undefined;
    if (paused) return { held: { reason: 'paused', details: paused }, warnings };
    if (hold) return { held: { reason: 'content', details: hold }, warnings };
    return { warnings };
  }

  return { screen };
}

export type Screening = ReturnType<typeof createScreening>;
