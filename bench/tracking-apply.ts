/**
 * The tracking step alone: `tracker.apply` over one message of R personalised copies composed
 * like bench/api-batch.ts's (three links, the unsubscribe placeholder, quoted-printable HTML),
 * repeated, in this process with no store and no HTTP. Prints CPU µs per recipient, the figure
 * bench/README.md "Tracking cost" compares.
 *
 *   node bench/tracking-apply.ts [--recipients 1000] [--rounds 20]
 *   node --cpu-prof bench/tracking-apply.ts      # then bench/cpuprofile-summary.ts
 */
import { parseArgs } from 'node:util';
import { composeMessage } from '../src/intake/compose.ts';
import type { NewRecipient } from '../src/store/types.ts';
import { createTrackingHosts } from '../src/tracking/hosts.ts';
import { trackingKey } from '../src/tracking/token.ts';
import { createTracker } from '../src/tracking/tracker.ts';

const { values: args } = parseArgs({
  options: {
    recipients: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '20' },
  },
});
const RECIPIENTS = Number(args.recipients);
const ROUNDS = Number(args.rounds);

const tracker = createTracker({
  streams: { get: async () => undefined },
  hosts: createTrackingHosts({
    store: { listDomains: async () => [] } as never,
    clock: () => 0,
    scheme: 'https',
  }),
  key: trackingKey(Buffer.alloc(32, 1)),
  publicUrl: () => 'http://127.0.0.1:8025',
});

const copies = Array.from({ length: RECIPIENTS }, (_, i) => {
  const code = `C1-${i}`;
  return composeMessage({
    from: { address: 'news@bench.test', name: 'Bench News' },
    to: [{ address: `user1-${i}@sink.test`, name: `User ${i}` }],
    cc: [],
    replyTo: [],
    subject: `Hello First${i}, your code ${code}`,
    text: `Hi First${i},\n\nyou have ${i * 7} points. Your code is ${code}.\n\n${'Lorem ipsum dolor sit amet. '.repeat(20)}`,
    html:
      `<html><body><h1>Hi First${i}</h1><p>You have <b>${i * 7}</b> points.</p><p>Your code: ${code}</p>` +
      '<p>Lorem ipsum dolor sit amet. </p>'.repeat(20) +
      `<p><a href="https://shop.bench.test/offers?code=${code}">Offers</a> · ` +
      '<a href="https://shop.bench.test/account">Account</a> · <a href="https://blog.bench.test/">Blog</a></p>' +
      '<p><a href="{{unsubscribe_url}}">Unsubscribe</a></p></body></html>',
    attachments: [],
    headers: [],
    date: new Date('2026-11-28T12:00:00Z'),
    messageId: `<m${i}@bench.test>`,
  });
});

const once = () => {
  const recipients: NewRecipient[] = copies.map((_, i) => ({
    address: `user1-${i}@sink.test`,
    domain: 'sink.test',
    variant: i + 1,
  }));
  return tracker.apply({
    accountId: 'bench',
    messageId: '01jd5x3k0f8n2pq4r6st',
    stream: { name: 'broadcast', kind: 'broadcast' },
    recipients,
    body: Buffer.alloc(0),
    variants: copies,
  });
};

for (let i = 0; i < 5; i++) await once(); // warm-up
const cpu = process.cpuUsage();
const started = performance.now();
let bytes = 0;
for (let i = 0; i < ROUNDS; i++) bytes = (await once())?.variants.reduce((n, v) => n + v.length, 0) ?? 0;
const used = process.cpuUsage(cpu);
const wall = performance.now() - started;
const per = (micros: number) => (micros / ROUNDS / RECIPIENTS).toFixed(1);
process.stdout.write(
  `tracker.apply: ${RECIPIENTS} personalised copies × ${ROUNDS} rounds; ` +
    `${per(used.user + used.system)} µs CPU and ${per(wall * 1000)} µs wall per recipient; ` +
    `${Math.round(bytes / RECIPIENTS)} bytes per copy\n`,
);
