/**
 * Stored templates over the API: versions, aliases, preview, errors that name the template,
 * version, line and variable, and sends rendered from them (single, personalised, batch).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { type ApiApp, call, startApiApp } from '../support/api-app.ts';

describe('templates API', () => {
  let api: ApiApp;
  let id = '';
  before(async () => {
    api = await startApiApp();
    const res = await call(api, api.keys.all, 'POST', '/v1/templates', {
      name: 'Welcome mail',
      alias: 'welcome',
      subject: 'Welcome, {{name}} & co',
      html: '<h1>Hi {{name}}</h1>\n<p>{{{banner}}}</p>',
      text: 'Hi {{name}}',
    });
    assert.equal(res.statusCode, 201, res.body);
    id = res.json().id;
    assert.equal(res.json().version, 1);
  });
  after(() => api.close());

  it('lists and gets templates; another account sees none of them', async () => {
    const list = (await call(api, api.keys.read, 'GET', '/v1/templates')).json();
    assert.deepEqual(
      list.data.map((t: { alias: string }) => t.alias),
      ['welcome'],
    );
    const byAlias = (await call(api, api.keys.read, 'GET', '/v1/templates/welcome')).json();
    assert.equal(byAlias.id, id);
    assert.equal(byAlias.subject, 'Welcome, {{name}} & co');
    assert.equal((await call(api, api.keys.other, 'GET', `/v1/templates/${id}`)).statusCode, 404);
    assert.deepEqual((await call(api, api.keys.other, 'GET', '/v1/templates')).json().data, []);
  });

  it('an update adds a version; old versions stay renderable', async () => {
    const res = await call(api, api.keys.all, 'PUT', `/v1/templates/${id}`, { text: 'Hello {{name}}, v2' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().version, 2);
    assert.equal(res.json().subject, 'Welcome, {{name}} & co', 'fields not given stay');
    const v1 = (await call(api, api.keys.read, 'GET', `/v1/templates/${id}?version=1`)).json();
    assert.equal(v1.text, 'Hi {{name}}');
    const preview = await call(api, api.keys.send, 'POST', `/v1/templates/welcome/render`, {
      version: 1,
      variables: { name: 'Tom <&>', banner: '<b>sale</b>' },
    });
    assert.equal(preview.statusCode, 200, preview.body);
    assert.equal(preview.json().subject, 'Welcome, Tom <&> & co', 'the subject is not HTML-escaped');
    assert.equal(preview.json().html, '<h1>Hi Tom &lt;&amp;&gt;</h1>\n<p><b>sale</b></p>');
    assert.equal(preview.json().text, 'Hi Tom <&>');
  });

  it('a render error names template, version, part, line and variable', async () => {
    const res = await call(api, api.keys.send, 'POST', `/v1/templates/${id}/render`, {
      version: 1,
      variables: { name: 'x' },
    });
    assert.equal(res.statusCode, 422);
    assert.equal(res.json().error.code, 'template_render_error');
    const message: string = res.json().error.message;
    assert.match(message, /welcome/);
    assert.match(message, /version 1/);
    assert.match(message, /html line 2/);
    assert.match(message, /banner/);
  });

  it('refuses a broken template with invalid_template naming the line, and a taken alias', async () => {
    const broken = await call(api, api.keys.all, 'POST', '/v1/templates', {
      name: 'broken',
      subject: 's',
      html: '<p>\n{{#if x}}\nno end',
    });
    assert.equal(broken.statusCode, 422);
    assert.equal(broken.json().error.code, 'invalid_template');
    assert.match(broken.json().error.message, /html/);
    const taken = await call(api, api.keys.all, 'POST', '/v1/templates', {
      name: 'dup',
      alias: 'welcome',
      subject: 's',
      text: 't',
    });
    assert.equal(taken.statusCode, 409);
    assert.equal(taken.json().error.code, 'template_alias_taken');
    const missing = await call(api, api.keys.all, 'POST', '/v1/templates', { name: 'x', text: 't' });
    assert.equal(missing.json().error.code, 'invalid_template');
  });

  it('sends from a template by alias and version; request fields win', async () => {
    const res = await call(api, api.keys.send, 'POST', '/v1/messages', {
      from: 'a@sender.test',
      to: 'bob@example.test',
      template: { alias: 'welcome', version: 1, variables: { name: 'Bob', banner: '' } },
    });
    assert.equal(res.statusCode, 202, res.body);
    const message = await api.store.getMessage(res.json().id);
    assert.equal(message?.template, `${id}@1`);
    const mail = await simpleParser((await api.store.getBody(res.json().id)) ?? Buffer.alloc(0));
    assert.equal(mail.subject, 'Welcome, Bob & co');
    assert.equal(mail.text?.trim(), 'Hi Bob');
    const own = await call(api, api.keys.send, 'POST', '/v1/messages', {
      from: 'a@sender.test',
      to: 'bob@example.test',
      subject: 'Own subject',
      template: { id, variables: { name: 'Bob', banner: '' } },
    });
    const latest = await simpleParser((await api.store.getBody(own.json().id)) ?? Buffer.alloc(0));
    assert.equal(latest.subject, 'Own subject');
    assert.equal(latest.text?.trim(), 'Hello Bob, v2');
  });

  it('a personalised batch renders one copy per recipient; a broken item fails alone', async () => {
    const res = await call(api, api.keys.send, 'POST', '/v1/messages/batch', {
      messages: [
        {
          from: 'a@sender.test',
          template: { alias: 'welcome', variables: { banner: 'B' } },
          recipients: [
            { email: 'p1@example.test', variables: { name: 'P1' } },
            { email: 'p2@example.test', variables: { name: 'P2' } },
          ],
        },
        {
          from: 'a@sender.test',
          template: { alias: 'welcome', variables: { banner: 'B' } },
          recipients: [{ email: 'p3@example.test' }],
        },
        { from: 'a@sender.test', to: 'p4@example.test', template: { alias: 'gone', variables: {} } },
      ],
    });
    assert.equal(res.statusCode, 207, res.body);
    const body = res.json();
    assert.equal(body.data.length, 1);
    assert.deepEqual(
      body.errors.map((e: { index: number; code: string }) => [e.index, e.code]),
      [
        [1, 'template_render_error'],
        [2, 'template_not_found'],
      ],
    );
    assert.match(body.errors[0].message, /name/);
    const msgId = body.data[0].id;
    for (const [variant, name] of [
      [1, 'P1'],
      [2, 'P2'],
    ] as const) {
      const mail = await simpleParser((await api.store.getBody(msgId, variant)) ?? Buffer.alloc(0));
      assert.equal(mail.subject, `Welcome, ${name} & co`);
    }
  });

  it('delete: the template is gone, its alias free; messages keep their reference', async () => {
    const before = await call(api, api.keys.send, 'POST', '/v1/messages', {
      from: 'a@sender.test',
      to: 'bob@example.test',
      template: { alias: 'welcome', variables: { name: 'Bob', banner: '' } },
    });
    assert.equal((await call(api, api.keys.send, 'DELETE', `/v1/templates/${id}`)).statusCode, 403);
    assert.equal((await call(api, api.keys.all, 'DELETE', `/v1/templates/${id}`)).statusCode, 204);
    assert.equal((await call(api, api.keys.read, 'GET', `/v1/templates/${id}`)).statusCode, 404);
    const send = await call(api, api.keys.send, 'POST', '/v1/messages', {
      from: 'a@sender.test',
      to: 'bob@example.test',
      template: { alias: 'welcome', variables: {} },
    });
    assert.equal(send.json().error.code, 'template_not_found');
    const again = await call(api, api.keys.all, 'POST', '/v1/templates', {
      name: 'new',
      alias: 'welcome',
      subject: 's',
      text: 't',
    });
    assert.equal(again.statusCode, 201);
    assert.equal((await api.store.getMessage(before.json().id))?.template.startsWith(id), true);
  });
});
