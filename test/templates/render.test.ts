import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SendError } from '../../src/intake/send-errors.ts';
import {
  checkTemplate,
  renderInline,
  renderTemplate,
  type TemplateSource,
} from '../../src/templates/render.ts';

function template(overrides: Partial<TemplateSource> = {}): TemplateSource {
  return { name: 'welcome', version: 2, subject: '', html: '', text: '', ...overrides };
}

function refusal(fn: () => unknown): SendError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof SendError, `expected a SendError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a SendError');
}

test('html escapes variables, triple-stash stays raw; subject and text are never escaped', () => {
  const rendered = renderTemplate(
    template({
      subject: '{{show}}: new episode',
      html: '<p>{{show}}</p><div>{{{banner}}}</div>',
      text: '{{show}} <{{url}}>',
    }),
    { show: 'Tom & Jerry "<3"', banner: '<b>bold</b>', url: 'https://example.com/?a=1&b=2' },
  );
  assert.deepEqual(rendered, {
    subject: 'Tom & Jerry "<3": new episode',
    html: '<p>Tom &amp; Jerry &quot;&lt;3&quot;</p><div><b>bold</b></div>',
    text: 'Tom & Jerry "<3" <https://example.com/?a=1&b=2>',
  });
});

test('nested objects, #each, #if on an absent variable, empty parts', () => {
  const rendered = renderTemplate(
    template({
      subject: 'Order {{order.id}} for {{user.name.first}}',
      html: '<ul>{{#each order.items}}<li>{{@index}}: {{title}} × {{qty}}</li>{{/each}}</ul>{{#if coupon}}{{coupon}}{{/if}}',
    }),
    {
      user: { name: { first: 'Ann' } },
      order: {
        id: 42,
        items: [
          { title: 'Tea', qty: 2 },
          { title: 'Mug', qty: 1 },
        ],
      },
    },
  );
  assert.equal(rendered.subject, 'Order 42 for Ann');
  assert.equal(rendered.html, '<ul><li>0: Tea × 2</li><li>1: Mug × 1</li></ul>');
  assert.equal(rendered.text, '');
});

test('a missing variable names template, version, part, line and variable', () => {
  const atLine1 = refusal(() => renderTemplate(template({ subject: 'Hi {{first_name}}' }), {}));
  assert.equal(atLine1.code, 'template_render_error');
  assert.equal(
    atLine1.message,
    'template "welcome" version 2, subject line 1: variable "first_name" is missing',
  );

  const atLine3 = refusal(() =>
    renderTemplate(template({ subject: 'ok', html: '<html>\n<body>\n<p>Hello {{ first_name }}</p>' }), {}),
  );
  assert.equal(
    atLine3.message,
    'template "welcome" version 2, html line 3: variable "first_name" is missing',
  );
  assert.equal(atLine3.field, 'template');

  const nested = refusal(() =>
    renderTemplate(template({ text: 'a\n\n\n{{user.address.city}}' }), { user: {} }),
  );
  assert.equal(
    nested.message,
    'template "welcome" version 2, text line 4: variable "user.address.city" is missing',
  );

  const inLoop = refusal(() =>
    renderTemplate(template({ html: '{{#each items}}\n{{name}}\n{{/each}}' }), {
      items: [{ name: 'a' }, {}],
    }),
  );
  assert.equal(inLoop.message, 'template "welcome" version 2, html line 2: variable "name" is missing');
});

test('prototype properties are not reachable', () => {
  assert.equal(renderTemplate(template({ text: '[{{constructor}}][{{__proto__}}]' }), {}).text, '[][]');
  const refused = refusal(() =>
    renderTemplate(template({ text: '{{user.constructor.name}}' }), { user: {} }),
  );
  assert.match(refused.message, /variable "user\.constructor\.name" is missing/);
});

test('a name looked up in a string says so', () => {
  const refused = refusal(() =>
    renderInline({ html: '{{#each tags}}{{name}}{{/each}}' }, { tags: ['a'] }, 'message'),
  );
  assert.equal(
    refused.message,
    'message, html: variable "name" is missing: it is looked up in "a", which is not an object',
  );
});

test('checkTemplate names the part and line of a syntax error', () => {
  const unclosed = refusal(() =>
    checkTemplate({ subject: 'ok', html: '<p>\n{{#if vip}}\nWelcome\n', text: '' }),
  );
  assert.equal(unclosed.code, 'invalid_template');
  assert.equal(unclosed.field, 'html');
  assert.equal(unclosed.message, 'html line 2: the {{#if}} block is never closed');

  const mismatched = refusal(() => checkTemplate({ subject: '', html: '', text: 'x\n{{#if a}}{{/each}}' }));
  assert.equal(mismatched.field, 'text');
  assert.equal(mismatched.message, 'text line 2: {{#if}} is closed by {{/each}}');

  const broken = refusal(() => checkTemplate({ subject: 'Hi {{ name', html: '', text: '' }));
  assert.equal(broken.field, 'subject');
  assert.match(broken.message, /^subject line 1: syntax error near "Hi \{\{ name": unexpected /);

  const lexical = refusal(() => checkTemplate({ subject: '', html: 'ok\n{{!-- never closed', text: '' }));
  assert.match(lexical.message, /^html line 2: syntax error near ".*never closed"$/);

  assert.doesNotThrow(() =>
    checkTemplate({
      subject: '{{a}}',
      html: '{{#each xs}}{{this}}{{else}}none{{/each}}',
      text: '{{!-- {{#if --}}',
    }),
  );
});

test('a syntax error met at render time is a render error with the same detail', () => {
  const refused = refusal(() =>
    renderTemplate(template({ name: 'broken', version: 7, text: '{{#if a}}' }), { a: 1 }),
  );
  assert.equal(refused.code, 'template_render_error');
  assert.equal(
    refused.message,
    'template "broken" version 7, text line 1: the {{#if}} block is never closed',
  );
});

test('the cache never serves another content for the same name and version', () => {
  const first = renderTemplate(template({ html: '<p>one {{x}}</p>' }), { x: 1 });
  const second = renderTemplate(template({ html: '<p>two {{x}}</p>' }), { x: 2 });
  const firstAgain = renderTemplate(template({ html: '<p>one {{x}}</p>' }), { x: 3 });
  assert.equal(first.html, '<p>one 1</p>');
  assert.equal(second.html, '<p>two 2</p>');
  assert.equal(firstAgain.html, '<p>one 3</p>');
  // The same text as html and as subject compiles twice: one escapes, the other does not.
  const same = renderTemplate(template({ subject: '{{x}}', html: '{{x}}', text: '{{x}}' }), { x: '<&>' });
  assert.deepEqual(same, { subject: '<&>', html: '&lt;&amp;&gt;', text: '<&>' });
});

test('templates evicted from the cache (500 entries) render correctly when they come back', () => {
  for (let i = 0; i < 1200; i++) {
    assert.equal(renderTemplate(template({ version: i, text: `v${i} {{x}}` }), { x: i }).text, `v${i} ${i}`);
  }
  assert.equal(renderTemplate(template({ version: 0, text: 'v0 {{x}}' }), { x: 'again' }).text, 'v0 again');
});

test('renderInline renders only the given parts and names its label in errors', () => {
  assert.deepEqual(
    renderInline({ subject: 'Hi {{name}} & co', html: '<b>{{name}}</b>' }, { name: 'A&B' }, 'message'),
    {
      subject: 'Hi A&B & co',
      html: '<b>A&amp;B</b>',
    },
  );
  const refused = refusal(() => renderInline({ text: 'line\nHi {{name}}' }, {}, 'message'));
  assert.equal(refused.code, 'template_render_error');
  assert.equal(refused.message, 'message, text line 2: variable "name" is missing');
  assert.equal(refused.field, 'text');
});

test('{{log}} is not a helper: a template cannot write to the server log', () => {
  const refused = refusal(() => renderInline({ text: '{{log "x"}}' }, {}, 'message'));
  assert.match(refused.message, /variable "log" is missing/);
});
