import assert from 'node:assert/strict';
import { it } from 'node:test';
import { connectionsBySite } from '../../src/delivery/engine.ts';
import type { PoolKeyStats } from '../../src/delivery/session-pool.ts';

const key = (site: string, open: number, port = 25): PoolKeyStats => ({
  key: `${site}:${port}`,
  site,
  port,
  localAddress: undefined,
  ehloName: 'relay.test',
  open,
  busy: 0,
  idle: open,
  waiting: 0,
});

it('heartbeat: open connections summed per site over its pool keys, most first, the top `limit`', () => {
  const stats = [
    key('provider:google', 3),
    key('mx.a.test', 1),
    key('provider:google', 2, 587),
    key('mx.b.test', 4),
    key('mx.idle.test', 0),
    key('mx.c.test', 1),
  ];
  assert.deepEqual(connectionsBySite(stats), [
    { site: 'provider:google', open: 5 },
    { site: 'mx.b.test', open: 4 },
    { site: 'mx.a.test', open: 1 },
    { site: 'mx.c.test', open: 1 },
  ]);
  assert.deepEqual(
    connectionsBySite(stats, 2).map((s) => s.site),
    ['provider:google', 'mx.b.test'],
  );
  assert.deepEqual(connectionsBySite([]), []);
});
