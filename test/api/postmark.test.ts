import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import Fastify from 'fastify';
import { Errors, Models, ServerClient } from 'postmark';
import { registerPostmarkRoutes } from '../../src/api/postmark.ts';
import type { ApiPrincipal, BatchItem, KeyGate, SendApi } from '../../src/api/send-api.ts';
import { SendError } from '../../src/intake/send-errors.ts';
import type { SendRequest, SendResult } from '../../src/intake/send-request.ts';

const TOKEN = 'pb_live_sender';
const READ_ONLY_TOKEN = 'pb_live_reader';
const ACCEPTED_AT = Date.UTC(2025, 4, 6, 7, 8, 9, 123);

const sender: ApiPrincipal = {
  accountId: 'acc1',
  credentialId: 'cred1',
  scopes: ['send'],
  defaultStream: '',
};
const reader: ApiPrincipal = {
  accountId: 'acc1',
  credentialId: 'cred2',
  scopes: ['read'],
  defaultStream: '',
};

interface Harness {
  client: ServerClient;
  url: string;
  /** Every SendRequest the fake SendApi received, batch items flattened in order. */
  received: SendRequest[];
  batches: number;
  authenticated: { secret: string; ip: string }[];
}

interface HarnessOptions {
  /** What the fake answers for one request; default: accepted with id `msg-<n>`. */
  answer?: (request: SendRequest, n: number) => SendResult | SendError | Error;
  retryAfterSeconds?: number;
  /** The server-wide body limit (server.ts sets 1 MiB). */
  bodyLimit?: number;
}

function resultFor(id: string, request: SendRequest): SendResult {
  return {
    id,
    messageIdHeader: `<${id}@postbote.test>`,
    acceptedAt: ACCEPTED_AT,
    recipients: request.to.map((to, i) => ({
      email: to.address,
      id: `${id}-${i}`,
      status: 'queued' as const,
    })),
  };
}

async function startHarness(t: TestContext, options: HarnessOptions = {}): Promise<Harness> {
  const answer = options.answer ?? ((request, n) => resultFor(`msg-${n}`, request));
  const harness: Omit<Harness, 'client' | 'url'> = { received: [], batches: 0, authenticated: [] };
  const answerFor = (request: SendRequest): SendResult | SendError | Error => {
    harness.received.push(request);
    return answer(request, harness.received.length);
  };
  const send: SendApi = {
    async send(_principal, request) {
      const outcome = answerFor(request);
      if (outcome instanceof Error) throw outcome;
      return outcome;
    },
    async sendBatch(_principal, requests) {
      harness.batches++;
      return requests.map((request): BatchItem => {
        const outcome = answerFor(request);
        if (outcome instanceof SendError) return { ok: false, error: outcome };
        if (outcome instanceof Error) throw outcome;
        return { ok: true, result: outcome };
      });
    },
    async sendRaw() {
      throw new Error('not used by the Postmark endpoints');
    },
  };
  const keys: KeyGate = {
    async authenticate(secret, ip) {
      harness.authenticated.push({ secret, ip });
      if (secret === TOKEN) return sender;
      if (secret === READ_ONLY_TOKEN) return reader;
      return undefined;
    },
    take() {
      return options.retryAfterSeconds === undefined
        ? { ok: true }
        : { ok: false, retryAfterSeconds: options.retryAfterSeconds };
    },
  };
  const app = Fastify(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit });
  registerPostmarkRoutes(app, { send, keys });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  const { port } = app.server.address() as AddressInfo;
  // The SDK builds `${useHttps ? 'https' : 'http'}://${requestHost}${path}`.
  const client = new ServerClient(TOKEN, { useHttps: false, requestHost: `127.0.0.1:${port}` });
  return Object.assign(harness, { client, url: `http://127.0.0.1:${port}` });
}

async function post(url: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-postmark-server-token': TOKEN, ...headers },
    body,
  });
}

async function rejection(promise: Promise<unknown>): Promise<Errors.PostmarkError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof Errors.PostmarkError, `expected a PostmarkError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the SDK call to reject');
}

const pdfBytes = Buffer.from('%PDF-1.4\n\x00\x01\x02\xff binary tail');
const pngBytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xfe]);

describe('Postmark-compatible send endpoints, driven by the official SDK', () => {
  it('maps every field of sendEmail onto the SendRequest and answers as Postmark', async (t) => {
    const h = await startHarness(t);
    const response = await h.client.sendEmail({
      From: '"Acme, Inc." <news@acme.test>',
      To: '"Doe, Jane" <jane@example.test>, bob@example.test',
      Cc: 'Carol <carol@example.test>',
      Bcc: 'audit@acme.test',
      ReplyTo: '"Support, Acme" <support@acme.test>',
      Subject: 'Your receipt',
      HtmlBody: '<p>Thanks <img src="cid:logo"></p>',
      TextBody: 'Thanks',
      Headers: [
        { Name: 'X-Campaign', Value: 'spring' },
        { Name: 'List-Unsubscribe', Value: '<mailto:unsub@acme.test>' },
      ],
      Tag: 'receipts',
      Metadata: { orderId: '42', customer: 'jane' },
      Attachments: [
        {
          Name: 'receipt.pdf',
          Content: pdfBytes.toString('base64'),
          ContentType: 'application/pdf',
          ContentID: null,
        },
        {
          Name: 'logo.png',
          Content: pngBytes.toString('base64'),
          ContentType: 'image/png',
          ContentID: 'cid:logo',
        },
        {
          Name: 'badge.png',
          Content: pngBytes.toString('base64'),
          ContentType: 'image/png',
          ContentID: 'badge',
        },
      ],
      MessageStream: 'broadcast',
      TrackOpens: true,
      TrackLinks: Models.LinkTrackingOptions.HtmlOnly,
    });

    assert.deepEqual(response, {
      To: '"Doe, Jane" <jane@example.test>, bob@example.test',
      SubmittedAt: '2025-05-06T07:08:09.123Z',
      MessageID: 'msg-1',
      ErrorCode: 0,
      Message: 'OK',
    });
    assert.deepEqual(h.received, [
      {
        from: { address: 'news@acme.test', name: 'Acme, Inc.' },
        to: [{ address: 'jane@example.test', name: 'Doe, Jane' }, { address: 'bob@example.test' }],
        cc: [{ address: 'carol@example.test', name: 'Carol' }],
        bcc: [{ address: 'audit@acme.test' }],
        replyTo: [{ address: 'support@acme.test', name: 'Support, Acme' }],
        subject: 'Your receipt',
        html: '<p>Thanks <img src="cid:logo"></p>',
        text: 'Thanks',
        headers: [
          ['X-Campaign', 'spring'],
          ['List-Unsubscribe', '<mailto:unsub@acme.test>'],
        ],
        tags: ['receipts'],
        metadata: { orderId: '42', customer: 'jane' },
        attachments: [
          { filename: 'receipt.pdf', content: pdfBytes, contentType: 'application/pdf' },
          { filename: 'logo.png', content: pngBytes, contentType: 'image/png', contentId: 'logo' },
          { filename: 'badge.png', content: pngBytes, contentType: 'image/png', contentId: 'badge' },
        ],
        stream: 'broadcast',
        track: { opens: true, clicks: true },
      },
    ]);
    assert.deepEqual(h.authenticated, [{ secret: TOKEN, ip: '127.0.0.1' }]);
  });

  it('sends a minimal message with a bare From and no optional fields set', async (t) => {
    const h = await startHarness(t);
    await h.client.sendEmail({ From: 'a@acme.test', To: 'b@example.test', Subject: 'Hi', TextBody: 'x' });
    assert.deepEqual(h.received, [
      {
        from: { address: 'a@acme.test' },
        to: [{ address: 'b@example.test' }],
        cc: [],
        bcc: [],
        replyTo: [],
        subject: 'Hi',
        text: 'x',
        attachments: [],
        headers: [],
        tags: [],
        metadata: {},
      },
    ]);
  });

  it('turns TrackLinks None into clicks off', async (t) => {
    const h = await startHarness(t);
    await h.client.sendEmail({
      From: 'a@acme.test',
      To: 'b@example.test',
      Subject: 'Hi',
      TextBody: 'x',
      TrackOpens: false,
      TrackLinks: Models.LinkTrackingOptions.None,
    });
    assert.deepEqual(h.received[0]?.track, { opens: false, clicks: false });
  });

  it('answers a batch in request order, a bad item failing alone', async (t) => {
    const h = await startHarness(t, {
      answer: (request, n) =>
        request.to[0]?.address === 'refused@example.test'
          ? new SendError('invalid_address', "Recipient domain 'example.test' does not accept mail", 'to[0]')
          : resultFor(`msg-${n}`, request),
    });
    const replies = await h.client.sendEmailBatch([
      { From: 'a@acme.test', To: 'one@example.test', Subject: '1', TextBody: 'x' },
      {
        From: 'a@acme.test',
        To: 'two@example.test',
        Subject: '2',
        TextBody: 'x',
        Attachments: [{ Name: 'a.txt', Content: 'not base64!', ContentType: 'text/plain', ContentID: null }],
      },
      { From: 'a@acme.test', To: 'refused@example.test', Subject: '3', TextBody: 'x' },
      { From: 'a@acme.test', To: 'four@example.test', Subject: '4', TextBody: 'x' },
    ]);

    assert.equal(h.batches, 1);
    assert.deepEqual(
      h.received.map((request) => request.subject),
      ['1', '3', '4'],
    );
    assert.equal(replies.length, 4);
    assert.deepEqual(replies[0], {
      To: 'one@example.test',
      SubmittedAt: '2025-05-06T07:08:09.123Z',
      MessageID: 'msg-1',
      ErrorCode: 0,
      Message: 'OK',
    });
    assert.deepEqual(replies[1], { ErrorCode: 300, Message: 'Attachments[0].Content must be base64' });
    assert.deepEqual(replies[2], {
      ErrorCode: 300,
      Message: "Recipient domain 'example.test' does not accept mail",
    });
    assert.equal(replies[3]?.MessageID, 'msg-3');
    assert.equal(replies[3]?.To, 'four@example.test');
  });

  it('sends with a template by TemplateId and by TemplateAlias', async (t) => {
    const h = await startHarness(t);
    const byId = await h.client.sendEmailWithTemplate({
      TemplateId: 1234,
      TemplateModel: { name: 'Jane', items: [{ sku: 'A1' }] },
      From: 'a@acme.test',
      To: 'jane@example.test',
      Tag: 'welcome',
      MessageStream: 'outbound',
    });
    const byAlias = await h.client.sendEmailWithTemplate({
      TemplateAlias: 'password-reset',
      TemplateModel: { link: 'https://acme.test/r/1' },
      From: 'a@acme.test',
      To: 'bob@example.test',
    });

    assert.equal(byId.MessageID, 'msg-1');
    assert.equal(byAlias.MessageID, 'msg-2');
    assert.deepEqual(h.received[0]?.template, {
      id: '1234',
      variables: { name: 'Jane', items: [{ sku: 'A1' }] },
    });
    assert.deepEqual(h.received[0]?.tags, ['welcome']);
    assert.equal(h.received[0]?.stream, 'outbound');
    assert.deepEqual(h.received[1]?.template, {
      alias: 'password-reset',
      variables: { link: 'https://acme.test/r/1' },
    });
    // Postmark's template endpoints take no Subject or bodies: the template supplies them.
    assert.equal(h.received[1]?.subject, undefined);
  });

  it('sends a batch with templates, answering per message', async (t) => {
    const h = await startHarness(t, {
      answer: (request, n) =>
        request.template?.alias === 'missing'
          ? new SendError('template_not_found', "Template 'missing' not found")
          : resultFor(`msg-${n}`, request),
    });
    const replies = await h.client.sendEmailBatchWithTemplates([
      { TemplateAlias: 'welcome', TemplateModel: { n: 1 }, From: 'a@acme.test', To: 'one@example.test' },
      { TemplateAlias: 'missing', TemplateModel: {}, From: 'a@acme.test', To: 'two@example.test' },
      { TemplateId: 7, TemplateModel: { n: 3 }, From: 'a@acme.test', To: 'three@example.test' },
    ]);

    assert.deepEqual(
      h.received.map((request) => request.template),
      [
        { alias: 'welcome', variables: { n: 1 } },
        { alias: 'missing', variables: {} },
        { id: '7', variables: { n: 3 } },
      ],
    );
    assert.deepEqual(
      replies.map((reply) => [reply.ErrorCode, reply.Message, reply.To]),
      [
        [0, 'OK', 'one@example.test'],
        [1101, "Template 'missing' not found", undefined],
        [0, 'OK', 'three@example.test'],
      ],
    );
  });

  it('refuses a bad token with ErrorCode 10 (InvalidAPIKeyError) and sends nothing', async (t) => {
    const h = await startHarness(t);
    const port = new URL(h.url).port;
    const stranger = new ServerClient('not-a-key', { useHttps: false, requestHost: `127.0.0.1:${port}` });
    const error = await rejection(
      stranger.sendEmail({ From: 'a@acme.test', To: 'b@example.test', Subject: 's' }),
    );
    assert.ok(error instanceof Errors.InvalidAPIKeyError);
    assert.equal(error.code, 10);
    assert.equal(error.statusCode, 401);
    assert.equal(h.received.length, 0);
  });

  it('refuses a missing token and a key without the send scope with 401 and ErrorCode 10', async (t) => {
    const h = await startHarness(t);
    const missing = await fetch(`${h.url}/email`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(missing.status, 401);
    assert.equal(((await missing.json()) as { ErrorCode: number }).ErrorCode, 10);

    const port = new URL(h.url).port;
    const readOnly = new ServerClient(READ_ONLY_TOKEN, { useHttps: false, requestHost: `127.0.0.1:${port}` });
    const error = await rejection(
      readOnly.sendEmail({ From: 'a@acme.test', To: 'b@example.test', Subject: 's' }),
    );
    assert.ok(error instanceof Errors.InvalidAPIKeyError);
    assert.equal(error.code, 10);
    assert.match(error.message, /send/);
    assert.equal(h.received.length, 0);
  });

  it('answers a spent budget with 429, Retry-After and a Postmark body', async (t) => {
    const h = await startHarness(t, { retryAfterSeconds: 7 });
    const error = await rejection(
      h.client.sendEmail({ From: 'a@acme.test', To: 'b@example.test', Subject: 's' }),
    );
    assert.ok(error instanceof Errors.RateLimitExceededError);
    assert.equal(error.statusCode, 429);
    assert.equal(error.code, 429);

    const response = await post(`${h.url}/email`, '{}');
    assert.equal(response.status, 429);
    assert.equal(response.headers.get('retry-after'), '7');
    assert.deepEqual(await response.json(), {
      ErrorCode: 429,
      Message: 'Rate limit exceeded: retry after 7 seconds',
    });
    assert.equal(h.received.length, 0);
  });

  it('maps intake refusals to Postmark ErrorCodes with the message', async (t) => {
    const refusals: [SendError, number, number, new (...args: never[]) => Errors.PostmarkError][] = [
      [
        new SendError('invalid_address', "'bob@' is not an address", 'to[0]'),
        300,
        422,
        Errors.InvalidEmailRequestError,
      ],
      [new SendError('missing_recipients', 'No recipients'), 300, 422, Errors.InvalidEmailRequestError],
      [new SendError('template_not_found', 'No such template'), 1101, 422, Errors.ApiInputError],
      [new SendError('template_render_error', 'Unclosed tag'), 1122, 422, Errors.ApiInputError],
      [new SendError('unknown_stream', "No stream 'nope'"), 1235, 422, Errors.ApiInputError],
      [new SendError('sender_not_allowed', 'From not allowed'), 400, 422, Errors.ApiInputError],
      [new SendError('payload_too_large', 'Message exceeds 10 MB'), 300, 413, Errors.UnknownError],
    ];
    let current = 0;
    const h = await startHarness(t, { answer: () => refusals[current]![0] });
    for (const [index, [refusal, errorCode, status, errorClass]] of refusals.entries()) {
      current = index;
      const error = await rejection(
        h.client.sendEmail({ From: 'a@acme.test', To: 'b@example.test', Subject: 's' }),
      );
      assert.ok(error instanceof errorClass, `${refusal.code} should raise ${errorClass.name}`);
      assert.equal(error.code, errorCode, refusal.code);
      assert.equal(error.statusCode, status, refusal.code);
      assert.equal(error.message, refusal.message);
    }
  });

  it('refuses fields of the wrong shape before they reach intake', async (t) => {
    const h = await startHarness(t);
    const base = { From: 'a@acme.test', To: 'b@example.test', Subject: 's', TextBody: 'x' };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ Metadata: { count: 3 } }, /Metadata 'count' must be a string/],
      [
        { Attachments: [{ Name: 'a.bin', Content: 'QUJD?', ContentType: '' }] },
        /Attachments\[0\]\.Content must be base64/,
      ],
      [{ Headers: [{ Name: 'X-A' }] }, /Headers\[0\]\.Value/],
      [{ To: 'Jane Doe' }, /Invalid 'To' address: 'Jane Doe'/],
      [{ From: 'a@acme.test, b@acme.test' }, /'From' must be one address/],
      [{ TrackLinks: 'Sometimes' }, /'TrackLinks' must be one of/],
      [{ Tag: ['a', 'b'] }, /'Tag' must be a string/],
    ];
    for (const [fields, message] of cases) {
      const response = await post(`${h.url}/email`, JSON.stringify({ ...base, ...fields }));
      assert.equal(response.status, 422, JSON.stringify(fields));
      const body = (await response.json()) as { ErrorCode: number; Message: string };
      assert.equal(body.ErrorCode, 300, JSON.stringify(fields));
      assert.match(body.Message, message);
    }
    assert.equal(h.received.length, 0);
  });

  it('reads field names case-sensitively and ignores unknown ones', async (t) => {
    const h = await startHarness(t);
    const response = await post(
      `${h.url}/email`,
      JSON.stringify({
        From: 'a@acme.test',
        To: 'b@example.test',
        subject: 'lower-case is not Subject',
        TextBody: 'x',
        InlineCss: true,
        SomethingNew: { nested: 1 },
      }),
    );
    assert.equal(response.status, 200);
    assert.equal(h.received[0]?.subject, undefined);
  });

  it('answers invalid JSON and non-object bodies with 422 and ErrorCode 402', async (t) => {
    const h = await startHarness(t);
    for (const [path, body] of [
      ['/email', '{"From": "a@acme.test",'],
      ['/email', '[]'],
      ['/email', '"text"'],
      ['/email', 'null'],
      ['/email/batch', '{"From": "a@acme.test"}'],
      ['/email/batchWithTemplates', '[]'],
      ['/email/withTemplate', ''],
    ] as const) {
      const response = await post(`${h.url}${path}`, body);
      assert.equal(response.status, 422, `${path} ${body}`);
      assert.deepEqual(await response.json(), { ErrorCode: 402, Message: 'Invalid JSON' }, `${path} ${body}`);
    }
    assert.equal(h.received.length, 0);
  });

  it('answers a body over the server limit with 413 and a non-JSON content type with ErrorCode 409', async (t) => {
    const h = await startHarness(t, { bodyLimit: 1024 });
    const big = await post(
      `${h.url}/email`,
      JSON.stringify({ From: 'a@acme.test', To: 'b@example.test', TextBody: 'x'.repeat(2000) }),
    );
    assert.equal(big.status, 413);
    assert.deepEqual(await big.json(), { ErrorCode: 300, Message: 'Request body too large' });

    const form = await post(`${h.url}/email`, 'From=a%40acme.test', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    assert.equal(form.status, 422);
    assert.equal(((await form.json()) as { ErrorCode: number }).ErrorCode, 409);
    assert.equal(h.received.length, 0);
  });

  it('answers an empty batch with an empty list and no send', async (t) => {
    const h = await startHarness(t);
    assert.deepEqual(await h.client.sendEmailBatch([]), []);
    assert.equal(h.batches, 0);
  });

  it('refuses a batch of more than 500 messages with ErrorCode 410', async (t) => {
    const h = await startHarness(t);
    const message = { From: 'a@acme.test', To: 'b@example.test', Subject: 's', TextBody: 'x' };
    const response = await post(
      `${h.url}/email/batch`,
      JSON.stringify(Array.from({ length: 501 }, () => message)),
    );
    assert.equal(response.status, 422);
    assert.equal(((await response.json()) as { ErrorCode: number }).ErrorCode, 410);
    assert.equal(h.batches, 0);

    const full = await post(
      `${h.url}/email/batch`,
      JSON.stringify(Array.from({ length: 500 }, () => message)),
    );
    assert.equal(full.status, 200);
    assert.equal(((await full.json()) as unknown[]).length, 500);
  });

  it('answers an unexpected failure with 500 and no detail', async (t) => {
    const h = await startHarness(t, { answer: () => new Error('database password is hunter2') });
    const response = await post(
      `${h.url}/email`,
      JSON.stringify({ From: 'a@acme.test', To: 'b@example.test', Subject: 's', TextBody: 'x' }),
    );
    assert.equal(response.status, 500);
    assert.deepEqual(await response.json(), { ErrorCode: 1, Message: 'internal error' });
  });

  it('answers exactly the JSON shape Postmark documents', async (t) => {
    const h = await startHarness(t);
    const response = await post(
      `${h.url}/email`,
      JSON.stringify({ From: 'a@acme.test', To: 'Jane <jane@example.test>', Subject: 's', TextBody: 'x' }),
    );
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await response.json(), {
      To: 'Jane <jane@example.test>',
      SubmittedAt: '2025-05-06T07:08:09.123Z',
      MessageID: 'msg-1',
      ErrorCode: 0,
      Message: 'OK',
    });
  });
});
