/**
 * The engine's shaping state reaches the store: adaptive actions and circuit changes become
 * shaping events, one store call per event-loop turn, never blocking or failing delivery.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createAdaptiveShaper } from '../../src/delivery/shaping/adaptive.ts';
import { createCircuitBreaker } from '../../src/delivery/shaping/circuit.ts';
import type { RuleSpec } from '../../src/delivery/shaping/rule-spec.ts';
import { createShapingEventRecorder } from '../../src/delivery/shaping-events.ts';
import { createLogger, silentLogger } from '../../src/observability/logger.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { NewShapingEvent } from '../../src/store/types.ts';
import { tempDir } from '../support/temp-dir.ts';

const T0 = Date.parse('2026-11-28T12:00:00Z');
const MINUTE = 60_000;
const throttleRule: RuleSpec = {
  name: 'generic-421-try-again-later',
  match: { code: '421', text: 'try (again )?later' },
  action: 'throttle',
  rate: { count: 60, perMs: MINUTE },
  durationMs: 30 * MINUTE,
};
const suspendRule: RuleSpec = {
  name: 'suspend-on-554',
  match: { code: '554' },
  action: 'suspend_site',
  durationMs: 60 * MINUTE,
};
const tryLater = { code: 421, enhanced: '4.7.0', text: 'Try again later' };
const context = { source: '*', site: 'provider:google', provider: 'google' };
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/** A recorder over a store that keeps every call's events. */
function recording(options: { fail?: boolean } = {}) {
  const calls: NewShapingEvent[][] = [];
  const store = {
    recordShapingEvents: async (events: NewShapingEvent[]) => {
      calls.push(events);
      if (options.fail) throw new Error('database unavailable');
    },
  };
  const lines: string[] = [];
  const logger = createLogger({
    level: 'warn',
    destination: { write: (l: string) => lines.push(l) } as never,
  });
  const recorder = createShapingEventRecorder({ store, nodeId: 'node-1', logger });
  return { calls, lines, recorder };
}

describe('shaping events from the delivery engine', () => {
  it('writes what one turn changed in one call; repeated extensions once, with the latest expiry', async () => {
    const { calls, recorder } = recording();
    const adaptive = createAdaptiveShaper({ rules: [throttleRule], onEvent: (e) => recorder.action(e) });
    adaptive.observe(tryLater, context, T0);
    adaptive.observe(tryLater, context, T0 + 1000);
    adaptive.observe({ ...tryLater, text: 'Try later, busy' }, context, T0 + 2000);
    assert.equal(calls.length, 0, 'nothing is written synchronously');
    await nextTurn();
    assert.deepEqual(calls, [
      [
        {
          at: T0,
          nodeId: 'node-1',
          type: 'triggered',
          rule: 'generic-421-try-again-later',
          kind: 'throttle',
          scopeKey: 'site:*|provider:google',
          rate: '60/min',
          until: T0 + 30 * MINUTE,
          reply: '421 4.7.0 Try again later',
        },
        {
          at: T0 + 2000,
          nodeId: 'node-1',
          type: 'extended',
          rule: 'generic-421-try-again-later',
          kind: 'throttle',
          scopeKey: 'site:*|provider:google',
          rate: '60/min',
          until: T0 + 2000 + 30 * MINUTE,
          reply: '421 4.7.0 Try later, busy',
        },
      ],
    ]);
    // Expiry and lifting end actions: their until is when they ended.
    adaptive.expire(T0 + 2000 + 30 * MINUTE);
    const suspend = createAdaptiveShaper({ rules: [suspendRule], onEvent: (e) => recorder.action(e) });
    suspend.observe({ code: 554, text: 'go away' }, context, T0);
    suspend.lift('site:*|provider:google', T0 + 5 * MINUTE);
    await recorder.flush();
    assert.deepEqual(
      calls[1]?.map((e) => [e.type, e.kind, e.rate, e.until - T0]),
      [
        ['expired', 'throttle', '60/min', 2000 + 30 * MINUTE],
        ['triggered', 'suspend_site', '', 60 * MINUTE],
        ['lifted', 'suspend_site', '', 5 * MINUTE],
      ],
    );
  });

  it('circuits: opened until the trial, half-open until the trial is given up, closed', async () => {
    const { calls, recorder } = recording();
    const circuit = createCircuitBreaker(
      { failures: 2, backoffMs: 5 * MINUTE, jitter: 0 },
      Math.random,
      (e) => recorder.circuit(e, circuit.status(e.key)),
    );
    const key = '*|mx.down.test';
    circuit.failure(key, T0);
    circuit.failure(key, T0 + 1000);
    assert.equal(circuit.check(key, T0 + 1000 + 5 * MINUTE), 0, 'the trial');
    circuit.success(key, T0 + 2000 + 5 * MINUTE);
    await recorder.flush();
    assert.deepEqual(
      calls.flat().map((e) => [e.type, e.rule, e.kind, e.scopeKey, e.until - T0, e.reply]),
      [
        [
          'opened',
          'circuit',
          'circuit',
          'site:*|mx.down.test',
          1000 + 5 * MINUTE,
          '2 consecutive connection failures',
        ],
        [
          'half_open',
          'circuit',
          'circuit',
          'site:*|mx.down.test',
          1000 + 5 * MINUTE + 120_000,
          '2 consecutive connection failures',
        ],
        ['closed', 'circuit', 'circuit', 'site:*|mx.down.test', 2000 + 5 * MINUTE, ''],
      ],
    );
  });

  it('a failed write is logged and dropped; the shaper carries on', async () => {
    const { calls, lines, recorder } = recording({ fail: true });
    const adaptive = createAdaptiveShaper({ rules: [throttleRule], onEvent: (e) => recorder.action(e) });
    adaptive.observe(tryLater, context, T0);
    await recorder.flush();
    assert.equal(calls.length, 1);
    assert.match(lines.join(''), /could not record traffic shaping events/);
    assert.ok(adaptive.throttleFor('*', 'provider:google', T0 + 1), 'the throttle holds regardless');
  });

  it('on a real store, what the engine recorded is in force', async () => {
    const dir = tempDir();
    const store = new SqliteStore(join(dir.path, 'postbote.db'));
    try {
      await store.migrate();
      const recorder = createShapingEventRecorder({ store, nodeId: 'node-1', logger: silentLogger() });
      const adaptive = createAdaptiveShaper({ rules: [throttleRule], onEvent: (e) => recorder.action(e) });
      adaptive.observe(tryLater, context, T0);
      await recorder.flush();
      assert.deepEqual(
        (await store.activeShaping(T0 + 1)).map((a) => [a.rule, a.scopeKey, a.until - T0]),
        [['generic-421-try-again-later', 'site:*|provider:google', 30 * MINUTE]],
      );
      adaptive.expire(T0 + 30 * MINUTE);
      await recorder.flush();
      assert.deepEqual(await store.activeShaping(T0 + 1), [], 'expired: no longer in force');
    } finally {
      await store.close();
      dir.cleanup();
    }
  });
});
