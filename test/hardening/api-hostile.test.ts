/**
 * Hostile input through the HTTP API (issue 11): header injection through every field that
 * ends up in a header, oversized and deeply nested JSON, huge request headers, invalid UTF-8,
 * international addresses. Each gets a clear 4xx with a stable code, or is accepted with
 * nothing injected; never a 5xx, never a stack trace.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ApiApp, startApiApp } from '../support/api-app.ts';

const base = { from: 'a@acme.test', to: ['b@example.com'], subject: 'hi', text: 'hello' };

/** The header block of a stored message, unfolded, one field per entry. */
function headerFields(body: Buffer): string[] {
  const head = body.toString('latin1').split('\r\n\r\n')[0] ?? '';
  return head.replace(/\r\n[ \t]+/g, ' ').split('\r\n');
}

describe('HTTP API: hostile input', () => {
  let api: ApiApp;
  before(async () => {
    api = await startApiApp({ maxMessageBytes: 200_000 });
  });
  after(async () => {
    await api.close();
  });

  const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
    api.app.inject({
      method: 'POST',
      url,
      headers: { authorization: `Bearer ${api.keys.all}`, 'content-type': 'application/json', ...headers },
      payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    });

  /** No 5xx, JSON error shape without internals. */
  function refusedClearly(res: { statusCode: number; body: string }, code: string, what: string): void {
    assert.ok(
      res.statusCode >= 400 && res.statusCode < 500,
      `${what}: ${res.statusCode} ${res.body.slice(0, 200)}`,
    );
    const error = (JSON.parse(res.body) as { error?: { code?: string; message?: string } }).error;
    assert.equal(error?.code, code, `${what}: ${res.body.slice(0, 200)}`);
    assert.doesNotMatch(error?.message ?? '', /\n\s+at |node:internal|\.ts:\d+/, `${what}: no stack trace`);
  }

  it('refuses line breaks in every address field instead of reading them as a header group', async () => {
    const injected = 'b@example.com\r\nBcc: evil@example.com';
    const cases: [string, unknown][] = [
      ['to', { ...base, to: [injected] }],
      ['to (a string)', { ...base, to: injected }],
      ['cc', { ...base, cc: [injected] }],
      ['bcc', { ...base, bcc: [injected] }],
      ['reply_to', { ...base, reply_to: 'r@example.com\nBcc: evil@example.com' }],
      ['from', { ...base, from: 'a@acme.test\rBcc: evil@example.com' }],
      ['to name', { ...base, to: [{ email: 'b@example.com', name: 'B\r\nBcc: evil@example.com' }] }],
      ['from name', { ...base, from: { email: 'a@acme.test', name: 'A\nBcc: evil@example.com' } }],
      ['to with NUL', { ...base, to: ['b@example.com\u0000evil@example.com'] }],
    ];
    for (const [what, payload] of cases)
      refusedClearly(await post('/v1/messages', payload), 'invalid_address', what);
    // The compatible endpoints share the rule.
    const postmark = await api.app.inject({
      method: 'POST',
      url: '/email',
      headers: {
        'x-postmark-server-token': api.keys.all,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      payload: { From: 'a@acme.test', To: injected, Subject: 'hi', TextBody: 'hello' },
    });
    assert.equal(postmark.statusCode, 422, postmark.body);
    assert.match(postmark.body, /Invalid 'To' address/);
    const mailgun = await api.app.inject({
      method: 'POST',
      url: '/v3/acme.test/messages',
      headers: {
        authorization: `Basic ${Buffer.from(`api:${api.keys.all}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      payload: new URLSearchParams({
        from: 'a@acme.test',
        to: injected,
        subject: 'hi',
        text: 'hello',
      }).toString(),
    });
    assert.ok(mailgun.statusCode >= 400 && mailgun.statusCode < 500, mailgun.body);
    assert.match(mailgun.body, /line break or control character/);
  });

  it('refuses line breaks and bad names in custom headers, attachments and labels', async () => {
    const cases: [string, unknown, string][] = [
      ['header name', { ...base, headers: { 'X-A\r\nBcc': 'v' } }, 'invalid_header'],
      ['header value', { ...base, headers: { 'X-A': 'v\r\nBcc: evil@example.com' } }, 'invalid_header'],
      ['header value LF', { ...base, headers: { 'X-A': 'v\nBcc: evil@example.com' } }, 'invalid_header'],
      ['header name colon', { ...base, headers: { 'X-A:': 'v' } }, 'invalid_header'],
      ['header value too long', { ...base, headers: { 'X-A': 'v'.repeat(5000) } }, 'invalid_header'],
      ['reserved header', { ...base, headers: { Bcc: 'evil@example.com' } }, 'invalid_header'],
      [
        'attachment filename',
        { ...base, attachments: [{ filename: 'a\r\nb.txt', content: 'aGk=' }] },
        'invalid_attachment',
      ],
      [
        'attachment type',
        {
          ...base,
          attachments: [{ filename: 'a.txt', content: 'aGk=', content_type: 'text/plain\r\nBcc: e@x.test' }],
        },
        'invalid_attachment',
      ],
      ['tag', { ...base, tags: ['a\r\nb'] }, 'invalid_tag'],
    ];
    for (const [what, payload, code] of cases)
      refusedClearly(await post('/v1/messages', payload), code, what);
  });

  it('keeps a subject with line breaks on one line: nothing is injected', async () => {
    for (const subject of [
      'hi\r\nBcc: evil@example.com',
      'hi\nBcc: evil@example.com',
      'hi\rBcc: evil@example.com',
    ]) {
      const res = await post('/v1/messages', { ...base, subject });
      assert.equal(res.statusCode, 202, res.body);
      const body = await api.store.getBody((res.json() as { id: string }).id);
      assert.ok(body);
      const fields = headerFields(body);
      assert.ok(!fields.some((f) => /^bcc:/i.test(f)), `no Bcc field: ${JSON.stringify(fields)}`);
      assert.equal(fields.filter((f) => /^subject:/i.test(f)).length, 1);
    }
  });

  it('answers oversized, deeply nested and malformed JSON with a 4xx', async () => {
    const deepArray = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const deepObject = `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`;
    for (const [what, payload] of [
      ['deep array', deepArray],
      ['deep object', deepObject],
      ['truncated', '{"from": "a@acme.test", "to": ['],
      ['not JSON', 'From: a@acme.test'],
      ['empty', ''],
    ] as const) {
      const res = await post('/v1/messages', payload);
      assert.ok(
        res.statusCode >= 400 && res.statusCode < 500,
        `${what}: ${res.statusCode} ${res.body.slice(0, 120)}`,
      );
    }
    const deepMetadata = { ...base, metadata: JSON.parse(`${'{"a":'.repeat(500)}"x"${'}'.repeat(500)}`) };
    refusedClearly(await post('/v1/messages', deepMetadata), 'invalid_metadata', 'nested metadata');
    const huge = await post('/v1/messages', { ...base, text: 'x'.repeat(61 * 1024 * 1024) });
    assert.equal(huge.statusCode, 413);
  });

  it('answers a huge request header with 431 on the real listener, and keeps serving', async () => {
    const address = await api.app.listen({ port: 0, host: '127.0.0.1' });
    const huge = await fetch(`${address}/v1/messages`, {
      headers: { authorization: `Bearer ${api.keys.all}`, 'x-filler': 'x'.repeat(64 * 1024) },
    });
    assert.equal(huge.status, 431);
    const fine = await fetch(`${address}/v1/messages`, {
      headers: { authorization: `Bearer ${api.keys.all}` },
    });
    assert.equal(fine.status, 200);
  });

  it('reads invalid UTF-8 as replacement characters, and international addresses as such', async () => {
    const bytes = Buffer.concat([
      Buffer.from('{"from":"a@acme.test","to":["b@example.com"],"subject":"caf'),
      Buffer.from([0xc3, 0x28, 0xff]),
      Buffer.from('","text":"x"}'),
    ]);
    const res = await api.app.inject({
      method: 'POST',
      url: '/v1/messages',
      headers: { authorization: `Bearer ${api.keys.all}`, 'content-type': 'application/json' },
      payload: bytes,
    });
    assert.ok(res.statusCode === 202 || (res.statusCode >= 400 && res.statusCode < 500), res.body);
    const idn = await post('/v1/messages', { ...base, to: ['b@bücher.example', 'ü@example.com'] });
    assert.equal(idn.statusCode, 202, idn.body);
    const rows = await api.store.getRecipients((idn.json() as { id: string }).id);
    assert.deepEqual(
      rows.map((r) => [r.address, r.domain]),
      [
        ['b@bücher.example', 'xn--bcher-kva.example'],
        ['ü@example.com', 'example.com'],
      ],
    );
    refusedClearly(
      await post('/v1/messages', { ...base, to: ['b@exa mple.com'] }),
      'invalid_address',
      'space in domain',
    );
  });
});
