/**
 * MIME bombs (issue 11, "Hostile input"): the three places that parse MIME structure on their
 * own — tracking's rewriting of outgoing copies, the bounce and complaint parser behind the
 * inbound MX, and the built-in content checks — given thousands of nested multiparts, tens of
 * thousands of parts, a huge header block and unterminated boundaries. Each must return (no
 * stack overflow, no exception escaping) and leave what it cannot handle alone; the parsers'
 * limits (depth, parts, header bytes) are what keeps the work bounded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseReport } from '../../src/bounces/parse.ts';
import { builtInChecks } from '../../src/content/checks.ts';
import { planMessage } from '../../src/tracking/mime.ts';

function nested(depth: number): string {
  let open = '';
  let close = '';
  for (let i = 0; i < depth; i++) {
    open += `--b${i}\r\nContent-Type: multipart/mixed; boundary="b${i + 1}"\r\n\r\n`;
    close = `--b${i}--\r\n${close}`;
  }
  return (
    'From: a@example.test\r\nTo: b@example.test\r\nSubject: nested\r\nMIME-Version: 1.0\r\n' +
    'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n' +
    `${open}--b${depth}\r\nContent-Type: text/html\r\n\r\n<a href="https://example.test/">x</a></body>\r\n--b${depth}--\r\n${close}`
  );
}

function manyParts(parts: number): string {
  let body =
    'From: a@example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="z"\r\n\r\n';
  for (let i = 0; i < parts; i++) {
    body += `--z\r\nContent-Type: text/html\r\n\r\n<a href="https://example.test/${i}">x</a>\r\n`;
  }
  return `${body}--z--\r\n`;
}

const hugeHeader = `From: a@example.test\r\n${'X-Filler: '.concat('y'.repeat(900), '\r\n').repeat(2000)}Content-Type: text/plain\r\n\r\nbody\r\n`;
const unterminated = `From: a@example.test\r\nContent-Type: multipart/mixed; boundary="never"\r\n\r\n${'--never\r\nContent-Type: multipart/alternative; boundary="never"\r\n\r\n'.repeat(2000)}`;

const BOMBS: [string, string][] = [
  ['5,000 nested multiparts', nested(5000)],
  ['20,000 parts', manyParts(20_000)],
  ['a 1.8 MB header block', hugeHeader],
  ['2,000 unterminated parts reusing one boundary', unterminated],
];

describe('MIME bombs', () => {
  for (const [what, message] of BOMBS) {
    it(`${what}: tracking, the report parser and the content checks return and leave it alone`, () => {
      const plan = planMessage(message, { clicks: true, textLinks: true, opens: true });
      assert.ok(Array.isArray(plan.pieces));
      const report = parseReport(Buffer.from(message, 'latin1'));
      assert.ok(report.kind, 'a report kind (maybe "other")');
      const findings = builtInChecks({
        raw: Buffer.from(message, 'latin1'),
        kind: 'broadcast',
        maxImageSize: 1_000_000,
      });
      assert.ok(Array.isArray(findings));
    });
  }

  it('tracking gives up on nesting beyond its depth instead of recursing', () => {
    const plan = planMessage(nested(5000), { clicks: true, textLinks: false, opens: true });
    assert.ok(
      plan.notes.some((n) => /nesting/.test(n)),
      plan.notes.join('; '),
    );
  });
});
