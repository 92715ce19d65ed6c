/**
 * `postbote queue summary`'s report from a store: what is in force counts only for live nodes
 * since their start, connections are summed over live nodes, limits come per egress source.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { buildQueueSummary, describeLimits } from '../../src/cli/queue-summary.ts';
import { loadConfig } from '../../src/config/load.ts';
import { HEARTBEAT_MS } from '../../src/delivery/heartbeat.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { NewShapingEvent } from '../../src/store/types.ts';
import { sampleMessage, T0 } from '../store/contract.ts';
import { tempDir } from '../support/temp-dir.ts';

const MINUTE = 60_000;
const throttle = (nodeId: string, at: number, site: string): NewShapingEvent => ({
  at,
  nodeId,
  type: 'triggered',
  rule: 'generic-421-try-again-later',
  kind: 'throttle',
  scopeKey: `site:ip-1|${site}`,
  rate: '60/min',
  until: at + 30 * MINUTE,
  reply: '421 4.7.0 Try again later',
});

it('queue summary: in force on live nodes since their start; sites with connections, limits per source', async () => {
  const dir = tempDir();
  const store = new SqliteStore(join(dir.path, 'postbote.db'));
  try {
    await store.migrate();
    await store.createAccount({ id: 'a1', name: 'shop', createdAt: T0 });
    const m = sampleMessage('a1', ['x@gmail.test', 'y@other.test']);
    await store.insertMessages([m]);
    const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 10, leaseUntil: T0 + MINUTE });
    const gmail = leased.find((r) => r.address === 'x@gmail.test')!;
    await store.recordOutcomes('n1', [
      {
        at: T0,
        recipientId: gmail.id,
        messageId: m.id,
        accountId: 'a1',
        recipient: gmail.address,
        state: 'deferred',
        nextAttemptAt: T0 + 10 * MINUTE,
        attempted: true,
        reply: { code: 421, enhanced: '4.7.0', text: 'Try again later' },
        event: { type: 'deferred', data: {} },
        site: 'provider:google',
      },
    ]);
    await store.releaseLeases('n1', T0);
    const now = T0 + MINUTE;
    // live: reporting; restarted: reporting, but started after its event; gone: silent too long.
    await store.heartbeat(
      {
        id: 'live',
        startedAt: T0 - MINUTE,
        info: {
          sites: [
            { site: 'provider:google', open: 2 },
            { site: 'mx.idle.test', open: 1 },
          ],
        },
      },
      now - 1000,
    );
    await store.heartbeat(
      { id: 'restarted', startedAt: T0 + 1000, info: { sites: [{ site: 'provider:google', open: 1 }] } },
      now - 1000,
    );
    await store.heartbeat(
      { id: 'gone', startedAt: T0 - MINUTE, info: { sites: [{ site: 'provider:google', open: 5 }] } },
      now - 3 * HEARTBEAT_MS,
    );
    await store.recordShapingEvents([
      throttle('live', T0, 'provider:google'),
      throttle('restarted', T0, 'mx.before-restart.test'),
      throttle('gone', T0, 'mx.dead-node.test'),
    ]);

    const config = loadConfig({
      env: {},
      cwd: '/nonexistent',
      overrides: {
        egress: {
          sources: [
            { name: 'ip-1', address: '' },
            { name: 'ip-2', address: '' },
          ],
          pools: { default: ['ip-1', 'ip-2'] },
        },
        shaping: { providers: { google: { sources: { 'ip-2': { max_connections: 2 } } } } },
      },
    });
    const report = await buildQueueSummary(store, config, now);

    assert.deepEqual(
      report.inForce.map((a) => [a.node, a.site, a.source, a.rate, a.until]),
      [['live', 'provider:google', 'ip-1', '60/min', new Date(T0 + 30 * MINUTE).toISOString()]],
    );
    assert.deepEqual(
      report.sites.map((s) => [s.site, s.provider, s.ready, s.scheduled, s.connections]),
      [
        // y@other.test, released before any attempt: no site yet.
        ['', null, 1, 0, 0],
        ['provider:google', 'google', 0, 1, 3],
        // Connections open, nothing waiting.
        ['mx.idle.test', null, 0, 0, 1],
      ],
    );
    const google = report.sites.find((s) => s.site === 'provider:google');
    assert.deepEqual(
      google?.limits.map((l) => [l.source, l.maxConnections, l.maxMessagesPerConnection]),
      [
        ['ip-1', 10, 50],
        ['ip-2', 2, 50],
      ],
    );
    assert.equal(
      describeLimits(google?.limits ?? []),
      'ip-1: 10 conn, 50 msg/conn; ip-2: 2 conn, 50 msg/conn',
    );
    const idle = report.sites.find((s) => s.site === 'mx.idle.test');
    assert.equal(describeLimits(idle?.limits ?? []), '20 conn, 100 msg/conn');
    assert.deepEqual(report.sites[0]?.limits, [], 'no site, no limits');
    assert.equal(report.domains.length, 2);
  } finally {
    await store.close();
    dir.cleanup();
  }
});

it('queue summary: warm-up counts and failing routes from the live nodes, whatever shape a node wrote', async () => {
  const dir = tempDir();
  const store = new SqliteStore(join(dir.path, 'postbote.db'));
  try {
    await store.migrate();
    const now = T0 + MINUTE;
    await store.heartbeat(
      {
        id: 'live',
        startedAt: T0,
        info: {
          warmup: [
            {
              source: 'warm',
              day: 2,
              finished: false,
              dailyCap: 100,
              sentToday: 100,
              sentThisHour: 7,
              reserved: 0,
              overflow: 'wait',
              capped: true,
              availableAt: T0 + 24 * 60 * MINUTE,
            },
            { nonsense: true },
          ],
          routes: [
            {
              route: 'primary',
              state: 'down',
              failures: { connection: 4, '421': 0 },
              downSince: T0,
              fallback: 'backup',
            },
            'garbage',
          ],
        },
      },
      now - 1000,
    );
    await store.heartbeat(
      { id: 'gone', startedAt: T0, info: { routes: [{ route: 'primary', state: 'down' }] } },
      now - 3 * HEARTBEAT_MS,
    );
    const config = loadConfig({ env: {}, cwd: '/nonexistent' });
    const report = await buildQueueSummary(store, config, now);
    assert.deepEqual(report.warmup, [
      {
        node: 'live',
        source: 'warm',
        day: 2,
        dailyCap: 100,
        hourlyCap: null,
        sentToday: 100,
        sentThisHour: 7,
        capped: true,
        availableAt: new Date(T0 + 24 * 60 * MINUTE).toISOString(),
      },
    ]);
    assert.deepEqual(
      report.routes.map((r) => [r.node, r.route, r.state, r.fallback, r.downSince]),
      [['live', 'primary', 'down', 'backup', new Date(T0).toISOString()]],
    );
  } finally {
    await store.close();
    dir.cleanup();
  }
});
