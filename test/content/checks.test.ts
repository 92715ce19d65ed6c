import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { builtInChecks } from '../../src/content/checks.ts';
import { RspamdError, rspamdCheck } from '../../src/content/rspamd.ts';
import {
  type ContentConfig,
  ContentScanUnavailableError,
  createScreening,
} from '../../src/content/screen.ts';
import { SendError } from '../../src/intake/send-errors.ts';
import { call, startApiApp } from '../support/api-app.ts';

const crlf = (lines: string[]) => Buffer.from(`${lines.join('\r\n')}\r\n`);
const HEAD = [
  'From: a@sender.test',
  'To: b@x.test',
  'Subject: s',
  'Date: Sat, 28 Nov 2026 10:00:00 +0000',
  'Message-ID: <1@sender.test>',
];

const checks = (raw: Buffer, kind: 'transactional' | 'broadcast' = 'transactional', original?: Buffer) =>
  builtInChecks({ raw, kind, maxImageSize: 1000, ...(original ? { original } : {}) }).map((f) => f.check);

describe('built-in content checks', () => {
  it('a plain transactional message passes', () => {
    assert.deepEqual(checks(crlf([...HEAD, '', 'hello'])), []);
  });

  it('HTML without a text part; multipart/alternative with both passes', () => {
    assert.deepEqual(checks(crlf([...HEAD, 'Content-Type: text/html', '', '<p>hi</p>'])), [
      'html_without_text',
    ]);
    const alt = crlf([
      ...HEAD,
      'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain',
      '',
      'hi',
      '--b',
      'Content-Type: text/html',
      '',
      '<p>hi</p>',
      '--b--',
    ]);
    assert.deepEqual(checks(alt), []);
  });

  it('broadcast without an unsubscribe offer; List-Unsubscribe or a link in the text counts', () => {
    assert.deepEqual(checks(crlf([...HEAD, '', 'news']), 'broadcast'), ['no_unsubscribe']);
    assert.deepEqual(
      checks(crlf([...HEAD, 'List-Unsubscribe: <https://t.test/u/x>', '', 'news']), 'broadcast'),
      [],
    );
    assert.deepEqual(checks(crlf([...HEAD, '', 'news', 'Unsubscribe: https://x.test/u']), 'broadcast'), []);
    // Quoted-printable text is decoded before the search.
    assert.deepEqual(
      checks(
        crlf([
          ...HEAD,
          'Content-Transfer-Encoding: quoted-printable',
          '',
          'news =3D',
          '<a href=3D"https://x/unsub=',
          'scribe">',
        ]),
        'broadcast',
      ),
      [],
    );
  });

  it('missing Message-ID and Date are judged on what the client sent', () => {
    const sent = crlf(['From: a@sender.test', 'Subject: s', '', 'hi']);
    assert.deepEqual(checks(crlf([...HEAD, '', 'hi']), 'transactional', sent), [
      'missing_message_id',
      'missing_date',
    ]);
  });

  it('an image larger than the limit once decoded', () => {
    const image = (bytes: number) =>
      crlf([
        ...HEAD,
        'Content-Type: multipart/mixed; boundary="m"',
        '',
        '--m',
        'Content-Type: text/plain',
        '',
        'see attached',
        '--m',
        'Content-Type: image/png',
        'Content-Transfer-Encoding: base64',
        '',
        ...(Buffer.alloc(bytes, 7)
          .toString('base64')
          .match(/.{1,76}/g) ?? []),
        '--m--',
      ]);
    assert.deepEqual(checks(image(900)), []);
    assert.deepEqual(checks(image(1200)), ['oversize_image']);
  });

  it('never throws on malformed MIME', () => {
    const bad = crlf([...HEAD, 'Content-Type: multipart/mixed; boundary="', '', '--', '--x--', '\u0000']);
    assert.doesNotThrow(() => checks(bad, 'broadcast'));
  });
});

/** A fake rspamd: /checkv2 answers what `answer` says for the request it gets. */
let server: Server;
let url = '';
let answer: (req: IncomingMessage, body: Buffer) => { status: number; body: string; delayMs?: number } =
  () => ({
    status: 200,
    body: '{}',
  });
const seen: { headers: IncomingMessage['headers']; body: string }[] = [];

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ headers: req.headers, body: body.toString('latin1') });
      const a =
        req.url === '/checkv2' && req.method === 'POST' ? answer(req, body) : { status: 404, body: '' };
      setTimeout(() => {
        res.writeHead(a.status, { 'content-type': 'application/json' });
        res.end(a.body);
      }, a.delayMs ?? 0).unref();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

const config = (overrides: Partial<ContentConfig['rspamd']> = {}, action = 'warn'): ContentConfig => ({
  action,
  max_image_size: 1_000_000,
  rspamd: { url, timeout: 2000, hold_score: '6', reject_score: '15', fail_open: true, ...overrides },
});

const input = (raw = crlf([...HEAD, '', 'hello'])) => ({
  accountId: 'acc',
  messageId: 'm1',
  stream: 'outbound',
  kind: 'transactional' as const,
  raw,
  mailFrom: 'a@sender.test',
  recipients: ['b@x.test', 'c@x.test'],
  clientIp: '192.0.2.1',
  credentialId: 'cred1',
});

describe('rspamd scan (a fake /checkv2 on loopback)', () => {
  it('sends the message with the envelope in headers and reads score and symbols', async () => {
    seen.length = 0;
    answer = () => ({
      status: 200,
      body: JSON.stringify({
        score: 7.5,
        action: 'add header',
        symbols: { A: { score: 1 }, B: { score: 5 } },
      }),
    });
    const result = await rspamdCheck({
      ...input(),
      url,
      timeoutMs: 2000,
      from: 'a@sender.test',
      ip: '192.0.2.1',
      queueId: 'm1',
    });
    assert.deepEqual(result, { score: 7.5, action: 'add header', symbols: ['B', 'A'] });
    assert.equal(seen[0]?.headers.from, 'a@sender.test');
    assert.equal(seen[0]?.headers.rcpt, 'b@x.test, c@x.test');
    assert.equal(seen[0]?.headers.ip, '192.0.2.1');
    assert.match(seen[0]?.body ?? '', /Subject: s/);
  });

  it('action off: no built-in findings (rspamd still asked when configured)', async () => {
    answer = () => ({ status: 200, body: JSON.stringify({ score: 0 }) });
    const raw = crlf(['Subject: s', 'Content-Type: text/html', '', '<p>hi</p>']);
    assert.deepEqual(
      await createScreening({ content: config({}, 'off') }).screen({ ...input(raw), kind: 'broadcast' }),
      {
        warnings: [],
      },
    );
  });

  it('scores hold and reject by the configured thresholds; below both nothing', async () => {
    const screening = createScreening({ content: config() });
    answer = () => ({ status: 200, body: JSON.stringify({ score: 2 }) });
    assert.deepEqual(await screening.screen(input()), { warnings: [] });
    answer = () => ({ status: 200, body: JSON.stringify({ score: 8, symbols: { SPAMMY: { score: 8 } } }) });
    const held = await screening.screen(input());
    assert.equal(held.held?.reason, 'content');
    assert.match(held.held?.details ?? '', /rspamd score 8 \(SPAMMY\)/);
    answer = () => ({ status: 200, body: JSON.stringify({ score: 30 }) });
    await assert.rejects(
      screening.screen(input()),
      (err: unknown) => err instanceof SendError && err.code === 'content_rejected',
    );
  });

  it('a scanner that fails or is too slow: fail open accepts (noted), fail closed asks to retry', async () => {
    answer = () => ({ status: 500, body: 'oops' });
    const open = await createScreening({ content: config() }).screen(input());
    assert.equal(open.held, undefined);
    assert.match(open.warnings[0] ?? '', /rspamd: not scanned \(rspamd answered HTTP 500\)/);
    answer = () => ({ status: 200, body: JSON.stringify({ score: 1 }), delayMs: 1000 });
    await assert.rejects(
      createScreening({ content: config({ fail_open: false, timeout: 100 }) }).screen(input()),
      ContentScanUnavailableError,
    );
    answer = () => ({ status: 200, body: 'not json' });
    await assert.rejects(
      rspamdCheck({
        url,
        timeoutMs: 1000,
        raw: Buffer.from('x'),
        from: '',
        recipients: [],
        ip: '',
        queueId: 'q',
      }),
      RspamdError,
    );
    await assert.rejects(
      rspamdCheck({
        url: 'http://127.0.0.1:1',
        timeoutMs: 1000,
        raw: Buffer.from('x'),
        from: '',
        recipients: [],
        ip: '',
        queueId: 'q',
      }),
      RspamdError,
    );
  });
});

describe('content checks at intake (the API)', () => {
  it('warn: accepted, a content_warning event; hold: held for an operator; reject: 422 content_rejected', async () => {
    const base = {
      action: 'warn',
      max_image_size: 1_000_000,
      rspamd: { url: '', timeout: 1000, hold_score: '', reject_score: '', fail_open: true },
    };
    const html = {
      from: 'a@sender.test',
      to: 'b@x.test',
      subject: 's',
      html: '<p>hi</p>',
      stream: 'broadcast',
    };
    for (const action of ['warn', 'hold', 'reject']) {
      const api = await startApiApp({ content: { ...base, action } });
      try {
        const res = await call(api, api.keys.all, 'POST', '/v1/messages', html);
        if (action === 'reject') {
          assert.equal(res.statusCode, 422, res.body);
          assert.equal(res.json().error.code, 'content_rejected');
          assert.match(res.json().error.message, /without a text\/plain alternative/);
          continue;
        }
        assert.equal(res.statusCode, 202, res.body);
        const id = res.json().id;
        // The warning event is written beside the answer, not before it: wait for it (bounded).
        let warning: Awaited<ReturnType<typeof api.store.getEvents>>[number] | undefined;
        for (let i = 0; i < 100 && !warning; i++) {
          warning = (await api.store.getEvents(id)).find((e) => e.type === 'content_warning');
          if (!warning) await new Promise((r) => setTimeout(r, 20));
        }
        assert.deepEqual(
          ((warning?.data.warnings ?? []) as string[]).map((w) => w.split(':')[0]),
          ['html_without_text', 'no_unsubscribe'],
        );
        const state = (await api.store.getRecipients(id))[0]?.state;
        assert.equal(state, action === 'hold' ? 'held' : 'queued');
        if (action === 'hold') {
          // A resume does not release content holds: an operator looks at them (queue retry).
          const account = await api.store.getAccountByName('acme');
          assert.equal(
            (await api.guard.resume({ accountId: account?.id ?? '', actor: 'cli:ops' })).released,
            0,
          );
        }
      } finally {
        await api.close();
      }
    }
  });
});
