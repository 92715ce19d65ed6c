/**
 * An outbound scan through rspamd's HTTP API: POST the message to `<url>/checkv2` with the
 * envelope in request headers (From, Rcpt, IP, User, Queue-Id: rspamd's protocol), read the
 * JSON answer's `score`, `action` and symbol names. Bounded by a timeout; the answer's size is
 * bounded too (rspamd's answers are a few KB).
 */

export interface RspamdResult {
  score: number;
  /** rspamd's own suggestion (`no action`, `add header`, `reject`, …): logged, not obeyed. */
  action: string;
  /** Symbol names that fired, highest score first (at most 20). */
  symbols: string[];
}

export class RspamdError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RspamdError';
  }
}

const MAX_ANSWER_BYTES = 1024 * 1024;

export async function rspamdCheck(input: {
  url: string;
  timeoutMs: number;
  raw: Buffer;
  from: string;
  recipients: string[];
  ip: string;
  user?: string;
  queueId: string;
  fetch?: typeof fetch;
}): Promise<RspamdResult> {
  const doFetch = input.fetch ?? fetch;
  const headers = new Headers({ 'content-type': 'message/rfc822', 'queue-id': input.queueId });
  // Header values must be one line: anything else is dropped, not sent.
  const safe = (v: string): boolean => !/[\r\n\0]/.test(v) && v.length <= 998;
  if (safe(input.from)) headers.set('from', input.from);
  for (const r of input.recipients.slice(0, 100)) if (safe(r)) headers.append('rcpt', r);
  if (input.ip && safe(input.ip)) headers.set('ip', input.ip);
  if (input.user && safe(input.user)) headers.set('user', input.user);
  let res: Response;
  try {
    res = await doFetch(`${input.url.replace(/\/+$/, '')}/checkv2`, {
      method: 'POST',
      headers,
      body: new Uint8Array(input.raw),
      signal: AbortSignal.timeout(input.timeoutMs),
    });
  } catch (err) {
    throw new RspamdError(`rspamd unreachable: ${(err as Error).message}`, { cause: err });
  }
  const body = await res.arrayBuffer().catch((err: unknown) => {
    throw new RspamdError('rspamd answer unreadable', { cause: err });
  });
  if (!res.ok) throw new RspamdError(`rspamd answered HTTP ${res.status}`);
  if (body.byteLength > MAX_ANSWER_BYTES) throw new RspamdError('rspamd answer too large');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch (err) {
    throw new RspamdError('rspamd answer is not JSON', { cause: err });
  }
  const o = parsed as { score?: unknown; action?: unknown; symbols?: unknown };
  if (typeof o.score !== 'number' || !Number.isFinite(o.score))
    throw new RspamdError('rspamd answer has no score');
  const symbols =
    o.symbols && typeof o.symbols === 'object'
      ? Object.entries(o.symbols as Record<string, { score?: unknown }>)
          .map(([name, s]) => ({ name, score: typeof s?.score === 'number' ? s.score : 0 }))
          .sort((a, b) => b.score - a.score)
          .slice(0, 20)
          .map((s) => s.name)
      : [];
  return { score: o.score, action: typeof o.action === 'string' ? o.action : '', symbols };
}
