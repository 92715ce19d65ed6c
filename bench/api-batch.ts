/**
 * The batch send API under load: C concurrent clients each POST /v1/messages/batch with one
 * personalised message of R recipients (every recipient its own rendered copy, as a newsletter
 * merge does), as fast as the answers come back. A 202 means durable, so accepted recipients/s
 * is the durable intake rate; p50/p99 are per call. Postbote delivers what it accepts to
 * smtp-sink meanwhile (as it would in production), unless --no-delivery parks the mail
 * (send_at a day ahead: intake does the same work, delivery none).
 *
 *   npm run bench:api                           # 4 clients × 1,000 recipients, 60 calls
 *   npm run bench:api -- --calls 20 --clients 2
 *   npm run bench:api -- --tracking off         # the broadcast stream tracking nothing
 *
 * The message goes to the `broadcast` stream, which tracks opens and clicks and adds
 * List-Unsubscribe by default (src/tracking/): every recipient's copy gets its three links
 * rewritten, the pixel and its unsubscribe URL. `--tracking off` switches the stream's tracking
 * off first (`postbote streams update`), so the two runs show what rewriting costs.
 */
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runCli, startPostboteNode, startSinkDns } from './lib/postbote-node.ts';
import { Cleanup } from './lib/processes.ts';
import { cpuMeter, dur, int, machineLines, out, percentile, table, verdict } from './lib/report.ts';
import { smtpToolsInstalled, startSink } from './lib/smtp-tools.ts';

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '4' },
    recipients: { type: 'string', default: '1000' },
    calls: { type: 'string', default: '60' },
    'no-delivery': { type: 'boolean', default: false },
    'log-level': { type: 'string', default: 'warn' },
    keep: { type: 'boolean', default: false },
    tracking: { type: 'string', default: 'on' },
  },
});
if (args.tracking !== 'on' && args.tracking !== 'off') throw new Error('--tracking must be on or off');
const CLIENTS = Number(args.clients);
const RECIPIENTS = Number(args.recipients);
const CALLS = Number(args.calls);
const TARGET = 5000;

function batchBody(call: number, sendAt: string | undefined): string {
  const recipients = Array.from({ length: RECIPIENTS }, (_, i) => ({
    email: `user${call}-${i}@sink.test`,
    name: `User ${i}`,
    variables: { first: `First${i}`, code: `C${call}-${i}`, points: i * 7 },
  }));
  return JSON.stringify({
    messages: [
      {
        from: { email: 'news@bench.test', name: 'Bench News' },
        subject: 'Hello {{first}}, your code {{code}}',
        text:
          'Hi {{first}},\n\nyou have {{points}} points. Your code is {{code}}.\n\n' +
          'Lorem ipsum dolor sit amet. '.repeat(20),
        html:
          '<html><body><h1>Hi {{first}}</h1><p>You have <b>{{points}}</b> points.</p><p>Your code: {{code}}</p>' +
          '<p>Lorem ipsum dolor sit amet. </p>'.repeat(20) +
          '<p><a href="https://shop.bench.test/offers?code={{code}}">Offers</a> · ' +
          '<a href="https://shop.bench.test/account">Account</a> · <a href="https://blog.bench.test/">Blog</a></p>' +
          // The unsubscribe URL is per recipient too: only where tracking is on.
          (args.tracking === 'on' ? '<p><a href="{{unsubscribe_url}}">Unsubscribe</a></p>' : '') +
          '</body></html>',
        tags: ['bench'],
        stream: 'broadcast',
        recipients,
        ...(sendAt ? { send_at: sendAt } : {}),
      },
    ],
  });
}

async function main(): Promise<void> {
  const cleanup = new Cleanup();
  process.on('SIGINT', () => void cleanup.runAll().then(() => process.exit(130)));
  const dir = await mkdtemp(join(os.tmpdir(), 'postbote-bench-api-'));
  if (!args.keep) cleanup.add('temp dir', () => rmSync(dir, { recursive: true, force: true }));
  try {
    const delivery = !args['no-delivery'] && smtpToolsInstalled();
    const sink = delivery ? await startSink({ cleanup, name: 'smtp-sink' }) : undefined;
    const dns = await startSinkDns(cleanup);
    const node = await startPostboteNode({
      dataDir: dir,
      dnsServer: dns,
      deliveryPort: sink?.port ?? 9,
      logLevel: args['log-level'] ?? 'warn',
      // The bench measures intake, not the per-key limiter (100 requests/s by default): small
      // calls (--recipients 1) would otherwise be answered 429.
      env: { POSTBOTE_API__RATE_LIMIT: '1000000' },
      cleanup,
      name: 'postbote',
    });
    await runCli(dir, ['accounts', 'create', 'bench', '--sender-policy', 'any']);
    const created = JSON.parse(
      await runCli(dir, ['credentials', 'create', '--account', 'bench', '--api', '--json']),
    ) as { secret: string }[];
    const key = created[0]?.secret ?? '';
    if (args.tracking === 'off') {
      await runCli(dir, [
        'streams',
        'update',
        'broadcast',
        '--account',
        'bench',
        '--track-opens',
        'off',
        '--track-clicks',
        'off',
        '--list-unsubscribe',
        'off',
      ]);
    }
    const url = `http://127.0.0.1:${node.httpPort}/v1/messages/batch`;
    const sendAt = delivery ? undefined : new Date(Date.now() + 86_400_000).toISOString();
    // Bodies are built up front: the clients' own JSON work must not count against Postbote.
    const bodies = Array.from({ length: CALLS }, (_, i) => batchBody(i, sendAt));
    const post = async (body: string): Promise<number> => {
      const t0 = performance.now();
      const res = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body,
      });
      const answer = (await res.json()) as { data?: { recipients: unknown[] }[]; errors?: unknown[] };
      if (res.status !== 202)
        throw new Error(`batch answered ${res.status}: ${JSON.stringify(answer).slice(0, 300)}`);
      return performance.now() - t0;
    };
    await post(batchBody(CALLS, sendAt)); // warm-up: JIT, caches, the stream lookup
    const latencies: number[] = [];
    let next = 0;
    const meter = cpuMeter();
    const cpu0 = node.cpuSeconds();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        for (let i = next++; i < CALLS; i = next++) latencies.push(await post(bodies[i] ?? ''));
      }),
    );
    const elapsedMs = performance.now() - t0;
    const reading = meter();
    const postboteCpu = node.cpuSeconds() - cpu0;
    latencies.sort((a, b) => a - b);
    const accepted = CALLS * RECIPIENTS;
    const perSecond = accepted / (elapsedMs / 1000);
    for (const line of machineLines(`Node ${process.version}`)) out(line);
    out(
      `load      ${CLIENTS} clients, ${CALLS} calls of 1 personalised message × ${int(RECIPIENTS)} recipients; ` +
        `delivery ${delivery ? 'to smtp-sink during the run' : 'parked (send_at +1 day)'}; ` +
        `tracking ${args.tracking === 'on' ? 'on (3 links, pixel, List-Unsubscribe per recipient)' : 'off'}`,
    );
    out();
    for (const line of table(
      ['figure', 'value'],
      [
        ['accepted recipients (durable)', int(accepted)],
        ['elapsed', dur(elapsedMs)],
        ['accepted recipients/s', int(perSecond)],
        ['call latency p50', dur(percentile(latencies, 50))],
        ['call latency p99', dur(percentile(latencies, 99))],
        ['call latency max', dur(latencies[latencies.length - 1])],
        [
          'Postbote CPU',
          `${postboteCpu.toFixed(1)} s (${(postboteCpu / (elapsedMs / 1000)).toFixed(2)} cores)`,
        ],
        ['other processes', `${reading.othersCores.toFixed(2)} cores`],
        ['peak RSS', `${Math.round((node.peakRssKb() ?? 0) / 1024)} MB`],
      ],
      new Set([1]),
    )) {
      out(line);
    }
    out();
    out(`target    ≥ ${int(TARGET)} accepted recipients/s: ${verdict(perSecond >= TARGET)}`);
    await node.stop();
  } finally {
    await cleanup.runAll();
  }
}

await main();
