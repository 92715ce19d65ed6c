import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CircuitEvent, createCircuitBreaker } from '../../../src/delivery/shaping/circuit.ts';
import { fakeClock } from '../../support/fake-clock.ts';

const MIN = 60_000;
const key = 'ip-a|mx1.a.test';

function breaker(random = () => 0.5, options = {}) {
  const events: CircuitEvent[] = [];
  const circuit = createCircuitBreaker(
    { failures: 3, backoffMs: 5 * MIN, jitter: 0.2, ...options },
    random,
    (event) => events.push(event),
  );
  return { circuit, events };
}

describe('createCircuitBreaker', () => {
  it('stays closed below the threshold, and a success resets the count', () => {
    const { circuit, events } = breaker();
    const now = Date.UTC(2026, 0, 1);
    circuit.failure(key, now);
    circuit.failure(key, now);
    assert.equal(circuit.check(key, now), 0);
    circuit.success(key, now);
    circuit.failure(key, now);
    circuit.failure(key, now);
    assert.equal(circuit.check(key, now), 0);
    assert.deepEqual(circuit.status(key), { key, state: 'closed', failures: 2 });
    assert.deepEqual(events, []);
  });

  it('opens after N consecutive failures for the backoff, then allows exactly one trial', () => {
    const clock = fakeClock();
    const { circuit, events } = breaker();
    for (let i = 0; i < 3; i++) circuit.failure(key, clock.now());
    assert.equal(circuit.check(key, clock.now()), 5 * MIN);
    assert.equal(circuit.check('ip-b|mx1.a.test', clock.now()), 0); // another source is not affected
    clock.advance(5 * MIN - 1);
    assert.equal(circuit.check(key, clock.now()), 1);
    clock.advance(1);
    assert.equal(circuit.check(key, clock.now()), 0); // the trial
    assert.equal(circuit.status(key).state, 'half_open');
    assert.ok(circuit.check(key, clock.now()) > 0); // no second connection while the trial runs
    circuit.success(key, clock.now());
    assert.equal(circuit.check(key, clock.now()), 0);
    assert.deepEqual(
      events.map((e) => e.type),
      ['opened', 'half_open', 'closed'],
    );
    assert.equal(events[0]?.until, events[0]!.at + 5 * MIN);
  });

  it('opens again for a full backoff when the trial fails', () => {
    const clock = fakeClock();
    const { circuit, events } = breaker();
    for (let i = 0; i < 3; i++) circuit.failure(key, clock.now());
    clock.advance(5 * MIN);
    assert.equal(circuit.check(key, clock.now()), 0);
    circuit.failure(key, clock.now());
    assert.equal(circuit.check(key, clock.now()), 5 * MIN);
    assert.deepEqual(circuit.status(key), {
      key,
      state: 'open',
      failures: 4,
      retryAt: clock.now() + 5 * MIN,
    });
    assert.deepEqual(
      events.map((e) => e.type),
      ['opened', 'half_open', 'opened'],
    );
  });

  it('spreads the backoff by ±jitter with the injected random', () => {
    for (const [random, expected] of [
      [0, 4 * MIN],
      [0.5, 5 * MIN],
      [0.999_999, 6 * MIN],
    ] as const) {
      const { circuit } = breaker(() => random);
      const now = Date.UTC(2026, 0, 1);
      for (let i = 0; i < 3; i++) circuit.failure(key, now);
      assert.ok(Math.abs(circuit.check(key, now) - expected) <= 1, `random ${random}`);
    }
    // A broken random source cannot remove the backoff.
    const { circuit } = breaker(() => -5);
    for (let i = 0; i < 3; i++) circuit.failure(key, 0);
    assert.equal(circuit.check(key, 0), 4 * MIN);
  });

  it('does not push the trial back for failures of attempts started before it opened', () => {
    const { circuit } = breaker();
    const t0 = Date.UTC(2026, 0, 1);
    for (let i = 0; i < 3; i++) circuit.failure(key, t0);
    circuit.failure(key, t0 + MIN); // a fourth connection that was already in flight
    assert.equal(circuit.check(key, t0 + MIN), 4 * MIN);
  });

  it('gives up a trial that never reports back, and lets the next caller try', () => {
    const { circuit } = breaker(() => 0.5, { trialTimeoutMs: 30_000 });
    const t0 = Date.UTC(2026, 0, 1);
    for (let i = 0; i < 3; i++) circuit.failure(key, t0);
    assert.equal(circuit.check(key, t0 + 5 * MIN), 0);
    assert.equal(circuit.check(key, t0 + 5 * MIN + 10_000), 20_000);
    assert.equal(circuit.check(key, t0 + 5 * MIN + 30_000), 0);
  });

  it('lists circuits that are not closed, soonest first, and forgets old partial counts', () => {
    const { circuit } = breaker();
    const t0 = Date.UTC(2026, 0, 1);
    for (let i = 0; i < 3; i++) circuit.failure('b', t0 + MIN);
    for (let i = 0; i < 3; i++) circuit.failure('a', t0);
    circuit.failure('c', t0);
    assert.deepEqual(
      circuit.open().map((s) => [s.key, s.state, s.retryAt! - t0]),
      [
        ['a', 'open', 5 * MIN],
        ['b', 'open', 6 * MIN],
      ],
    );
    assert.equal(circuit.sweep(t0 + 5 * MIN - 1), 0);
    assert.equal(circuit.sweep(t0 + 5 * MIN), 1); // c: closed and quiet for a backoff
    assert.equal(circuit.status('c').failures, 0);
    assert.equal(circuit.status('a').state, 'open'); // open circuits are never swept
  });

  it('refuses options that would disable the breaker', () => {
    const random = () => 0.5;
    assert.throws(() => createCircuitBreaker({ failures: 0, backoffMs: MIN, jitter: 0 }, random), /failures/);
    assert.throws(
      () => createCircuitBreaker({ failures: 1.5, backoffMs: MIN, jitter: 0 }, random),
      /failures/,
    );
    assert.throws(() => createCircuitBreaker({ failures: 5, backoffMs: 0, jitter: 0 }, random), /backoffMs/);
    assert.throws(
      () => createCircuitBreaker({ failures: 5, backoffMs: Number.NaN, jitter: 0 }, random),
      /backoffMs/,
    );
    assert.throws(() => createCircuitBreaker({ failures: 5, backoffMs: MIN, jitter: 1 }, random), /jitter/);
    assert.throws(
      () => createCircuitBreaker({ failures: 5, backoffMs: MIN, jitter: -0.1 }, random),
      /jitter/,
    );
    assert.throws(
      () => createCircuitBreaker({ failures: 5, backoffMs: MIN, jitter: 0, trialTimeoutMs: 0 }, random),
      /trialTimeoutMs/,
    );
  });
});
