/**
 * CPU cost of DKIM signing (src/domains/dkim-sign.ts) per message of ~3 KB: RSA-2048 alone,
 * Ed25519 alone, both (dual signing), and RSA-4096 for comparison; plus the pieces a signature
 * is made of (PEM parsing, the bare private-key operation) to show where the time goes.
 *
 *   node bench/dkim-sign.ts [--messages 2000] [--rounds 5]
 *
 * Signing runs on the calling thread (mailauth calls the synchronous crypto.sign), one message
 * after another. Prints the median of the rounds in µs per message. Not part of `npm test`.
 */
import { createHash, createPrivateKey, sign } from 'node:crypto';
import { parseArgs } from 'node:util';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { type DkimKey, generateDkimKey } from '../src/domains/dkim-keys.ts';
import { signMessage } from '../src/domains/dkim-sign.ts';
import { machineLines, out } from './lib/report.ts';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '5' },
  },
});
const messages = Number(values.messages);
const rounds = Number(values.rounds);

const paragraph =
  'Thank you for shopping with us. We packed your parcel this morning and handed it to the ' +
  'carrier, who expects to deliver it within two working days. You can follow it with the link below.';

/** A newsletter of about 3 KB with the fields a bulk sender sets, different for every `i`. */
function message(i: number): Buffer {
  const text = Array.from({ length: 6 }, () => paragraph).join('\r\n\r\n');
  const html = `<html><body>${Array.from({ length: 6 }, () => `<p>${paragraph}</p>`).join('\r\n')}</body></html>`;
  return Buffer.from(
    [
      'From: Example Shop <news@shop.example.com>',
      `To: Customer${i} <customer${i}@example.org>`,
      'Reply-To: support@shop.example.com',
      `Subject: Your order ${100000 + i} has shipped`,
      'Date: Tue, 03 Nov 2026 10:00:00 +0000',
      `Message-ID: <${i}.bench@relay.example.net>`,
      `List-Unsubscribe: <https://shop.example.com/u/${i}>, <mailto:unsubscribe@shop.example.com?subject=${i}>`,
      'List-Unsubscribe-Post: List-Unsubscribe=One-Click',
      'Feedback-ID: order-shipped:shop:postbote',
      'MIME-Version: 1.0',
      'Content-Type: multipart/alternative; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain; charset=utf-8',
      '',
      text,
      '--b1',
      'Content-Type: text/html; charset=utf-8',
      '',
      html,
      '--b1--',
      '',
    ].join('\r\n'),
  );
}

interface Figure {
  /** Elapsed µs per message. */
  wall: number;
  /** CPU µs per message (user + system of the process). */
  cpu: number;
}

function median(list: number[]): number {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

type Run = (i: number) => Promise<number> | number;

/**
 * Median µs per call of each variant over the rounds, after a warm-up round. The variants
 * take turns within each round, so load from other processes on a shared machine falls on
 * all of them alike instead of on whichever ran at the wrong moment.
 */
async function measure(variants: Run[]): Promise<Figure[]> {
  let sink = 0;
  for (const run of variants) for (let i = 0; i < messages; i++) sink += await run(i);
  const wall: number[][] = variants.map(() => []);
  const cpu: number[][] = variants.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [v, run] of variants.entries()) {
      const start = process.hrtime.bigint();
      const cpuStart = process.cpuUsage();
      for (let i = 0; i < messages; i++) sink += await run(i);
      const used = process.cpuUsage(cpuStart);
      wall[v]!.push(Number(process.hrtime.bigint() - start) / 1000 / messages);
      cpu[v]!.push((used.user + used.system) / messages);
    }
  }
  if (sink === 0) throw new Error('nothing was produced');
  return variants.map((_, v) => ({ wall: median(wall[v]!), cpu: median(cpu[v]!) }));
}

const show = (label: string, figure: Figure, perMessage = true): void =>
  out(
    `  ${label.padEnd(38)} ${figure.wall.toFixed(0).padStart(6)} µs elapsed ${figure.cpu.toFixed(0).padStart(6)} µs CPU` +
      (perMessage ? `   → ${Math.round(1e6 / figure.cpu).toLocaleString('en-US')} messages/s per core` : ''),
  );

const now = new Date();
const rsa = await generateDkimKey('rsa', { now });
const rsa4096 = await generateDkimKey('rsa', { bits: 4096, now });
const ed25519 = await generateDkimKey('ed25519', { now });
const inputs = Array.from({ length: 100 }, (_, i) => message(i));
const key = (k: DkimKey) => ({ domain: 'shop.example.com', ...k });

for (const line of machineLines(`node ${process.version}, OpenSSL ${process.versions.openssl}`)) out(line);
out(`run       ${messages} messages per round, median of ${rounds} rounds after one warm-up round`);
out(`message   ${inputs[0]!.length} bytes, CRLF, 11 header fields (10 signed)`);
out();
const rsaKey = createPrivateKey(rsa.privateKeyPem);
const edKey = createPrivateKey(ed25519.privateKeyPem);
const digest = createHash('sha256').update('x').digest();
const input = (i: number) => inputs[i % inputs.length]!;

const signing: [string, Run][] = [
  ['RSA-2048', async (i) => (await signMessage(input(i), [key(rsa)])).length],
  ['Ed25519', async (i) => (await signMessage(input(i), [key(ed25519)])).length],
  ['RSA-2048 + Ed25519 (dual)', async (i) => (await signMessage(input(i), [key(rsa), key(ed25519)])).length],
  ['RSA-4096', async (i) => (await signMessage(input(i), [key(rsa4096)])).length],
  [
    'mailauth dkimSign alone, RSA-2048',
    async (i) =>
      (
        await dkimSign(input(i), {
          canonicalization: 'relaxed/relaxed',
          signatureData: [
            { signingDomain: 'shop.example.com', selector: rsa.selector, privateKey: rsa.privateKeyPem },
          ],
          // mailauth's bundled types declare other (ignored) options; signatureData is what it reads.
        } as unknown as Parameters<typeof dkimSign>[1])
      ).signatures.length,
  ],
];
const pieces: [string, Run][] = [
  ['RSA-2048 PEM → KeyObject', () => createPrivateKey(rsa.privateKeyPem).type.length],
  ['Ed25519 PEM → KeyObject', () => createPrivateKey(ed25519.privateKeyPem).type.length],
  ['RSA-2048 sign, KeyObject reused', () => sign('sha256', digest, rsaKey).length],
  // What mailauth does: it parses the PEM for every message and accepts no KeyObject. OpenSSL
  // then redoes its per-key precomputation (Montgomery contexts, blinding) every time.
  [
    'RSA-2048 sign, key parsed every time',
    () => sign('sha256', digest, createPrivateKey(rsa.privateKeyPem)).length,
  ],
  ['Ed25519 sign, KeyObject reused', () => sign(null, digest, edKey).length],
  [
    'Ed25519 sign, key parsed every time',
    () => sign(null, digest, createPrivateKey(ed25519.privateKeyPem)).length,
  ],
];

const signingFigures = await measure(signing.map(([, run]) => run));
const pieceFigures = await measure(pieces.map(([, run]) => run));
out('signMessage (src/domains/dkim-sign.ts), per message; last line for comparison:');
for (const [v, [label]] of signing.entries()) show(label, signingFigures[v]!);
out();
out('what a signature is made of, per call:');
for (const [v, [label]] of pieces.entries()) show(label, pieceFigures[v]!, false);
