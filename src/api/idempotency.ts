import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Remember, SendOutcome } from '../intake/send.ts';
import type { Store } from '../store/store.ts';
import { ApiError } from './errors.ts';
import type { ApiPrincipal } from './send-api.ts';

/** An answer as stored under an idempotency key. */
export interface StoredAnswer {
  status: number;
  body: unknown;
}

const KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * `Idempotency-Key` on POST requests: the same key and body within the TTL answers the first
 * answer again and does nothing; the same key with another body is 409. For sends, the answer
 * is stored in the same transaction as the messages (Remember), so a crash cannot leave mail
 * sent without its answer, or an answer without its mail. Failed requests forget their key.
 */
export function createIdempotency(options: {
  store: Store;
  clock: () => number;
  ttlMs: number;
  /**
   * A claim still unanswered after this long belongs to a request that died before its commit
   * (the answer is written in the same transaction as the messages), so a retry may take it
   * over (`api.idempotency_stale`). A request never holds its claim that long: it is one
   * render and one durable commit.
   */
  staleMs: number;
  /**
   * When this process started, where it is the only one writing (the embedded store, pid
   * lock): an unanswered claim from before then belongs to a process that died before its
   * commit (kill -9, power loss), so a retry takes it over at once instead of getting
   * `idempotency_key_in_use` for `staleMs`. Not for a cluster: another node's claim may be live.
   */
  soleProcessSince?: number;
}) {
  const { store, clock, ttlMs } = options;
  /**
   * Claims this process made whose request ended without an answer and whose release failed
   * too (the store was full or unreachable: the release is a write as well). Nothing holds
   * them, so the next request with the key takes its claim over at once instead of getting
   * `idempotency_key_in_use` until `staleMs` has passed. Only within `staleMs` of the failure:
   * later another node may have taken the claim over the normal way, and it is live there. In
   * memory and bounded: a claim forgotten here still goes stale the normal way.
   */
  const abandoned = new Map<string, number>();
  const MAX_ABANDONED = 10_000;

  function hash(request: FastifyRequest): string {
    return createHash('sha256')
      .update(request.method)
      .update('\0')
      .update(request.url.split('?')[0] ?? '')
      .update('\0')
      .update(JSON.stringify(request.body ?? null))
      .digest('base64');
  }

  /**
   * Runs `work` once per key: `work` gets a Remember for sends (answer stored with the mail) and
   * returns the answer; without a key it just runs. A replay resolves to the stored answer.
   */
  async function run(
    request: FastifyRequest,
    principal: ApiPrincipal,
    work: (
      remember: ((answer: (outcomes: SendOutcome[]) => StoredAnswer) => Remember) | undefined,
    ) => Promise<StoredAnswer>,
  ): Promise<StoredAnswer & { replayed?: boolean }> {
    const header = request.headers['idempotency-key'];
    if (header === undefined) return work(undefined);
    const key = Array.isArray(header) ? header[0] : header;
    if (key === undefined || !KEY.test(key)) {
      throw new ApiError(
        'invalid_idempotency_key',
        'Idempotency-Key must be 1-255 printable ASCII characters',
        'Idempotency-Key',
      );
    }
    const requestHash = hash(request);
    const now = clock();
    const id = `${principal.accountId}\0${key}`;
    // Taken out before the claim: of two requests racing for an abandoned claim, one takes it
    // over; the other finds that one's claim and waits its turn.
    const abandonedAt = abandoned.get(id);
    abandoned.delete(id);
    const takeOver = abandonedAt !== undefined && now - abandonedAt < options.staleMs;
    let existing: Awaited<ReturnType<Store['claimIdempotencyKey']>>;
    try {
      existing = await store.claimIdempotencyKey({
        accountId: principal.accountId,
        key,
        requestHash,
        now,
        staleBefore: takeOver
          ? Number.MAX_SAFE_INTEGER
          : Math.max(now - options.staleMs, options.soleProcessSince ?? Number.NEGATIVE_INFINITY),
        expiredBefore: now - ttlMs,
      });
    } catch (err) {
      if (takeOver) abandoned.set(id, abandonedAt);
      throw err;
    }
    if (existing) {
      if (existing.requestHash !== requestHash) {
        throw new ApiError(
          'idempotency_key_reused',
          'this Idempotency-Key was used with a different request',
          'Idempotency-Key',
        );
      }
      if (existing.response === undefined) {
        throw new ApiError(
          'idempotency_key_in_use',
          'a request with this Idempotency-Key is still running',
          'Idempotency-Key',
        );
      }
      return { ...(JSON.parse(existing.response) as StoredAnswer), replayed: true };
    }
    try {
      const answer = await work((toAnswer) => {
        return {
          accountId: principal.accountId,
          key,
          answer: (outcomes) => JSON.stringify(toAnswer(outcomes)),
        };
      });
      // Sends stored it with their mail, unless nothing was stored (every batch item failed).
      await store.completeIdempotencyKey({
        accountId: principal.accountId,
        key,
        response: JSON.stringify(answer),
      });
      return answer;
    } catch (err) {
      await store.releaseIdempotencyKey(principal.accountId, key).catch(() => {
        if (abandoned.size >= MAX_ABANDONED) abandoned.clear();
        abandoned.set(id, now);
      });
      throw err;
    }
  }

  return { run };
}

export type Idempotency = ReturnType<typeof createIdempotency>;
