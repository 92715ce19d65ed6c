/**
 * Statistics end to end: a running `postbote start` delivers a mixed run to a scripted sink
 * (delivered, a 550 5.1.1 hard bounce, a 452 4.2.2 soft bounce), a complaint and two opens are
 * added to its event log through the store, and /v1/stats, `postbote stats` and /metrics must
 * agree with the events the API shows for the messages.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { countersOf } from '../../src/stats/counters.ts';
import { openStore } from '../../src/store/open.ts';
import type { EventType } from '../../src/store/types.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { fakeMxEnv, stopPostbote } from '../support/e2e-harness.ts';
import {
  type PostboteProcess,
  runCli,
  startPostboteProcess,
  testStore,
  waitFor,
} from '../support/postbote-process.ts';
import { testDatabaseUrl } from '../support/postgres.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

type Shown = {
  recipients: { id: string; email: string; status: string }[];
  events: { type: string; recipient?: string; data: Record<string, unknown> }[];
};
type Entry = {
  counters: Record<string, number>;
  hard_bounces_by_category: Record<string, number>;
  soft_bounces_by_category: Record<string, number>;
  rates: Record<string, number | null>;
  tag?: string;
  domain?: string;
  provider?: string;
  stream?: string;
};

describe('statistics end to end: stats match the events of a mixed run', { timeout: 120_000 }, () => {
  const dir = tempDir('postbote-e2e-stats-');
  let dns: TestDnsServer;
  let sink: ScriptedSink;
  let postbote: PostboteProcess;
  let env: Record<string, string> = {};
  let key = '';

  before(async () => {
    sink = await startScriptedSink({
      host: '127.0.0.2',
      hostname: 'mx.example.test',
      respond: ({ verb, arg }) => {
        if (verb !== 'RCPT') return undefined;
        if (arg.includes('<gone@'))
          return '550 5.1.1 <gone@example.test>: Recipient address rejected: User unknown';
        if (arg.includes('<full@')) return '452 4.2.2 <full@example.test>: Mailbox full';
        return undefined;
      },
    });
    dns = await startDnsServer({
      zones: {
        'example.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }] },
        'mx.example.test': { A: ['127.0.0.2'] },
      },
    });
    env = {
      ...fakeMxEnv({ dataDir: dir.path, dns: dns.address, mxPort: sink.port }),
      // One attempt per recipient in this test: the deferral is not retried while it runs.
      POSTBOTE_DELIVERY__RETRY__FIRST: '1h',
      POSTBOTE_STATS__INTERVAL: '1s',
      POSTBOTE_HTTP__METRICS_TOKEN: 'metrics-secret',
    };
    await runCli(['accounts', 'create', 'shop'], env);
    await runCli(['domains', 'trust', 'shop.test', '--account', 'shop'], env);
    const [row] = JSON.parse(
      await runCli(
        ['credentials', 'create', '--account', 'shop', '--api', '--scopes', 'send,read', '--json'],
        env,
      ),
    ) as { secret?: string }[];
    key = row?.secret ?? '';
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
  });

  after(async () => {
    await stopPostbote(postbote);
    await Promise.all([sink?.close(), dns?.close()]);
    dir.cleanup();
  });

  async function api<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const response = await fetch(`http://127.0.0.1:${postbote.httpPort}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text) as T;
  }

  /** The store the node uses, opened from the test (SQLite file or the node's PostgreSQL schema). */
  const nodeStore = () =>
    openStore(
      loadConfig({
        env:
          testStore === 'postgres'
            ? {
                ...env,
                POSTBOTE_DATABASE__URL: testDatabaseUrl,
                POSTBOTE_DATABASE__SCHEMA: `postbote_e2e_${createHash('sha256').update(dir.path).digest('hex').slice(0, 12)}`,
              }
            : env,
      }),
    );

  it('delivers, bounces and defers; counts match the events, by tag, domain, provider and stream', async () => {
    const first = await api<{ id: string }>('POST', '/v1/messages', {
      from: 'Shop <orders@shop.test>',
      to: ['a@example.test', 'b@example.test', 'gone@example.test', 'full@example.test'],
      subject: 'welcome',
      text: 'Hello.',
      tags: ['welcome', 'promo'],
    });
    const second = await api<{ id: string }>('POST', '/v1/messages', {
      from: 'Shop <news@shop.test>',
      to: ['c@example.test'],
      subject: 'news',
      text: 'News.',
      stream: 'broadcast',
    });
    const settled = (id: string, want: Record<string, string>) =>
      waitFor(
        async () => {
          const shown = await api<Shown>('GET', `/v1/messages/${id}`);
          return Object.entries(want).every(
            ([e, s]) => shown.recipients.find((r) => r.email === e)?.status === s,
          )
            ? shown
            : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 100, what: `${JSON.stringify(want)} for ${id}` },
      );
    const one = await settled(first.id, {
      'a@example.test': 'delivered',
      'b@example.test': 'delivered',
      'gone@example.test': 'bounced',
      'full@example.test': 'deferred',
    });
    await settled(second.id, { 'c@example.test': 'delivered' });

    // A complaint about b@ and opens by a@ (one by a person, one by a proxy), into the event log
    // the way the inbound MX and the tracking endpoints write them.
    const store = await nodeStore();
    try {
      const recipients = await store.getRecipients(first.id);
      const b = recipients.find((r) => r.address === 'b@example.test');
      const a = recipients.find((r) => r.address === 'a@example.test');
      assert.ok(a && b);
      await store.recordAsyncReports([{ recipientId: b.id, at: Date.now(), type: 'complained', data: {} }]);
      await store.appendEvents(
        [{ machine: false, first: true }, { machine: true }].map((data) => ({
          at: Date.now(),
          type: 'opened' as EventType,
          accountId: a.accountId,
          messageId: first.id,
          recipientId: a.id,
          recipient: a.address,
          data,
        })),
      );
    } finally {
      await store.close();
    }

    // What the events say, counted by the same rules.
    const expected: Record<string, number> = {};
    for (const id of [first.id, second.id]) {
      for (const event of (await api<Shown>('GET', `/v1/messages/${id}`)).events) {
        for (const counter of countersOf({ type: event.type, data: event.data ?? {} })) {
          expected[counter] = (expected[counter] ?? 0) + 1;
        }
      }
    }
    assert.equal(expected.accepted, 5);
    assert.equal(expected.delivered, 3);
    assert.equal(expected.hard_bounced, 1);
    assert.equal(expected['hard_bounced:unknown_user'], 1);
    assert.equal(expected.soft_bounced, 1);
    assert.equal(expected['soft_bounced:mailbox_full'], 1);
    assert.equal(expected.complained, 1);
    assert.equal(expected.opened_human, 1);
    assert.equal(expected.opened_machine, 1);

    const stats = await waitFor(
      async () => {
        const answer = await api<{ totals: Entry[] }>('GET', '/v1/stats');
        const total = answer.totals[0];
        return total && total.counters.opened_machine === 1 && total.counters.complained === 1
          ? total
          : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: 'the rollup of every event' },
    );
    for (const [counter, n] of Object.entries(expected)) {
      const [name, category] = counter.split(':');
      const got =
        category === undefined
          ? stats.counters[counter]
          : name === 'hard_bounced'
            ? stats.hard_bounces_by_category[category]
            : stats.soft_bounces_by_category[category];
      assert.equal(got, n, `${counter}: /v1/stats ${got}, events ${n}`);
    }
    assert.equal(stats.rates.delivery_rate, 0.75);
    assert.equal(stats.rates.bounce_rate, 0.25);
    assert.equal(stats.rates.complaint_rate, 0.333333);
    assert.deepEqual(one.events.filter((e) => e.type === 'delivered').length, 2);

    const byTag = await api<{ totals: Entry[] }>('GET', '/v1/stats?group_by=tag');
    assert.deepEqual(
      byTag.totals.map((e) => [e.tag, e.counters.accepted, e.counters.delivered]),
      [
        ['promo', 4, 2],
        ['welcome', 4, 2],
      ],
    );
    const byDims = await api<{ totals: Entry[] }>('GET', '/v1/stats?group_by=domain,provider,stream');
    assert.deepEqual(
      byDims.totals.map((e) => [e.domain, e.provider, e.stream, e.counters.delivered]),
      [
        ['shop.test', 'other', 'broadcast', 1],
        ['shop.test', 'other', 'outbound', 2],
      ],
    );

    // The CLI reads the same rollups.
    const cli = JSON.parse(await runCli(['stats', '--account', 'shop', '--json'], env)) as {
      totals: Entry[];
    };
    assert.deepEqual(cli.totals[0]?.counters, stats.counters);
    const table = await runCli(['stats', '--account', 'shop', '--totals'], env);
    assert.match(table, /TOTAL\s+5\s+3\s+1\s+1\s+1/);
  });

  it('/metrics shows the deliveries (after a heartbeat), the queue, and wants its token; /readyz is ready', async () => {
    const url = `http://127.0.0.1:${postbote.httpPort}`;
    assert.equal((await fetch(`${url}/metrics`)).status, 401);
    const text = await waitFor(
      async () => {
        const body = await (
          await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer metrics-secret' } })
        ).text();
        return /postbote_deliveries_total\{result="delivered",provider="other"\} 3/.test(body)
          ? body
          : undefined;
      },
      { timeoutMs: 25_000, intervalMs: 500, what: 'the deliveries in /metrics (heartbeat every 10 s)' },
    );
    assert.match(text, /postbote_deliveries_total\{result="bounced",provider="other"\} 1/);
    assert.match(text, /postbote_deliveries_total\{result="deferred",provider="other"\} 1/);
    assert.match(text, /postbote_queue_recipients\{state="deferred",lane="transactional"\} 1/);
    assert.match(text, /postbote_delivery_latency_seconds_count 3/);
    const ready = await fetch(`${url}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
  });
});
