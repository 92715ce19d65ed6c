/**
 * The native send API in-process over a real SQLite store: every field reaches the stored
 * bytes, every error code is answered as documented, idempotency, scopes and account isolation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { type ApiApp, call, startApiApp } from '../support/api-app.ts';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

describe('native API: POST /v1/messages', () => {
  let api: ApiApp;
  before(async () => {
    api = await startApiApp();
  });
  after(() => api.close());

  it('stores every field: addresses with names, bodies, attachments, headers, tags, metadata', async () => {
    const res = await call(api, api.keys.send, 'POST', '/v1/messages', {
      from: { email: 'ada@sender.test', name: 'Ada Lovelace' },
      to: ['"Doe, John" <john@example.test>', { email: 'carol@example.test', name: 'Carol Ümlaut' }],
      cc: 'dave@example.test',
      bcc: ['erin@example.test'],
      reply_to: 'support@sender.test',
      subject: 'Your order ✓',
      text: 'Thanks for your order.',
      html: '<p>Thanks <img src="cid:logo"></p>',
      attachments: [
        { filename: 'invoice.pdf', content: b64('%PDF-1.4 fake'), content_type: 'application/pdf' },
        { filename: 'logo.png', content: b64('PNGDATA'), content_type: 'image/png', content_id: 'logo' },
      ],
      headers: { 'X-Campaign': 'autumn' },
      tags: ['orders', 'receipts'],
      metadata: { order: '1234', user: 42 },
      track: { opens: true, clicks: false },
    });
    assert.equal(res.statusCode, 202, res.body);
    const body = res.json();
    assert.match(body.id, /^[0-9a-z]+$/);
    assert.deepEqual(
      body.recipients.map((r: { email: string; status: string }) => [r.email, r.status]),
      [
        ['john@example.test', 'queued'],
        ['carol@example.test', 'queued'],
        ['dave@example.test', 'queued'],
        ['erin@example.test', 'queued'],
      ],
    );
    assert.deepEqual(
      body.recipients.map((r: { id: string }) => r.id),
      [0, 1, 2, 3].map((i) => `${body.id}-${i}`),
    );
    const message = await api.store.getMessage(body.id);
    assert.deepEqual(message?.tags, ['orders', 'receipts']);
    assert.deepEqual(message?.metadata, { order: '1234', user: '42' });
    assert.equal(message?.source, 'api');
    assert.equal(message?.mailFrom, 'ada@sender.test');
    const raw = await api.store.getBody(body.id);
    assert.ok(raw);
    assert.doesNotMatch(raw.toString(), /erin@example\.test/, 'Bcc never appears in the message');
    const mail = await simpleParser(raw);
    assert.equal(mail.subject, 'Your order ✓');
    assert.equal(mail.from?.value[0]?.name, 'Ada Lovelace');
    const to = Array.isArray(mail.to) ? mail.to[0] : mail.to;
    assert.deepEqual(
      to?.value.map((v) => [v.name, v.address]),
      [
        ['Doe, John', 'john@example.test'],
        ['Carol Ümlaut', 'carol@example.test'],
      ],
    );
    const cc = Array.isArray(mail.cc) ? mail.cc[0] : mail.cc;
    assert.equal(cc?.value[0]?.address, 'dave@example.test');
    const replyTo = mail.replyTo;
    assert.equal(replyTo?.value[0]?.address, 'support@sender.test');
    assert.equal(mail.text?.trim(), 'Thanks for your order.');
    assert.match(raw.toString(), /<img src="cid:logo">/);
    assert.match(String(mail.html), /<img src="data:image\/png;base64,/, 'the inline part resolves');
    assert.equal(mail.headers.get('x-campaign'), 'autumn');
    const pdf = mail.attachments.find((a) => a.filename === 'invoice.pdf');
    assert.equal(pdf?.content.toString(), '%PDF-1.4 fake');
    assert.equal(pdf?.contentType, 'application/pdf');
    const logo = mail.attachments.find((a) => a.filename === 'logo.png');
    assert.equal(logo?.contentId, '<logo>');
    assert.equal(logo?.contentDisposition, 'inline');
    assert.match(raw.toString(), /^Received: from api \(\[[^\]]+\]\) by relay\.test \(Postbote\) with HTTP/);
  });

  it('send_at schedules the first attempt at any future time (no 72-hour cap)', async () => {
    const at = api.clock.now + 30 * 24 * 3_600_000;
    const res = await call(api, api.keys.send, 'POST', '/v1/messages', {
      from: 'ada@sender.test',
      to: 'bob@example.test',
      subject: 'later',
      text: 'in a month',
      send_at: new Date(at).toISOString(),
    });
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.json().recipients[0].status, 'scheduled');
    const [recipient] = await api.store.getRecipients(res.json().id);
    assert.equal(recipient?.nextAttemptAt, at);
    const shown = (await call(api, api.keys.read, 'GET', `/v1/messages/${res.json().id}`)).json();
    assert.equal(shown.recipients[0].status, 'scheduled');
  });

  it('a stream named in the request wins, and an unknown one is refused', async () => {
    const ok = await call(api, api.keys.send, 'POST', '/v1/messages', {
      from: 'ada@sender.test',
      to: 'bob@example.test',
      subject: 'news',
      text: 'x',
      stream: 'broadcast',
    });
    assert.equal(ok.statusCode, 202);
    assert.equal((await api.store.getMessage(ok.json().id))?.stream, 'broadcast');
    const bad = await call(api, api.keys.send, 'POST', '/v1/messages', {
      from: 'ada@sender.test',
      to: 'bob@example.test',
      text: 'x',
      stream: 'nope',
    });
    assert.equal(bad.statusCode, 422);
    assert.equal(bad.json().error.code, 'unknown_stream');
    assert.equal(bad.json().error.field, 'stream');
  });

  it('personalised recipients each get their own rendered copy', async () => {
    const res = await call(api, api.keys.send, 'POST', '/v1/messages', {
      from: 'ada@sender.test',
      subject: 'Hello {{first}}',
      html: '<p>Hi {{first}} &amp; {{{raw}}}</p>',
      text: 'Hi {{first}}',
      recipients: [
        { email: 'x@example.test', name: 'X', variables: { first: 'Xavier <x>', raw: '<b>bold</b>' } },
        { email: 'y@example.test', variables: { first: 'Yvonne', raw: '' } },
      ],
    });
    assert.equal(res.statusCode, 202, res.body);
    const id = res.json().id;
    const rows = await api.store.getRecipients(id);
    assert.deepEqual(
      rows.map((r) => [r.address, r.variant]),
      [
        ['x@example.test', 1],
        ['y@example.test', 2],
      ],
    );
    const first = await simpleParser((await api.store.getBody(id, 1)) ?? Buffer.alloc(0));
    assert.equal(first.subject, 'Hello Xavier <x>');
    assert.match(String(first.html), /Hi Xavier &lt;x&gt; &amp; <b>bold<\/b>/);
    const to = Array.isArray(first.to) ? first.to[0] : first.to;
    assert.deepEqual(
      to?.value.map((v) => v.address),
      ['x@example.test'],
    );
    const second = await simpleParser((await api.store.getBody(id, 2)) ?? Buffer.alloc(0));
    assert.notEqual(second.messageId, first.messageId, 'each copy is a message with its own Message-ID');
    assert.equal(second.subject, 'Hello Yvonne');
    assert.doesNotMatch((await api.store.getBody(id, 2))?.toString() ?? '', /x@example\.test/);
  });

  const errorCases: [string, unknown, number, string, string?][] = [
    [
      'unknown field',
      { from: 'a@sender.test', to: 'b@example.test', text: 'x', sbject: 'typo' },
      400,
      'invalid_request',
      'sbject',
    ],
    ['bad from', { from: 'not an address', to: 'b@example.test', text: 'x' }, 422, 'invalid_address', 'from'],
    [
      'bad to',
      { from: 'a@sender.test', to: ['b@example.test', 'nope@'], text: 'x' },
      422,
      'invalid_address',
      'to[1]',
    ],
    ['no recipients', { from: 'a@sender.test', text: 'x' }, 422, 'missing_recipients', 'to'],
    [
      'too many recipients',
      { from: 'a@sender.test', to: Array.from({ length: 51 }, (_, i) => `r${i}@example.test`), text: 'x' },
      422,
      'too_many_recipients',
      'to',
    ],
    [
      'no content',
      { from: 'a@sender.test', to: 'b@example.test', subject: 's' },
      422,
      'missing_content',
      'text',
    ],
    [
      'header injection',
      {
        from: 'a@sender.test',
        to: 'b@example.test',
        text: 'x',
        headers: { 'X-A': 'v\r\nBcc: evil@example.test' },
      },
      422,
      'invalid_header',
    ],
    [
      'reserved header',
      { from: 'a@sender.test', to: 'b@example.test', text: 'x', headers: { From: 'x@y.test' } },
      422,
      'invalid_header',
    ],
    [
      'attachment not base64',
      {
        from: 'a@sender.test',
        to: 'b@example.test',
        text: 'x',
        attachments: [{ filename: 'a.txt', content: '%%%' }],
      },
      422,
      'invalid_attachment',
      'attachments[0].content',
    ],
    [
      'too many attachments',
      {
        from: 'a@sender.test',
        to: 'b@example.test',
        text: 'x',
        attachments: Array.from({ length: 6 }, (_, i) => ({ filename: `f${i}.txt`, content: b64('x') })),
      },
      422,
      'too_many_attachments',
      'attachments',
    ],
    [
      'bad send_at',
      { from: 'a@sender.test', to: 'b@example.test', text: 'x', send_at: 'tomorrow' },
      422,
      'invalid_send_at',
      'send_at',
    ],
    [
      'bad metadata',
      { from: 'a@sender.test', to: 'b@example.test', text: 'x', metadata: { a: { b: 1 } } },
      422,
      'invalid_metadata',
      'metadata.a',
    ],
    [
      'bad tag',
      { from: 'a@sender.test', to: 'b@example.test', text: 'x', tags: ['ok', ''] },
      422,
      'invalid_tag',
      'tags[1]',
    ],
    [
      'unknown template',
      { from: 'a@sender.test', to: 'b@example.test', template: { alias: 'missing', variables: {} } },
      404,
      'template_not_found',
      'template.alias',
    ],
    [
      'missing variable in personalised content',
      { from: 'a@sender.test', recipients: [{ email: 'b@example.test' }], subject: 'Hi {{name}}', text: 'x' },
      422,
      'template_render_error',
    ],
  ];
  for (const [name, body, status, code, field] of errorCases) {
    it(`refuses ${name}: ${status} ${code}, nothing stored`, async () => {
      const before = (await api.store.listMessages({ limit: 1000 })).length;
      const res = await call(api, api.keys.send, 'POST', '/v1/messages', body);
      assert.equal(res.statusCode, status, res.body);
      const error = res.json().error;
      assert.equal(error.code, code);
      assert.equal(typeof error.message, 'string');
      if (field !== undefined) assert.equal(error.field, field);
      assert.doesNotMatch(res.body, /at .*\.ts:\d+/, 'no stack trace');
      assert.equal((await api.store.listMessages({ limit: 1000 })).length, before);
    });
  }

  it('refuses a message larger than the size limit with payload_too_large', async () => {
    const small = await startApiApp({ maxMessageBytes: 2000 });
    try {
      const res = await call(small, small.keys.send, 'POST', '/v1/messages', {
        from: 'a@sender.test',
        to: 'b@example.test',
        text: 'x'.repeat(5000),
      });
      assert.equal(res.statusCode, 413);
      assert.equal(res.json().error.code, 'payload_too_large');
      const huge = await small.app.inject({
        method: 'POST',
        url: '/v1/messages',
        headers: { authorization: `Bearer ${small.keys.send}`, 'content-type': 'application/json' },
        payload: JSON.stringify({ from: 'a@sender.test', to: 'b@example.test', text: 'y'.repeat(10_000) }),
      });
      assert.equal(huge.statusCode, 413);
      assert.equal(huge.json().error.code, 'payload_too_large');
    } finally {
      await small.close();
    }
  });

  it('answers invalid_json and unsupported_media_type', async () => {
    const bad = await api.app.inject({
      method: 'POST',
      url: '/v1/messages',
      headers: { authorization: `Bearer ${api.keys.send}`, 'content-type': 'application/json' },
      payload: '{"from": ',
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'invalid_json');
    const text = await api.app.inject({
      method: 'POST',
      url: '/v1/messages',
      headers: { authorization: `Bearer ${api.keys.send}`, 'content-type': 'text/plain' },
      payload: 'hello',
    });
    assert.equal(text.statusCode, 415);
    assert.equal(text.json().error.code, 'unsupported_media_type');
  });
});

describe('native API: keys, scopes, rate limit', () => {
  let api: ApiApp;
  before(async () => {
    api = await startApiApp({ rate: 1, burst: 3 });
  });
  after(() => api.close());
  const msg = { from: 'a@sender.test', to: 'b@example.test', text: 'x' };

  it('needs a valid key: missing, malformed, unknown or revoked is 401', async () => {
    const none = await api.app.inject({ method: 'POST', url: '/v1/messages', payload: msg });
    assert.equal(none.statusCode, 401);
    assert.equal(none.json().error.code, 'unauthorized');
    for (const key of ['garbage', `${api.keys.all.slice(0, -3)}xyz`]) {
      const res = await call(api, key, 'POST', '/v1/messages', msg);
      assert.equal(res.statusCode, 401);
      assert.equal(res.json().error.code, 'unauthorized');
    }
  });

  it('checks scopes: send cannot read, read cannot send, only admin manages templates', async () => {
    const read = await call(api, api.keys.read, 'POST', '/v1/messages', msg);
    assert.equal(read.statusCode, 403);
    assert.equal(read.json().error.code, 'forbidden');
    const list = await call(api, api.keys.send, 'GET', '/v1/messages');
    assert.equal(list.statusCode, 403);
    const tpl = await call(api, api.keys.send, 'POST', '/v1/templates', {
      name: 'x',
      subject: 's',
      text: 't',
    });
    assert.equal(tpl.statusCode, 403);
  });

  it('answers 429 with Retry-After once a key has spent its rate', async () => {
    const key = api.keys.all;
    let limited: Awaited<ReturnType<typeof call>> | undefined;
    for (let i = 0; i < 5 && !limited; i++) {
      const res = await call(api, key, 'GET', '/v1/messages');
      if (res.statusCode === 429) limited = res;
    }
    assert.ok(limited, 'the fourth request within the burst of 3 is limited');
    assert.equal(limited.json().error.code, 'rate_limited');
    assert.equal(limited.headers['retry-after'], '1');
    api.clock.now += 2000;
    assert.equal((await call(api, key, 'GET', '/v1/messages')).statusCode, 200);
  });
});

describe('native API: store unavailable', () => {
  it('answers 503 unavailable, never a stack trace, when the store cannot be reached', async () => {
    const api = await startApiApp();
    await api.store.close();
    try {
      const res = await call(api, api.keys.send, 'POST', '/v1/messages', {
        from: 'a@sender.test',
        to: 'b@example.test',
        text: 'x',
      });
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json().error.code, 'unavailable');
    } finally {
      await api.close();
    }
  });
});

describe('native API: batch, raw, lookup, list, cancel, idempotency', () => {
  let api: ApiApp;
  before(async () => {
    api = await startApiApp({ maxBatch: 5 });
  });
  after(() => api.close());

  it('a batch accepts the good items and lists the bad ones (207)', async () => {
    const res = await call(api, api.keys.all, 'POST', '/v1/messages/batch', {
      messages: [
        { from: 'a@sender.test', to: 'one@example.test', subject: '1', text: 'x', tags: ['batch'] },
        { from: 'a@sender.test', to: 'nope', text: 'x' },
        { from: 'a@sender.test', to: 'two@example.test', text: 'x', bogus: 1 },
        { from: 'a@sender.test', to: 'three@example.test', subject: '3', text: 'x', tags: ['batch'] },
      ],
    });
    assert.equal(res.statusCode, 207, res.body);
    const body = res.json();
    assert.deepEqual(
      body.data.map((d: { index: number }) => d.index),
      [0, 3],
    );
    assert.deepEqual(
      body.errors.map((e: { index: number; code: string; field: string }) => [e.index, e.code, e.field]),
      [
        [1, 'invalid_address', 'to'],
        [2, 'invalid_request', 'bogus'],
      ],
    );
    const tagged = await call(api, api.keys.all, 'GET', '/v1/messages?tag=batch');
    assert.equal(tagged.json().data.length, 2);
    const all = await call(api, api.keys.all, 'POST', '/v1/messages/batch', {
      messages: [{ from: 'a@sender.test', to: 'four@example.test', text: 'x' }],
    });
    assert.equal(all.statusCode, 202);
    assert.deepEqual(all.json().errors, []);
  });

  it('refuses a batch above the limit (batch_too_large) and a malformed one', async () => {
    const big = await call(api, api.keys.all, 'POST', '/v1/messages/batch', {
      messages: Array.from({ length: 6 }, () => ({ from: 'a@sender.test', to: 'b@example.test', text: 'x' })),
    });
    assert.equal(big.statusCode, 413);
    assert.equal(big.json().error.code, 'batch_too_large');
    const bad = await call(api, api.keys.all, 'POST', '/v1/messages/batch', { message: [] });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'invalid_request');
  });

  it('raw: stores the bytes as given, with the envelope', async () => {
    const raw =
      'From: a@sender.test\nTo: hidden@example.test\nSubject: raw one\nMessage-ID: <raw-1@sender.test>\n\nbody line\n';
    const res = await call(api, api.keys.all, 'POST', '/v1/messages/raw', {
      mail_from: 'bounces@sender.test',
      rcpt_to: ['r1@example.test', 'r2@example.test'],
      raw: b64(raw),
      tags: ['raw'],
    });
    assert.equal(res.statusCode, 202, res.body);
    const id = res.json().id;
    const message = await api.store.getMessage(id);
    assert.equal(message?.mailFrom, 'bounces@sender.test');
    assert.equal(message?.subject, 'raw one');
    assert.equal(message?.messageIdHeader, '<raw-1@sender.test>');
    const body = (await api.store.getBody(id))?.toString() ?? '';
    assert.ok(
      body.endsWith('Subject: raw one\r\nMessage-ID: <raw-1@sender.test>\r\n\r\nbody line\r\n'),
      body,
    );
    assert.deepEqual(
      (await api.store.getRecipients(id)).map((r) => r.address),
      ['r1@example.test', 'r2@example.test'],
    );
    const bad = await call(api, api.keys.all, 'POST', '/v1/messages/raw', {
      mail_from: 'a@sender.test',
      rcpt_to: [],
      raw: b64(raw),
    });
    assert.equal(bad.json().error.code, 'missing_recipients');
  });

  it('GET shows the message, recipients and events; another account gets 404', async () => {
    const sent = await call(api, api.keys.all, 'POST', '/v1/messages', {
      from: 'a@sender.test',
      to: 'look@example.test',
      subject: 'look',
      text: 'x',
      metadata: { k: 'v' },
    });
    const id = sent.json().id;
    const res = await call(api, api.keys.all, 'GET', `/v1/messages/${id}`);
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.subject, 'look');
    assert.deepEqual(body.metadata, { k: 'v' });
    assert.equal(body.recipients[0].email, 'look@example.test');
    assert.equal(body.recipients[0].id, `${id}-0`);
    assert.equal(body.events[0].type, 'accepted');
    assert.equal(body.events[0].recipient_id, `${id}-0`);
    assert.deepEqual(body.events[0].metadata, { k: 'v' });
    const foreign = await call(api, api.keys.other, 'GET', `/v1/messages/${id}`);
    assert.equal(foreign.statusCode, 404);
    assert.equal(foreign.json().error.code, 'not_found');
    const missing = await call(api, api.keys.all, 'GET', '/v1/messages/nothing-here');
    assert.equal(missing.statusCode, 404);
  });

  it('lists only the account’s messages, filtered and paged with a cursor', async () => {
    for (const n of [1, 2, 3]) {
      await call(api, api.keys.all, 'POST', '/v1/messages', {
        from: 'a@sender.test',
        to: `page${n}@example.test`,
        subject: `Page number ${n}`,
        text: 'x',
        tags: ['paged'],
      });
      api.clock.now += 1000;
    }
    await call(api, api.keys.other, 'POST', '/v1/messages', {
      from: 'a@sender.test',
      to: 'page9@example.test',
      text: 'x',
      tags: ['paged'],
    });
    const first = (await call(api, api.keys.all, 'GET', '/v1/messages?tag=paged&limit=2')).json();
    assert.deepEqual(
      first.data.map((m: { recipients: { email: string }[] }) => m.recipients[0]?.email),
      ['page3@example.test', 'page2@example.test'],
    );
    assert.ok(first.next_cursor);
    const second = (
      await call(api, api.keys.all, 'GET', `/v1/messages?tag=paged&limit=2&cursor=${first.next_cursor}`)
    ).json();
    assert.deepEqual(
      second.data.map((m: { recipients: { email: string }[] }) => m.recipients[0]?.email),
      ['page1@example.test'],
    );
    assert.equal(second.next_cursor, null);
    const byRecipient = (
      await call(api, api.keys.all, 'GET', '/v1/messages?recipient=page2@example.test')
    ).json();
    assert.equal(byRecipient.data.length, 1);
    const queued = (await call(api, api.keys.all, 'GET', '/v1/messages?status=queued&tag=paged')).json();
    assert.equal(queued.data.length, 3);
    const after = new Date(api.clock.now - 1500).toISOString();
    const recent = (await call(api, api.keys.all, 'GET', `/v1/messages?tag=paged&after=${after}`)).json();
    assert.equal(recent.data.length, 1);
    const bySubject = (await call(api, api.keys.all, 'GET', '/v1/messages?subject=number%202')).json();
    assert.deepEqual(
      bySubject.data.map((m: { subject: string }) => m.subject),
      ['Page number 2'],
    );
    const bad = await call(api, api.keys.all, 'GET', '/v1/messages?status=lost');
    assert.equal(bad.json().error.code, 'invalid_request');
    assert.equal(bad.json().error.field, 'status');
  });

  it('DELETE cancels what is not delivered; a second DELETE is not_cancellable', async () => {
    const sent = await call(api, api.keys.all, 'POST', '/v1/messages', {
      from: 'a@sender.test',
      to: ['c1@example.test', 'c2@example.test'],
      text: 'x',
      send_at: new Date(api.clock.now + 3_600_000).toISOString(),
    });
    const id = sent.json().id;
    assert.equal((await call(api, api.keys.other, 'DELETE', `/v1/messages/${id}`)).statusCode, 404);
    const res = await call(api, api.keys.all, 'DELETE', `/v1/messages/${id}`);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().cancelled, 2);
    assert.deepEqual(
      res.json().recipients.map((r: { status: string }) => r.status),
      ['cancelled', 'cancelled'],
    );
    const cancelledEvent = (await api.store.getEvents(id)).find((e) => e.type === 'cancelled');
    assert.equal(
      (cancelledEvent?.data as { reason?: string } | undefined)?.reason,
      'cancelled through the API',
    );
    const again = await call(api, api.keys.all, 'DELETE', `/v1/messages/${id}`);
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().error.code, 'not_cancellable');
  });

  it('Idempotency-Key: the same request answers the first answer and sends nothing again', async () => {
    const body = { from: 'a@sender.test', to: 'idem@example.test', text: 'once' };
    const headers = { 'idempotency-key': 'order-77' };
    const first = await call(api, api.keys.all, 'POST', '/v1/messages', body, headers);
    assert.equal(first.statusCode, 202);
    const second = await call(api, api.keys.all, 'POST', '/v1/messages', body, headers);
    assert.equal(second.statusCode, 202);
    assert.deepEqual(second.json(), first.json());
    assert.equal(second.headers['idempotent-replayed'], 'true');
    const stored = await api.store.listMessages({ recipient: 'idem@example.test' });
    assert.equal(stored.length, 1);
    const different = await call(
      api,
      api.keys.all,
      'POST',
      '/v1/messages',
      { ...body, text: 'other' },
      headers,
    );
    assert.equal(different.statusCode, 409);
    assert.equal(different.json().error.code, 'idempotency_key_reused');
    // Keys are per account: another account's same key is its own.
    const other = await call(api, api.keys.other, 'POST', '/v1/messages', body, headers);
    assert.equal(other.statusCode, 202);
    assert.notEqual(other.json().id, first.json().id);
  });

  it('Idempotency-Key: a batch replays too; a failed request forgets its key; bad keys are refused', async () => {
    const batch = {
      messages: [{ from: 'a@sender.test', to: 'ib@example.test', text: 'x' }, { from: 'bad' }],
    };
    const headers = { 'idempotency-key': 'batch-1' };
    const first = await call(api, api.keys.all, 'POST', '/v1/messages/batch', batch, headers);
    const again = await call(api, api.keys.all, 'POST', '/v1/messages/batch', batch, headers);
    assert.equal(again.statusCode, 207);
    assert.deepEqual(again.json(), first.json());
    assert.equal((await api.store.listMessages({ recipient: 'ib@example.test' })).length, 1);

    const failing = { from: 'a@sender.test', to: 'nope', text: 'x' };
    const h2 = { 'idempotency-key': 'fails' };
    assert.equal((await call(api, api.keys.all, 'POST', '/v1/messages', failing, h2)).statusCode, 422);
    const fixed = await call(api, api.keys.all, 'POST', '/v1/messages', failing, h2);
    assert.equal(fixed.json().error.code, 'invalid_address', 'the failed attempt left no claim behind');

    const bad = await call(api, api.keys.all, 'POST', '/v1/messages', failing, {
      'idempotency-key': 'has space',
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'invalid_idempotency_key');
  });

  it('Idempotency-Key: a request still running answers idempotency_key_in_use', async () => {
    const acme = await api.store.getAccountByName('acme');
    assert.ok(acme);
    // Another request holds the key and has not answered yet.
    await api.store.claimIdempotencyKey({
      accountId: acme.id,
      key: 'running',
      requestHash: 'whatever',
      now: api.clock.now,
      staleBefore: 0,
      expiredBefore: 0,
    });
    const res = await call(
      api,
      api.keys.all,
      'POST',
      '/v1/messages',
      { from: 'a@sender.test', to: 'r@example.test', text: 'x' },
      {
        'idempotency-key': 'running',
      },
    );
    assert.equal(res.statusCode, 409);
    assert.ok(['idempotency_key_in_use', 'idempotency_key_reused'].includes(res.json().error.code));
  });
});

describe('native API: OpenAPI and docs', () => {
  let api: ApiApp;
  before(async () => {
    api = await startApiApp();
  });
  after(() => api.close());

  it('serves an OpenAPI 3.1 document generated from the route schemas, and rendered docs', async () => {
    const doc = (await api.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    assert.equal(doc.openapi, '3.1.0');
    for (const path of [
      '/v1/messages',
      '/v1/messages/batch',
      '/v1/messages/raw',
      '/v1/messages/{id}',
      '/v1/templates/{id}/render',
    ]) {
      assert.ok(doc.paths[path], `${path} is documented`);
    }
    assert.ok(
      doc.paths['/v1/messages'].post.requestBody.content['application/json'].schema.properties.send_at,
    );
    const docs = await api.app.inject({ method: 'GET', url: '/docs/' });
    assert.equal(docs.statusCode, 200);
    assert.match(docs.body, /swagger/i);
  });

  it('answers an unknown route with the error shape', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/v1/nothing' });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error.code, 'not_found');
  });
});
