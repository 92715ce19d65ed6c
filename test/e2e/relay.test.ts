/**
 * The core relay end to end, with real processes on loopback: a client submits to a running
 * `postbote start`, Postbote resolves the recipient domain's MX in a test DNS server and
 * delivers to fake MX hosts (Postfix's smtp-sink, or the scripted sink where a reply must
 * change between attempts), and the CLI shows what happened.
 *
 * One Postbote for the file. Fake MX hosts share one port (`delivery.port`) on their own
 * loopback addresses:
 *   127.0.0.2  smtp-sink, accepts everything    (example.test, backup.test's 2nd MX, sender.test)
 *   127.0.0.3  nothing listening                 (backup.test's 1st MX)
 *   127.0.0.4  scripted sink, records connects  (nullmx.test's own address: must stay unused)
 *   127.0.0.6  scripted sink, greylists RCPTs   (greylist.test)
 *   127.0.0.7  smtp-sink, 550 5.1.1 every RCPT   (reject.test)
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import {
  havePeers,
  logRecords,
  type MessageJson,
  peerMissing,
  queuedId,
  sharedPort,
  simpleMessage,
  stopPostbote,
  submit,
  swaks,
  unfold,
  waitForDsn,
  waitForEvent,
} from '../support/e2e-harness.ts';
import { type PostboteProcess, runCli, startPostboteProcess, waitFor } from '../support/postbote-process.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { type SmtpSink, startSmtpSink } from '../support/smtp-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

const greylisted = (address: string): string =>
  `451 4.7.1 <${address}>: Recipient address rejected: Greylisted, try again later`;
const UNKNOWN_USER_REPLY = '550 5.1.1 <nobody@reject.test>: Recipient address rejected: User unknown';

describe('relay: submission → durable queue → MX delivery', { timeout: 120_000 }, () => {
  const dir = tempDir('postbote-e2e-relay-');
  let dns: TestDnsServer;
  let postbote: PostboteProcess;
  let password = '';
  let accepting: SmtpSink | undefined;
  let rejecting: SmtpSink | undefined;
  let greylist: ScriptedSink;
  let nullMxAddress: ScriptedSink;
  /** RCPTs the greylisting MX has seen, by address. */
  const rcptSeen = new Map<string, number>();
  let holdErin = true;

  before(async () => {
    const port = await sharedPort(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.6', '127.0.0.7']);
    if (!peerMissing('smtp-sink')) {
      accepting = await startSmtpSink({ host: '127.0.0.2', port, hostname: 'mx1.example.test' });
      rejecting = await startSmtpSink({
        host: '127.0.0.7',
        port,
        hostname: 'mx.reject.test',
        args: ['-f', 'RCPT', '-B', UNKNOWN_USER_REPLY],
      });
    }
    greylist = await startScriptedSink({
      host: '127.0.0.6',
      port,
      hostname: 'mx.greylist.test',
      respond: (cmd) => {
        if (cmd.verb !== 'RCPT') return undefined;
        const address = /<([^>]*)>/.exec(cmd.arg)?.[1] ?? '';
        const seen = (rcptSeen.get(address) ?? 0) + 1;
        rcptSeen.set(address, seen);
        if (address === 'dave@greylist.test' && seen === 1) return greylisted(address);
        if (address === 'erin@greylist.test' && holdErin) return greylisted(address);
        return undefined;
      },
    });
    nullMxAddress = await startScriptedSink({ host: '127.0.0.4', port, hostname: 'nullmx.test' });
    dns = await startDnsServer({
      zones: {
        'example.test': { MX: [{ preference: 10, exchange: 'mx1.example.test' }] },
        'mx1.example.test': { A: ['127.0.0.2'] },
        'backup.test': {
          MX: [
            { preference: 10, exchange: 'mx-down.backup.test' },
            { preference: 20, exchange: 'mx-up.backup.test' },
          ],
        },
        'mx-down.backup.test': { A: ['127.0.0.3'] },
        'mx-up.backup.test': { A: ['127.0.0.2'] },
        'greylist.test': { MX: [{ preference: 10, exchange: 'mx.greylist.test' }] },
        'mx.greylist.test': { A: ['127.0.0.6'] },
        'reject.test': { MX: [{ preference: 10, exchange: 'mx.reject.test' }] },
        'mx.reject.test': { A: ['127.0.0.7'] },
        // RFC 7505 null MX; the domain's own address would be the implicit MX if it were ignored.
        'nullmx.test': { MX: [{ preference: 0, exchange: '.' }], A: ['127.0.0.4'] },
        'sender.test': { MX: [{ preference: 10, exchange: 'mx.sender.test' }] },
        'mx.sender.test': { A: ['127.0.0.2'] },
      },
    });
    const env = {
      POSTBOTE_DATA_DIR: dir.path,
      POSTBOTE_DNS__SERVERS: dns.address,
      POSTBOTE_DNS__TIMEOUT: '2s',
      POSTBOTE_DELIVERY__PORT: String(port),
      POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
      POSTBOTE_DELIVERY__RETRY__FIRST: '1s',
      POSTBOTE_DELIVERY__CONNECT_TIMEOUT: '2s',
      POSTBOTE_DELIVERY__GREETING_TIMEOUT: '2s',
      POSTBOTE_DELIVERY__SOCKET_TIMEOUT: '10s',
    };
    await runCli(['accounts', 'create', 'shop', '--sender-policy', 'any'], env);
    const [credential] = JSON.parse(
      await runCli(['credentials', 'create', '--account', 'shop', '--smtp', 'app', '--json'], env),
    ) as { secret: string }[];
    password = credential?.secret ?? '';
    assert.ok(password, 'credentials create printed no secret');
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
  });

  after(async () => {
    await stopPostbote(postbote);
    await Promise.all([
      accepting?.stop(),
      rejecting?.stop(),
      greylist?.close(),
      nullMxAddress?.close(),
      dns?.close(),
    ]);
    dir.cleanup();
  });

  const auth = () => ({ user: 'app', password });

  it('swaks (STARTTLS + AUTH PLAIN) → MX → smtp-sink: the message arrives byte for byte, with our trace headers', async (t) => {
    if (!havePeers(t, 'swaks with TLS', 'smtp-sink')) return;
    // No Date (Postbote adds one), a Message-ID (kept), 8-bit text and lines starting with dots.
    const original = Buffer.from(
      [
        'From: Shop <shop@sender.test>',
        'To: Bob <bob@example.test>',
        'Subject: Order 1001 confirmed',
        'Message-ID: <order-1001@sender.test>',
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: 8bit',
        '',
        'Grüße from the shop: your order 1001 is confirmed.',
        '.a line that starts with a dot',
        '..and one that starts with two',
        '',
        'Last line.',
        '',
      ].join('\r\n'),
      'utf8',
    );
    // swaks ends DATA with CRLF "." CRLF after the file's last byte: the file has no final CRLF.
    const file = join(dir.path, 'order-1001.eml');
    writeFileSync(file, original.subarray(0, original.length - 2));

    const { code, transcript } = await swaks([
      '--server',
      `127.0.0.1:${postbote.submissionPort}`,
      '--tls',
      '--auth',
      'PLAIN',
      '--auth-user',
      'app',
      '--auth-password',
      password,
      '--from',
      'shop@sender.test',
      '--to',
      'bob@example.test',
      '--data',
      `@${file}`,
    ]);
    assert.equal(code, 0, `swaks failed:\n${transcript}`);
    const id = queuedId(transcript);

    const shown = await waitForEvent(postbote, id, 'delivered');
    assert.deepEqual(
      shown.recipients.map((r) => [r.address, r.state, r.attempts]),
      [['bob@example.test', 'delivered', 1]],
    );
    const delivered = shown.events.find((e) => e.type === 'delivered');
    assert.equal(delivered?.data.mxHost, 'mx1.example.test');
    assert.equal(delivered?.data.ip, '127.0.0.2');
    assert.equal(delivered?.data.attempt, 1);
    assert.equal(delivered?.data.reply?.code, 250);

    const received = accepting?.transactions().filter((tx) => tx.rcptTo.includes('bob@example.test')) ?? [];
    assert.equal(received.length, 1, 'exactly one transaction for bob@example.test at the sink');
    const tx = received[0]!;
    assert.equal(tx.mailFrom, 'shop@sender.test');
    assert.deepEqual(tx.rcptTo, ['bob@example.test']);
    // What swaks sent, unchanged, after the header lines Postbote prepended.
    assert.ok(tx.data.length > original.length, 'nothing was added to the message');
    const tail = tx.data.subarray(tx.data.length - original.length);
    assert.equal(tail.toString('utf8'), original.toString('utf8'), 'the submitted message was altered');
    assert.ok(tail.equals(original), 'the submitted bytes were altered');
    const added = unfold(tx.data.subarray(0, tx.data.length - original.length).toString('utf8'))
      .split('\r\n')
      .filter((line) => line !== '');
    assert.deepEqual(
      added.map((line) => line.slice(0, line.indexOf(':'))),
      ['Received', 'Date'],
      `added header lines:\n${added.join('\n')}`,
    );
    const rfc5322Date = String.raw`\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000`;
    assert.match(
      added[0] ?? '',
      new RegExp(
        String.raw`^Received: from \S+ \(\[127\.0\.0\.1\]\) \(using TLSv1\.[23] with cipher \S+\) ` +
          String.raw`by postbote\.test \(Postbote\) with ESMTPSA id ${id} for <bob@example\.test>; ${rfc5322Date}$`,
      ),
    );
    assert.match(added[1] ?? '', new RegExp(`^Date: ${rfc5322Date}$`));
  });

  it('uses the second MX when the first one is down', async (t) => {
    if (!havePeers(t, 'smtp-sink')) return;
    const id = await submit(postbote.submissionPort, {
      auth: auth(),
      from: 'shop@sender.test',
      to: ['carol@backup.test'],
      message: simpleMessage({ from: 'shop@sender.test', to: 'carol@backup.test', subject: 'backup MX' }),
    });
    const shown = await waitForEvent(postbote, id, 'delivered');
    assert.deepEqual(
      shown.events.map((e) => e.type),
      ['accepted', 'delivered'],
      'one attempt, no deferral: the fallback happens within the attempt',
    );
    const delivered = shown.events[1];
    assert.equal(delivered?.data.mxHost, 'mx-up.backup.test');
    assert.equal(delivered?.data.ip, '127.0.0.2');
    assert.equal(delivered?.data.attempt, 1);
    assert.ok(
      logRecords(postbote).some((r) => r.msg === 'smtp session failed' && r.mx === 'mx-down.backup.test'),
      'the preferred MX (10) was tried first',
    );
    assert.equal(accepting?.transactions().filter((tx) => tx.rcptTo.includes('carol@backup.test')).length, 1);
  });

  it('a 4xx at RCPT defers the recipient (reason in the queue summary), and the retry delivers it', async () => {
    const id = await submit(postbote.submissionPort, {
      auth: auth(),
      from: 'shop@sender.test',
      to: ['dave@greylist.test', 'erin@greylist.test'],
      message: simpleMessage({ from: 'shop@sender.test', to: 'dave@greylist.test', subject: 'greylisted' }),
    });

    // dave: greylisted once, so the automatic retry (delivery.retry.first = 1s) delivers him.
    const shown = await waitForEvent(postbote, id, 'delivered', { recipient: 'dave@greylist.test' });
    const dave = shown.events.filter((e) => e.recipient === 'dave@greylist.test');
    assert.deepEqual(
      dave.map((e) => [e.type, e.data.attempt]),
      [
        ['accepted', undefined],
        ['deferred', 1],
        ['delivered', 2],
      ],
    );
    const deferred = dave[1];
    assert.deepEqual(deferred?.data.reply, {
      code: 451,
      enhanced: '4.7.1',
      text: '<dave@greylist.test>: Recipient address rejected: Greylisted, try again later',
    });
    assert.equal(deferred?.data.mxHost, 'mx.greylist.test');
    const wait = (deferred?.data.nextAttemptAt ?? 0) - (deferred?.at ?? 0);
    assert.ok(wait >= 800 && wait <= 1200, `first retry ${wait} ms after the deferral, expected 1 s ± 20 %`);
    assert.equal(dave[2]?.data.reply?.code, 250);

    // erin: greylisted until the queue summary has been looked at.
    const summary = await waitFor(
      async () => {
        const { domains: rows } = JSON.parse(await postbote.cli(['queue', 'summary', '--json'])) as {
          domains: { domain: string; deferred: number; reasons: { text: string; count: number }[] }[];
        };
        const row = rows.find((r) => r.domain === 'greylist.test');
        return row && row.deferred === 1 ? row : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: 'erin@greylist.test deferred in the queue summary' },
    );
    assert.deepEqual(summary.reasons, [{ text: greylisted('erin@greylist.test'), count: 1 }]);
    holdErin = false;
    // Her next automatic retry may be seconds away (backoff); ask for it now. It may already be
    // running, so the count printed (0 or 1) is not checked.
    await postbote.cli(['queue', 'retry', id]);
    const final = await waitForEvent(postbote, id, 'delivered', { recipient: 'erin@greylist.test' });
    assert.deepEqual(
      final.recipients.map((r) => [r.address, r.state]),
      [
        ['dave@greylist.test', 'delivered'],
        ['erin@greylist.test', 'delivered'],
      ],
    );
    const delivered = greylist.transactions
      .filter((tx) => tx.dataReply?.startsWith('250'))
      .flatMap((tx) => tx.recipients.filter((r) => r.reply.startsWith('250')).map((r) => r.address));
    assert.deepEqual(delivered, ['dave@greylist.test', 'erin@greylist.test'], 'each delivered exactly once');
  });

  it('a 5xx at RCPT bounces the recipient, keeps the reply, and sends a DSN to the envelope sender', async (t) => {
    if (!havePeers(t, 'smtp-sink')) return;
    const message = simpleMessage({
      from: 'orders@sender.test',
      to: 'nobody@reject.test',
      subject: 'to nobody',
    });
    const messageIdHeader = /^Message-ID: (<[^>]+>)/m.exec(message)?.[1] ?? '';
    const id = await submit(postbote.submissionPort, {
      auth: auth(),
      from: 'orders@sender.test',
      to: ['nobody@reject.test'],
      message,
    });
    const shown = await waitForEvent(postbote, id, 'bounced');
    const reply = {
      code: 550,
      enhanced: '5.1.1',
      text: '<nobody@reject.test>: Recipient address rejected: User unknown',
    };
    assert.deepEqual(
      shown.recipients.map((r) => [r.state, r.attempts, r.lastReply]),
      [['bounced', 1, reply]],
    );
    const bounced = shown.events.find((e) => e.type === 'bounced');
    assert.deepEqual(bounced?.data.reply, reply);
    assert.equal(bounced?.data.mxHost, 'mx.reject.test');
    assert.equal(rejecting?.transactions().length, 0, 'the rejecting sink took no message');

    // The DSN: its own message from the null sender, delivered to sender.test's MX.
    const dsnId = await waitForDsn(postbote, id);
    const dsn: MessageJson = await waitForEvent(postbote, dsnId, 'delivered');
    assert.equal(dsn.message.source, 'dsn');
    assert.equal(dsn.message.mailFrom, '');
    assert.deepEqual(
      dsn.recipients.map((r) => [r.address, r.state]),
      [['orders@sender.test', 'delivered']],
    );
    const listed = JSON.parse(
      await postbote.cli(['messages', 'list', '--json', '--recipient', 'orders@sender.test']),
    ) as { id: string; source: string; mailFrom: string }[];
    assert.deepEqual(
      listed.map((m) => [m.id, m.source, m.mailFrom]),
      [[dsnId, 'dsn', '']],
    );

    const atSender = accepting?.transactions().filter((tx) => tx.rcptTo.includes('orders@sender.test')) ?? [];
    assert.equal(atSender.length, 1, 'one DSN at the sender domain');
    const report = atSender[0]!;
    assert.equal(report.mailFrom, '', 'a DSN comes from the null sender');
    const text = unfold(report.data.toString('utf8'));
    assert.match(text, /^Content-Type: multipart\/report; report-type=delivery-status; boundary=/m);
    assert.match(text, /^Content-Type: message\/delivery-status$/m);
    assert.match(text, /^Final-Recipient: rfc822; nobody@reject\.test$/m);
    assert.match(text, /^Action: failed$/m);
    assert.match(text, /^Status: 5\.1\.1$/m);
    assert.match(text, /^Remote-MTA: dns; mx\.reject\.test$/m);
    assert.ok(
      text.includes(`Diagnostic-Code: smtp; ${UNKNOWN_USER_REPLY}`),
      `no Diagnostic-Code with the remote reply in:\n${text}`,
    );
    assert.ok(text.includes(`Message-ID: ${messageIdHeader}`), 'the original headers are returned');
  });

  it('a null MX (MX 0 .) bounces at once, without connecting anywhere', async () => {
    const id = await submit(postbote.submissionPort, {
      auth: auth(),
      from: 'nullmx-sender@sender.test',
      to: ['erin@nullmx.test'],
      message: simpleMessage({
        from: 'nullmx-sender@sender.test',
        to: 'erin@nullmx.test',
        subject: 'null MX',
      }),
    });
    const shown = await waitForEvent(postbote, id, 'bounced');
    const recipient = shown.recipients[0];
    assert.equal(recipient?.state, 'bounced');
    assert.equal(recipient?.lastReply?.code, 550);
    assert.equal(recipient?.lastReply?.enhanced, '5.1.10', 'RFC 7505 §4.2: 5.1.10 for a null MX');
    assert.match(recipient?.lastReply?.text ?? '', /null MX/);
    const bounced = shown.events.find((e) => e.type === 'bounced');
    assert.match(bounced?.data.reply?.text ?? '', /null MX/);
    assert.equal(bounced?.data.mxHost, undefined, 'no MX host was contacted');
    assert.equal(
      nullMxAddress.connections.length,
      0,
      "the domain's own address was not used as an implicit MX",
    );
    assert.ok(dns.count('nullmx.test', 'MX') > 0, 'the MX was looked up');
  });
});
