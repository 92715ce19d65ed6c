/**
 * The dashboard on a 10,000-message account: seeds the store directly (9,000 delivered, 500
 * bounced, 500 waiting for later), starts `postbote start`, and measures in chromium how long
 * Activity and the Overview take to show their data (click → rows / figures and chart drawn),
 * plus the API calls behind them. Prints medians and maxima of `--runs` (default 5).
 *
 *   node bench/dashboard.ts [--messages 10000] [--runs 5]
 *
 * Needs /usr/bin/chromium and a built dashboard (npm run build:web). SQLite only.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { newId } from '../src/store/ids.ts';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.ts';
import type { NewMessage, Outcome } from '../src/store/types.ts';
import { startDnsServer } from '../test/support/dns-server.ts';
import { fakeMxEnv, stopPostbote } from '../test/support/e2e-harness.ts';
import { runCli, startPostboteProcess, waitFor } from '../test/support/postbote-process.ts';
import { startScriptedSink } from '../test/support/scripted-sink.ts';
import { tempDir } from '../test/support/temp-dir.ts';
import { machineLines } from './lib/report.ts';

const { values } = parseArgs({
  options: { messages: { type: 'string', default: '10000' }, runs: { type: 'string', default: '5' } },
});
const MESSAGES = Number(values.messages);
const RUNS = Number(values.runs);
const DOMAINS = ['gmail.test', 'outlook.test', 'yahoo.test', 'web.test', 'gmx.test', 'corp.test'];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const ms = (x: number) => `${x.toFixed(0)} ms`;

async function seed(path: string, accountId: string): Promise<void> {
  const store = new SqliteStore(path);
  await store.migrate();
  const now = Date.now();
  const started = performance.now();
  for (let done = 0; done < MESSAGES; ) {
    const batch: NewMessage[] = [];
    for (let i = 0; i < 500 && done < MESSAGES; i++, done++) {
      const domain = DOMAINS[done % DOMAINS.length] ?? 'x.test';
      const receivedAt = now - Math.floor(((MESSAGES - done) / MESSAGES) * 23 * 3_600_000);
      const waiting = done % 20 === 19;
      batch.push({
        id: newId(receivedAt),
        accountId,
        credentialId: null,
        mailFrom: 'shop@sender.test',
        recipients: [{ address: `user${done}@${domain}`, domain }],
        body: Buffer.from(`Subject: Order ${done}\r\n\r\nThanks for order ${done}\r\n`),
        messageIdHeader: `<m${done}@sender.test>`,
        subject: `Order ${done}`,
        source: 'api',
        clientIp: '127.0.0.1',
        dsn: {},
        dsnOnFailure: false,
        receivedAt,
        // One in twenty waits for tomorrow: the queue is not empty.
        ...(waiting ? { notBefore: now + 86_400_000 } : {}),
      });
    }
    await store.insertMessages(batch);
  }
  // Deliver (or bounce) everything due, as a delivery engine would record it.
  for (;;) {
    const leased = await store.leaseDue({ owner: 'seed', now, limit: 1000, leaseUntil: now + 600_000 });
    if (leased.length === 0) break;
    const outcomes: Outcome[] = leased.map((r, i) => {
      const bounce = i % 19 === 0;
      return {
        at: now - 60_000,
        recipientId: r.id,
        messageId: r.messageId,
        accountId: r.accountId,
        recipient: r.address,
        state: bounce ? 'bounced' : 'delivered',
        attempted: true,
        reply: bounce
          ? { code: 550, enhanced: '5.1.1', text: 'no such user' }
          : { code: 250, enhanced: '2.0.0', text: 'ok' },
        event: bounce
          ? { type: 'bounced', data: { mxHost: 'mx.example.test', bounceType: 'hard' } }
          : { type: 'delivered', data: { mxHost: 'mx.example.test' } },
      };
    });
    await store.recordOutcomes('seed', outcomes);
  }
  process.stdout.write(
    `seeded ${MESSAGES} messages in ${ms(performance.now() - started)}: ${JSON.stringify(await store.countByState())}\n`,
  );
  await store.close();
}

async function main(): Promise<void> {
  process.stdout.write(`${machineLines('dashboard on a seeded account').join('\n')}\n`);
  const dir = tempDir('postbote-bench-dashboard-');
  const sink = await startScriptedSink({ host: '127.0.0.2', hostname: 'mx.example.test' });
  const dns = await startDnsServer({ zones: {} });
  const env = {
    ...fakeMxEnv({ dataDir: dir.path, dns: dns.address, mxPort: sink.port }),
    POSTBOTE_STATS__INTERVAL: '1s',
  };
  await runCli(['accounts', 'create', 'acme', '--sender-policy', 'any'], env);
  const [user] = JSON.parse(
    await runCli(['users', 'create', '--account', 'acme', '--email', 'ops@acme.test', '--json'], env),
  ) as { id: string; password: string }[];
  const [account] = JSON.parse(await runCli(['accounts', 'list', '--json'], env)) as { id: string }[];
  await seed(join(dir.path, 'postbote.db'), account?.id ?? '');

  const postbote = await startPostboteProcess({ dataDir: dir.path, env });
  const base = `http://127.0.0.1:${postbote.httpPort}`;
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    await page.goto(`${base}/`);
    await page.getByLabel('E-mail').fill('ops@acme.test');
    await page.getByLabel('Password').fill(user?.password ?? '');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    // The stats roll-up has read the seeded events once Delivered shows them.
    await waitFor(
      async () => {
        await page.getByRole('button', { name: 'Refresh' }).click();
        const text =
          (await page
            .locator('[data-figure="Delivered"] dd')
            .textContent()
            .catch(() => '')) ?? '';
        return Number(text) > 0.9 * MESSAGES * 0.9;
      },
      { what: 'the stats roll-up of the seeded events', timeoutMs: 120_000, intervalMs: 1000 },
    );

    const activity: number[] = [];
    const overview: number[] = [];
    const queue: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      let t = performance.now();
      await page.getByRole('link', { name: 'Activity' }).click();
      await page.locator('table tbody tr').nth(49).waitFor();
      activity.push(performance.now() - t);

      t = performance.now();
      await page.getByRole('link', { name: 'Overview' }).click();
      await page.locator('[data-figure="Delivered"] dd').waitFor();
      await page.locator('[data-figure="queue Waiting"] dd').waitFor();
      await page.locator('.chart canvas').nth(1).waitFor();
      await page.locator('table tbody tr').first().waitFor();
      overview.push(performance.now() - t);

      t = performance.now();
      await page.getByRole('link', { name: 'Queue', exact: true }).click();
      await page.getByRole('rowheader', { name: 'outlook.test' }).waitFor();
      queue.push(performance.now() - t);
    }
    const api: Record<string, number[]> = {};
    const since = new Date(Date.now() - 24 * 3_600_000).toISOString();
    const cookies = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    for (const path of [
      '/v1/messages?limit=50',
      '/v1/messages?limit=50&status=queued',
      `/v1/messages?limit=50&recipient=user${Math.floor(MESSAGES / 2)}@${DOMAINS[Math.floor(MESSAGES / 2) % DOMAINS.length]}`,
      '/v1/queue',
      `/v1/stats?interval=hour&from=${since}`,
      `/v1/stats?interval=hour&from=${since}&group_by=provider`,
      '/v1/events?limit=50',
    ]) {
      api[path] = [];
      for (let i = 0; i < RUNS; i++) {
        const t = performance.now();
        const r = await fetch(`${base}${path}`, { headers: { cookie: cookies } });
        await r.arrayBuffer();
        if (!r.ok) throw new Error(`${path}: ${r.status}`);
        api[path]?.push(performance.now() - t);
      }
    }
    process.stdout.write(`\nin chromium, click → data shown (${RUNS} runs; median / max):\n`);
    process.stdout.write(
      `  Activity (50 newest messages)           ${ms(median(activity))} / ${ms(Math.max(...activity))}\n`,
    );
    process.stdout.write(
      `  Overview (totals, 2 charts, breakdowns, queue)  ${ms(median(overview))} / ${ms(Math.max(...overview))}\n`,
    );
    process.stdout.write(
      `  Queue (summary by domain and site)      ${ms(median(queue))} / ${ms(Math.max(...queue))}\n`,
    );
    process.stdout.write('\nAPI calls (session cookie; median / max):\n');
    for (const [path, xs] of Object.entries(api)) {
      process.stdout.write(`  ${path.padEnd(70)} ${ms(median(xs))} / ${ms(Math.max(...xs))}\n`);
    }
  } finally {
    await browser.close();
    await stopPostbote(postbote);
    await Promise.all([sink.close(), dns.close()]);
    dir.cleanup();
  }
}

await main();
