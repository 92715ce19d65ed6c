/**
 * Bounces, complaints and suppressions end to end: a running `postbote start` with its inbound MX
 * on, a test DNS server, and a scripted sink as every recipient's MX that refuses one mailbox
 * with `550 5.1.1`. Asynchronous bounces, complaints and auto-replies are sent to the inbound MX
 * over plain SMTP, to the VERP addresses the sink saw as MAIL FROM.
 *
 * One Postbote for the file. Accounts: `shop` (shop.test trusted before start, so its mail leaves
 * with VERP return paths) and `other` (a CSV import target). Tests 2-5 share the messages of
 * earlier tests, in order, like domains.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { fakeMxEnv, type ReplyJson, SmtpSession, stopPostbote } from '../support/e2e-harness.ts';
import {
  freePort,
  type PostboteProcess,
  runCli,
  startPostboteProcess,
  waitFor,
} from '../support/postbote-process.ts';
import { type ScriptedSink, type SinkTransaction, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

const FROM = 'Shop <orders@shop.test>';
const GONE = 'gone@example.test';
const FEEDBACK = 'fbl@postbote.test';
const UNKNOWN = 'Recipient address rejected: User unknown in virtual mailbox table';
const VERP = /^b\+([0-9a-v]{1,11}-[0-9a-v]{10})@pb-bounces\.shop\.test$/;

type Sent = { id: string; recipients: { email: string; status: string; reason?: string }[] };
type Shown = {
  recipients: { email: string; status: string; last_response?: ReplyJson }[];
  events: { type: string; recipient?: string; data: Record<string, unknown> }[];
};
type SuppressionJson = Record<'address' | 'scope' | 'reason' | 'source' | 'details', string> & {
  category?: string;
  expires_at: string | null;
};

/** CRLF lines: the messages below are written with LF for reading. */
const crlf = (text: string): string => text.replace(/\n/g, '\r\n');

/** An RFC 3464 report: `recipient` failed with 550 5.1.1, sent back to `verp`. */
const dsn = (verp: string, recipient: string): string =>
  crlf(`From: Mail Delivery System <MAILER-DAEMON@mx.example.test>
To: <${verp}>
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="rpt"

--rpt
Content-Type: text/plain

Your message could not be delivered to one or more recipients.
--rpt
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.test

Final-Recipient: rfc822; ${recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <${recipient}>: ${UNKNOWN}

--rpt--
`);

/**
 * An RFC 5965 report of type abuse, the original enclosed. Like many feedback loops it redacts
 * Original-Mail-From and Original-Rcpt-To: only the original's Return-Path names our recipient.
 */
const arf = (verp: string, recipient: string): string =>
  crlf(`From: Feedback Loop <fbl@isp.example.test>
To: <${FEEDBACK}>
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="arf"

--arf
Content-Type: text/plain

This is an email abuse report for a message received from shop.test.
--arf
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: isp-fbl/2.1
Version: 1

--arf
Content-Type: message/rfc822

Return-Path: <${verp}>
From: ${FROM}
To: <${recipient}>
Subject: Summer sale
Message-ID: <sale.1@shop.test>

Everything must go.
--arf--
`);

/** An RFC 3834 out-of-office answer from `from` to `verp`. */
const autoReply = (verp: string, from: string): string =>
  crlf(`From: <${from}>
To: <${verp}>
Subject: Out of office: your order
Auto-Submitted: auto-replied

I am away until Monday and will read your message then.
`);

describe('bounces end to end: sync and async bounces, complaints, auto-replies, suppression lists', {
  timeout: 90_000,
}, () => {
  const dir = tempDir('postbote-e2e-bounces-');
  let dns: TestDnsServer;
  let sink: ScriptedSink;
  let postbote: PostboteProcess;
  let mxPort = 0;
  let shopKey = '';
  let otherKey = '';
  /** One inbound-MX session for the file: its greeting comes after 2 s, waited for during test 1. */
  let mxSession: Promise<SmtpSession>;
  /** Test 2's message: `early@` and `late@`, both delivered, each with its own VERP sender. */
  const pair = { id: '', early: '', late: '' };

  before(async () => {
    sink = await startScriptedSink({
      host: '127.0.0.2',
      hostname: 'mx.example.test',
      respond: ({ verb, arg }) =>
        verb === 'RCPT' && arg.toLowerCase().includes(`<${GONE}>`)
          ? `550 5.1.1 <${GONE}>: Recipient address rejected: User unknown`
          : undefined,
    });
    dns = await startDnsServer({
      zones: {
        'example.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }] },
        'mx.example.test': { A: ['127.0.0.2'] },
      },
    });
    mxPort = await freePort();
    const env = {
      ...fakeMxEnv({ dataDir: dir.path, dns: dns.address, mxPort: sink.port }),
      POSTBOTE_SMTP__MX__LISTEN: `127.0.0.1:${mxPort}`,
      POSTBOTE_BOUNCES__FEEDBACK_ADDRESSES: FEEDBACK,
    };
    const key = async (account: string, scopes: string): Promise<string> => {
      const [row] = JSON.parse(
        await runCli(
          ['credentials', 'create', '--account', account, '--api', '--scopes', scopes, '--json'],
          env,
        ),
      ) as { secret?: string }[];
      assert.ok(row?.secret, `credentials create --account ${account} printed no secret`);
      return row.secret;
    };
    await runCli(['accounts', 'create', 'shop'], env); // the first command creates the store
    [shopKey, otherKey] = await Promise.all([
      key('shop', 'send,read,admin'),
      runCli(['accounts', 'create', 'other'], env).then(() => key('other', 'read,admin')),
      runCli(['domains', 'trust', 'shop.test', '--account', 'shop'], env),
    ]);
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
    mxSession = SmtpSession.open(mxPort).then(async (session) => {
      assert.equal((await session.command('EHLO mx.example.test')).code, 250);
      return session;
    });
    mxSession.catch(() => undefined); // awaited (and so reported) by the tests that use it
  });

  after(async () => {
    await mxSession?.then((s) => s.close()).catch(() => undefined);
    await stopPostbote(postbote);
    await Promise.all([sink?.close(), dns?.close()]);
    dir.cleanup();
  });

  async function api<T>(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    options: { body?: unknown; csv?: string; key?: string } = {},
  ): Promise<{ status: number; body: T; text: string }> {
    const type =
      options.csv !== undefined ? 'text/csv' : options.body !== undefined ? 'application/json' : '';
    const response = await fetch(`http://127.0.0.1:${postbote.httpPort}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${options.key ?? shopKey}`,
        ...(type ? { 'content-type': type } : {}),
      },
      ...(type ? { body: options.csv ?? JSON.stringify(options.body) } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    const json = /json/.test(response.headers.get('content-type') ?? '') ? JSON.parse(text) : undefined;
    return { status: response.status, body: json as T, text };
  }

  async function send(to: string[], stream?: string): Promise<Sent> {
    const body = { from: FROM, to, subject: 'your order', text: 'Thank you.', ...(stream ? { stream } : {}) };
    const sent = await api<Sent>('POST', '/v1/messages', { body });
    assert.equal(sent.status, 202, sent.text);
    return sent.body;
  }

  /** `[status, reason]` of each recipient of a send answer. */
  const statuses = (sent: Sent) => sent.recipients.map((r) => [r.status, r.reason]);

  /** GET /v1/messages/{id} once every named recipient has the wanted status. */
  const shownWhen = (id: string, want: Record<string, string>): Promise<Shown> =>
    waitFor(
      async () => {
        const { body } = await api<Shown>('GET', `/v1/messages/${id}`);
        return Object.entries(want).every(
          ([e, s]) => body.recipients.find((r) => r.email === e)?.status === s,
        )
          ? body
          : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: `${JSON.stringify(want)} in GET /v1/messages/${id}` },
    );

  const suppressionOf = async (address: string, key = shopKey): Promise<SuppressionJson | undefined> =>
    (await api<{ data: SuppressionJson[] }>('GET', `/v1/suppressions?address=${address}`, { key })).body
      .data[0];

  /** The sink's transactions with `address` among their RCPTs. */
  const txsFor = (address: string): SinkTransaction[] =>
    sink.transactions.filter((t) => t.recipients.some((r) => r.address === address));

  /** Sends `message` from `<>` to `to` over the shared inbound-MX session; the reply to the dot. */
  async function report(to: string, message: string) {
    const session = await mxSession;
    if (!session.socket.writable) throw new Error('the inbound MX closed the session');
    assert.equal((await session.command('RSET')).code, 250);
    assert.equal((await session.command('MAIL FROM:<>')).code, 250);
    const rcpt = await session.command(`RCPT TO:<${to}>`);
    assert.equal(rcpt.code, 250, `RCPT TO:<${to}>: ${rcpt.code} ${rcpt.text}`);
    return session.data(message);
  }

  it('a synchronous 550 5.1.1: bounced as unknown_user, permanent; suppressed (hard_bounce); the next send is suppressed and never reaches the MX', async () => {
    const first = await send([GONE]);
    const shown = await shownWhen(first.id, { [GONE]: 'bounced' });
    assert.deepEqual(shown.recipients[0]?.last_response, {
      code: 550,
      enhanced: '5.1.1',
      text: `<${GONE}>: Recipient address rejected: User unknown`,
    });
    const bounced = shown.events.find((e) => e.type === 'bounced' && e.recipient === GONE);
    assert.deepEqual([bounced?.data.category, bounced?.data.permanent], ['unknown_user', true]);

    // Suppression follows the recorded outcome, asynchronously.
    const entry = await waitFor(() => suppressionOf(GONE), {
      timeoutMs: 5000,
      intervalMs: 50,
      what: 'gone@ listed',
    });
    assert.deepEqual(
      [entry.reason, entry.category, entry.scope, entry.source, entry.expires_at],
      ['hard_bounce', 'unknown_user', '', first.id, null],
    );

    const witness = 'witness@example.test';
    const again = await send([GONE, witness]);
    assert.deepEqual(statuses(again), [
      ['suppressed', 'hard_bounce'],
      ['queued', undefined],
    ]);
    const later = await shownWhen(again.id, { [GONE]: 'suppressed', [witness]: 'delivered' });
    const event = later.events.find((e) => e.recipient === GONE);
    assert.deepEqual([event?.type, event?.data.reason], ['suppressed', 'hard_bounce']);
    assert.equal(txsFor(GONE).length, 1, 'the suppressed address reached the MX again');
  });

  it('VERP: each recipient leaves in its own transaction with MAIL FROM b+<token>@pb-bounces.shop.test', async () => {
    pair.early = 'early@example.test';
    pair.late = 'late@example.test';
    pair.id = (await send([pair.early, pair.late])).id;
    await shownWhen(pair.id, { [pair.early]: 'delivered', [pair.late]: 'delivered' });
    const [early, late] = [txsFor(pair.early), txsFor(pair.late)];
    assert.deepEqual([early.length, late.length], [1, 1]);
    for (const tx of [...early, ...late]) {
      assert.match(tx.mailFrom, VERP);
      assert.equal(tx.recipients.length, 1, 'one RCPT per VERP transaction');
    }
    assert.notEqual(early[0]?.mailFrom, late[0]?.mailFrom, 'two recipients, one token');
  });

  it('an asynchronous DSN to a VERP address: 250, the delivered recipient becomes bounced with the DSN status, and is suppressed; other addresses get 550 5.7.1', async () => {
    const verp = txsFor(pair.late)[0]?.mailFrom ?? '';
    const done = await report(verp, dsn(verp, pair.late));
    assert.equal(done.code, 250, done.text);

    // Recorded before the 250: no waiting needed.
    const { body } = await api<Shown>('GET', `/v1/messages/${pair.id}`);
    const late = body.recipients.find((r) => r.email === pair.late);
    const early = body.recipients.find((r) => r.email === pair.early);
    assert.deepEqual(
      [late?.status, early?.status],
      ['bounced', 'delivered'],
      'the token named its recipient',
    );
    const event = body.events.find((e) => e.type === 'bounced' && e.recipient === pair.late);
    assert.deepEqual(
      [event?.data.status, event?.data.category, event?.data.permanent, event?.data.async],
      ['5.1.1', 'unknown_user', true, true],
    );
    assert.match(String(event?.data.diagnostic), new RegExp(`<late@example\\.test>: ${UNKNOWN}`));
    const entry = await suppressionOf(pair.late);
    assert.deepEqual([entry?.reason, entry?.category], ['hard_bounce', 'unknown_user']);
    assert.equal(await suppressionOf(pair.early), undefined);

    const session = await mxSession;
    assert.equal((await session.command('RSET')).code, 250);
    assert.equal((await session.command('MAIL FROM:<>')).code, 250);
    for (const to of [
      'b+1-0123456789@pb-bounces.shop.test',
      'postmaster@pb-bounces.shop.test',
      'x@else.test',
    ]) {
      const refused = await session.command(`RCPT TO:<${to}>`);
      assert.deepEqual([refused.code, refused.enhanced], [550, '5.7.1'], to);
    }

    // The last reply reads like one during delivery (test 1): the codes in their fields, not
    // repeated in the text.
    assert.deepEqual(late?.last_response, {
      code: 550,
      enhanced: '5.1.1',
      text: `<${pair.late}>: ${UNKNOWN}`,
    });
  });

  it('an ARF complaint (abuse) to the feedback address: a complained event on the recipient named by the enclosed Return-Path, suppressed (complaint)', async () => {
    const angry = 'angry@example.test';
    const sent = await send([angry]);
    await shownWhen(sent.id, { [angry]: 'delivered' });
    const verp = txsFor(angry)[0]?.mailFrom ?? '';
    const done = await report(FEEDBACK, arf(verp, angry));
    assert.equal(done.code, 250, done.text);

    const { body } = await api<Shown>('GET', `/v1/messages/${sent.id}`);
    const complained = body.events.find((e) => e.type === 'complained');
    // No VERP RCPT here: the recipient is found only by the token in the enclosed Return-Path.
    assert.deepEqual(
      [complained?.recipient, complained?.data.feedbackType],
      [angry, 'abuse'],
      'no complained event',
    );
    assert.equal((await suppressionOf(angry))?.reason, 'complaint');
  });

  it('an auto-reply (Auto-Submitted: auto-replied) to a VERP address: 250, nothing bounced or suppressed', async () => {
    const verp = txsFor(pair.early)[0]?.mailFrom ?? '';
    const done = await report(verp, autoReply(verp, pair.early));
    assert.equal(done.code, 250, done.text);
    const { body } = await api<Shown>('GET', `/v1/messages/${pair.id}`);
    assert.equal(body.recipients.find((r) => r.email === pair.early)?.status, 'delivered');
    assert.deepEqual(
      body.events.filter((e) => e.recipient === pair.early).map((e) => e.type),
      ['accepted', 'delivered'],
    );
    assert.equal(await suppressionOf(pair.early), undefined);
  });

  it('suppressions API and CLI: add, page, export/import to another account, remove; stream scope; unsubscribes only for broadcast', async () => {
    const manual = 'manual@example.test';
    const scoped = 'scoped@example.test';
    const unsub = 'unsub@example.test';
    const added = await api<{ data: SuppressionJson[] }>('POST', '/v1/suppressions', {
      body: {
        suppressions: [
          { address: 'Manual@Example.test', details: 'asked by phone, "no more mail"' },
          { address: scoped, scope: 'outbound', expires_at: '2099-01-01T00:00:00Z' },
        ],
      },
    });
    assert.equal(added.status, 201, added.text);
    assert.deepEqual(
      added.body.data.map((s) => [s.address, s.scope, s.reason, s.source, s.expires_at]),
      [
        [manual, '', 'manual', 'api', null],
        [scoped, 'outbound', 'manual', 'api', '2099-01-01T00:00:00.000Z'],
      ],
    );
    assert.match(
      await postbote.cli(['suppressions', 'add', unsub, '--account', 'shop', '--reason', 'unsubscribe']),
      /1 address\(es\) suppressed for account "shop"/,
    );
    const listed = await postbote.cli(['suppressions', 'list', '--account', 'shop', '--json']);
    const cliList = JSON.parse(listed) as Record<string, string>[];
    assert.deepEqual(
      cliList.filter((r) => r.address === unsub).map((r) => [r.reason, r.scope]),
      [['unsubscribe', '(account)']],
    );

    // Pages of 2 by cursor give the whole list once, in address order.
    const all = (await api<{ data: SuppressionJson[] }>('GET', '/v1/suppressions?limit=1000')).body.data;
    type Page = { data: SuppressionJson[]; next_cursor: string | null };
    const paged: SuppressionJson[] = [];
    for (let cursor: string | null = ''; cursor !== null; ) {
      const { body }: { body: Page } = await api<Page>('GET', `/v1/suppressions?limit=2&cursor=${cursor}`);
      assert.ok(body.data.length <= 2);
      paged.push(...body.data);
      cursor = body.next_cursor;
    }
    assert.deepEqual(paged, all);
    assert.ok(all.length >= 4, JSON.stringify(all));
    assert.deepEqual(
      all.map((s) => s.address),
      all.map((s) => s.address).sort(),
    );

    // Export (API) → import (API) into `other` → the same list there; its CLI export agrees.
    const exported = await api<never>('GET', '/v1/suppressions/export');
    assert.match(exported.text, /^address,scope,reason,category,source,details,created_at,expires_at\r\n/);
    assert.ok(exported.text.includes('"asked by phone, ""no more mail"""'), 'a comma and quotes are quoted');
    const imported = await api<{ imported: number }>('POST', '/v1/suppressions/import', {
      csv: exported.text,
      key: otherKey,
    });
    assert.deepEqual([imported.status, imported.body], [200, { imported: all.length }], imported.text);
    const copied = (
      await api<{ data: SuppressionJson[] }>('GET', '/v1/suppressions?limit=1000', { key: otherKey })
    ).body.data;
    const essentials = ({ address, scope, reason, details, expires_at }: SuppressionJson) => ({
      ...{ address, scope, reason, details, expires_at },
    });
    assert.deepEqual(copied.map(essentials), all.map(essentials));
    const otherCsv = await postbote.cli(['suppressions', 'export', '--account', 'other']);
    assert.equal(otherCsv.trim().split('\r\n').length, all.length + 1);

    // A manual entry suppresses every stream; DELETE lifts it and the next send goes out.
    assert.deepEqual(statuses(await send([manual])), [['suppressed', 'manual']]);
    assert.equal((await api('DELETE', `/v1/suppressions/${manual}`)).status, 204);
    assert.equal((await api('DELETE', `/v1/suppressions/${manual}`)).status, 404);
    const resent = await send([manual]);
    assert.equal(resent.recipients[0]?.status, 'queued');

    // Scope `outbound` applies to that stream only; an unsubscribe to broadcast only.
    const [scopedOut, scopedNews, unsubOut, unsubNews] = await Promise.all([
      send([scoped]),
      send([scoped], 'broadcast'),
      send([unsub]),
      send([unsub], 'broadcast'),
    ]);
    assert.deepEqual([scopedOut, scopedNews, unsubOut, unsubNews].map(statuses), [
      [['suppressed', 'manual']],
      [['queued', undefined]],
      [['queued', undefined]],
      [['suppressed', 'unsubscribe']],
    ]);
    await Promise.all([
      shownWhen(resent.id, { [manual]: 'delivered' }),
      shownWhen(scopedNews.id, { [scoped]: 'delivered' }),
      shownWhen(unsubOut.id, { [unsub]: 'delivered' }),
    ]);
    assert.deepEqual([txsFor(manual).length, txsFor(scoped).length, txsFor(unsub).length], [1, 1, 1]);

    // The CLI removes the scoped entry: the outbound stream sends to it again.
    await postbote.cli(['suppressions', 'remove', scoped, '--account', 'shop', '--stream', 'outbound']);
    assert.equal((await send([scoped])).recipients[0]?.status, 'queued');
  });
});
