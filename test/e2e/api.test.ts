/**
 * The HTTP send API end to end: real clients (fetch on the native API, the official Postmark and
 * Mailgun SDKs, `postbote send`) → a running `postbote start` → MX lookup in a test DNS server →
 * a scripted sink on loopback, whose recorded DATA is parsed with mailparser and checked.
 *
 * One Postbote for the file; every recipient domain has its MX at the one sink (127.0.0.2).
 * Each test sends to its own local parts, so its copies are found by address at the sink.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import FormData from 'form-data';
import libmime from 'libmime';
import Mailgun from 'mailgun.js';
import { type AddressObject, type ParsedMail, simpleParser } from 'mailparser';
import { Models, ServerClient } from 'postmark';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { fakeMxEnv, type ReplyJson, stopPostbote } from '../support/e2e-harness.ts';
import { type PostboteProcess, runCli, startPostboteProcess, waitFor } from '../support/postbote-process.ts';
import { type ScriptedSink, type SinkTransaction, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

const FROM = 'Acme Shop <shop@sender.test>';
const SUBJECT = 'Grüße aus München — Bestellung №1001 ✓';
const REPORT = Buffer.from(Array.from({ length: 256 }, (_, i) => i)); // every byte value
const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
// mailparser swaps a `cid:` reference for a data: URI only when an inline part has that
// Content-ID, so this URI in the parsed HTML proves the image is linked, not just attached.
const PNG_SRC = `data:image/png;base64,${PNG.toString('base64')}`;

interface Copy {
  tx: SinkTransaction;
  mail: ParsedMail;
}

/** The recipients of a transaction the sink took (250 to RCPT and to the final dot). */
const acceptedBy = (tx: SinkTransaction): string[] =>
  tx.dataReply?.startsWith('250')
    ? tx.recipients.filter((r) => r.reply.startsWith('250')).map((r) => r.address)
    : [];

/** "Name <address>" (or the bare address) of every mailbox of a parsed address field. */
const mailboxes = (field: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(field) ? field : field ? [field] : []).flatMap((o) =>
    o.value.map((v) => (v.name ? `${v.name} <${v.address}>` : (v.address ?? ''))),
  );

/** A custom header's value as a reader sees it (mailparser leaves RFC 2047 words in unknown fields). */
const header = (mail: ParsedMail, name: string): string =>
  libmime.decodeWords(String(mail.headers.get(name) ?? ''));

function attachmentNamed(mail: ParsedMail, filename: string) {
  const found = mail.attachments.find((a) => a.filename === filename);
  assert.ok(found, `no attachment "${filename}"; got ${mail.attachments.map((a) => a.filename).join(', ')}`);
  return found;
}

describe('send API: SDKs → Postbote → MX, delivered bytes checked', { timeout: 60_000 }, () => {
  const dir = tempDir('postbote-e2e-api-');
  let dns: TestDnsServer;
  let sink: ScriptedSink;
  let postbote: PostboteProcess;
  let key = '';
  let base = '';

  before(async () => {
    sink = await startScriptedSink({ host: '127.0.0.2', hostname: 'mx.example.test' });
    dns = await startDnsServer({
      zones: {
        'example.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }] },
        'other.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }] },
        'mx.example.test': { A: ['127.0.0.2'] },
      },
    });
    const env = {
      ...fakeMxEnv({ dataDir: dir.path, dns: dns.address, mxPort: sink.port }),
    };
    await runCli(['accounts', 'create', 'acme', '--sender-policy', 'any'], env);
    const [credential] = JSON.parse(
      await runCli(
        ['credentials', 'create', '--account', 'acme', '--api', '--scopes', 'send,read,admin', '--json'],
        env,
      ),
    ) as { secret?: string }[];
    key = credential?.secret ?? '';
    assert.ok(key, 'credentials create printed no secret');
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
    base = `http://127.0.0.1:${postbote.httpPort}`;
  });

  after(async () => {
    await stopPostbote(postbote);
    await Promise.all([sink?.close(), dns?.close()]);
    dir.cleanup();
  });

  async function api<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: response.status, body: (await response.json()) as T };
  }

  /** The one copy the sink took for `address`, parsed (fails on a second copy). */
  async function copyFor(address: string): Promise<Copy> {
    const tx = await waitFor(() => sink.transactions.find((t) => acceptedBy(t).includes(address)), {
      what: `a copy for ${address} at the MX`,
      timeoutMs: 10_000,
      intervalMs: 25,
    });
    const copies = sink.transactions.filter((t) => acceptedBy(t).includes(address));
    assert.equal(copies.length, 1, `${address} got ${copies.length} copies`);
    assert.ok(tx.data);
    return { tx, mail: await simpleParser(tx.data) };
  }

  /** Checks the copies of a to/cc/bcc message: one per address, Bcc delivered but never in the bytes. */
  async function checkBlindCopy(to: string, cc: string, bcc: string): Promise<Copy> {
    const copies = await Promise.all([to, cc, bcc].map(copyFor));
    for (const { tx, mail } of copies) {
      assert.ok(
        !tx.data?.toString('latin1').toLowerCase().includes(bcc),
        `the Bcc address is in the bytes to ${acceptedBy(tx)}`,
      );
      assert.equal(mail.bcc, undefined);
    }
    return copies[0]!;
  }

  it('native API: POST /v1/messages with names, non-ASCII subject, attachments, inline image, headers, Bcc; GET shows delivered with the MX reply', async () => {
    const sent = await api<{ id: string; recipients: { email: string; status: string }[] }>(
      'POST',
      '/v1/messages',
      {
        from: FROM,
        to: [{ email: 'ann@example.test', name: 'Ann Müller' }],
        cc: 'Carl Cc <carl@other.test>',
        bcc: ['bert@example.test'],
        subject: SUBJECT,
        text: 'Ihre Bestellung ist bestätigt.\nDanke!',
        html: '<p>Ihre Bestellung ist <b>bestätigt</b>.</p><img src="cid:logo">',
        attachments: [
          {
            filename: 'report.bin',
            content: REPORT.toString('base64'),
            content_type: 'application/octet-stream',
          },
          {
            filename: 'logo.png',
            content: PNG.toString('base64'),
            content_type: 'image/png',
            content_id: 'logo',
          },
        ],
        headers: { 'X-Order': '1001', 'X-Note': 'Größe L' },
      },
    );
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    assert.deepEqual(
      sent.body.recipients.map((r) => [r.email, r.status]),
      [
        ['ann@example.test', 'queued'],
        ['carl@other.test', 'queued'],
        ['bert@example.test', 'queued'],
      ],
    );

    const { tx, mail } = await checkBlindCopy('ann@example.test', 'carl@other.test', 'bert@example.test');
    assert.equal(tx.mailFrom, 'shop@sender.test');
    assert.equal(mail.subject, SUBJECT);
    assert.deepEqual(mailboxes(mail.from), [FROM]);
    assert.deepEqual(mailboxes(mail.to), ['Ann Müller <ann@example.test>']);
    assert.deepEqual(mailboxes(mail.cc), ['Carl Cc <carl@other.test>']);
    assert.equal(mail.text?.trim(), 'Ihre Bestellung ist bestätigt.\nDanke!');
    assert.equal(mail.html, `<p>Ihre Bestellung ist <b>bestätigt</b>.</p><img src="${PNG_SRC}">`);
    assert.equal(header(mail, 'x-order'), '1001');
    assert.equal(header(mail, 'x-note'), 'Größe L');
    const report = attachmentNamed(mail, 'report.bin');
    assert.ok(report.content.equals(REPORT), 'report.bin altered');
    assert.equal(report.contentDisposition, 'attachment');
    const logo = attachmentNamed(mail, 'logo.png');
    assert.ok(logo.content.equals(PNG), 'logo.png altered');
    assert.deepEqual(
      [logo.cid, logo.contentType, logo.contentDisposition, logo.related],
      ['logo', 'image/png', 'inline', true],
    );

    // The native view: every recipient delivered, with the reply the MX gave to the final dot.
    const shown = await waitFor(
      async () => {
        const { body } = await api<{
          recipients: { email: string; status: string; last_response?: ReplyJson }[];
        }>('GET', `/v1/messages/${sent.body.id}`);
        return body.recipients.every((r) => r.status === 'delivered') ? body : undefined;
      },
      { what: 'every recipient delivered in GET /v1/messages/{id}', timeoutMs: 10_000, intervalMs: 100 },
    );
    for (const r of shown.recipients) {
      const reply = sink.transactions.find((t) => acceptedBy(t).includes(r.email))?.dataReply ?? '';
      const [code, enhanced, ...text] = reply.split(' ');
      assert.deepEqual(r.last_response, { code: Number(code), enhanced, text: text.join(' ') }, r.email);
    }
  });

  it('native API: personalised recipients each get their own rendered copy', async () => {
    const sent = await api<{ id: string }>('POST', '/v1/messages', {
      from: FROM,
      recipients: [
        { email: 'p1@example.test', name: 'Petra Ö', variables: { first: 'Petra', code: 'A-1' } },
        { email: 'p2@example.test', variables: { first: 'Paul & Co', code: 'B-2' } },
      ],
      subject: 'Hallo {{first}}',
      text: 'Ihr Code: {{code}}',
      html: '<p>{{first}}: {{code}}</p>',
    });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const [p1, p2] = await Promise.all([copyFor('p1@example.test'), copyFor('p2@example.test')]);
    assert.deepEqual(acceptedBy(p1!.tx), ['p1@example.test']);
    assert.deepEqual(acceptedBy(p2!.tx), ['p2@example.test']);
    assert.deepEqual(mailboxes(p1!.mail.to), ['Petra Ö <p1@example.test>']);
    assert.deepEqual(mailboxes(p2!.mail.to), ['p2@example.test']);
    assert.deepEqual(
      [p1!.mail.subject, p1!.mail.text?.trim(), p1!.mail.html],
      ['Hallo Petra', 'Ihr Code: A-1', '<p>Petra: A-1</p>'],
    );
    // HTML escapes the variable, subject and text do not.
    assert.deepEqual(
      [p2!.mail.subject, p2!.mail.text?.trim(), p2!.mail.html],
      ['Hallo Paul & Co', 'Ihr Code: B-2', '<p>Paul &amp; Co: B-2</p>'],
    );
  });

  it('Postmark SDK: sendEmail (attachments, inline image, Headers, Cc/Bcc), sendEmailBatch, sendEmailWithTemplate', async () => {
    const client = new ServerClient(key, { useHttps: false, requestHost: `127.0.0.1:${postbote.httpPort}` });
    const single = await client.sendEmail({
      From: FROM,
      To: '"Müller, Anna" <anna@example.test>',
      Cc: 'Cem <cem@other.test>',
      Bcc: 'bob@example.test',
      Subject: SUBJECT,
      TextBody: 'Text aus Postmark',
      HtmlBody: '<p>HTML aus Postmark</p><img src="cid:logo.png">',
      Headers: [new Models.Header('X-Campaign', 'spring-ü')],
      Attachments: [
        new Models.Attachment('report.bin', REPORT.toString('base64'), 'application/octet-stream'),
        new Models.Attachment('logo.png', PNG.toString('base64'), 'image/png', 'cid:logo.png'),
      ],
    });
    assert.equal(single.ErrorCode, 0);
    const byId = await api<{ id: string }>('GET', `/v1/messages/${single.MessageID}`);
    assert.deepEqual([byId.status, byId.body.id], [200, single.MessageID], 'MessageID is the native id');

    const { mail } = await checkBlindCopy('anna@example.test', 'cem@other.test', 'bob@example.test');
    assert.equal(mail.subject, SUBJECT);
    assert.deepEqual(mailboxes(mail.to), ['Müller, Anna <anna@example.test>']);
    assert.deepEqual(mailboxes(mail.cc), ['Cem <cem@other.test>']);
    assert.equal(mail.text?.trim(), 'Text aus Postmark');
    assert.equal(mail.html, `<p>HTML aus Postmark</p><img src="${PNG_SRC}">`);
    assert.equal(header(mail, 'x-campaign'), 'spring-ü');
    assert.ok(attachmentNamed(mail, 'report.bin').content.equals(REPORT), 'report.bin altered');
    const logo = attachmentNamed(mail, 'logo.png');
    assert.ok(logo.content.equals(PNG), 'logo.png altered');
    assert.deepEqual([logo.cid, logo.contentDisposition], ['logo.png', 'inline']);

    const batch = await client.sendEmailBatch([
      { From: FROM, To: 'Bea <bea@example.test>', Subject: 'Batch eins', TextBody: 'eins' },
      { From: FROM, To: 'ben@other.test', Subject: 'Batch zwei', HtmlBody: '<p>zwei</p>' },
    ]);
    assert.deepEqual(
      batch.map((r) => r.ErrorCode),
      [0, 0],
    );
    assert.notEqual(batch[0]?.MessageID, batch[1]?.MessageID);
    const [bea, ben] = await Promise.all([copyFor('bea@example.test'), copyFor('ben@other.test')]);
    assert.deepEqual(
      [bea!.mail.subject, bea!.mail.text?.trim(), mailboxes(bea!.mail.to)],
      ['Batch eins', 'eins', ['Bea <bea@example.test>']],
    );
    // A single-part body ends with the CRLF of its last line; mailparser keeps it.
    assert.deepEqual([ben!.mail.subject, String(ben!.mail.html).trimEnd()], ['Batch zwei', '<p>zwei</p>']);

    const template = await api<{ id: string }>('POST', '/v1/templates', {
      name: 'Welcome',
      alias: 'welcome',
      subject: 'Willkommen, {{name}}!',
      html: '<h1>Hallo {{name}}</h1>',
      text: 'Hallo {{name}}, schön dass du da bist.',
    });
    assert.equal(template.status, 201, JSON.stringify(template.body));
    const templated = await client.sendEmailWithTemplate({
      From: FROM,
      To: 'zoe@example.test',
      TemplateAlias: 'welcome',
      TemplateModel: { name: 'Zoë & Co' },
    });
    assert.equal(templated.ErrorCode, 0);
    const zoe = await copyFor('zoe@example.test');
    assert.equal(zoe.mail.subject, 'Willkommen, Zoë & Co!');
    assert.equal(zoe.mail.html, '<h1>Hallo Zoë &amp; Co</h1>');
    assert.equal(zoe.mail.text?.trim(), 'Hallo Zoë & Co, schön dass du da bist.');
  });

  it('Mailgun SDK: messages.create with attachment, inline image, h: headers, Cc/Bcc, and recipient-variables', async () => {
    const mg = new Mailgun(FormData).client({ username: 'api', key, url: base });
    const answer = await mg.messages.create('sender.test', {
      from: FROM,
      to: ['Mia Ünal <mia@example.test>'],
      cc: 'Max <max@other.test>',
      bcc: 'moe@example.test',
      subject: SUBJECT,
      text: 'Text aus Mailgun',
      html: '<p>HTML aus Mailgun</p><img src="cid:logo.png">',
      'h:X-Campaign': 'autumn',
      attachment: [{ filename: 'report.bin', data: REPORT }],
      inline: { filename: 'logo.png', data: PNG },
    });
    assert.equal(answer.status, 200);
    const id = /^<([^@>]+)@sender\.test>$/.exec(answer.id ?? '')?.[1];
    assert.ok(id, `not a Mailgun-shaped id: ${answer.id}`);

    const { mail } = await checkBlindCopy('mia@example.test', 'max@other.test', 'moe@example.test');
    assert.equal(mail.subject, SUBJECT);
    assert.deepEqual(mailboxes(mail.to), ['Mia Ünal <mia@example.test>']);
    assert.deepEqual(mailboxes(mail.cc), ['Max <max@other.test>']);
    assert.equal(mail.text?.trim(), 'Text aus Mailgun');
    assert.equal(mail.html, `<p>HTML aus Mailgun</p><img src="${PNG_SRC}">`);
    assert.equal(header(mail, 'x-campaign'), 'autumn');
    assert.ok(attachmentNamed(mail, 'report.bin').content.equals(REPORT), 'report.bin altered');
    const logo = attachmentNamed(mail, 'logo.png');
    assert.ok(logo.content.equals(PNG), 'logo.png altered');
    assert.deepEqual([logo.cid, logo.contentDisposition], ['logo.png', 'inline']);
    // The id in the Mailgun answer is the native API's message id.
    const shown = await api<{ id: string; subject: string }>('GET', `/v1/messages/${id}`);
    assert.deepEqual([shown.status, shown.body.id, shown.body.subject], [200, id, SUBJECT]);

    await mg.messages.create('sender.test', {
      from: FROM,
      to: ['Lea <lea@example.test>', 'leo@other.test'],
      subject: 'Hallo %recipient.first%',
      text: 'Dein Rabatt: %recipient.discount%',
      html: '<p>%recipient.first% bekommt %recipient.discount%</p>',
      'recipient-variables': JSON.stringify({
        'lea@example.test': { first: 'Lea', discount: '10 %' },
        'leo@other.test': { first: 'Léo', discount: '20 %' },
      }),
    });
    const [lea, leo] = await Promise.all([copyFor('lea@example.test'), copyFor('leo@other.test')]);
    assert.deepEqual(acceptedBy(lea!.tx), ['lea@example.test']);
    assert.deepEqual(acceptedBy(leo!.tx), ['leo@other.test']);
    assert.deepEqual(
      mailboxes(lea!.mail.to),
      ['Lea <lea@example.test>'],
      'each copy names only its recipient',
    );
    assert.deepEqual(mailboxes(leo!.mail.to), ['leo@other.test']);
    assert.deepEqual(
      [lea!.mail.subject, lea!.mail.text?.trim(), lea!.mail.html],
      ['Hallo Lea', 'Dein Rabatt: 10 %', '<p>Lea bekommt 10 %</p>'],
    );
    assert.deepEqual(
      [leo!.mail.subject, leo!.mail.text?.trim(), leo!.mail.html],
      ['Hallo Léo', 'Dein Rabatt: 20 %', '<p>Léo bekommt 20 %</p>'],
    );
  });

  it('postbote send (the CLI) gets a message through the API to the MX', async () => {
    const out = await postbote.cli([
      'send',
      '--key',
      key,
      '--url',
      base,
      '--from',
      FROM,
      '--to',
      'Cleo <cleo@example.test>',
      '--subject',
      'Über die Kommandozeile',
      '--text',
      'gesendet mit postbote send',
    ]);
    assert.match(out, /^accepted as [\w-]+\n {2}cleo@example\.test: queued\n$/);
    const { tx, mail } = await copyFor('cleo@example.test');
    assert.equal(tx.mailFrom, 'shop@sender.test');
    assert.deepEqual(mailboxes(mail.to), ['Cleo <cleo@example.test>']);
    assert.equal(mail.subject, 'Über die Kommandozeile');
    assert.equal(mail.text?.trim(), 'gesendet mit postbote send');
  });
});
