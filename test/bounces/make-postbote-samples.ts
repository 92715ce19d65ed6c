/**
 * Writes the Postbote DSN samples of the bounce corpus (test/bounces/samples/postbote-*.eml)
 * with the delivery engine's own builder (src/delivery/dsn.ts), the way dsn-sender.ts calls it:
 * what our own bounces look like when a Postbote relay sits between a customer and us.
 *
 *   node test/bounces/make-postbote-samples.ts
 *
 * Deterministic (fixed clock and Message-IDs): running it again gives the same bytes.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuildDsnOptions, buildDsn } from '../../src/delivery/dsn.ts';

const OUT = join(import.meta.dirname, 'samples');
const now = new Date('2026-11-03T12:30:00Z');

function original(
  to: string,
  subject: string,
  id: string,
  body = 'Hello,\r\n\r\nyour order has shipped.\r\n',
): Buffer {
  return Buffer.from(
    'Return-Path: <b+K5D9WQ2ZC7RM@pb-bounces.shop.test>\r\n' +
      'Received: from app.shop.test (app.shop.test [192.0.2.10]) by relay.postbote.test with ESMTPSA\r\n' +
      `From: Shop <orders@shop.test>\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${id}>\r\n` +
      'Date: Tue, 03 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n' +
      `Content-Transfer-Encoding: 8bit\r\n\r\n${body}`,
    'utf8',
  );
}

const base = {
  reportingMta: 'relay.postbote.test',
  postmaster: 'postmaster@relay.postbote.test',
  arrivalDate: new Date('2026-11-03T12:00:01Z'),
  originalMailFrom: 'b+K5D9WQ2ZC7RM@pb-bounces.shop.test',
  now,
} satisfies Partial<BuildDsnOptions>;

const samples: Record<string, BuildDsnOptions> = {
  'postbote-nxdomain': {
    ...base,
    originalMessage: original('ann@nosuch-domain.example', 'Welcome', 'nx.1@shop.test'),
    recipients: [
      {
        address: 'ann@nosuch-domain.example',
        action: 'failed',
        status: '5.1.2',
        diagnosticCode: 'smtp; 550 5.1.2 nosuch-domain.example does not exist (DNS answered NXDOMAIN)',
        lastAttemptDate: now,
      },
    ],
    messageId: 'nx.dsn@relay.postbote.test',
  },
  'postbote-null-mx': {
    ...base,
    originalMessage: original('info@parked.example', 'Welcome', 'nullmx.1@shop.test'),
    recipients: [
      {
        address: 'info@parked.example',
        action: 'failed',
        status: '5.1.10',
        diagnosticCode: 'smtp; 556 5.1.10 parked.example publishes a null MX (RFC 7505): it accepts no mail',
      },
    ],
    messageId: 'nullmx.dsn@relay.postbote.test',
  },
  'postbote-expired-full': {
    ...base,
    ret: 'FULL',
    originalEnvelopeId: 'order-4711',
    originalMessage: original(
      'max@slow.example',
      'Ihre Bestellung',
      'exp.1@shop.test',
      'Grüße aus dem Shop.\r\n',
    ),
    recipients: [
      {
        address: 'max@slow.example',
        originalRecipient: 'rfc822;max@slow.example',
        action: 'failed',
        status: '4.4.7',
        remoteMta: 'mx.slow.example',
        diagnosticCode:
          'smtp; 421 4.4.2 conversation with mx.slow.example[198.51.100.7]:25 timed out (Greeting never received)',
        lastAttemptDate: now,
      },
    ],
    messageId: 'exp.dsn@relay.postbote.test',
  },
  'postbote-gmail-multi': {
    ...base,
    originalMessage: original(
      'a.person@gmail.example, full.person@gmail.example',
      'Invoice',
      'multi.1@shop.test',
    ),
    recipients: [
      {
        address: 'a.person@gmail.example',
        action: 'failed',
        status: '5.1.1',
        remoteMta: 'gmail-smtp-in.l.google.example',
        diagnosticCode:
          "smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. For more information, go to 550 5.1.1 https://support.google.example/mail/?p=NoSuchUser a1si123 - gsmtp",
      },
      {
        address: 'full.person@gmail.example',
        originalRecipient: 'rfc822;Full.Person+2Binvoices@gmail.example',
        action: 'failed',
        status: '4.2.2',
        remoteMta: 'gmail-smtp-in.l.google.example',
        diagnosticCode:
          "smtp; 452-4.2.2 The recipient's inbox is out of storage space. Please direct the 452-4.2.2 recipient to 452 4.2.2 https://support.google.example/mail/?p=OverQuotaTemp b2si456 - gsmtp",
      },
    ],
    messageId: 'multi.dsn@relay.postbote.test',
  },
  'postbote-dmarc': {
    ...base,
    originalMessage: original('someone@outlook.example', 'Newsletter', 'dmarc.1@shop.test'),
    recipients: [
      {
        address: 'someone@outlook.example',
        action: 'failed',
        status: '5.7.509',
        remoteMta: 'outlook-com.olc.protection.outlook.example',
        diagnosticCode:
          'smtp; 550 5.7.509 Access denied, sending domain shop.test does not pass DMARC verification and has a DMARC policy of reject.',
      },
    ],
    messageId: 'dmarc.dsn@relay.postbote.test',
  },
};

for (const [name, options] of Object.entries(samples)) {
  writeFileSync(join(OUT, `${name}.eml`), buildDsn(options));
  process.stdout.write(`wrote ${name}.eml\n`);
}
