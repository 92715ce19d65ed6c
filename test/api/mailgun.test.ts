import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import FormData from 'form-data';
import Handlebars from 'handlebars';
import Mailgun from 'mailgun.js';
import { registerMailgunRoutes } from '../../src/api/mailgun.ts';
import type { ApiPrincipal, BatchItem, KeyGate, SendApi } from '../../src/api/send-api.ts';
import { SendError } from '../../src/intake/send-errors.ts';
import type { RawSendRequest, SendRequest, SendResult } from '../../src/intake/send-request.ts';

const GOOD_KEY = 'pb_live_good';
const READ_ONLY_KEY = 'pb_live_read';
const SPENT_KEY = 'pb_live_spent';
const DOMAIN = 'mail.example.com';
const MAX_MESSAGE_BYTES = 64 * 1024;

function principal(credentialId: string, scopes: ApiPrincipal['scopes']): ApiPrincipal {
  return { accountId: 'acct-1', credentialId, scopes, defaultStream: '' };
}

const PRINCIPALS = new Map<string, ApiPrincipal>([
  [GOOD_KEY, principal('cred-good', ['send'])],
  [READ_ONLY_KEY, principal('cred-read', ['read'])],
  [SPENT_KEY, principal('cred-spent', ['send'])],
]);

const keys: KeyGate = {
  async authenticate(secret) {
    return PRINCIPALS.get(secret);
  },
  take(holder) {
    return holder.credentialId === 'cred-spent' ? { ok: false, retryAfterSeconds: 7 } : { ok: true };
  },
};

/** Records what the endpoints hand to intake; `refuseWith` makes the next call reject. */
class FakeSendApi implements SendApi {
  sent: { principal: ApiPrincipal; request: SendRequest; clientIp: string }[] = [];
  raw: { principal: ApiPrincipal; request: RawSendRequest; clientIp: string }[] = [];
  refuseWith: Error | undefined;

  async send(holder: ApiPrincipal, request: SendRequest, clientIp: string): Promise<SendResult> {
    this.refuse();
    this.sent.push({ principal: holder, request, clientIp });
    return result('0123456789abcdefghjk');
  }
  async sendBatch(): Promise<BatchItem[]> {
    throw new Error('the Mailgun endpoints never batch');
  }
  async sendRaw(holder: ApiPrincipal, request: RawSendRequest, clientIp: string): Promise<SendResult> {
    this.refuse();
    this.raw.push({ principal: holder, request, clientIp });
    return result('raw456789abcdefghjk0');
  }
  private refuse(): void {
    const error = this.refuseWith;
    this.refuseWith = undefined;
    if (error) throw error;
  }
}

function result(id: string): SendResult {
  return { id, messageIdHeader: `<${id}@relay.example.net>`, acceptedAt: Date.now(), recipients: [] };
}

/** What mailgun.js rejects with: MailgunAPIError's public fields. */
interface SdkError {
  status: number;
  details: string;
}

describe('api: mailgun', () => {
  const fake = new FakeSendApi();
  let app: FastifyInstance;
  let base: string;
  let mg: ReturnType<InstanceType<typeof Mailgun>['client']>;

  before(async () => {
    app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
    registerMailgunRoutes(app, { send: fake, keys, maxMessageBytes: MAX_MESSAGE_BYTES });
    app.post('/elsewhere', async (request) => ({ got: request.body }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    mg = client(GOOD_KEY);
  });
  after(() => app.close());
  beforeEach(() => {
    fake.sent = [];
    fake.raw = [];
    fake.refuseWith = undefined;
  });

  function client(key: string) {
    return new Mailgun(FormData).client({ username: 'api', key, url: base });
  }

  function lastSent(): SendRequest {
    assert.equal(fake.sent.length, 1, 'one send call');
    return fake.sent[0]!.request;
  }

  async function sdkError(sending: Promise<unknown>): Promise<SdkError> {
    try {
      await sending;
    } catch (error) {
      return error as SdkError;
    }
    assert.fail('the SDK call succeeded');
  }

  it('sends addresses with names, content and answers with a Mailgun-shaped id', async () => {
    const answer = await mg.messages.create(DOMAIN, {
      from: 'Excited User <postmaster@mail.example.com>',
      to: ['Alice Doe <alice@example.org>, bob@example.org', '"Doe, Carol" <carol@example.org>'],
      cc: 'dave@example.org',
      bcc: ['Eve <eve@example.org>'],
      subject: 'Grüße',
      text: 'plain body',
      html: '<p>html body</p>',
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.id, `<0123456789abcdefghjk@${DOMAIN}>`);
    assert.equal(answer.message, 'Queued. Thank you.');
    const call = fake.sent[0]!;
    assert.equal(call.principal.credentialId, 'cred-good');
    assert.equal(call.clientIp, '127.0.0.1');
    assert.deepEqual(lastSent(), {
      from: { address: 'postmaster@mail.example.com', name: 'Excited User' },
      to: [
        { address: 'alice@example.org', name: 'Alice Doe' },
        { address: 'bob@example.org' },
        { address: 'carol@example.org', name: 'Doe, Carol' },
      ],
      cc: [{ address: 'dave@example.org' }],
      bcc: [{ address: 'eve@example.org', name: 'Eve' }],
      replyTo: [],
      attachments: [],
      headers: [],
      tags: [],
      metadata: {},
      subject: 'Grüße',
      text: 'plain body',
      html: '<p>html body</p>',
    });
  });

  it('passes attachments byte for byte with their names, and inline parts with the file name as Content-ID', async () => {
    const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    await mg.messages.create(DOMAIN, {
      from: 'postmaster@mail.example.com',
      to: 'alice@example.org',
      html: '<img src="cid:logo.png">',
      attachment: [
        { filename: 'report.pdf', data: binary },
        { filename: 'notes.txt', data: Buffer.from('hello\r\n') },
      ],
      inline: { filename: 'logo.png', data: png },
    });
    assert.deepEqual(lastSent().attachments, [
      { filename: 'report.pdf', content: binary, contentType: 'application/pdf' },
      { filename: 'notes.txt', content: Buffer.from('hello\r\n'), contentType: 'text/plain' },
      { filename: 'logo.png', content: png, contentType: 'image/png', contentId: 'logo.png' },
    ]);
  });

  it('maps o:tag, h:, v:, o:deliverytime and tracking; ignores options it does not know', async () => {
    await mg.messages.create(DOMAIN, {
      from: 'postmaster@mail.example.com',
      to: 'alice@example.org',
      text: 'hi',
      'o:tag': ['welcome', 'onboarding'],
      'h:X-Campaign': 'spring',
      'h:Reply-To': 'Support Team <help@example.com>',
      'v:user-id': '42',
      'v:plan': 'pro',
      'o:deliverytime': 'Fri, 14 Oct 2033 23:10:10 -0000',
      'o:tracking': true,
      'o:tracking-opens': 'no',
      'o:tracking-clicks': 'htmlonly',
      'o:testmode': 'yes',
      'o:dkim': 'yes',
    });
    const request = lastSent();
    assert.deepEqual(request.tags, ['welcome', 'onboarding']);
    assert.deepEqual(request.headers, [['X-Campaign', 'spring']]);
    assert.deepEqual(request.replyTo, [{ address: 'help@example.com', name: 'Support Team' }]);
    assert.deepEqual(request.metadata, { 'user-id': '42', plan: 'pro' });
    assert.equal(request.sendAt, Date.UTC(2033, 9, 14, 23, 10, 10));
    assert.deepEqual(request.track, { opens: false, clicks: true });
  });

  it('o:tracking alone switches both opens and clicks', async () => {
    await mg.messages.create(DOMAIN, {
      from: 'postmaster@mail.example.com',
      to: 'alice@example.org',
      text: 'hi',
      'o:tracking': false,
    });
    assert.deepEqual(lastSent().track, { opens: false, clicks: false });
  });

  it('recipient-variables: one personal copy per to address, %recipient.KEY% rendered, literal braces kept', async () => {
    await mg.messages.create(DOMAIN, {
      from: 'postmaster@mail.example.com',
      to: ['Alice <alice@example.org>', 'Bob@Example.org'],
      subject: 'Hi %recipient.first%',
      text: 'id %recipient.id%, code %recipient.code%, a {{literal}} and \\{{escaped}} stay; odd %recipient.first-name%',
      html: '<p>{{{raw}}} %recipient.first%</p>',
      'recipient-variables': JSON.stringify({
        'alice@example.org': { first: 'Alice', id: 1, code: 'A-1', 'first-name': 'Al' },
        'bob@example.org': { first: '<b>Bob</b>', id: 2, 'first-name': 'Bo' },
      }),
    });
    const request = lastSent();
    assert.deepEqual(request.to, []);
    assert.deepEqual(request.variables, {});
    assert.deepEqual(request.recipients, [
      {
        address: 'alice@example.org',
        name: 'Alice',
        variables: { recipient: { first: 'Alice', id: 1, code: 'A-1', 'first-name': 'Al' } },
      },
      {
        address: 'Bob@Example.org',
        variables: { recipient: { first: '<b>Bob</b>', id: 2, 'first-name': 'Bo' } },
      },
    ]);
    assert.equal(request.subject, 'Hi {{{recipient.first}}}');

    const render = (content: string | undefined, index: number) =>
      Handlebars.compile(content)(request.recipients![index]!.variables);
    assert.equal(render(request.subject, 0), 'Hi Alice');
    assert.equal(
      render(request.text, 0),
      'id 1, code %recipient.code%, a {{literal}} and \\{{escaped}} stay; odd Al',
      'code is missing for Bob, so it stays literal for everyone',
    );
    assert.equal(
      render(request.html, 1),
      '<p>{{{raw}}} <b>Bob</b></p>',
      'values are not HTML-escaped, as in Mailgun',
    );
  });

  it('template with t:variables and t:version', async () => {
    await mg.messages.create(DOMAIN, {
      from: 'postmaster@mail.example.com',
      to: 'alice@example.org',
      template: 'welcome-mail',
      't:variables': JSON.stringify({ name: 'Alice', items: [1, 2] }),
      't:version': '3',
    });
    assert.deepEqual(lastSent().template, {
      alias: 'welcome-mail',
      variables: { name: 'Alice', items: [1, 2] },
      version: 3,
    });
  });

  it('messages.mime: the MIME bytes untouched, envelope from the From header and the to field', async () => {
    const mime = Buffer.from(
      'Subject: raw\r\nFrom: "Sender, Name"\r\n <sender@mail.example.com>\r\nTo: x@example.org\r\n\r\nFrom: body@example.org\r\n\u00ff\r\n',
      'latin1',
    );
    const answer = await mg.messages.create(DOMAIN, {
      to: 'x@example.org, Why <y@example.org>',
      message: mime,
      'o:tag': 'raw',
      'v:order': '17',
      'o:deliverytime': 'Thu, 13 Oct 2033 18:02:00 +0000',
    });
    assert.equal(answer.id, `<raw456789abcdefghjk0@${DOMAIN}>`);
    assert.equal(fake.raw.length, 1);
    const request = fake.raw[0]!.request;
    assert.ok(request.raw.equals(mime), 'bytes as sent');
    assert.equal(request.mailFrom, 'sender@mail.example.com');
    assert.deepEqual(request.rcptTo, ['x@example.org', 'y@example.org']);
    assert.deepEqual(request.tags, ['raw']);
    assert.deepEqual(request.metadata, { order: '17' });
    assert.equal(request.sendAt, Date.UTC(2033, 9, 13, 18, 2, 0));
  });

  it('messages.mime without a From header is refused', async () => {
    const error = await sdkError(
      mg.messages.create(DOMAIN, {
        to: 'x@example.org',
        message: Buffer.from('Subject: no sender\n\nbody\n'),
      }),
    );
    assert.equal(error.status, 400);
    assert.match(error.details, /From header/);
    assert.equal(fake.raw.length, 0);
  });

  it('a wrong key is 401 Forbidden, as Mailgun answers it', async () => {
    const error = await sdkError(
      client('pb_live_wrong').messages.create(DOMAIN, {
        from: 'a@example.com',
        to: 'b@example.org',
        text: 'x',
      }),
    );
    assert.equal(error.status, 401);
    assert.equal(error.details, 'Forbidden');

    const bare = await fetch(`${base}/v3/${DOMAIN}/messages`, { method: 'POST' });
    assert.equal(bare.status, 401);
    assert.equal(await bare.text(), 'Forbidden');
    const otherUser = await fetch(`${base}/v3/${DOMAIN}/messages`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`someone:${GOOD_KEY}`).toString('base64')}` },
    });
    assert.equal(otherUser.status, 401, 'the user must be api');
    assert.equal(fake.sent.length, 0);
  });

  it('a key without the send scope is 403', async () => {
    const error = await sdkError(
      client(READ_ONLY_KEY).messages.create(DOMAIN, {
        from: 'a@example.com',
        to: 'b@example.org',
        text: 'x',
      }),
    );
    assert.equal(error.status, 403);
    assert.match(error.details, /send scope/);
  });

  it('a spent rate limit is 429 with Retry-After', async () => {
    const error = await sdkError(
      client(SPENT_KEY).messages.create(DOMAIN, { from: 'a@example.com', to: 'b@example.org', text: 'x' }),
    );
    assert.equal(error.status, 429);
    const response = await fetch(`${base}/v3/${DOMAIN}/messages`, {
      method: 'POST',
      headers: { authorization: basic(SPENT_KEY) },
      body: new URLSearchParams({ from: 'a@example.com' }),
    });
    assert.equal(response.status, 429);
    assert.equal(response.headers.get('retry-after'), '7');
    assert.equal(fake.sent.length, 0);
  });

  it("intake's SendError becomes 400 with its message", async () => {
    fake.refuseWith = new SendError('invalid_address', "'to' address nope@ is not valid", 'to[0]');
    const error = await sdkError(
      mg.messages.create(DOMAIN, { from: 'a@example.com', to: 'nope@', text: 'x' }),
    );
    assert.equal(error.status, 400);
    assert.equal(error.details, "'to' address nope@ is not valid");
  });

  it('an unexpected failure is 500 without detail', async () => {
    fake.refuseWith = new Error('store connection lost at /srv/db.ts:12');
    const response = await fetch(`${base}/v3/${DOMAIN}/messages`, {
      method: 'POST',
      headers: { authorization: basic(GOOD_KEY) },
      body: new URLSearchParams({ from: 'a@example.com', to: 'b@example.org', text: 'x' }),
    });
    assert.equal(response.status, 500);
    assert.deepEqual(await response.json(), { message: 'Internal error' });
  });

  it('refuses bad field values with a message naming the field', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ 'o:deliverytime': 'next tuesday-ish' }, /'o:deliverytime' is not an RFC 2822 date/],
      [{ 'o:tracking-clicks': 'maybe' }, /'o:tracking-clicks' must be yes, no/],
      [{ 'recipient-variables': '{not json' }, /'recipient-variables' is not valid JSON/],
      [{ template: 'welcome', 't:variables': '[1]' }, /'t:variables' must be a JSON object/],
      [{ template: 'welcome', 't:version': 'initial' }, /'t:version' must be a version number/],
      [{ from: 'Nobody' }, /'from' has an entry without an address/],
      [{ from: 'a@example.com, b@example.com' }, /'from' parameter must be a single address/],
    ];
    for (const [fields, message] of cases) {
      const error = await sdkError(
        mg.messages.create(DOMAIN, { from: 'a@example.com', to: 'b@example.org', text: 'x', ...fields }),
      );
      assert.equal(error.status, 400, JSON.stringify(fields));
      assert.match(error.details, message);
    }
    const noFrom = await sdkError(mg.messages.create(DOMAIN, { to: 'b@example.org', text: 'x' }));
    assert.match(noFrom.details, /'from' parameter is missing/);
    assert.equal(fake.sent.length, 0);
  });

  it('refuses a path domain that is not a domain name', async () => {
    const error = await sdkError(
      mg.messages.create('bad_domain!', { from: 'a@example.com', to: 'b@example.org', text: 'x' }),
    );
    assert.equal(error.status, 400);
    assert.match(error.details, /is not a domain name/);
  });

  it('accepts application/x-www-form-urlencoded with repeated fields', async () => {
    const body = new URLSearchParams([
      ['from', 'Shop <shop@mail.example.com>'],
      ['to', 'alice@example.org'],
      ['to', 'Bob <bob@example.org>'],
      ['subject', 'Order 17'],
      ['text', 'Thanks & see you'],
      ['o:tag', 'orders'],
      ['o:tag', 'eu'],
      ['h:X-Order', '17'],
      ['v:order', '17'],
    ]);
    const response = await fetch(`${base}/v3/${DOMAIN}/messages`, {
      method: 'POST',
      headers: { authorization: basic(GOOD_KEY) },
      body,
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), {
      id: `<0123456789abcdefghjk@${DOMAIN}>`,
      message: 'Queued. Thank you.',
    });
    const request = lastSent();
    assert.deepEqual(request.from, { address: 'shop@mail.example.com', name: 'Shop' });
    assert.deepEqual(request.to, [
      { address: 'alice@example.org' },
      { address: 'bob@example.org', name: 'Bob' },
    ]);
    assert.equal(request.text, 'Thanks & see you');
    assert.deepEqual(request.tags, ['orders', 'eu']);
    assert.deepEqual(request.headers, [['X-Order', '17']]);
    assert.deepEqual(request.metadata, { order: '17' });
  });

  it('refuses oversize requests with 413 in each encoding', async () => {
    const big = Buffer.alloc(MAX_MESSAGE_BYTES + 512 * 1024, 0x61);
    const attachment = await sdkError(
      mg.messages.create(DOMAIN, {
        from: 'a@example.com',
        to: 'b@example.org',
        text: 'x',
        attachment: { filename: 'big.bin', data: big },
      }),
    );
    assert.equal(attachment.status, 413);
    assert.match(attachment.details, /too large/);

    // No Content-Length: the limit is found while reading the parts.
    const form = new globalThis.FormData();
    form.append('from', 'a@example.com');
    for (let i = 0; i < 6; i++)
      form.append('attachment', new Blob([Buffer.alloc(MAX_MESSAGE_BYTES - 1, 0x62)]), `part${i}.bin`);
    const serialised = new Response(form);
    const contentType = serialised.headers.get('content-type')!;
    const encoded = Buffer.from(await serialised.arrayBuffer());
    const chunked = await fetch(`${base}/v3/${DOMAIN}/messages`, {
      method: 'POST',
      headers: { authorization: basic(GOOD_KEY), 'content-type': contentType },
      body: new ReadableStream({
        start(controller) {
          for (let offset = 0; offset < encoded.length; offset += 16 * 1024) {
            controller.enqueue(encoded.subarray(offset, offset + 16 * 1024));
          }
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(chunked.status, 413);
    assert.match(((await chunked.json()) as { message: string }).message, /too large/);

    // Percent-encoded past the wire limit, and plain ASCII under it but past the decoded limit.
    for (const text of ['é'.repeat(2 * MAX_MESSAGE_BYTES), 'a'.repeat(MAX_MESSAGE_BYTES + 300 * 1024)]) {
      const urlencoded = await fetch(`${base}/v3/${DOMAIN}/messages`, {
        method: 'POST',
        headers: { authorization: basic(GOOD_KEY) },
        body: new URLSearchParams({ from: 'a@example.com', to: 'b@example.org', text }),
      });
      assert.equal(urlencoded.status, 413);
      assert.equal(typeof ((await urlencoded.json()) as { message: unknown }).message, 'string');
    }
    assert.equal(fake.sent.length, 0);
  });

  it('refuses more than 100 files with 413', async () => {
    const error = await sdkError(
      mg.messages.create(DOMAIN, {
        from: 'a@example.com',
        to: 'b@example.org',
        text: 'x',
        attachment: Array.from({ length: 101 }, (_, i) => ({
          filename: `f${i}.txt`,
          data: Buffer.from('x'),
        })),
      }),
    );
    assert.equal(error.status, 413);
  });

  it('leaves the rest of the app alone: no form parsers outside the Mailgun routes', async () => {
    const form = new globalThis.FormData();
    form.append('a', 'b');
    const multipartElsewhere = await fetch(`${base}/elsewhere`, { method: 'POST', body: form });
    assert.equal(multipartElsewhere.status, 415);
    const json = await fetch(`${base}/elsewhere`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    assert.deepEqual(await json.json(), { got: { a: 1 } });
  });
});

function basic(key: string): string {
  return `Basic ${Buffer.from(`api:${key}`).toString('base64')}`;
}
