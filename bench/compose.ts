/**
 * CPU cost per recipient of a personalised batch send, before storage: rendering the
 * templates (src/templates/render.ts) and composing the RFC 5322 bytes (src/intake/compose.ts).
 * The message is typical of the batch API: a subject, ~1 KB of text, ~2 KB of HTML, three
 * custom headers, no attachments, variables different for every recipient.
 *
 *   node bench/compose.ts [--messages 20000] [--rounds 5]
 *
 * Prints the median of the rounds in µs per message. Not part of `npm test`.
 */
import { parseArgs } from 'node:util';
import { type ComposeInput, composeMessage } from '../src/intake/compose.ts';
import { renderTemplate, type TemplateSource } from '../src/templates/render.ts';
import { machineLines, out } from './lib/report.ts';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '5' },
  },
});
const messages = Number(values.messages);
const rounds = Number(values.rounds);

const paragraph =
  'Thank you for shopping with us. We packed your parcel this morning and handed it to the carrier, ' +
  'who expects to deliver it within two working days. You can follow it with the link below.';

function source(accent: string): TemplateSource {
  return {
    name: 'order-shipped',
    version: 3,
    subject: `Your order {{order.id}} has shipped, {{first_name}}${accent}`,
    text: [
      `Hello {{first_name}}${accent},`,
      '',
      paragraph,
      paragraph,
      'Order {{order.id}}:',
      '{{#each order.items}}  - {{title}} x {{qty}}',
      '{{/each}}',
      'Track it: {{tracking_url}}',
      paragraph,
      paragraph,
      'Unsubscribe: {{unsubscribe_url}}',
    ].join('\n'),
    html: [
      '<!doctype html><html><head><meta charset="utf-8"><title>Your order has shipped</title></head>',
      '<body style="font-family: Helvetica, Arial, sans-serif; color: #222222; background: #ffffff;">',
      `<h1 style="font-size: 20px; margin: 0 0 12px 0;">Hello {{first_name}}${accent},</h1>`,
      `<p style="line-height: 1.5;">${paragraph}</p>`,
      `<p style="line-height: 1.5;">${paragraph}</p>`,
      '<table role="presentation" style="border-collapse: collapse; width: 100%;">',
      '{{#each order.items}}<tr><td style="padding: 4px 8px;">{{title}}</td><td style="padding: 4px 8px;">{{qty}}</td></tr>{{/each}}',
      '</table>',
      '<p><a href="{{tracking_url}}" style="color: #0b57d0;">Track your parcel</a></p>',
      `<p style="line-height: 1.5;">${paragraph}</p>`,
      `<p style="line-height: 1.5;">${paragraph}</p>`,
      `<p style="line-height: 1.5;">${paragraph}</p>`,
      '<p style="font-size: 12px; color: #777777;"><a href="{{unsubscribe_url}}">Unsubscribe</a></p>',
      '</body></html>',
    ].join('\n'),
  };
}

function variables(i: number): Record<string, unknown> {
  return {
    first_name: `Customer${i}`,
    order: {
      id: 100000 + i,
      items: [
        { title: 'Ceramic mug', qty: 2 },
        { title: 'Green tea, 100 g', qty: 1 },
        { title: 'Tea strainer', qty: 1 },
      ],
    },
    tracking_url: `https://track.example.com/p/${i}?ref=mail`,
    unsubscribe_url: `https://example.com/u/${i}`,
  };
}

function composeInput(rendered: { subject: string; html: string; text: string }, i: number): ComposeInput {
  return {
    from: { address: 'orders@shop.example.com', name: 'Example Shop' },
    to: [{ address: `customer${i}@example.org`, name: `Customer${i} Doe` }],
    cc: [],
    replyTo: [{ address: 'support@shop.example.com' }],
    subject: rendered.subject,
    text: rendered.text,
    html: rendered.html,
    attachments: [],
    headers: [
      [
        'List-Unsubscribe',
        `<https://example.com/u/${i}>, <mailto:unsubscribe@shop.example.com?subject=${i}>`,
      ],
      ['List-Unsubscribe-Post', 'List-Unsubscribe=One-Click'],
      ['X-Campaign', 'order-shipped'],
    ],
    date: new Date(),
    messageId: `<${i}.bench@relay.example.net>`,
  };
}

interface Figure {
  /** Elapsed µs per message. */
  wall: number;
  /** CPU µs per message (user + system, GC threads included): steadier on a shared machine. */
  cpu: number;
}

/** Median µs per call of `run` over the rounds, after a warm-up round. */
function measure(run: (i: number) => number): Figure {
  let sink = 0;
  for (let i = 0; i < messages; i++) sink += run(i);
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    const cpuStart = process.cpuUsage();
    for (let i = 0; i < messages; i++) sink += run(i);
    const used = process.cpuUsage(cpuStart);
    wall.push(Number(process.hrtime.bigint() - start) / 1000 / messages);
    cpu.push((used.user + used.system) / messages);
  }
  if (sink === 0) throw new Error('nothing was produced');
  return { wall: median(wall), cpu: median(cpu) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const show = (label: string, figure: Figure): void =>
  out(
    `  ${label.padEnd(8)} ${figure.wall.toFixed(1).padStart(6)} µs/message elapsed, ${figure.cpu.toFixed(1).padStart(6)} µs CPU`,
  );

for (const line of machineLines(`node ${process.version}`)) out(line);
out(`run       ${messages} messages per round, median of ${rounds} rounds after one warm-up round`);
out();

for (const [label, accent] of [
  ['ASCII', ''],
  ['non-ASCII', ' – schön, dass du da bist 🎉'],
] as const) {
  const template = source(accent);
  const rendered = Array.from({ length: 1000 }, (_, i) => renderTemplate(template, variables(i)));
  const sample = composeMessage(composeInput(rendered[0]!, 0));
  const render = measure((i) => renderTemplate(template, variables(i)).html.length);
  const compose = measure((i) => composeMessage(composeInput(rendered[i % 1000]!, i)).length);
  const both = measure((i) => composeMessage(composeInput(renderTemplate(template, variables(i)), i)).length);
  out(
    `${label} message (${sample.length} bytes composed; text ${rendered[0]!.text.length} chars, html ${rendered[0]!.html.length} chars)`,
  );
  show('render', render);
  show('compose', compose);
  show('both', both);
  out(
    `  → ${Math.round(1e6 / both.cpu).toLocaleString('en-US')} messages/s per core of CPU for rendering + composing`,
  );
}
