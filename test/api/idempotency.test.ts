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

  /** A claim made 30 s ago (within the stale period) by a request that never answered (its process was killed). */
  async function orphan(key: string, hash: string) {
    await store.claimIdempotencyKey({
      accountId,
      key,
      requestHash: hash,
      now: now - 60_000,
      staleBefore: 0,
      expiredBefore: 0,
    });
  }

  it('the embedded store: a retry after a restart takes the orphaned claim over at once', async () => {
    const server = await app(now - 1000);
    const first = await server.inject({
      method: 'POST',
      url: '/x',
      headers: { 'idempotency-key': 'k-probe' },
      payload: { a: 1 },
    });
    assert.equal(first.statusCode, 202);
    // The same request hash as a real retry would have: take it from the claim just stored.
    const hash = (
      await store.claimIdempotencyKey({
        accountId,
        key: 'k-probe',
        requestHash: '',
        now,
        staleBefore: 0,
        expiredBefore: 0,
      })
    )?.requestHash;
    assert.ok(hash);
    await orphan('k-orphan', hash);
    const retry = await server.inject({
      method: 'POST',
      url: '/x',
      headers: { 'idempotency-key': 'k-orphan' },
      payload: { a: 1 },
    });
    assert.equal(retry.statusCode, 202, retry.body);
  });

  it('a cluster: the orphaned claim still answers in use until it is stale', async () => {
    const server = await app();
    const hash = (
      await store.claimIdempotencyKey({
        accountId,
        key: 'k-probe',
        requestHash: '',
        now,
        staleBefore: 0,
        expiredBefore: 0,
      })
    )?.requestHash;
    assert.ok(hash);
    await orphan('k-cluster', hash);
    const retry = await server.inject({
      method: 'POST',
      url: '/x',
      headers: { 'idempotency-key': 'k-cluster' },
      payload: { a: 1 },
    });
    assert.equal(retry.statusCode, 409);
    assert.equal(retry.json().error, 'idempotency_key_in_use');
  });

  it('any store: a claim older than the stale period is taken over', async () => {
    const server = await app();
    const hash = (
      await store.claimIdempotencyKey({
        accountId,
        key: 'k-probe',
        requestHash: '',
        now,
        staleBefore: 0,
        expiredBefore: 0,
      })
    )?.requestHash;
    assert.ok(hash);
    await store.claimIdempotencyKey({
      accountId,
      key: 'k-old',
      requestHash: hash,
      now: now - 61_000,
      staleBefore: 0,
      expiredBefore: 0,
    });
    const retry = await server.inject({
      method: 'POST',
      url: '/x',
      headers: { 'idempotency-key': 'k-old' },
      payload: { a: 1 },
    });
    assert.equal(retry.statusCode, 202, retry.body);
  });
});
