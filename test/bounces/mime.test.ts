import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeCharset,
  decodeQuotedPrintable,
  decodeWords,
  htmlToText,
  parseMime,
  partText,
  walkParts,
} from '../../src/bounces/mime.ts';

describe('parseMime', () => {
  it('reads nested multiparts, enclosed messages and the default types', () => {
    const raw =
      'Subject: x\r\nContent-Type: multipart/mixed; boundary="outer"\r\n\r\npreamble\r\n' +
      '--outer\r\n\r\nplain with no headers\r\n' +
      '--outer\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nFrom: a@x\r\n\r\nfirst\r\n--d--\r\n' +
      '--outer\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@y\r\nSubject: inner\r\n\r\ninner body\r\n' +
      '--outer--\r\nepilogue\r\n';
    const { root, truncated } = parseMime(raw);
    assert.equal(truncated, false);
    assert.deepEqual(
      [...walkParts(root)].map((p) => p.type),
      ['multipart/mixed', 'text/plain', 'multipart/digest', 'message/rfc822', 'message/rfc822'],
    );
    assert.equal(partText(root.children[0]!, 1000), 'plain with no headers');
    assert.deepEqual(root.children[1]?.children[0]?.message?.headers, [['From', ' a@x']]);
    assert.equal(partText(root.children[2]!.message!, 1000), 'inner body');
  });

  it('does not take a longer boundary, or one inside a line, for the delimiter', () => {
    const { root } = parseMime('Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx --b y\n--bb\n--b--\n');
    assert.equal(root.children.length, 1);
    assert.equal(partText(root.children[0]!, 1000), 'x --b y\n--bb');
  });

  it('reads a multipart without its closing delimiter to the end', () => {
    const { root } = parseMime('Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n');
    assert.deepEqual(
      root.children.map((c) => partText(c, 100)),
      ['one', 'two\n'],
    );
  });

  it('treats a body without headers, and an mbox From line, sensibly', () => {
    assert.deepEqual(parseMime('just text\nmore').root.headers, []);
    assert.deepEqual(parseMime('From sender Tue Nov  3 12:00:00 2026\nSubject: s\n\nb').root.headers, [
      ['Subject', ' s'],
    ]);
  });
});

describe('decoding', () => {
  it('quoted-printable, lenient with stray "="', () => {
    assert.equal(decodeQuotedPrintable('a=3Db=\r\nc= \nd =ZZ e=').toString('latin1'), 'a=bcd =ZZ e');
  });

  it('charsets: declared, undeclared UTF-8, undeclared Latin-1, unknown labels', () => {
    assert.equal(decodeCharset(Buffer.from([0x47, 0x72, 0xfc, 0xdf, 0x65]), 'iso-8859-1'), 'Grüße');
    assert.equal(decodeCharset(Buffer.from('Grüße', 'utf8')), 'Grüße');
    assert.equal(decodeCharset(Buffer.from([0x47, 0x72, 0xfc, 0xdf, 0x65])), 'Grüße');
    assert.equal(decodeCharset(Buffer.from('plain'), 'x-no-such-charset'), 'plain');
  });

  it('encoded words in header values', () => {
    assert.equal(
      decodeWords('=?utf-8?Q?Abwesenheitsnotiz:_Ihre_Bestellung?='),
      'Abwesenheitsnotiz: Ihre Bestellung',
    );
  });

  it('HTML to text drops styles and scripts, keeps the words and addresses', () => {
    const text = htmlToText(
      '<html><head><style>p{color:red}</style></head><body><p>Your message to <b>a@x.example</b> couldn&#39;t be delivered.</p>' +
        '<script>alert(1)</script><p>Remote&nbsp;Server returned &lt;550 5.1.1&gt;</p></body></html>',
    );
    assert.equal(
      text.trim(),
      "Your message to a@x.example couldn't be delivered.\nRemote Server returned <550 5.1.1>",
    );
  });
});
