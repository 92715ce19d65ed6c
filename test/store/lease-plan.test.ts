import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type LaneClaim, type LeasePass, LeasePlan, weightedShares } from '../../src/store/lease-plan.ts';

const INF = Number.POSITIVE_INFINITY;
const claim = (accountId: string, weight: number, due = INF) => ({ accountId, weight, due });
const shares = (claims: ReturnType<typeof claim>[], budget: number, random = () => 0.5) =>
  Object.fromEntries(weightedShares(claims, budget, random));

/** A deterministic stand-in for Math.random (a linear congruential sequence in [0, 1)). */
function seeded(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

describe('lease plan: weighted shares', () => {
  it('splits by weight, and what an account cannot use goes to the others by weight', () => {
    assert.deepEqual(shares([claim('a', 1), claim('b', 1)], 20), { a: 10, b: 10 });
    assert.deepEqual(shares([claim('a', 3), claim('b', 1)], 20), { a: 15, b: 5 });
    assert.deepEqual(shares([claim('a', 1), claim('b', 1, 3)], 20), { a: 17, b: 3 });
    assert.deepEqual(shares([claim('a', 1), claim('b', 2), claim('c', 1, 1)], 31), { a: 10, b: 20, c: 1 });
    assert.deepEqual(shares([claim('a', 1, 4), claim('b', 1, 5)], 20), { a: 4, b: 5 }, 'never more than due');
    assert.deepEqual(shares([], 20), {});
    assert.deepEqual(shares([claim('a', 1)], 0), {});
  });

  it('always hands out the whole budget (or all that is due) in whole recipients', () => {
    const random = seeded(7);
    for (let i = 0; i < 500; i++) {
      const n = 1 + Math.floor(random() * 6);
      const claims = Array.from({ length: n }, (_, k) =>
        claim(`a${k}`, 1 + Math.floor(random() * 5), random() < 0.3 ? Math.floor(random() * 20) : INF),
      );
      const budget = Math.floor(random() * 50);
      const got = weightedShares(claims, budget, random);
      const total = [...got.values()].reduce((s, x) => s + x, 0);
      const due = claims.reduce((s, c) => s + c.due, 0);
      assert.equal(total, Math.min(budget, due), JSON.stringify({ claims, budget, got: [...got] }));
      for (const c of claims) {
        const share = got.get(c.accountId) ?? 0;
        assert.ok(Number.isInteger(share) && share >= 0 && share <= c.due);
      }
    }
  });

  it('a batch of one is drawn in proportion to the weights: nobody starves on small batches', () => {
    const random = seeded(42);
    const wins: Record<string, number> = { a: 0, b: 0 };
    for (let i = 0; i < 4000; i++) {
      for (const [id, n] of weightedShares([claim('a', 3), claim('b', 1)], 1, random))
        wins[id] = (wins[id] ?? 0) + n;
    }
    // 1 in 4 for b: 1,000 expected; a fixed tie-break would give it none.
    assert.ok((wins.b ?? 0) > 850 && (wins.b ?? 0) < 1150, JSON.stringify(wins));
  });
});

describe('lease plan: passes', () => {
  const claims = (list: [LaneClaim['kind'], string, number, number?][]): LaneClaim[] =>
    list.map(([kind, accountId, weight, due]) => ({ kind, accountId, weight, due: due ?? INF }));
  const flat = (pass: LeasePass | undefined) =>
    pass && { expired: pass.expired, shares: pass.shares.map((s) => `${s.kind}/${s.accountId}=${s.share}`) };

  it('expired leases first, then transactional, then broadcast, each within its lane limit', () => {
    const plan = new LeasePlan(
      { limit: 20, lanes: { broadcast: 6 } },
      {
        expired: { broadcast: 2, transactional: 1 },
        claims: claims([
          ['transactional', 'a', 1, 4],
          ['broadcast', 'a', 1],
          ['broadcast', 'b', 1],
        ]),
      },
    );
    assert.deepEqual(flat(plan.next()), {
      expired: { transactional: 1, broadcast: 2 },
      shares: ['transactional/a=4', 'broadcast/a=2', 'broadcast/b=2'],
    });
  });

  it('tops up the accounts that filled their share with what the others left; stops when nothing is left', () => {
    const plan = new LeasePlan(
      { limit: 20 },
      {
        expired: {},
        claims: claims([
          ['broadcast', 'a', 1],
          ['broadcast', 'b', 1],
          ['broadcast', 'c', 1],
        ]),
      },
      () => 0,
    );
    const first = plan.next();
    assert.ok(first);
    assert.deepEqual(flat(first)?.shares, ['broadcast/a=7', 'broadcast/b=7', 'broadcast/c=6']);
    // b had only 2, c all 6, a all 7.
    const leased = (id: string, n: number) =>
      Array.from({ length: n }, () => ({ kind: 'broadcast' as const, accountId: id, expired: false }));
    plan.record(first, [...leased('a', 7), ...leased('b', 2), ...leased('c', 6)]);
    const second = plan.next();
    assert.ok(second);
    assert.deepEqual(flat(second)?.shares, ['broadcast/a=3', 'broadcast/c=2']);
    plan.record(second, [...leased('a', 3), ...leased('c', 2)]);
    assert.equal(plan.next(), undefined, 'the batch is full');
  });

  it('a transactional shortfall is offered to broadcast in the next pass; nothing due, nothing planned', () => {
    const plan = new LeasePlan(
      { limit: 10 },
      {
        expired: {},
        claims: claims([
          ['transactional', 'a', 1],
          ['broadcast', 'b', 1],
        ]),
      },
    );
    const first = plan.next();
    assert.deepEqual(flat(first)?.shares, ['transactional/a=10']);
    if (first) plan.record(first, [{ kind: 'transactional', accountId: 'a', expired: false }]);
    assert.deepEqual(flat(plan.next())?.shares, ['broadcast/b=9']);
    assert.equal(new LeasePlan({ limit: 10 }, { expired: {}, claims: [] }).next(), undefined);
    assert.equal(
      new LeasePlan(
        { limit: 10, lanes: { broadcast: 0 } },
        { expired: {}, claims: claims([['broadcast', 'b', 1]]) },
      ).next(),
      undefined,
    );
  });
});
