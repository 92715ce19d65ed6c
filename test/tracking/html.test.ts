import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeEntities, planHtml, planText, type Segments, trackableUrl } from '../../src/tracking/html.ts';

/** The segments filled with readable markers: [c<link>:<url>], [u], [o]. */
function fill(segments: Segments): string {
  return segments
    .map((s) =>
      typeof s === 'string'
        ? s
        : s.kind === 'click'
          ? `[c${s.link}:${s.url}]`
          : s.kind === 'unsubscribe'
            ? '[u]'
            : '[o]',
    )
    .join('');
}

const html = (text: string, options: { clicks?: boolean; pixel?: boolean; notes?: string[] } = {}) =>
  fill(
    planHtml(text, {
      clicks: options.clicks ?? true,
      pixel: options.pixel ?? false,
      counter: { links: 0 },
      ...(options.notes ? { notes: options.notes } : {}),
    }),
  );

describe('HTML link rewriting', () => {
  it('rewrites http(s) links in <a> and <area>, with double, single or no quotes, any case', () => {
    assert.equal(
      html(
        `<p><a href="https://a.test/1">one</a> <A HREF='http://b.test/2' class=x>two</A> <a href=https://c.test/3>3</a><area href="https://d.test/4"></p>`,
      ),
      '<p><a href="[c0:https://a.test/1]">one</a> <A href="[c1:http://b.test/2]" class=x>two</A> <a href="[c2:https://c.test/3]">3</a><area href="[c3:https://d.test/4]"></p>',
    );
  });

  it('decodes entities in hrefs: the click leads to the real URL', () => {
    assert.equal(
      html('<a href="https://a.test/?x=1&amp;y=2&#38;z=3">x</a>'),
      '<a href="[c0:https://a.test/?x=1&y=2&z=3]">x</a>',
    );
    assert.equal(decodeEntities('a&amp;b&#x26;c&unknown;d&lt;'), 'a&b&c&unknown;d<');
  });

  it('leaves opt-outs, mailto:, tel:, anchors, relative and template links alone', () => {
    const input =
      '<a href="https://a.test/" data-postbote-track="off">off</a><a href="mailto:x@y.test">m</a>' +
      '<a href="tel:+4930123">t</a><a href="#top">a</a><a href="/relative">r</a><a href="{{link}}">h</a>' +
      '<a name="x">n</a><a href="javascript:alert(1)">j</a><a href="https://">empty host</a>';
    assert.equal(html(input), input);
  });

  it('puts the unsubscribe URL where its placeholder is, never click-tracked', () => {
    assert.equal(
      html(
        '<a href="https://unsubscribe.postbote.invalid/">Unsubscribe</a> or go to https://unsubscribe.postbote.invalid/ or {{unsubscribe_url}} {{{ unsubscribe_url }}}',
      ),
      '<a href="[u]">Unsubscribe</a> or go to [u] or [u] [u]',
    );
    assert.equal(
      html('<a href="{{unsubscribe_url}}" data-postbote-track="off">u</a>', { clicks: false }),
      '<a href="[u]" data-postbote-track="off">u</a>',
    );
  });

  it('with clicks off, links stay as they are', () => {
    const input = '<a href="https://a.test/">a</a>';
    assert.equal(html(input, { clicks: false }), input);
  });

  it('adds the pixel before the last </body> (any case), or at the end without one', () => {
    assert.equal(
      html('<html><BODY>hi</BODY></html>', { pixel: true, clicks: false }).replace(/<img[^>]*>/, '<img>'),
      '<html><BODY>hi<img></BODY></html>',
    );
    assert.match(
      html('<p>hi</p>', { pixel: true }),
      /^<p>hi<\/p><img src="\[o\]" width="1" height="1" alt=""/,
    );
  });

  it('skips comments (conditional ones too), <style> and <script>', () => {
    const input =
      '<!--[if mso]><a href="https://mso.test/">x</a><![endif]--><style>a[href="https://css.test/"]{}</style>' +
      '<script>var a = "<a href=\'https://js.test/\'>";</script><a href="https://real.test/">r</a>';
    assert.equal(
      html(input),
      input.replace('<a href="https://real.test/">', '<a href="[c0:https://real.test/]">'),
    );
  });

  it('malformed markup: rewriting stops at the broken tag, the rest stays byte for byte', () => {
    const notes: string[] = [];
    const input = '<a href="https://a.test/">a</a><a href="https://b.test/ <p>never closed';
    assert.equal(html(input, { notes }), input.replace('"https://a.test/"', '"[c0:https://a.test/]"'));
    assert.match(notes[0] ?? '', /unterminated <a> tag/);
    const comment: string[] = [];
    assert.equal(
      html('<!-- open <a href="https://a.test/">', { notes: comment }),
      '<!-- open <a href="https://a.test/">',
    );
    assert.match(comment[0] ?? '', /unterminated HTML comment/);
    assert.equal(html('a < b and <<a href=x'), 'a < b and <<a href=x');
    assert.equal(html(''), '');
  });

  it('numbers links across parts with a shared counter', () => {
    const counter = { links: 0 };
    planHtml('<a href="https://a.test/">a</a>', { clicks: true, counter });
    const text = fill(planText('see https://b.test/x.', { clicks: true, counter }));
    assert.equal(text, 'see [c1:https://b.test/x].');
  });

  it('plain text: URLs end before trailing punctuation; placeholders always replaced', () => {
    assert.equal(
      fill(
        planText('Go to https://a.test/p?q=1, or (https://b.test/). Bye: {{unsubscribe_url}}\r\n', {
          clicks: true,
          counter: { links: 0 },
        }),
      ),
      'Go to [c0:https://a.test/p?q=1], or ([c1:https://b.test/]). Bye: [u]\r\n',
    );
    assert.equal(
      fill(planText('https://a.test/ {{unsubscribe_url}}', { clicks: false, counter: { links: 0 } })),
      'https://a.test/ [u]',
    );
  });

  it('trackableUrl: only absolute http(s) without spaces; non-ASCII becomes percent-encoded UTF-8', () => {
    assert.equal(trackableUrl(' https://a.test/x '), 'https://a.test/x');
    assert.equal(trackableUrl('https://a.test/a b'), undefined);
    assert.equal(trackableUrl('ftp://a.test/'), undefined);
    assert.equal(trackableUrl('https://a.test/\r\nLocation: x'), undefined);
    // "ü" as UTF-8 bytes read as latin1 (how parts are handled).
    assert.equal(
      trackableUrl(Buffer.from('https://a.test/ü', 'utf8').toString('latin1')),
      'https://a.test/%C3%BC',
    );
  });
});
