/**
 * Tracking end to end: a running `postbote start`, a test DNS server and a scripted sink as every
 * recipient's MX. A broadcast with three links goes through the sink; the delivered bytes carry
 * tracked links, the open pixel and List-Unsubscribe, and their DKIM signature still verifies
 * (dkimpy). Fetching them records the events and redirects; a tampered token is 404 and
 * records nothing; the one-click POST suppresses the recipient on the broadcast stream, so the
 * next broadcast to them is suppressed while transactional mail is still delivered
 * (suppressions.transactional_ignores_unsubscribes, on by default). The inbound MX is on, so
 * List-Unsubscribe also names a mailto: address on the return path; mail to it unsubscribes
 * another reader the same way.
 *
 * One Postbote for the file; the tests run in order and share the first message.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { PIXEL } from '../../src/tracking/routes.ts';
import { dkimpyVerify, haveDkimpy } from '../domains/verifiers.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { fakeMxEnv, SmtpSession, stopPostbote } from '../support/e2e-harness.ts';
import {
  freePort,
  type PostboteProcess,
  runCli,
  startPostboteProcess,
  waitFor,
} from '../support/postbote-process.ts';
import { type ScriptedSink, type SinkTransaction, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

const FROM = 'Shop <news@shop.test>';
const READER = 'reader@example.test';
/** Unsubscribes by mail (the mailto: of List-Unsubscribe). */
const MAILER = 'mailer@example.test';
const LINKS = [
  'https://shop.test/summer?ref=mail&x=1',
  'https://shop.test/shoes',
  'https://blog.shop.test/post/7',
];
const HTML =
  `<html><body><h1>Summer sale</h1><p><a href="${LINKS[0]?.replace('&', '&amp;')}">Sale</a> ` +
  `<a href='${LINKS[1]}'>Shoes</a> <A HREF=${LINKS[2]}>Blog</A> <a href="mailto:help@shop.test">Help</a></p>` +
  '<p><a href="{{unsubscribe_url}}">Unsubscribe</a></p></body></html>';

type Sent = { id: string; recipients: { email: string; status: string; reason?: string }[] };
type Shown = {
  recipients: { email: string; status: string }[];
  events: { type: string; recipient?: string; data: Record<string, unknown> }[];
};

describe('tracking end to end: rewritten links and pixel, events, redirects, one-click unsubscribe', {
  timeout: 120_000,
}, () => {
  const dir = tempDir('postbote-e2e-tracking-');
  let dns: TestDnsServer;
  let sink: ScriptedSink;
  let postbote: PostboteProcess;
  let key = '';
  let dkimRecords: Record<string, string> = {};
  let base = '';
  let mxPort = 0;
  /** The first broadcast: its id and what the sink received. */
  const first: { id: string; data: Buffer; html: string } = { id: '', data: Buffer.alloc(0), html: '' };

  before(async () => {
    sink = await startScriptedSink({ host: '127.0.0.2', hostname: 'mx.example.test' });
    dns = await startDnsServer({
      zones: {
        'example.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }] },
        'mx.example.test': { A: ['127.0.0.2'] },
      },
    });
    mxPort = await freePort();
    const env = {
      ...fakeMxEnv({ dataDir: dir.path, dns: dns.address, mxPort: sink.port }),
      // The inbound MX: List-Unsubscribe gets its mailto: entry.
      POSTBOTE_SMTP__MX__LISTEN: `127.0.0.1:${mxPort}`,
      // Clicks come seconds after delivery here: the scanner window would flag them all.
      POSTBOTE_TRACKING__SCANNER_WINDOW: '0s',
      POSTBOTE_TRACKING__IP: 'full',
      // `domains records` names our MX and tracking target: a host name, not this machine's.
      POSTBOTE_HOSTNAME: 'mail.postbote.test',
      POSTBOTE_DOMAINS__PUBLIC_IPS: '127.0.0.1',
    };
    await runCli(['accounts', 'create', 'shop'], env); // the first command creates the store
    const [row] = JSON.parse(
      await runCli(
        ['credentials', 'create', '--account', 'shop', '--api', '--scopes', 'send,read,admin', '--json'],
        env,
      ),
    ) as { secret?: string }[];
    assert.ok(row?.secret);
    key = row.secret;
    await runCli(['domains', 'trust', 'shop.test', '--account', 'shop'], env);
    const records = JSON.parse(await runCli(['domains', 'records', 'shop.test', '--json'], env)) as {
      name: string;
      value: string;
      purpose: string;
    }[];
    dkimRecords = Object.fromEntries(
      records.filter((r) => r.purpose === 'dkim').map((r) => [r.name, r.value]),
    );
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
    base = `http://127.0.0.1:${postbote.httpPort}`;
  });

  after(async () => {
    await stopPostbote(postbote);
    await Promise.all([sink?.close(), dns?.close()]);
    dir.cleanup();
  });

  async function api<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: response.status, body: (await response.json()) as T };
  }

  async function send(stream: string, subject: string, to = READER): Promise<Sent> {
    const sent = await api<Sent>('POST', '/v1/messages', {
      from: FROM,
      to: [to],
      subject,
      html: HTML,
      stream,
    });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    return sent.body;
  }

  const delivered = (subject: string): Promise<SinkTransaction & { data: Buffer }> =>
    waitFor(
      () =>
        sink.transactions.find(
          (t): t is SinkTransaction & { data: Buffer } =>
            t.data?.toString('latin1').includes(`Subject: ${subject}`) === true,
        ),
      { timeoutMs: 15_000, intervalMs: 50, what: `"${subject}" at the sink` },
    );

  const shown = async (id: string): Promise<Shown> => (await api<Shown>('GET', `/v1/messages/${id}`)).body;

  /** Waits until GET /v1/messages/{id} shows `count` events of `type`. */
  const eventsOf = (id: string, type: string, count: number) =>
    waitFor(
      async () => {
        const events = (await shown(id)).events.filter((e) => e.type === type);
        return events.length >= count ? events : undefined;
      },
      { timeoutMs: 5_000, intervalMs: 50, what: `${count} ${type} events of ${id}` },
    );

  it('a broadcast with three links: the delivered HTML has tracked links and a pixel, List-Unsubscribe, and DKIM verifies', async (t) => {
    const sent = await send('broadcast', 'Summer sale');
    assert.deepEqual(
      sent.recipients.map((r) => r.status),
      ['queued'],
    );
    first.id = sent.id;
    const tx = await delivered('Summer sale');
    first.data = tx.data;
    const parsed = await simpleParser(tx.data);
    first.html = String(parsed.html);
    const hrefs = [...first.html.matchAll(/href="([^"]+)"/gi)].map((m) => m[1] ?? '');
    assert.equal(hrefs.length, 5);
    for (const href of hrefs.slice(0, 3)) assert.ok(href.startsWith(`${base}/c/`), href);
    assert.equal(hrefs[3], 'mailto:help@shop.test');
    assert.ok(hrefs[4]?.startsWith(`${base}/u/`), hrefs[4]);
    assert.match(
      first.html,
      new RegExp(`<img src="${base}/o/[^"]+\\.gif" width="1" height="1"[^>]*></body>`),
    );
    for (const link of LINKS)
      assert.equal(first.html.includes(link), false, `${link} is not in the mail as it was`);

    const head = tx.data.toString('latin1').split('\r\n\r\n')[0] ?? '';
    // The URL first (RFC 8058 uses it), then the mailto: address on the return path (RFC 2369).
    assert.match(
      head,
      new RegExp(
        `\\r\\nList-Unsubscribe: <${base}/u/[^>]+>,\\r\\n <mailto:u\\+[0-9a-z-]+@pb-bounces\\.shop\\.test\\?subject=unsubscribe>(\\r\\n|$)`,
      ),
    );
    assert.match(head, /\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click(\r\n|$)/);
    // DKIM covers the List-Unsubscribe fields (RFC 8058 §4) and the rewritten body.
    const signed = /DKIM-Signature:[^\r\n]*?\bh=([^;]*)/i.exec(head.replace(/\r\n[ \t]+/g, ' '))?.[1] ?? '';
    const names = signed.split(':').map((n) => n.trim().toLowerCase());
    assert.ok(names.includes('list-unsubscribe') && names.includes('list-unsubscribe-post'), signed);
    if (haveDkimpy(t, ['rsa'])) assert.deepEqual(dkimpyVerify(tx.data, dkimRecords, 1), [{ ok: true }]);
  });

  it('the pixel and the links record opens and clicks and redirect to the original URLs', async () => {
    const hrefs = [...first.html.matchAll(/href="([^"]+)"/gi)].map((m) => m[1] ?? '');
    const pixel = /<img src="([^"]+)"/.exec(first.html)?.[1] ?? '';
    const human = {
      'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.3.0',
    };
    for (let i = 0; i < 2; i++) {
      const image = await fetch(pixel, { headers: human });
      assert.equal(image.status, 200);
      assert.equal(image.headers.get('content-type'), 'image/gif');
      assert.match(String(image.headers.get('cache-control')), /no-store/);
      assert.deepEqual(Buffer.from(await image.arrayBuffer()), PIXEL);
    }
    for (const [i, link] of LINKS.entries()) {
      const click = await fetch(hrefs[i] ?? '', { redirect: 'manual', headers: human });
      assert.equal(click.status, 302);
      assert.equal(click.headers.get('location'), link);
    }
    // A security gateway fetching a link: recorded, flagged.
    const scanner = await fetch(hrefs[1] ?? '', {
      redirect: 'manual',
      headers: { 'user-agent': 'Barracuda Sentinel (EE)' },
    });
    assert.equal(scanner.status, 302);

    const opens = await eventsOf(first.id, 'opened', 2);
    assert.deepEqual(
      opens.map((e) => [e.recipient, e.data.first, e.data.machine, e.data.ip]),
      [
        [READER, true, false, '127.0.0.1'],
        [READER, false, false, '127.0.0.1'],
      ],
    );
    const clicks = await eventsOf(first.id, 'clicked', 4);
    assert.deepEqual(
      clicks.map((e) => [e.data.url, e.data.link, e.data.machine, e.data.machineReason ?? null]),
      [
        [LINKS[0], 0, false, null],
        [LINKS[1], 1, false, null],
        [LINKS[2], 2, false, null],
        [LINKS[1], 1, true, 'scanner_user_agent'],
      ],
    );
    assert.match(String(clicks[0]?.data.userAgent), /Thunderbird/);
  });

  it('a tampered token gets 404 and records nothing', async () => {
    const hrefs = [...first.html.matchAll(/href="([^"]+)"/gi)].map((m) => m[1] ?? '');
    const click = hrefs[0] ?? '';
    const at = click.indexOf('/c/') + 8;
    const tampered = `${click.slice(0, at)}${click[at] === 'A' ? 'B' : 'A'}${click.slice(at + 1)}`;
    const before = (await shown(first.id)).events.length;
    for (const url of [
      tampered,
      `${base}/c/not-a-token`,
      `${base}/o/x.gif`,
      hrefs[0]?.replace('/c/', '/u/') ?? '',
    ]) {
      const response = await fetch(url, { redirect: 'manual' });
      assert.equal(response.status, 404, url);
      assert.equal(response.headers.get('location'), null);
    }
    const forged = await fetch(tampered.replace('/c/', '/u/'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    assert.equal(forged.status, 404);
    assert.equal((await shown(first.id)).events.length, before);
  });

  it('one-click unsubscribe suppresses the reader on the broadcast stream: the next broadcast is suppressed, transactional mail still goes', async () => {
    const head = first.data.toString('latin1').split('\r\n\r\n')[0] ?? '';
    const url = /\r\nList-Unsubscribe: <([^>]+)>/.exec(head)?.[1] ?? '';
    // What a mailbox provider does (RFC 8058 §3.2): a POST with the one-click body, no cookies.
    const page = await fetch(url);
    assert.equal(page.status, 200, 'GET shows the confirm page and changes nothing');
    assert.match(String(page.headers.get('content-security-policy')), /default-src 'none'/);
    const post = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    assert.equal(post.status, 200);
    const [unsubscribed] = await eventsOf(first.id, 'unsubscribed', 1);
    assert.deepEqual(
      [unsubscribed?.recipient, unsubscribed?.data.via, unsubscribed?.data.scope],
      [READER, 'one-click', 'broadcast'],
    );
    const suppressions = await api<{ data: { address: string; scope: string; reason: string }[] }>(
      'GET',
      `/v1/suppressions?address=${READER}`,
    );
    assert.deepEqual(
      suppressions.body.data.map((s) => [s.address, s.scope, s.reason]),
      [[READER, 'broadcast', 'unsubscribe']],
    );

    const next = await send('broadcast', 'Autumn sale');
    assert.deepEqual(
      next.recipients.map((r) => [r.status, r.reason]),
      [['suppressed', 'unsubscribe']],
    );
    const receipt = await send('outbound', 'Your receipt');
    assert.deepEqual(
      receipt.recipients.map((r) => r.status),
      ['queued'],
    );
    const tx = await delivered('Your receipt');
    // Transactional mail is not tracked by default and has no List-Unsubscribe.
    const text = tx.data.toString('latin1');
    assert.equal(/\r\nList-Unsubscribe:/i.test(text.split('\r\n\r\n')[0] ?? ''), false);
    assert.equal(text.includes('/c/'), false);
    assert.equal(
      sink.transactions.some((t) => t.data?.toString('latin1').includes('Subject: Autumn sale')),
      false,
    );
  });

  it('mail to the mailto: address of List-Unsubscribe unsubscribes that reader from the broadcast stream', async () => {
    const winter = await send('broadcast', 'Winter sale', MAILER);
    const tx = await delivered('Winter sale');
    const head = tx.data.toString('latin1').split('\r\n\r\n')[0] ?? '';
    const address =
      /\r\nList-Unsubscribe: <[^>]+>,\r\n <mailto:([^?>]+)\?subject=unsubscribe>/.exec(head)?.[1] ?? '';
    assert.match(address, /^u\+/);
    const session = await SmtpSession.open(mxPort);
    try {
      assert.equal((await session.command('EHLO mail.example.test')).code, 250);
      // A tampered address is refused like any address that is not ours.
      assert.equal((await session.command('MAIL FROM:<mailer@example.test>')).code, 250);
      const tampered = address.replace(/.@/, (m) => `${m[0] === 'a' ? 'b' : 'a'}@`);
      assert.equal((await session.command(`RCPT TO:<${tampered}>`)).code, 550);
      assert.equal((await session.command('RSET')).code, 250);
      // What a mailbox provider sends; twice, as a retry would: the second changes nothing.
      for (let i = 0; i < 2; i++) {
        assert.equal((await session.command('MAIL FROM:<mailer@example.test>')).code, 250);
        assert.equal((await session.command(`RCPT TO:<${address}>`)).code, 250);
        const reply = await session.data(
          `From: ${MAILER}\r\nTo: <${address}>\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n`,
        );
        assert.equal(reply.code, 250, reply.text);
      }
    } finally {
      session.close();
    }
    const [unsubscribed] = await eventsOf(winter.id, 'unsubscribed', 1);
    assert.deepEqual(
      [unsubscribed?.recipient, unsubscribed?.data.via, unsubscribed?.data.scope],
      [MAILER, 'mailto', 'broadcast'],
    );
    const suppressions = await waitFor(
      async () => {
        const list = await api<{ data: { address: string; scope: string; reason: string }[] }>(
          'GET',
          `/v1/suppressions?address=${MAILER}`,
        );
        return list.body.data.length > 0 ? list.body.data : undefined;
      },
      { timeoutMs: 5_000, intervalMs: 50, what: `a suppression of ${MAILER}` },
    );
    assert.deepEqual(
      suppressions.map((s) => [s.address, s.scope, s.reason]),
      [[MAILER, 'broadcast', 'unsubscribe']],
    );
    const next = await send('broadcast', 'Spring sale', MAILER);
    assert.deepEqual(
      next.recipients.map((r) => [r.status, r.reason]),
      [['suppressed', 'unsubscribe']],
    );
  });
});
