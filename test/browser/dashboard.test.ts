/**
 * The dashboard in a real browser (playwright-core driving Debian's chromium) against a running
 * `postbote start` with a fake MX: log in, send a message through the API, find it in Activity
 * with its delivered event, see it counted on the Overview, create and revoke an API key, an
 * SMTP login and an IP credential, add
 * and remove a suppression, hold and delete queued mail (confirmed), change a stream's tracking (and see its egress pool),
 * preview and save a template, rotate a domain's DKIM key and delete the domain. POSTBOTE_SCREENSHOTS=1 writes a screenshot of each page to
 * docs/screenshots/ (for the README); normal runs write nothing.
 */
import assert from 'node:assert/strict';
import { accessSync, constants, existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { fakeMxEnv, stopPostbote } from '../support/e2e-harness.ts';
import { type PostboteProcess, runCli, startPostboteProcess, waitFor } from '../support/postbote-process.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = process.env.POSTBOTE_SCREENSHOTS === '1';
const shotsDir = fileURLToPath(new URL('../../docs/screenshots/', import.meta.url));
const built = existsSync(fileURLToPath(new URL('../../web/dist/index.html', import.meta.url)));

function chromiumMissing(): string | undefined {
  try {
    accessSync(CHROMIUM, constants.X_OK);
  } catch {
    return `${CHROMIUM} not installed (Debian package chromium)`;
  }
  if (!built) return 'the dashboard is not built (npm run build:web)';
  return undefined;
}

const missing = chromiumMissing();
if (missing && process.env.CI) throw new Error(`${missing}: CI must have it (.ci/run installs it)`);
if (missing) process.stdout.write(`# skipping the browser test: ${missing}\n`);

describe('dashboard in chromium', { skip: missing, timeout: 90_000 }, () => {
  const dir = tempDir('postbote-browser-');
  let dns: TestDnsServer;
  let sink: ScriptedSink;
  let postbote: PostboteProcess;
  let browser: Browser;
  let page: Page;
  let base = '';
  let key = '';
  let password = '';

  before(async () => {
    sink = await startScriptedSink({ host: '127.0.0.2', hostname: 'mx.example.test' });
    dns = await startDnsServer({
      zones: {
        'example.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }] },
        'mx.example.test': { A: ['127.0.0.2'] },
      },
    });
    // Stats roll up every 200 ms here (default 10 s), so the Overview counts the message soon.
    const env = {
      ...fakeMxEnv({ dataDir: dir.path, dns: dns.address, mxPort: sink.port }),
      POSTBOTE_STATS__INTERVAL: '200ms',
      // The SPF record a new domain is told to publish names the relay's address.
      POSTBOTE_DOMAINS__PUBLIC_IPS: '192.0.2.10',
    };
    await runCli(['accounts', 'create', 'acme', '--sender-policy', 'any'], env);
    const [credential] = JSON.parse(
      await runCli(['credentials', 'create', '--account', 'acme', '--api', '--json'], env),
    ) as { secret?: string }[];
    key = credential?.secret ?? '';
    const [user] = JSON.parse(
      await runCli(['users', 'create', '--account', 'acme', '--email', 'ops@acme.test', '--json'], env),
    ) as { password?: string }[];
    password = user?.password ?? '';
    assert.ok(key && password);
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
    base = `http://127.0.0.1:${postbote.httpPort}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  });

  after(async () => {
    await browser?.close();
    await stopPostbote(postbote);
    await Promise.all([sink?.close(), dns?.close()]);
    dir.cleanup();
  });

  const shot = async (name: string) => {
    if (SHOTS) await page.screenshot({ path: `${shotsDir}${name}.png`, fullPage: true });
  };

  it('serves the page with its security headers', async () => {
    const response = await fetch(`${base}/`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.equal(response.headers.get('cache-control'), 'no-cache');
  });

  it('logs in; a wrong password is refused', async () => {
    await page.goto(`${base}/`);
    await page.getByLabel('E-mail').fill('ops@acme.test');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'wrong e-mail or password' }).waitFor();
    await shot('login');
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === 'postbote_session');
    assert.ok(session?.httpOnly, 'the session cookie is httpOnly');
    assert.equal(session?.sameSite, 'Strict');
  });

  it('finds a message sent through the API in Activity, with its delivered event and reply', async () => {
    const sent = await fetch(`${base}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        from: 'shop@sender.test',
        to: 'ada@example.test',
        subject: 'Dashboard check',
        html: '<p>Hello <b>Ada</b> <img src="https://tracker.invalid/p.gif" alt="pixel"></p>',
        text: 'Hello Ada',
      }),
    });
    assert.equal(sent.status, 202);
    const { id } = (await sent.json()) as { id: string };
    await waitFor(
      () => sink.transactions.some((t) => t.recipients.some((r) => r.address === 'ada@example.test')),
      {
        what: 'the copy at the MX',
      },
    );
    await page.getByRole('link', { name: 'Activity' }).click();
    await page.getByLabel('Recipient').fill('ada@example.test');
    await page.getByRole('button', { name: 'Search' }).click();
    const link = page.getByRole('link', { name: 'Dashboard check' });
    // Delivered shortly after the MX took it; Refresh until the list says so.
    await waitFor(
      async () => {
        await page.getByRole('button', { name: 'Refresh' }).click();
        return (await page.locator('tr', { has: link }).locator('.status-delivered').count()) > 0;
      },
      { what: 'the delivered status in Activity', intervalMs: 300 },
    );
    await shot('activity');
    await link.click();
    await page.getByRole('heading', { name: 'Dashboard check' }).waitFor();
    assert.ok(page.url().endsWith(`#/messages/${id}`));
    await page.locator('.timeline .status-delivered').first().waitFor();
    assert.match((await page.locator('.timeline').textContent()) ?? '', /250/);
    const frame = page.frameLocator('iframe[title="Message content"]');
    await frame.locator('b', { hasText: 'Ada' }).waitFor();
    await shot('message');
  });

  it('counts the message on the Overview', async () => {
    await page.getByRole('link', { name: 'Overview' }).click();
    await waitFor(
      async () => {
        await page.getByRole('button', { name: 'Refresh' }).click();
        const delivered = page.locator('[data-figure="Delivered"] dd');
        return (await delivered.count()) > 0 && (await delivered.textContent())?.trim() === '1';
      },
      { what: 'delivered = 1 on the Overview', intervalMs: 300 },
    );
    await page.locator('.chart canvas').first().waitFor();
    // Delivered mail over time per stream and per provider (uPlot), beside their tables.
    await page.locator('[data-testid="chart-by-stream"] canvas').waitFor();
    await page.locator('[data-testid="chart-by-provider"] canvas').waitFor();
    await page.locator('[data-testid="chart-by-stream"] .u-legend', { hasText: 'outbound' }).waitFor();
    await shot('overview');
  });

  it('creates an API key (secret shown once) that works, and revokes it', async () => {
    await page.getByRole('link', { name: 'API keys' }).click();
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = (await page.getByTestId('new-key-secret').textContent()) ?? '';
    assert.match(secret, /^pb_[0-9a-f]{12}\./);
    const prefix = secret.split('.')[0] ?? '';
    const check = () =>
      fetch(`${base}/v1/messages?limit=1`, { headers: { authorization: `Bearer ${secret}` } });
    assert.equal((await check()).status, 200);
    await page.locator(`tr[data-key="${prefix}"]`).waitFor();
    await shot('keys');
    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: `Revoke ${prefix}` }).click();
    await page.locator(`tr[data-key="${prefix}"]`).waitFor({ state: 'detached' });
    assert.equal((await check()).status, 401);
  });

  it('creates an SMTP login (password shown once) and an IP credential, and revokes them', async () => {
    await page.getByRole('link', { name: 'SMTP credentials' }).click();
    await page.getByLabel('Username').fill('browser-relay');
    await page.getByRole('button', { name: 'Create login' }).click();
    const shown = (await page.getByTestId('new-smtp-password').textContent()) ?? '';
    assert.ok(shown.length >= 20, `a password is shown: ${shown}`);
    await page.locator('tr[data-credential="browser-relay"]').waitFor();
    await page.getByLabel('CIDRs').fill('192.0.2.0/24');
    await page.getByRole('button', { name: 'Add networks' }).click();
    await page.locator('tr[data-credential="192.0.2.0/24"]').waitFor();
    assert.equal(
      await page.getByTestId('new-smtp-password').textContent(),
      shown,
      'the password stays shown',
    );
    await shot('credentials');
    assert.ok(!(await page.content()).includes('scrypt'), 'no hash on the page');
    for (const name of ['browser-relay', '192.0.2.0/24']) {
      page.once('dialog', (d) => d.accept());
      await page.getByRole('button', { name: `Revoke ${name}` }).click();
      await page.locator(`tr[data-credential="${name}"]`).waitFor({ state: 'detached' });
    }
  });

  it('adds and removes a suppression', async () => {
    await page.getByRole('link', { name: 'Suppressions' }).click();
    await page.getByLabel('Address', { exact: true }).first().fill('blocked@example.test');
    await page.getByRole('button', { name: 'Suppress' }).click();
    await page.locator('tr[data-address="blocked@example.test"]').waitFor();
    await shot('suppressions');
    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: 'Remove blocked@example.test' }).click();
    await page.locator('tr[data-address="blocked@example.test"]').waitFor({ state: 'detached' });
  });

  it('holds and deletes waiting mail on the Queue page, each after a confirmation', async () => {
    const sent = await fetch(`${base}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        from: 'shop@sender.test',
        to: 'later@example.test',
        subject: 'Scheduled for later',
        text: 'Later',
        send_at: new Date(Date.now() + 3_600_000).toISOString(),
      }),
    });
    assert.equal(sent.status, 202);
    await page.getByRole('link', { name: 'Queue' }).click();
    await page.getByRole('heading', { name: 'Queue', exact: true }).waitFor();
    const row = page.locator('tr', { has: page.getByRole('rowheader', { name: 'example.test' }) });
    await row.waitFor();
    // Dismissed: nothing happens.
    page.once('dialog', (d) => d.dismiss());
    await page.getByRole('button', { name: 'Hold example.test' }).click();
    assert.equal((await page.locator('[data-figure="held"] dd').textContent())?.trim(), '0');
    let asked = '';
    page.once('dialog', (d) => {
      asked = d.message();
      d.accept();
    });
    await page.getByRole('button', { name: 'Hold example.test' }).click();
    await page.getByRole('status').filter({ hasText: 'Hold example.test: 1 recipient(s)' }).waitFor();
    assert.match(asked, /nothing is sent until you release them/);
    await page.locator('[data-figure="held"] dd', { hasText: '1' }).waitFor();
    await page.getByRole('link', { name: 'Scheduled for later' }).waitFor();
    await shot('queue');
    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: 'Delete message Scheduled for later' }).click();
    await page.getByRole('status').filter({ hasText: '1 recipient(s)' }).waitFor();
    await page.locator('[data-figure="held"] dd', { hasText: '0' }).waitFor();
    // The Overview shows the queue depth from the same API.
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.locator('[data-figure="queue Held"] dd', { hasText: '0' }).waitFor();
  });

  it("changes a stream's tracking switch", async () => {
    await page.getByRole('link', { name: 'Streams' }).click();
    const opens = page.getByRole('checkbox', { name: 'Opens (pixel) for broadcast' });
    await opens.waitFor();
    assert.equal(await opens.isChecked(), true, 'broadcast tracks opens by default');
    await opens.uncheck();
    await page.getByRole('status').filter({ hasText: 'Saved: broadcast opens off' }).waitFor();
    const streams = (await (
      await fetch(`${base}/v1/streams`, { headers: { authorization: `Bearer ${key}` } })
    ).json()) as { data: { name: string; tracking: { opens: boolean } }[] };
    assert.equal(streams.data.find((s) => s.name === 'broadcast')?.tracking.opens, false);
    await page.getByRole('button', { name: 'Use default for Opens (pixel) of broadcast' }).waitFor();
    // The configured pool the streams use, read-only (GET /v1/delivery).
    const pool = page.locator('tr[data-pool="default"]').first();
    await pool.waitFor();
    assert.match((await pool.textContent()) ?? '', /default/);
    await shot('streams');
  });

  it('edits a template with a live preview from variables and saves a new version', async () => {
    await page.getByRole('link', { name: 'Templates' }).click();
    await page.getByLabel('New template').fill('Welcome');
    await page.getByRole('button', { name: 'Create' }).click();
    const subject = page.locator('[data-preview="subject"]');
    await subject.filter({ hasText: 'Hello Ada' }).waitFor();
    await page.getByLabel('Variables (JSON)').fill('{"name": "Grace"}');
    await subject.filter({ hasText: 'Hello Grace' }).waitFor();
    await page
      .frameLocator('iframe[title="Message content"]')
      .locator('p', { hasText: 'Hello Grace' })
      .waitFor();
    // An unsaved edit shows in the preview before it is saved.
    await page.getByLabel('Subject').fill('Welcome aboard, {{name}}');
    await subject.filter({ hasText: 'Welcome aboard, Grace' }).waitFor();
    await page.getByText('(unsaved draft)').waitFor();
    await page.getByRole('button', { name: 'Save as new version' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved as version 2' }).waitFor();
    await page.getByText('(version 2)', { exact: true }).waitFor();
    await shot('templates');
  });

  it('shows webhooks with the event filter', async () => {
    await page.getByRole('link', { name: 'Webhooks' }).click();
    await page.getByRole('checkbox', { name: 'delivered' }).waitFor();
    await shot('webhooks');
  });

  it('adds a domain, rotates its DKIM key and deletes it', async () => {
    await page.getByRole('link', { name: 'Domains' }).click();
    await page.getByLabel('Add a domain').fill('brand.test');
    await page.getByRole('button', { name: 'Add' }).click();
    await page.getByRole('heading', { name: 'brand.test' }).waitFor();
    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: 'Rotate DKIM key' }).click();
    await page.getByRole('status').filter({ hasText: 'New DKIM key' }).waitFor();
    await page
      .getByText(/pending/)
      .first()
      .waitFor();
    await shot('domain-rotated');
    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: 'Delete domain' }).click();
    await page.getByRole('heading', { name: 'brand.test' }).waitFor({ state: 'detached' });
    await page.getByText('No sending domains yet.').waitFor();
  });

  it('shows the domains page and works at phone width', async () => {
    await page.getByRole('link', { name: 'Domains' }).click();
    await page.getByRole('heading', { name: 'Domains', exact: true }).waitFor();
    await shot('domains');
    await page.setViewportSize({ width: 390, height: 800 });
    await page.getByRole('link', { name: 'Overview' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    // Evaluated in the page (a string: this file's types have no DOM).
    const overflow = (await page.evaluate(
      'document.documentElement.scrollWidth - window.innerWidth',
    )) as number;
    assert.ok(overflow <= 1, `no sideways scrolling at phone width (${overflow} px too wide)`);
    await shot('overview-phone');
  });
});
