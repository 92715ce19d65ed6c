/**
 * SMTP submissions get the API's features through X-Postbote-* header fields, which intake reads
 * and removes before anything is stored: tags, metadata, a template with variables.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import type { Submission } from '../../src/intake/intake.ts';
import { SendError } from '../../src/intake/send-errors.ts';
import { type ApiApp, call, startApiApp } from '../support/api-app.ts';

function submission(accountId: string, headers: string[], body = 'plain body\r\n'): Submission {
  const raw = Buffer.from(
    [
      'From: Ada <ada@sender.test>',
      'To: Bob <bob@example.test>',
      'Subject: original subject',
      'Message-ID: <orig-1@sender.test>',
      ...headers,
      'Content-Type: text/plain; charset=utf-8',
      '',
      body,
    ].join('\r\n'),
  );
  return {
    accountId,
    credentialId: null,
    mailFrom: 'ada@sender.test',
    recipients: [{ address: 'bob@example.test' }],
    raw,
    source: 'smtp',
    clientIp: '127.0.0.1',
    dsn: {},
    trace: { heloName: 'client.test', protocol: 'ESMTPA' },
  };
}

describe('SMTP control headers', () => {
  let api: ApiApp;
  let accountId = '';
  before(async () => {
    api = await startApiApp();
    accountId = (await api.store.getAccountByName('acme'))?.id ?? '';
    const tpl = await call(api, api.keys.all, 'POST', '/v1/templates', {
      name: 'Reset',
      alias: 'reset',
      subject: 'Reset for {{user}}',
      html: '<p>Hello {{user}}</p>',
      text: 'Hello {{user}}',
    });
    assert.equal(tpl.statusCode, 201, tpl.body);
  });
  after(() => api.close());

  it('X-Postbote-Tags and X-Postbote-Metadata become the message’s tags and metadata and are removed', async () => {
    const { id } = await api.intake.submit(
      submission(accountId, [
        'X-Postbote-Tags: welcome, onboarding ,welcome',
        'X-Postbote-Metadata: {"user": "42", "plan": "pro"}',
        'X-Postbote-Stream: broadcast',
      ]),
    );
    const message = await api.store.getMessage(id);
    assert.deepEqual(message?.tags, ['welcome', 'onboarding']);
    assert.deepEqual(message?.metadata, { user: '42', plan: 'pro' });
    assert.equal(message?.stream, 'broadcast');
    const body = (await api.store.getBody(id))?.toString() ?? '';
    assert.doesNotMatch(body, /x-postbote/i);
  });

  it('refuses bad metadata and bad tags with a SendError (the SMTP layer answers 554 5.6.0)', async () => {
    await assert.rejects(
      api.intake.submit(submission(accountId, ['X-Postbote-Metadata: not json'])),
      (err: unknown) => err instanceof SendError && err.code === 'invalid_metadata',
    );
    await assert.rejects(
      api.intake.submit(submission(accountId, [`X-Postbote-Tags: ${'x'.repeat(200)}`])),
      (err: unknown) => err instanceof SendError && err.code === 'invalid_tag',
    );
  });

  it('X-Postbote-Template renders the template over the message; addresses and Message-ID stay', async () => {
    const { id } = await api.intake.submit(
      submission(accountId, ['X-Postbote-Template: reset', 'X-Postbote-Variables: {"user": "Bob <b>"}']),
    );
    const message = await api.store.getMessage(id);
    assert.equal(message?.subject, 'Reset for Bob <b>');
    assert.match(message?.template ?? '', /@1$/);
    const raw = (await api.store.getBody(id)) ?? Buffer.alloc(0);
    assert.doesNotMatch(raw.toString(), /x-postbote|original subject|plain body|postbote\.invalid/i);
    const mail = await simpleParser(raw);
    assert.equal(mail.subject, 'Reset for Bob <b>');
    assert.equal(mail.messageId, '<orig-1@sender.test>');
    assert.equal(mail.from?.value[0]?.address, 'ada@sender.test');
    assert.equal(mail.text?.trim(), 'Hello Bob <b>');
    assert.match(String(mail.html), /Hello Bob &lt;b&gt;/);
    assert.equal(raw.toString().match(/^MIME-Version:/gim)?.length, 1);
    assert.equal(raw.toString().match(/^Subject:/gim)?.length, 1);
  });

  it('an unknown template, a version suffix and broken variables are explained', async () => {
    await assert.rejects(
      api.intake.submit(submission(accountId, ['X-Postbote-Template: nope'])),
      (err: unknown) => err instanceof SendError && err.code === 'template_not_found',
    );
    await assert.rejects(
      api.intake.submit(submission(accountId, ['X-Postbote-Template: reset@7', 'X-Postbote-Variables: {}'])),
      (err: unknown) =>
        err instanceof SendError && err.code === 'template_not_found' && /version 7/.test(err.message),
    );
    await assert.rejects(
      api.intake.submit(submission(accountId, ['X-Postbote-Template: reset', 'X-Postbote-Variables: [1]'])),
      (err: unknown) => err instanceof SendError && err.code === 'invalid_request',
    );
    await assert.rejects(
      api.intake.submit(submission(accountId, ['X-Postbote-Template: reset@1'])),
      (err: unknown) =>
        err instanceof SendError && err.code === 'template_render_error' && /user/.test(err.message),
    );
  });
});
