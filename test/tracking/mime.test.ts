import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ByteWriter,
  encodeQuotedPrintable,
  hasHeaderField,
  planMessage,
  renderMessage,
  writeQuotedPrintable,
} from '../../src/tracking/mime.ts';

/** A deterministic generator (xorshift32): the same cases on every run. */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const options = { clicks: true, textLinks: false, opens: true };
const fill = (s: { kind: string }) =>
  s.kind === 'click' ? 'https://t.test/c/TOKEN' : `https://t.test/${s.kind}`;

describe('tracking MIME writing', () => {
  it('writeQuotedPrintable gives the bytes encodeQuotedPrintable gives, whatever the input', () => {
    const next = random(42);
    // Bytes that matter to the encoder: CR, LF, space, tab, "=", printable, 8-bit.
    const alphabet = [13, 10, 32, 9, 61, 65, 122, 126, 127, 0, 0xc3, 0xa9, 0xff, 46];
    const out = new ByteWriter(16);
    for (let n = 0; n < 2000; n++) {
      const length = Math.floor(next() * 400);
      const bytes = Buffer.alloc(length);
      for (let i = 0; i < length; i++) {
        bytes[i] =
          next() < 0.3
            ? (alphabet[Math.floor(next() * alphabet.length)] as number)
            : Math.floor(next() * 256);
      }
      out.pos = 0;
      writeQuotedPrintable(bytes, 0, length, out);
      const expected = encodeQuotedPrintable(bytes.toString('latin1'));
      assert.equal(out.buf.toString('latin1', 0, out.pos), expected, bytes.toString('hex'));
    }
  });

  it('writeQuotedPrintable encodes only the given range, and trailing whitespace at its end', () => {
    const out = new ByteWriter(4);
    const source = Buffer.from('xxab \r\ncd yy', 'latin1');
    writeQuotedPrintable(source, 2, 10, out);
    assert.equal(out.buf.toString('latin1', 0, out.pos), 'ab=20\r\ncd=20');
  });

  it('ByteWriter grows and keeps what was written', () => {
    const out = new ByteWriter(2);
    out.latin1('héllo ');
    out.bytes(Buffer.from('wörld'), 0, 3);
    assert.equal(out.take().toString('latin1'), 'héllo w\u00c3\u00b6');
    assert.ok(out.buf.length >= out.pos);
  });

  it('hasHeaderField finds a field at a line start, in any case, with space before the colon; not in values', () => {
    const raw =
      'Subject: list-unsubscribe: no\r\nX-A: 1\r\n list-unsubscribe: folded\r\nLIST-Unsubscribe :<x>\r\n\r\nbody';
    const end = raw.indexOf('\r\n\r\n') + 2;
    assert.equal(hasHeaderField(raw, end, 'list-unsubscribe'), true);
    const without =
      'Subject: list-unsubscribe: no\r\nX-List-Unsubscribe: <x>\r\n\r\nList-Unsubscribe: <in body>';
    assert.equal(hasHeaderField(without, without.indexOf('\r\n\r\n') + 2, 'list-unsubscribe'), false);
    assert.equal(hasHeaderField('List-Unsubscribe: <x>\r\n\r\n', 23, 'list-unsubscribe'), true);
  });

  it('header fields given to a copy go at the end of the header block, in every message form', () => {
    const fields = 'List-Unsubscribe: <u>\r\n';
    const cases: [string, string][] = [
      // Planned single part: after its head.
      [
        'Subject: x\r\nContent-Type: text/html\r\n\r\n<a href="https://a.test/">a</a>',
        'Subject: x\r\nContent-Type: text/html\r\nList-Unsubscribe: <u>\r\n\r\n<a href="https://t.test/c/TOKEN">a</a>',
      ],
      // Nothing to rewrite: the original text with the fields.
      ['Subject: x\r\n\r\nplain', 'Subject: x\r\nList-Unsubscribe: <u>\r\n\r\nplain'],
      // No header block at all, and a message that is all header block.
      ['\r\nbody', 'List-Unsubscribe: <u>\r\n\r\nbody'],
      ['Subject: x', 'Subject: x\r\nList-Unsubscribe: <u>\r\n'],
      ['Subject: x\r\n', 'Subject: x\r\nList-Unsubscribe: <u>\r\n'],
      // Multipart: in the top-level header, not a part's.
      [
        'Subject: x\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<a href="https://a.test/">a</a>\r\n--b--\r\n',
        'Subject: x\r\nContent-Type: multipart/alternative; boundary=b\r\nList-Unsubscribe: <u>\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<a href="https://t.test/c/TOKEN">a</a>\r\n--b--\r\n',
      ],
    ];
    for (const [raw, expected] of cases) {
      const plan = planMessage(raw, { ...options, opens: false });
      assert.equal(renderMessage(plan, fill as never, fields), expected, raw);
    }
  });

  it('the header cache gives the same plan as reading every header block (folded Content-Type included)', () => {
    const raw =
      'Subject: x\r\nContent-Type: multipart/alternative;\r\n\tboundary="b"\r\n\r\n--b\r\nContent-Type:\r\n text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<a href=3D"https://a.test/">=C3=A9</a>\r\n--b--\r\n';
    const cache = new Map();
    const first = renderMessage(planMessage(raw, { ...options, headerCache: cache }), fill as never);
    assert.ok(cache.size > 0);
    const cached = renderMessage(planMessage(raw, { ...options, headerCache: cache }), fill as never);
    const uncached = renderMessage(planMessage(raw, options), fill as never);
    assert.equal(first, uncached);
    assert.equal(cached, uncached);
    assert.match(uncached, /<a href=3D"https:\/\/t\.test\/c\/TOKEN">=C3=A9<\/a>/);
  });
});
