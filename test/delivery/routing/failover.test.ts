import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createFailover,
  type FailoverEvent,
  type FailoverRoute,
  fallbackCycle,
} from '../../../src/delivery/routing/failover.ts';
import { fakeClock } from '../../support/fake-clock.ts';

const SEC = 1000;
const MIN = 60 * SEC;

const route = (name: string, fallback: string[] = [], failoverAfter = 2 * MIN): FailoverRoute => ({
  name,
  fallback,
  failoverAfter,
  probeEvery: 30 * SEC,
});

function setup(routes: FailoverRoute[]) {
  const events: FailoverEvent[] = [];
  const failover = createFailover(routes, (e) => events.push(e));
  return { failover, events, clock: fakeClock() };
}

/** Fails `name` every 10 s for `ms`. */
function failFor(
  f: ReturnType<typeof setup>,
  name: string,
  ms: number,
  kind: 'connection' | '421' = 'connection',
) {
  for (let t = 0; t <= ms; t += 10 * SEC) {
    f.failover.recordFailure(name, kind, f.clock.now());
    if (t < ms) f.clock.advance(10 * SEC);
  }
}

describe('createFailover', () => {
  it('keeps a failing route until it has had only failures for failover_after, then moves to the fallback', () => {
    const f = setup([route('primary', ['backup']), route('backup')]);
    failFor(f, 'primary', 2 * MIN - 10 * SEC, '421');
    assert.equal(f.failover.select('primary', f.clock.now()).route, 'primary');
    assert.equal(f.failover.status(f.clock.now()).find((h) => h.route === 'primary')?.state, 'failing');
    f.clock.advance(10 * SEC);
    const selection = f.failover.select('primary', f.clock.now());
    assert.deepEqual(selection, { route: 'backup', primary: 'primary', probe: false, skipped: ['primary'] });
    assert.equal(f.events.length, 1);
    assert.deepEqual(f.events[0], {
      type: 'down',
      route: 'primary',
      fallback: 'backup',
      failures: { connection: 0, '421': 12 },
      firstFailureAt: f.clock.now() - 2 * MIN,
      at: f.clock.now(),
    });
  });

  it('forgets failures after a success', () => {
    const f = setup([route('primary', ['backup']), route('backup')]);
    failFor(f, 'primary', 90 * SEC);
    f.failover.recordSuccess('primary', f.clock.now());
    failFor(f, 'primary', 90 * SEC);
    assert.equal(f.failover.select('primary', f.clock.now()).route, 'primary');
    assert.equal(f.failover.isDown('primary', f.clock.now()), false);
    assert.deepEqual(f.events, []);
  });

  it('lets one probe through every probe_every while down, and returns on its success', () => {
    const f = setup([route('primary', ['backup']), route('backup')]);
    failFor(f, 'primary', 2 * MIN);
    const downAt = f.clock.now();
    assert.equal(f.failover.select('primary', f.clock.now()).route, 'backup');
    f.clock.advance(30 * SEC - 1);
    assert.equal(f.failover.select('primary', f.clock.now()).route, 'backup');
    f.clock.advance(1);
    assert.deepEqual(f.failover.select('primary', f.clock.now()), {
      route: 'primary',
      primary: 'primary',
      probe: true,
      skipped: [],
    });
    // Only one probe per interval: the mail right after goes to the fallback again.
    assert.equal(f.failover.select('primary', f.clock.now()).route, 'backup');
    // The probe fails: still down, the next probe 30 s later.
    f.failover.recordFailure('primary', 'connection', f.clock.now());
    f.clock.advance(29 * SEC);
    assert.equal(f.failover.select('primary', f.clock.now()).probe, false);
    f.clock.advance(SEC);
    assert.equal(f.failover.select('primary', f.clock.now()).probe, true);
    assert.equal(f.failover.status(f.clock.now())[0]?.nextProbeAt, f.clock.now() + 30 * SEC);
    f.failover.recordSuccess('primary', f.clock.now());
    assert.deepEqual(f.failover.select('primary', f.clock.now()), {
      route: 'primary',
      primary: 'primary',
      probe: false,
      skipped: [],
    });
    assert.deepEqual(f.events.at(-1), {
      type: 'recovered',
      route: 'primary',
      downSince: downAt,
      at: f.clock.now(),
    });
  });

  it('passes over fallbacks that are down, recursively, and to the primary when all are down', () => {
    const f = setup([route('a', ['b', 'c']), route('b', ['b2']), route('b2', [], 1 * MIN), route('c')]);
    failFor(f, 'b2', 1 * MIN);
    assert.equal(f.failover.isDown('b2', f.clock.now()), true);
    failFor(f, 'b', 2 * MIN);
    assert.equal(f.failover.isDown('b', f.clock.now()), true);
    assert.equal(f.failover.status(f.clock.now()).find((h) => h.route === 'b')?.fallback, undefined);
    failFor(f, 'a', 2 * MIN);
    const downA = f.events.find((e) => e.type === 'down' && e.route === 'a');
    assert.equal(downA?.type === 'down' && downA.fallback, 'c');
    // a's mail carries the probes of the fallbacks that went down earlier (their only traffic),
    // one each, then goes to c.
    f.clock.advance(SEC);
    const picks = [1, 2, 3].map(() => f.failover.select('a', f.clock.now()));
    assert.deepEqual(
      picks.map((p) => `${p.route}${p.probe ? ' probe' : ''}`),
      ['b probe', 'b2 probe', 'c'],
    );
    assert.deepEqual(picks[2]?.skipped, ['a', 'b', 'b2']);
    // c goes down too: nothing is left, so the primary carries the mail.
    failFor(f, 'c', 2 * MIN);
    for (const name of ['a', 'b', 'b2']) f.failover.select(name, f.clock.now()); // take any due probes
    assert.deepEqual(f.failover.select('a', f.clock.now()), {
      route: 'a',
      primary: 'a',
      probe: false,
      skipped: [],
    });
  });

  it('comes back to the primary while the fallback stays healthy', () => {
    const f = setup([route('primary', ['backup']), route('backup')]);
    failFor(f, 'primary', 2 * MIN);
    f.failover.recordSuccess('backup', f.clock.now());
    f.clock.advance(30 * SEC);
    const probe = f.failover.select('primary', f.clock.now());
    assert.equal(probe.probe, true);
    f.failover.recordSuccess('primary', f.clock.now() + 500);
    assert.equal(f.failover.select('primary', f.clock.now() + SEC).route, 'primary');
    assert.deepEqual(
      f.events.map((e) => `${e.type} ${e.route}`),
      ['down primary', 'recovered primary'],
    );
  });

  it('ignores routes outside the failover graph', () => {
    const f = setup([route('alone'), route('a', ['b']), route('b')]);
    failFor(f, 'alone', 10 * MIN);
    failFor(f, 'unknown', 10 * MIN);
    assert.deepEqual(f.failover.select('alone', f.clock.now()), {
      route: 'alone',
      primary: 'alone',
      probe: false,
      skipped: [],
    });
    assert.deepEqual(
      f.failover.status(f.clock.now()).map((h) => h.route),
      ['a', 'b'],
    );
    assert.deepEqual(f.events, []);
  });

  it('refuses cycles and unknown fallbacks', () => {
    assert.throws(() => createFailover([route('a', ['b']), route('b', ['a'])]), /cycle: a → b → a/);
    assert.throws(() => createFailover([route('a', ['zz'])]), /no fallback route named zz/);
  });
});

describe('fallbackCycle', () => {
  it('finds cycles through diamonds and long chains without recursion', () => {
    assert.equal(
      fallbackCycle([route('a', ['b', 'c']), route('b', ['d']), route('c', ['d']), route('d')]),
      undefined,
    );
    assert.deepEqual(
      fallbackCycle([route('x', ['a']), route('a', ['b']), route('b', ['c']), route('c', ['a'])]),
      ['a', 'b', 'c', 'a'],
    );
    const chain = Array.from({ length: 50_000 }, (_, i) =>
      route(`r${i}`, i + 1 < 50_000 ? [`r${i + 1}`] : []),
    );
    assert.equal(fallbackCycle(chain), undefined);
    chain[49_999] = route('r49999', ['r0']);
    assert.equal(fallbackCycle(chain)?.length, 50_001);
  });
});
