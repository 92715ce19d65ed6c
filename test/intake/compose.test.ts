import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import libmime from 'libmime';
import { type AddressObject, simpleParser } from 'mailparser';
import { type ComposeInput, checkHeaders, composeMessage } from '../../src/intake/compose.ts';
import { SendError } from '../../src/intake/send-errors.ts';

const pdf = Buffer.from('%PDF-1.4\n% fake but binary: \x00\xff\xfe\x80\n', 'latin1');
const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48]);

function input(overrides: Partial<ComposeInput> = {}): ComposeInput {
  return {
    from: { address: 'news@example.com', name: 'Example News' },
    to: [{ address: 'ann@example.org', name: 'Ann' }],
    cc: [],
    replyTo: [],
    subject: 'Hello',
    text: 'Hello Ann',
    attachments: [],
    headers: [],
    date: new Date('2026-03-04T05:06:07Z'),
    messageId: '<m1.abc@relay.example.net>',
    ...overrides,
  };
}

function addresses(field: AddressObject | AddressObject[] | undefined): { address?: string; name: string }[] {
  if (!field) return [];
  return (Array.isArray(field) ? field : [field]).flatMap((a) =>
    a.value.map(({ address, name }) => ({ address, name })),
  );
}

function headerBlock(message: Buffer): string {
  const text = message.toString('utf8');
  return text.slice(0, text.indexOf('\r\n\r\n'));
}

function assertWellFormed(message: Buffer): void {
  const text = message.toString('latin1');
  assert.equal(/\r(?!\n)|(?<!\r)\n/.test(text), false, 'CRLF line endings only');
  const longest = Math.max(...text.split('\r\n').map((line) => Buffer.byteLength(line, 'latin1')));
  assert.ok(longest <= 998, `longest line ${longest} octets`);
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

const full = input({
  from: { address: 'news@example.com', name: 'Doe, John' },
  to: [{ address: 'jörg@bücher.example', name: 'Jörg Müller' }, { address: 'plain@example.org' }],
  cc: [{ address: 'cc@example.net', name: 'O"Brien \\ Co' }],
  replyTo: [{ address: 'support@example.com', name: 'Support – Team' }],
  subject: 'Grüße aus Köln, 東京 and 🎉',
  text: 'Hallo Jörg,\nwie geht es?\n',
  html: '<p>Hallo <b>Jörg</b></p><img src="cid:logo@example">',
  attachments: [
    { filename: 'Rechnung März.pdf', content: pdf, contentType: 'application/pdf' },
    { filename: 'logo.png', content: png, contentType: '', contentId: 'logo@example' },
    { filename: 'data.unknownext', content: Buffer.from('x'), contentType: '' },
  ],
  headers: [
    ['X-Campaign', 'Frühling – Sale'],
    ['List-Unsubscribe', '<https://example.com/u/1>'],
    ['X-Plain', 'plain value'],
  ],
});

test('a full message parses back to every field it was built from', async () => {
  const message = composeMessage(full);
  assertWellFormed(message);
  const parsed = await simpleParser(message, { keepCidLinks: true });
  assert.equal(parsed.subject, 'Grüße aus Köln, 東京 and 🎉');
  assert.deepEqual(addresses(parsed.from), [{ address: 'news@example.com', name: 'Doe, John' }]);
  assert.deepEqual(addresses(parsed.to), [
    { address: 'jörg@bücher.example', name: 'Jörg Müller' },
    { address: 'plain@example.org', name: '' },
  ]);
  assert.deepEqual(addresses(parsed.cc), [{ address: 'cc@example.net', name: 'O"Brien \\ Co' }]);
  assert.deepEqual(addresses(parsed.replyTo), [{ address: 'support@example.com', name: 'Support – Team' }]);
  assert.equal(parsed.messageId, '<m1.abc@relay.example.net>');
  assert.equal(parsed.date?.toISOString(), '2026-03-04T05:06:07.000Z');
  assert.equal(parsed.text, 'Hallo Jörg,\nwie geht es?\n');
  assert.equal(parsed.html, '<p>Hallo <b>Jörg</b></p><img src="cid:logo@example">');
  // mailparser leaves fields it does not know encoded, as a mail client would decode them:
  assert.equal(libmime.decodeWords(String(parsed.headers.get('x-campaign'))), 'Frühling – Sale');
  assert.equal(parsed.headers.get('x-plain'), 'plain value');
  assert.equal(parsed.headers.get('mime-version'), '1.0');

  const named = (filename: string) => parsed.attachments.find((a) => a.filename === filename);
  const [invoice, logo, data] = [named('Rechnung März.pdf'), named('logo.png'), named('data.unknownext')];
  assert.ok(invoice && logo && data);
  assert.equal(invoice.contentType, 'application/pdf');
  assert.equal(invoice.contentDisposition, 'attachment');
  assert.ok(invoice.content.equals(pdf), 'attachment bytes unchanged');
  assert.equal(logo.contentType, 'image/png', 'guessed from the file name');
  assert.equal(logo.cid, 'logo@example');
  assert.equal(logo.contentDisposition, 'inline');
  assert.equal(logo.related, true, 'inline part sits in multipart/related');
  assert.ok(logo.content.equals(png));
  assert.equal(data.contentType, 'application/octet-stream');
});

test('the MIME tree: mixed ⊃ alternative (text first) ⊃ related (html, inline part)', () => {
  const text = composeMessage(full).toString('utf8');
  const types = [...text.matchAll(/^Content-Type: ([^;\r\n]+)/gm)].map((m) => m[1]);
  assert.deepEqual(types, [
    'multipart/mixed',
    'multipart/alternative',
    'text/plain',
    'multipart/related',
    'text/html',
    'image/png',
    'application/pdf',
    'application/octet-stream',
  ]);
  assert.match(text, /multipart\/related; type="text\/html";/);
  assert.match(text, /\r\nContent-ID: <logo@example>\r\n/);
});

test('single-part bodies: text/plain, text/html, and alternative for both', async () => {
  const textOnly = composeMessage(input({ text: 'just text' }));
  assert.match(
    headerBlock(textOnly),
    /\r\nContent-Type: text\/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit$/,
  );
  assert.equal((await simpleParser(textOnly)).text, 'just text\n');

  const htmlOnly = composeMessage(input({ text: undefined, html: '<p>hi</p>' }));
  assert.match(headerBlock(htmlOnly), /\r\nContent-Type: text\/html; charset=utf-8\r\n/);
  assert.equal((await simpleParser(htmlOnly)).html, '<p>hi</p>\n');

  const both = composeMessage(input({ text: 'plain', html: '<p>rich</p>' }));
  assert.match(headerBlock(both), /\r\nContent-Type: multipart\/alternative;/);
  const parsed = await simpleParser(both);
  assert.equal(parsed.text, 'plain');
  assert.equal(parsed.html, '<p>rich</p>');
  assert.equal(parsed.attachments.length, 0);
});

test('text parts: 7bit when ASCII with short lines, quoted-printable otherwise, content exact', async () => {
  const cases = [
    { text: 'plain ascii\r\nsecond line', encoding: '7bit' },
    { text: 'Grüße\nmit Umlauten ', encoding: 'quoted-printable' },
    { text: `${'a'.repeat(1500)}\nshort`, encoding: 'quoted-printable' },
    { text: 'trailing space   \nand tab\t\nx=y =_mixed_ --=_alternative_', encoding: '7bit' },
    { text: 'ü trailing space   \nand tab\t\nx=y =_mixed_ --=_alternative_', encoding: 'quoted-printable' },
    { text: `${'🎉東ü='.repeat(60)}\r\n${'x'.repeat(74)}ü\rbare CR`, encoding: 'quoted-printable' },
  ];
  for (const { text, encoding } of cases) {
    const message = composeMessage(input({ text, html: '<p>x</p>' }));
    assertWellFormed(message);
    const body = message.toString().split('\r\n\r\n').slice(1).join('\r\n\r\n');
    assert.ok(
      body.split('\r\n').every((line) => line.length <= 76),
      'body lines within 76 characters (RFC 2045 §6.7)',
    );
    assert.match(
      message.toString(),
      new RegExp(`text/plain; charset=utf-8\\r\\nContent-Transfer-Encoding: ${encoding}\\r\\n`),
    );
    const parsed = await simpleParser(message);
    assert.equal(parsed.text, text.replace(/\r\n?/g, '\n'));
  }
});

test('boundaries never occur in the content', async () => {
  // 7bit parts carry the caller's text as is: make them look as much like delimiters as possible.
  const text = '--=_mixed_\r\n--=_alternative_\r\n--=_related_\r\n--';
  const message = composeMessage(
    input({
      text,
      html: '<p>--=_alternative_</p>',
      attachments: [{ filename: 'a.txt', content: Buffer.from(text), contentType: '' }],
    }),
  );
  const raw = message.toString();
  const boundaries = [...raw.matchAll(/boundary="([^"]+)"/g)].map((m) => m[1]!);
  assert.equal(boundaries.length, 2);
  for (const boundary of boundaries) {
    const delimiters = raw.split('\r\n').filter((line) => line.startsWith(`--${boundary}`));
    assert.equal(delimiters.length, 3, `${boundary}: two parts and the close`);
    assert.equal(text.includes(boundary), false);
  }
  const parsed = await simpleParser(message);
  assert.equal(parsed.text, text.replace(/\r\n/g, '\n'));
  assert.equal(parsed.attachments[0]?.content.toString(), text);
});

test('To: undisclosed-recipients only when there is neither To nor Cc', () => {
  const bccOnly = headerBlock(composeMessage(input({ to: [], cc: [] })));
  assert.match(bccOnly, /\r\nTo: undisclosed-recipients:;\r\n/);
  const ccOnly = headerBlock(composeMessage(input({ to: [], cc: [{ address: 'c@example.org' }] })));
  assert.doesNotMatch(ccOnly, /^To:/im);
  assert.match(ccOnly, /\r\nCc: c@example\.org\r\n/);
});

test('there is never a Bcc field', () => {
  const message = composeMessage(full).toString();
  assert.doesNotMatch(message, /^bcc:/im);
  const refused = refusal(() => composeMessage(input({ headers: [['bcc', 'hidden@example.org']] })));
  assert.equal(refused.code, 'invalid_header');
  assert.equal(refused.field, 'headers.bcc');
  assert.match(refused.message, /use the "bcc" field/);
});

test('header injection is refused', () => {
  for (const value of ['x\r\nBcc: evil@example.org', 'x\nBcc: evil@example.org', 'x\rY', 'nul\0byte']) {
    const refused = refusal(() => composeMessage(input({ headers: [['X-Note', value]] })));
    assert.equal(refused.code, 'invalid_header');
    assert.equal(refused.field, 'headers.X-Note');
  }
  // Names and the structured fields cannot smuggle a line break either.
  const name = composeMessage(
    input({ to: [{ address: 'a@example.org', name: 'Ann\r\nBcc: evil@example.org' }] }),
  );
  assert.doesNotMatch(name.toString(), /^Bcc:/im);
  const address = refusal(() =>
    composeMessage(input({ to: [{ address: 'a@example.org>\r\nBcc: e@x.org' }] })),
  );
  assert.equal(address.code, 'invalid_address');
  assert.equal(address.field, 'to[0].email');
  const subject = composeMessage(input({ subject: 'Hi\r\nBcc: evil@example.org' }));
  assert.match(headerBlock(subject), /\r\nSubject: Hi Bcc: evil@example\.org\r\n/);
});

test('reserved header fields are refused with the field to use instead', () => {
  const reserved = [
    ['From', '"from"'],
    ['to', '"to"'],
    ['CC', '"cc"'],
    ['Subject', '"subject"'],
    ['Date', '"sendAt"'],
    ['Content-Type', '"attachments"'],
    ['Content-Transfer-Encoding', '"text"'],
    ['MIME-Version', 'Postbote'],
    ['Content-Disposition', '"attachments"'],
    ['Return-Path', '"from"'],
    ['Received', 'Postbote'],
    ['DKIM-Signature', 'Postbote'],
  ] as const;
  for (const [name, hint] of reserved) {
    const refused = refusal(() => checkHeaders([[name, 'x']]));
    assert.equal(refused.code, 'invalid_header', name);
    assert.equal(refused.field, `headers.${name}`);
    assert.ok(refused.message.includes(name) && refused.message.includes(hint), refused.message);
  }
  for (const name of ['X Note', 'X:Note', '', 'Ünicode', 'constructor:']) {
    assert.equal(refusal(() => checkHeaders([[name, 'x']])).code, 'invalid_header', name);
  }
  assert.equal(refusal(() => checkHeaders([['X-Long', 'x'.repeat(999)]])).code, 'invalid_header');
  assert.doesNotThrow(() =>
    checkHeaders([
      ['constructor', 'x'],
      ['X-Long', 'x'.repeat(980)],
    ]),
  );
});

test('a custom Reply-To or Message-ID replaces the generated one', async () => {
  const message = composeMessage(
    input({
      replyTo: [{ address: 'generated@example.com' }],
      headers: [
        ['reply-to', 'Jörg <jörg@example.com>, "Doe, Jane" <jane@example.com>'],
        ['Message-ID', '<custom.1@example.com>'],
      ],
    }),
  );
  const head = headerBlock(message);
  assert.equal(head.match(/^reply-to:/gim)?.length, 1);
  assert.equal(head.match(/^message-id:/gim)?.length, 1);
  const parsed = await simpleParser(message);
  assert.equal(parsed.messageId, '<custom.1@example.com>');
  assert.deepEqual(addresses(parsed.replyTo), [
    { address: 'jörg@example.com', name: 'Jörg' },
    { address: 'jane@example.com', name: 'Doe, Jane' },
  ]);
  assert.equal(
    refusal(() => checkHeaders([['Message-ID', 'no-brackets@example.com']])).field,
    'headers.Message-ID',
  );
  assert.equal(refusal(() => checkHeaders([['Reply-To', 'not an address']])).code, 'invalid_header');
  assert.equal(
    refusal(() =>
      checkHeaders([
        ['Reply-To', 'a@example.com'],
        ['Reply-To', 'b@example.com'],
      ]),
    ).code,
    'invalid_header',
  );
});

test('long header fields fold under 78 where they can and never pass 998', async () => {
  const words = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ');
  const longWord = 'x'.repeat(1200);
  const cjk = '東京で会いましょう。'.repeat(12);
  const emoji = '🎉ü'.repeat(40);
  const names = Array.from({ length: 20 }, (_, i) => ({
    address: `r${i}@example.org`,
    name: `Recipient Number ${i}`,
  }));
  for (const subject of [words, longWord, cjk, emoji, `${longWord} ü`]) {
    const message = composeMessage(input({ subject, to: names, headers: [['X-Words', words]] }));
    assertWellFormed(message);
    const lines = headerBlock(message).split('\r\n');
    if (subject !== longWord && !subject.startsWith(longWord)) {
      assert.ok(
        lines.every((line) => line.length <= 78),
        lines.find((line) => line.length > 78),
      );
    }
    const parsed = await simpleParser(message);
    assert.equal(parsed.subject, subject);
    assert.equal(parsed.headers.get('x-words'), words);
    assert.equal(addresses(parsed.to).length, 20);
    assert.equal(addresses(parsed.to)[19]?.name, 'Recipient Number 19');
  }
});

test('display names: atoms as is, quoted when needed, encoded-words for non-ASCII', async () => {
  const to = [
    { address: 'a@example.org', name: 'Plain Name' },
    { address: 'b@example.org', name: 'Doe, John' },
    { address: 'c@example.org', name: 'J. R. "Bob" Dobbs' },
    { address: 'd@example.org', name: '=?utf-8?q?literal?=' },
    { address: 'e@example.org', name: 'Ærøskøbing Ltd.' },
  ];
  const message = composeMessage(input({ to }));
  assert.match(headerBlock(message), /To: Plain Name <a@example\.org>, "Doe, John" <b@example\.org>,/);
  const parsed = await simpleParser(message);
  assert.deepEqual(
    addresses(parsed.to).map((a) => a.name),
    to.map((a) => a.name),
  );
});

test('attachment problems are refused with the attachment named', () => {
  const bad = [
    [
      { filename: 'a.txt', content: Buffer.from('x'), contentType: 'text/plain\r\nBcc: x@example.org' },
      'contentType',
    ],
    [{ filename: 'a.txt', content: Buffer.from('x'), contentType: 'not a type' }, 'contentType'],
    [{ filename: 'a.txt', content: Buffer.from('x'), contentType: 'multipart/mixed' }, 'contentType'],
    [{ filename: 'a.png', content: png, contentType: 'image/png', contentId: 'lo go' }, 'contentId'],
  ] as const;
  for (const [attachment, what] of bad) {
    const refused = refusal(() =>
      composeMessage(
        input({
          html: '<p>x</p>',
          attachments: [{ filename: 'ok.txt', content: Buffer.from('ok'), contentType: '' }, attachment],
        }),
      ),
    );
    assert.equal(refused.code, 'invalid_attachment');
    assert.equal(refused.field, `attachments[1].${what}`);
  }
});

test("Python's email parser reads the same message", { skip: !hasPython() }, () => {
  const script = [
    'import sys, json, email, email.policy',
    'm = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)',
    'print(json.dumps({',
    '  "defects": [str(d) for p in m.walk() for d in p.defects],',
    '  "subject": str(m["subject"]), "from": str(m["from"]), "campaign": str(m["x-campaign"]),',
    '  "text": m.get_body(("plain",)).get_content(), "html": m.get_body(("html",)).get_content(),',
    '  "files": [[p.get_filename(), p.get_content_type(), p.get_content().hex()] for p in m.iter_attachments()],',
    '}))',
  ].join('\n');
  const run = spawnSync('python3', ['-c', script], { input: composeMessage(full), encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout);
  assert.deepEqual(result.defects, []);
  assert.equal(result.subject, 'Grüße aus Köln, 東京 and 🎉');
  assert.equal(result.from, '"Doe, John" <news@example.com>');
  assert.equal(result.campaign, 'Frühling – Sale');
  assert.equal(result.text.replace(/\r\n/g, '\n'), 'Hallo Jörg,\nwie geht es?\n');
  assert.equal(result.html, '<p>Hallo <b>Jörg</b></p><img src="cid:logo@example">');
  assert.deepEqual(result.files, [
    ['Rechnung März.pdf', 'application/pdf', pdf.toString('hex')],
    ['data.unknownext', 'application/octet-stream', '78'],
  ]);
});

function hasPython(): boolean {
  return spawnSync('python3', ['--version']).status === 0;
}
