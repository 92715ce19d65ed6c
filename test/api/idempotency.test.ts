/**
 * Idempotency-Key claims left by a process that died (kill -9) before its commit: on the
 * embedded store (one process) a retry takes them over at once; in a cluster only after the
 * stale period, since another node's claim may still be running.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { createIdempotency } from '../../src/api/idempotency.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

describe('Idempotency-Key claims of a dead process', () => {
  const store = new SqliteStore(':memory:');
  const now = Date.parse('2026-11-28T10:00:00Z');
  let accountId = '';
  before(async () => {
    await store.migrate();
    accountId = (await store.createAccount({ id: 'acct', name: 'acme', createdAt: now })).id;
  });
  after(() => store.close());

  async function app(soleProcessSince?: number) {
    const idempotency = createIdempotency({
      store,
      clock: () => now,
      ttlMs: 86_400_000,
      staleMs: 60_000,
      ...(soleProcessSince === undefined ? {} : { soleProcessSince }),
    });
    const server = Fastify();
    server.post('/x', async (request, reply) => {
      const answer = await idempotency
        .run(request, { accountId, credentialId: 'c', scopes: ['send'] } as never, async () => ({
          status: 202,
          body: { ok: true },
        }))
        .catch((err: Error & { code?: string }) => ({
          status: 409,
          body: { error: err.code ?? err.message },
        }));
      return reply.code(answer.status).send(answer.body);
    });
    return server;
  }

  /** The same POST with `key`, as a client's retry sends it. */
  const post = (server: Awaited<ReturnType<typeof app>>, key: string) =>
    server.inject({ method: 'POST', url: '/x', headers: { 'idempotency-key': key }, payload: { a: 1 } });

  /** The request hash of that POST: sent once under a key of its own, read back from its claim. */
  let requestHash: string | undefined;
  async function hashOfPost(server: Awaited<ReturnType<typeof app>>): Promise<string> {
    if (requestHash) return requestHash;
    assert.equal((await post(server, 'k-probe')).statusCode, 202);
    const claim = await store.claimIdempotencyKey({
      accountId,
      key: 'k-probe',
      requestHash: '',
      now,
      staleBefore: 0,
      expiredBefore: 0,
    });
    assert.ok(claim?.requestHash);
    requestHash = claim.requestHash;
    return requestHash;
  }

  /** A claim of that POST made `ageMs` ago by a request that never answered (its process was killed). */
  async function orphan(key: string, hash: string, ageMs: number) {
    await store.claimIdempotencyKey({
      accountId,
      key,
      requestHash: hash,
      now: now - ageMs,
      staleBefore: 0,
      expiredBefore: 0,
    });
  }

  it('the embedded store: a retry after a restart takes the orphaned claim over at once', async () => {
    const server = await app(now - 1000);
    await orphan('k-orphan', await hashOfPost(server), 30_000);
    const retry = await post(server, 'k-orphan');
    assert.equal(retry.statusCode, 202, retry.body);
  });

  it('a cluster: the orphaned claim still answers in use until it is stale', async () => {
    const server = await app();
    await orphan('k-cluster', await hashOfPost(server), 30_000);
    const retry = await post(server, 'k-cluster');
    assert.equal(retry.statusCode, 409);
    assert.equal(retry.json().error, 'idempotency_key_in_use');
  });

  it('any store: a claim older than the stale period is taken over', async () => {
    const server = await app();
    await orphan('k-old', await hashOfPost(server), 61_000);
    const retry = await post(server, 'k-old');
    assert.equal(retry.statusCode, 202, retry.body);
  });
});
