import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { composeMessage } from '../../src/intake/compose.ts';
import type { NewRecipient, SendingDomain } from '../../src/store/types.ts';
import { createTrackingHosts } from '../../src/tracking/hosts.ts';
import { readMailtoAddress } from '../../src/tracking/mailto.ts';
import { planMessage, renderMessage } from '../../src/tracking/mime.ts';
import { readToken, trackingKey } from '../../src/tracking/token.ts';
import { createTracker } from '../../src/tracking/tracker.ts';

const key = trackingKey(Buffer.alloc(32, 1));
const MESSAGE = '01jd5x3k0f8n2pq4r6st';

function compose(html: string, text?: string, attachments = false): Buffer {
  return composeMessage({
    from: { address: 'news@shop.test' },
    to: [{ address: 'a@example.test' }],
    cc: [],
    replyTo: [],
    subject: 'Summer',
    html,
    ...(text === undefined ? {} : { text }),
    attachments: attachments
      ? [
          {
            filename: 'a.html',
            content: Buffer.from('<a href="https://attached.test/">x</a>'),
            contentType: 'text/html',
          },
        ]
      : [],
    headers: [],
    date: new Date('2026-11-28T12:00:00Z'),
    messageId: '<m1@shop.test>',
  });
}

/** A store with just what the tracker asks: stream settings and domains. */
function fakeStore(domains: SendingDomain[] = [], tracking?: Record<string, boolean>) {
  return {
    getStream: async (_a: string, name: string) => ({
      accountId: 'acc',
      name,
      kind: 'broadcast' as const,
      pool: '',
      createdAt: 0,
      isDefault: true,
      settings: tracking ? { tracking } : {},
    }),
    listDomains: async () => domains,
  } as never;
}

function tracker(
  options: { domains?: SendingDomain[]; tracking?: Record<string, boolean>; mailto?: boolean } = {},
) {
  const store = fakeStore(options.domains, options.tracking);
  const hosts = createTrackingHosts({ store, clock: () => 0, scheme: 'https' });
  return createTracker({
    streams: {
      get: async (a: string, s: string) =>
        (
          await (
            store as {
              getStream: (
                a: string,
                s: string,
              ) => Promise<{ settings: { tracking?: Record<string, boolean> } }>;
            }
          ).getStream(a, s)
        ).settings.tracking,
    },
    hosts,
    key,
    publicUrl: () => 'http://127.0.0.1:8025',
    ...(options.mailto ? { mailtoDomain: hosts.returnPathFor } : {}),
  });
}

const recipients = (...addresses: string[]): NewRecipient[] =>
  addresses.map((address) => ({ address, domain: 'example.test' }));

/** Every line ends in CRLF and none is longer than 998 octets. */
function assertWellFormed(bytes: Buffer): void {
  const text = bytes.toString('latin1');
  assert.equal(/\r(?!\n)|(?<!\r)\n/.test(text), false, 'bare CR or LF');
  for (const line of text.split('\r\n')) assert.ok(line.length <= 998, `line of ${line.length}`);
}

describe('tracking copies', () => {
  const html =
    '<html><body><p>Hällo</p><a href="https://shop.test/one">1</a> <a href="https://shop.test/two?a=1&amp;b=2">2</a>' +
    ' <a href="mailto:help@shop.test">m</a> <a href="{{unsubscribe_url}}">unsubscribe</a></body></html>';

  it('gives every recipient sent its own copy: links, pixel, unsubscribe URL and List-Unsubscribe', async () => {
    const rs = recipients('a@example.test', 'b@example.test', 'gone@example.test');
    rs[2]!.suppressed = { reason: 'hard_bounce', scope: '' };
    const body = compose(html, 'Text https://shop.test/one {{unsubscribe_url}}');
    const result = await tracker().apply({
      accountId: 'acc',
      messageId: MESSAGE,
      stream: { name: 'broadcast', kind: 'broadcast' },
      recipients: rs,
      body,
      variants: [],
    });
    assert.ok(result);
    assert.equal(result.variants.length, 2, 'the suppressed recipient gets none');
    assert.deepEqual(
      rs.map((r) => r.variant),
      [1, 2, 0],
    );
    assert.equal(result.body, body, 'the suppressed recipient keeps the shared body');
    for (const [i, copy] of result.variants.entries()) {
      assertWellFormed(copy);
      const parsed = await simpleParser(copy);
      const page = String(parsed.html);
      const hrefs = [...page.matchAll(/href="([^"]+)"/g)].map((m) => m[1] ?? '');
      const tokens = hrefs.map((h) => /^http:\/\/127\.0\.0\.1:8025\/[cu]\/(.+)$/.exec(h)?.[1]);
      assert.deepEqual(
        tokens.map((t) => (t ? readToken(t, key) : undefined)),
        [
          { kind: 'click', messageId: MESSAGE, recipient: i, link: 0, url: 'https://shop.test/one' },
          { kind: 'click', messageId: MESSAGE, recipient: i, link: 1, url: 'https://shop.test/two?a=1&b=2' },
          undefined, // mailto: untouched
          { kind: 'unsubscribe', messageId: MESSAGE, recipient: i },
        ],
      );
      assert.equal(hrefs[2], 'mailto:help@shop.test');
      assert.match(page, /<p>Hällo<\/p>/, 'UTF-8 text survives decoding and re-encoding');
      const pixel = /<img src="http:\/\/127\.0\.0\.1:8025\/o\/([^"]+)\.gif"[^>]*><\/body>/.exec(page)?.[1];
      assert.deepEqual(pixel && readToken(pixel, key), { kind: 'open', messageId: MESSAGE, recipient: i });
      // Text links are not rewritten by default; the placeholder is.
      assert.match(String(parsed.text), /^Text https:\/\/shop\.test\/one http:\/\/127\.0\.0\.1:8025\/u\/\S+/);
      const head = copy.toString('latin1').split('\r\n\r\n')[0] ?? '';
      const listUnsubscribe = /\r\nList-Unsubscribe: <http:\/\/127\.0\.0\.1:8025\/u\/([^>]+)>\r\n/.exec(
        head,
      )?.[1];
      assert.deepEqual(listUnsubscribe && readToken(listUnsubscribe, key), {
        kind: 'unsubscribe',
        messageId: MESSAGE,
        recipient: i,
      });
      assert.match(head, /\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click$/);
    }
  });

  it('transactional streams: nothing changes unless the message asks (track) or uses {{unsubscribe_url}}', async () => {
    const body = compose('<a href="https://shop.test/">x</a>');
    const base = {
      accountId: 'acc',
      messageId: MESSAGE,
      stream: { name: 'outbound', kind: 'transactional' as const },
      body,
      variants: [],
    };
    assert.equal(await tracker().apply({ ...base, recipients: recipients('a@example.test') }), undefined);
    const rs = recipients('a@example.test');
    const tracked = await tracker().apply({ ...base, recipients: rs, track: { clicks: true } });
    const copy = String((await simpleParser(tracked?.variants[0] ?? Buffer.alloc(0))).html);
    assert.match(copy, /href="http:\/\/127\.0\.0\.1:8025\/c\//);
    assert.doesNotMatch(copy, /\/o\//, 'opens stay off');
    assert.equal(
      (await simpleParser(tracked?.variants[0] ?? Buffer.alloc(0))).headers.has('list-unsubscribe'),
      false,
    );
  });

  it('a stream setting turns a switch off; the message wins over the stream', async () => {
    const body = compose('<a href="https://shop.test/">x</a>');
    const rs = recipients('a@example.test');
    const result = await tracker({ tracking: { clicks: false } }).apply({
      accountId: 'acc',
      messageId: MESSAGE,
      stream: { name: 'news', kind: 'broadcast' },
      recipients: rs,
      body,
      variants: [],
      track: { opens: false },
    });
    const copy = String((await simpleParser(result?.variants[0] ?? Buffer.alloc(0))).html);
    assert.match(copy, /href="https:\/\/shop\.test\/"/);
    assert.doesNotMatch(copy, /\/o\//);
  });

  it('uses the verified tracking host of the From domain; only when its check passed and it is the account’s', async () => {
    const domain: SendingDomain = {
      id: 'd1',
      accountId: 'acc',
      domain: 'shop.test',
      returnPath: 'pb-bounces.shop.test',
      trackingHost: 'pb-track.shop.test',
      verifiedAt: 1,
      verifiedBy: 'dns',
      lastCheck: [{ record: 'tracking', status: 'ok' }],
      checkedAt: 1,
      createdAt: 1,
    };
    const run = async (d: SendingDomain) => {
      const result = await tracker({ domains: [d] }).apply({
        accountId: 'acc',
        messageId: MESSAGE,
        stream: { name: 'broadcast', kind: 'broadcast' },
        recipients: recipients('a@example.test'),
        body: compose('<a href="https://shop.test/">x</a>'),
        variants: [],
      });
      return String((await simpleParser(result?.variants[0] ?? Buffer.alloc(0))).html);
    };
    assert.match(await run(domain), /href="https:\/\/pb-track\.shop\.test\/c\//);
    assert.match(
      await run({ ...domain, lastCheck: [{ record: 'tracking', status: 'missing' }] }),
      /href="http:\/\/127\.0\.0\.1:8025\/c\//,
    );
    assert.match(await run({ ...domain, accountId: 'other' }), /href="http:\/\/127\.0\.0\.1:8025\/c\//);
  });

  it('List-Unsubscribe names the mailto: address on the return-path domain when the inbound MX is on', async () => {
    const domain: SendingDomain = {
      id: 'd1',
      accountId: 'acc',
      domain: 'shop.test',
      returnPath: 'pb-bounces.shop.test',
      trackingHost: 'pb-track.shop.test',
      verifiedAt: 1,
      verifiedBy: 'dns',
      lastCheck: [],
      checkedAt: 1,
      createdAt: 1,
    };
    const headOf = async (options: Parameters<typeof tracker>[0], from = 'news@shop.test') => {
      const body = compose('<a href="https://shop.test/">x</a>')
        .toString('latin1')
        .replace('news@shop.test', from);
      const result = await tracker(options).apply({
        accountId: 'acc',
        messageId: MESSAGE,
        stream: { name: 'broadcast', kind: 'broadcast' },
        recipients: recipients('a@example.test', 'b@example.test'),
        body: Buffer.from(body, 'latin1'),
        variants: [],
      });
      return (result?.variants ?? []).map((v) => v.toString('latin1').split('\r\n\r\n')[0] ?? '');
    };
    const heads = await headOf({ domains: [domain], mailto: true });
    assert.equal(heads.length, 2);
    for (const [i, head] of heads.entries()) {
      const m =
        /\r\nList-Unsubscribe: <http:\/\/127\.0\.0\.1:8025\/u\/([^>]+)>,\r\n <mailto:([^?>]+)\?subject=unsubscribe>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click$/.exec(
          head,
        );
      assert.ok(m, head);
      assert.deepEqual(readToken(m[1] ?? '', key), { kind: 'unsubscribe', messageId: MESSAGE, recipient: i });
      assert.match(m[2] ?? '', /@pb-bounces\.shop\.test$/);
      assert.deepEqual(readMailtoAddress(m[2] ?? '', key), { messageId: MESSAGE, recipient: i });
    }
    // A subdomain of the sending domain uses its return path too.
    assert.match(
      (await headOf({ domains: [domain], mailto: true }, 'news@mail.shop.test'))[0] ?? '',
      /mailto:/,
    );
    // No inbound MX, an unverified domain, another account's domain, an unknown domain: URL only.
    const cases: [Parameters<typeof tracker>[0], string][] = [
      [{ domains: [domain] }, 'news@shop.test'],
      [{ domains: [{ ...domain, verifiedAt: null }], mailto: true }, 'news@shop.test'],
      [{ domains: [{ ...domain, accountId: 'other' }], mailto: true }, 'news@shop.test'],
      [{ domains: [domain], mailto: true }, 'news@elsewhere.test'],
    ];
    for (const [options, from] of cases) {
      const [head = ''] = await headOf(options, from);
      assert.match(head, /\r\nList-Unsubscribe: <http:[^>]+>\r\n/, JSON.stringify(options));
      assert.equal(head.includes('mailto:'), false);
    }
  });

  it('personalised copies are rewritten each for its own recipient', async () => {
    const rs: NewRecipient[] = [
      { address: 'a@example.test', domain: 'example.test', variant: 2 },
      { address: 'b@example.test', domain: 'example.test', variant: 1 },
    ];
    const result = await tracker().apply({
      accountId: 'acc',
      messageId: MESSAGE,
      stream: { name: 'broadcast', kind: 'broadcast' },
      recipients: rs,
      body: Buffer.alloc(0),
      variants: [
        compose('<a href="https://shop.test/b">for b</a>'),
        compose('<a href="https://shop.test/a">for a</a>'),
      ],
    });
    assert.ok(result);
    assert.equal(result.body.length, 0);
    const linkOf = async (n: number) => {
      const page = String((await simpleParser(result.variants[n] ?? Buffer.alloc(0))).html);
      const token = /\/c\/([^"]+)"/.exec(page)?.[1] ?? '';
      return readToken(token, key);
    };
    assert.deepEqual(
      rs.map((r) => r.variant),
      [1, 2],
    );
    assert.deepEqual(await linkOf(0), {
      kind: 'click',
      messageId: MESSAGE,
      recipient: 0,
      link: 0,
      url: 'https://shop.test/a',
    });
    assert.deepEqual(await linkOf(1), {
      kind: 'click',
      messageId: MESSAGE,
      recipient: 1,
      link: 0,
      url: 'https://shop.test/b',
    });
  });
});

describe('MIME handling', () => {
  const fill = (s: { kind: string }) =>
    s.kind === 'click' ? 'https://t.test/c/TOKEN' : `https://t.test/${s.kind}`;
  const options = { clicks: true, textLinks: true, opens: true };

  it('quoted-printable HTML with long lines: decoded, rewritten, re-encoded, lines within limits', async () => {
    const long = `<p>${'x'.repeat(2000)}</p><a href="https://a.test/=">a</a>`;
    const body = compose(long, 'plain https://a.test/t');
    const plan = planMessage(body.toString('latin1'), options);
    const out = Buffer.from(renderMessage(plan, fill as never), 'latin1');
    assertWellFormed(out);
    const parsed = await simpleParser(out);
    assert.match(
      String(parsed.html),
      /<a href="https:\/\/t\.test\/c\/TOKEN">a<\/a><img src="https:\/\/t\.test\/open"/,
    );
    assert.ok(String(parsed.html).includes('x'.repeat(2000)));
    assert.equal(String(parsed.text).trim(), 'plain https://t.test/c/TOKEN');
  });

  it('base64 HTML and a 7bit part whose line grows past 998: both stay valid', async () => {
    const links = Array.from({ length: 12 }, (_, i) => `<a href="https://a.test/${i}">${i}</a>`).join('');
    const raw =
      'From: a@shop.test\r\nTo: b@example.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n' +
      'Content-Type: multipart/alternative; boundary="b1"\r\n\r\npreamble\r\n--b1\r\n' +
      `Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n${links}\r\n--b1\r\n` +
      'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n' +
      `${Buffer.from(`<html><body>${links}</body></html>`).toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n--b1--\r\nepilogue\r\n`;
    const plan = planMessage(raw, options);
    const longFill = (s: { kind: string }) => `https://t.test/${s.kind}/${'T'.repeat(120)}`;
    const out = Buffer.from(renderMessage(plan, longFill as never), 'latin1');
    assertWellFormed(out);
    const text = out.toString('latin1');
    assert.match(text, /^preamble\r\n--b1\r\n/m);
    assert.match(text, /\r\n--b1--\r\nepilogue\r\n$/);
    assert.match(
      text,
      /Content-Type: text\/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n/,
    );
    const parsed = await simpleParser(out);
    assert.equal((String(parsed.html).match(/https:\/\/t\.test\/click\//g) ?? []).length, 12);
    assert.equal((String(parsed.text).match(/https:\/\/t\.test\/click\//g) ?? []).length, 12);
  });

  it('leaves alone what it cannot safely handle, with a note; the bytes stay identical', () => {
    const cases = [
      'Content-Type: text/html; charset=utf-16\r\n\r\n<a href="https://a.test/">x</a>',
      'Content-Type: text/html\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n<a href="https://a.test/">x</a>',
      'Content-Type: multipart/mixed; boundary="z"\r\n\r\n--z\r\nContent-Type: text/html\r\n\r\n<a href="https://a.test/">x</a>\r\n',
      'Content-Type: multipart/mixed\r\n\r\n--z\r\n',
    ];
    for (const raw of cases) {
      const plan = planMessage(`Subject: x\r\n${raw}`, options);
      assert.equal(plan.changed, false, raw);
      assert.ok(plan.notes.length > 0, raw);
      assert.equal(renderMessage(plan, fill as never), `Subject: x\r\n${raw}`);
    }
  });

  it('attachments and enclosed messages are never rewritten', async () => {
    const body = compose('<a href="https://a.test/">x</a>', undefined, true);
    const out = Buffer.from(
      renderMessage(planMessage(body.toString('latin1'), options), fill as never),
      'latin1',
    );
    const parsed = await simpleParser(out);
    assert.equal(parsed.attachments[0]?.content.toString(), '<a href="https://attached.test/">x</a>');
    assert.match(String(parsed.html), /https:\/\/t\.test\/c\/TOKEN/);
  });
});
