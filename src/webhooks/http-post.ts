import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import type { ResolvedTarget } from './target.ts';

export interface PostResult {
  /** HTTP status; 0 when no answer came (connection refused, timeout, TLS error). */
  status: number;
  /** '' on 2xx; else what went wrong, one line. */
  error: string;
  durationMs: number;
}

/** The most of an answer's body we read (and throw away): a receiver cannot make us buffer more. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * POSTs `body` to the checked address of `target` (node:http/https with a `lookup` that returns
 * that address, so TLS still verifies the certificate for the URL's host name). No redirects
 * are followed: a 3xx is a failed attempt like any other non-2xx. The whole exchange is bounded
 * by `timeoutMs`.
 */
export function postJson(options: {
  target: ResolvedTarget;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  clock?: () => number;
}): Promise<PostResult> {
  const { target, body } = options;
  const clock = options.clock ?? Date.now;
  const started = clock();
  const pinned: LookupFunction = (_hostname, opts, callback) => {
    if ((opts as { all?: boolean }).all) {
      (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [
        { address: target.address, family: target.family },
      ]);
    } else {
      callback(null, target.address, target.family);
    }
  };
  const send = target.url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<PostResult>((resolve) => {
    let settled = false;
    const done = (status: number, error: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, error, durationMs: clock() - started });
    };
    const req = send(
      target.url,
      {
        method: 'POST',
        lookup: pinned,
        headers: {
          ...options.headers,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          'user-agent': 'Postbote-Webhooks/1',
        },
        agent: false,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) res.destroy();
        });
        const finish = (): void => done(status, status >= 200 && status < 300 ? '' : `HTTP ${status}`);
        res.on('end', finish);
        res.on('close', finish);
        res.on('error', finish);
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      done(0, `no answer within ${options.timeoutMs} ms`);
    }, options.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) =>
      done(0, `${err.code ?? 'error'}: ${err.message}`.slice(0, 300)),
    );
    req.end(body);
  });
}
