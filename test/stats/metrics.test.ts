/**
 * /metrics parses as Prometheus text (checked by a small parser of the format's rules), carries
 * the queue, the delivery thread's figures from the heartbeat and hooked gauges, honours the
 * token; /healthz and /readyz say what they promise.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { registerOperationsRoutes } from '../../src/api/metrics.ts';
import { createDeliveryMetrics, deliveryFamilies } from '../../src/stats/delivery-metrics.ts';
import { createMetricsRegistry, formatExposition } from '../../src/stats/prometheus.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { Outcome } from '../../src/store/types.ts';
import { sampleMessage, T0 } from '../store/contract.ts';

interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * The text format's rules, strictly: HELP and TYPE before a family's samples, each family once,
 * sample names of the family (histograms: _bucket/_sum/_count), label syntax with escapes,
 * numeric values, cumulative buckets ending in +Inf equal to _count.
 */
function parseExposition(text: string): { types: Map<string, string>; samples: ParsedSample[] } {
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const samples: ParsedSample[] = [];
  let current = '';
  for (const line of text.slice(0, -1).split('\n')) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (help) {
      const name = help[1] ?? '';
      assert.ok(!helped.has(name), `HELP ${name} once`);
      helped.add(name);
      current = name;
      continue;
    }
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      assert.equal(type[1], current, 'TYPE follows its HELP');
      assert.ok(!types.has(current), `TYPE ${current} once`);
      types.set(current, type[2] ?? '');
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const [, name = '', , labelText = '', valueText = ''] = m;
    const suffixes = types.get(current) === 'histogram' ? ['_bucket', '_sum', '_count'] : [''];
    assert.ok(
      suffixes.some((s) => name === `${current}${s}`),
      `${name} belongs to ${current}`,
    );
    const labels: Record<string, string> = {};
    const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/gy;
    let consumed = 0;
    for (let l = labelRe.exec(labelText); l; l = labelRe.exec(labelText)) {
      labels[l[1] ?? ''] = (l[2] ?? '').replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
      consumed = labelRe.lastIndex;
    }
    assert.equal(consumed, labelText.length, `labels parse: ${labelText}`);
    const value = valueText === '+Inf' ? Number.POSITIVE_INFINITY : Number(valueText);
    assert.ok(!Number.isNaN(value) || valueText === 'NaN', `a number: ${valueText}`);
    samples.push({ name, labels, value });
  }
  for (const [name, type] of types) {
    if (type !== 'histogram') continue;
    const buckets = samples.filter((s) => s.name === `${name}_bucket`);
    const count = samples.find((s) => s.name === `${name}_count`)?.value;
    for (let i = 1; i < buckets.length; i++) {
      assert.ok((buckets[i]?.value ?? 0) >= (buckets[i - 1]?.value ?? 0), `${name} buckets are cumulative`);
    }
    assert.equal(buckets.at(-1)?.labels.le, '+Inf');
    assert.equal(buckets.at(-1)?.value, count);
  }
  return { types, samples };
}

const value = (samples: ParsedSample[], name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

function outcome(o: Partial<Outcome>): Outcome {
  return {
    at: T0,
    recipientId: 1,
    messageId: 'm',
    accountId: 'a',
    recipient: 'x@y.test',
    state: 'delivered',
    attempted: true,
    reply: null,
    event: { type: 'delivered', data: { queueMs: 1500 } },
    site: 'provider:google',
    ...o,
  };
}

describe('the exposition format', () => {
  it('escapes label values and help, merges a family given twice, formats histograms', () => {
    const text = formatExposition([
      {
        name: 'x_total',
        help: 'a \\ b\nc',
        type: 'counter',
        samples: [{ labels: { v: 'q"\\\n' }, value: 1 }],
      },
      { name: 'x_total', help: 'again', type: 'counter', samples: [{ labels: { v: 'two' }, value: 2 }] },
      { name: 'empty', help: 'nothing', type: 'gauge', samples: [] },
    ]);
    assert.equal(
      text,
      '# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\nx_total{v="q\\"\\\\\\n"} 1\nx_total{v="two"} 2\n',
    );
    const { samples } = parseExposition(text);
    assert.equal(samples[0]?.labels.v, 'q"\\\n');
    assert.throws(() =>
      formatExposition([{ name: 'bad name', help: '', type: 'gauge', samples: [{ value: 1 }] }]),
    );
  });

  it('carries the delivery thread’s counters through a JSON heartbeat', () => {
    const metrics = createDeliveryMetrics();
    metrics.observe([
      outcome({}),
      outcome({ event: { type: 'delivered', data: { queueMs: 90_000_000 } } }),
      outcome({ state: 'deferred', site: 'mx1.a.test' }),
      outcome({ state: 'deferred' }),
      outcome({ state: 'bounced', site: undefined }),
      outcome({ state: 'queued', attempted: false }),
    ]);
    const families = deliveryFamilies(JSON.parse(JSON.stringify(metrics.snapshot())));
    const { samples } = parseExposition(formatExposition(families));
    assert.equal(value(samples, 'postbote_deliveries_total', { result: 'delivered', provider: 'gmail' }), 2);
    assert.equal(value(samples, 'postbote_deliveries_total', { result: 'deferred', provider: 'other' }), 1);
    assert.equal(value(samples, 'postbote_deliveries_total', { result: 'deferred', provider: 'gmail' }), 1);
    assert.equal(value(samples, 'postbote_deliveries_total', { result: 'bounced', provider: 'none' }), 1);
    assert.equal(value(samples, 'postbote_delivery_latency_seconds_bucket', { le: '2.5' }), 1);
    assert.equal(value(samples, 'postbote_delivery_latency_seconds_bucket', { le: '+Inf' }), 2);
    assert.equal(value(samples, 'postbote_delivery_latency_seconds_sum'), 90_001.5);
    // Whatever a heartbeat row holds, a scrape does not fail.
    for (const junk of [null, 'x', { deliveries: 5, latency: { bounds: [1], counts: [1] } }]) {
      assert.doesNotThrow(() => formatExposition(deliveryFamilies(junk)));
    }
  });
});

describe('operations endpoints', () => {
  let store: SqliteStore;
  let app: FastifyInstance;
  let now = T0;
  let listening = true;
  const registry = createMetricsRegistry();

  const start = async (token: string) => {
    const a = Fastify();
    registerOperationsRoutes(a, {
      store,
      nodeId: 'n1',
      startedAt: T0 - 60_000,
      clock: () => now,
      registry: token === '' ? registry : createMetricsRegistry(),
      metricsToken: token,
      readiness: { listeners: () => listening, heartbeatMaxAgeMs: 30_000 },
    });
    await a.ready();
    return a;
  };

  before(async () => {
    store = new SqliteStore(':memory:');
    await store.migrate();
    await store.createAccount({ id: 'a', name: 'acme', createdAt: T0 });
    await store.insertMessages([sampleMessage('a', ['x@one.test', 'y@one.test'])]);
    const delivery = createDeliveryMetrics();
    delivery.observe([outcome({})]);
    await store.heartbeat(
      { id: 'n1', startedAt: T0, info: { metrics: delivery.snapshot(), webhookBacklog: 7 } },
      T0,
    );
    registry.setGauge('postbote_example_hook', 'A gauge another part sets.', 3, { kind: 'x' });
    app = await start('');
  });
  after(async () => {
    await app.close();
    await store.close();
  });

  it('/metrics: queue, deliveries, latency, process, hooks; parsable', async () => {
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const { types, samples } = parseExposition(res.body);
    assert.equal(value(samples, 'postbote_queue_recipients', { state: 'queued', lane: 'transactional' }), 2);
    assert.equal(value(samples, 'postbote_deliveries_total', { result: 'delivered', provider: 'gmail' }), 1);
    assert.equal(types.get('postbote_delivery_latency_seconds'), 'histogram');
    assert.equal(value(samples, 'postbote_webhook_backlog'), 7);
    assert.equal(value(samples, 'postbote_example_hook', { kind: 'x' }), 3);
    assert.ok((value(samples, 'postbote_process_resident_memory_bytes') ?? 0) > 0);
    assert.equal(value(samples, 'postbote_process_uptime_seconds'), 60);
    assert.ok(value(samples, 'postbote_event_loop_delay_seconds', { stat: 'p99' }) !== undefined);
    assert.equal(value(samples, 'postbote_metrics_collector_errors'), 0);
  });

  it('/metrics with a token wants it', async () => {
    const guarded = await start('s3cret');
    try {
      assert.equal((await guarded.inject({ method: 'GET', url: '/metrics' })).statusCode, 401);
      const wrong = { authorization: 'Bearer s3creT' };
      assert.equal(
        (await guarded.inject({ method: 'GET', url: '/metrics', headers: wrong })).statusCode,
        401,
      );
      const right = { authorization: 'Bearer s3cret' };
      assert.equal(
        (await guarded.inject({ method: 'GET', url: '/metrics', headers: right })).statusCode,
        200,
      );
    } finally {
      await guarded.close();
    }
  });

  it('/healthz is liveness; /readyz checks store, listeners and the delivery heartbeat', async () => {
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).json().status, 'ok');
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 200, ready.body);
    now = T0 + 31_000;
    const stale = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(stale.statusCode, 503);
    assert.equal(stale.json().checks.delivery.ok, false);
    assert.match(stale.json().checks.delivery.detail, /31 s ago/);
    now = T0;
    listening = false;
    assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).json().checks.listeners.ok, false);
    listening = true;
  });

  it('a store that is gone: /readyz 503, /metrics still answers with what it has, /healthz 200', async () => {
    const gone = new SqliteStore(':memory:');
    await gone.migrate();
    await gone.close();
    const a = Fastify();
    registerOperationsRoutes(a, {
      store: gone,
      nodeId: 'n1',
      startedAt: T0,
      registry: createMetricsRegistry(),
      metricsToken: '',
    });
    try {
      const ready = await a.inject({ method: 'GET', url: '/readyz' });
      assert.equal(ready.statusCode, 503);
      assert.equal(ready.json().checks.store.ok, false);
      const metrics = await a.inject({ method: 'GET', url: '/metrics' });
      assert.equal(metrics.statusCode, 200);
      const { samples } = parseExposition(metrics.body);
      assert.equal(value(samples, 'postbote_metrics_collector_errors'), 2);
      assert.ok(value(samples, 'postbote_process_resident_memory_bytes'));
      assert.equal((await a.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    } finally {
      await a.close();
    }
  });
});
