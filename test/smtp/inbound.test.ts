/**
 * The inbound MX on a real listener: it takes bounces to our VERP return paths and reports to
 * our feedback addresses, refuses everything else with 550 5.7.1 (never an open relay), and
 * hands each message to the bounce pipeline before answering.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { ParsedReport } from '../../src/bounces/parse.ts';
import { verpAddress } from '../../src/bounces/verp.ts';
import {
  type InboundMx,
  type InboundReport,
  type InboundUnsubscribe,
  inboundHandlers,
  reportReceiver,
  startInboundMx,
} from '../../src/smtp/inbound.ts';
import type { SmtpLogger } from '../../src/smtp/server/types.ts';
import { mailtoAddress } from '../../src/tracking/mailto.ts';
import { trackingKey } from '../../src/tracking/token.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { testSecureContext } from '../support/smtp-test-server.ts';

const secret = Buffer.alloc(32, 9);
const RETURN_PATHS = new Set(['bounces.shop.example', 'bounces.news.example']);
const SIZE_LIMIT = 4096;

interface LogLine {
  level: string;
  obj: object;
  msg: string | undefined;
}

function recordingLogger(lines: LogLine[]): SmtpLogger {
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj, msg });
    };
  return { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') };
}

describe('inbound MX', () => {
  let mx: InboundMx;
  const reports: InboundReport[] = [];
  const logs: LogLine[] = [];
  let failNext: Error | undefined;

  before(async () => {
    const logger = recordingLogger(logs);
    mx = await startInboundMx({
      listen: { host: '127.0.0.1', port: 0 },
      hostname: 'mx.postbote.test',
      sizeLimit: SIZE_LIMIT,
      greetingDelayMs: 1,
      logger,
      handlers: inboundHandlers({
        isOurReturnPath: (domain) => RETURN_PATHS.has(domain),
        feedbackAddresses: new Set(['FBL@Postbote.Example']),
        secret,
        logger,
        async onReport(input) {
          if (failNext) {
            const err = failNext;
            failNext = undefined;
            throw err;
          }
          reports.push(input);
        },
      }),
    });
  });

  after(() => mx.close());

  beforeEach(() => {
    reports.length = 0;
    logs.length = 0;
  });

  async function client(): Promise<SmtpTestClient> {
    const c = await SmtpTestClient.connect(mx.address.port);
    assert.equal((await c.hello('mta.remote.example')).code, 250);
    return c;
  }

  async function rcpt(address: string, from = ''): Promise<{ code: number; enhanced?: string }> {
    const c = await client();
    try {
      assert.equal((await c.command(`MAIL FROM:<${from}>`)).code, 250);
      return await c.command(`RCPT TO:<${address}>`);
    } finally {
      c.close();
    }
  }

  it('accepts a bounce from <> to a valid VERP address, in any case', async () => {
    const address = verpAddress(4711, 'bounces.shop.example', secret);
    assert.equal((await rcpt(address)).code, 250);
    assert.equal((await rcpt(address.toUpperCase())).code, 250);
  });

  it('refuses a tampered token, a token of another domain, and unknown local parts with 550 5.7.1', async () => {
    const address = verpAddress(4711, 'bounces.shop.example', secret);
    const tampered = address.replace(/-(.)/, (_, c: string) => `-${c === 'a' ? 'b' : 'a'}`);
    const moved = address.replace('bounces.shop.example', 'bounces.news.example');
    const forged = verpAddress(4711, 'bounces.shop.example', Buffer.alloc(32, 1));
    for (const to of [
      tampered,
      moved,
      forged,
      'b+1-aaaaaaaaaa@bounces.shop.example',
      'postmaster@bounces.shop.example',
      'fbl@bounces.shop.example',
      'Postmaster',
    ]) {
      const r = await rcpt(to);
      assert.equal(r.code, 550, to);
      assert.equal(r.enhanced, '5.7.1', to);
    }
  });

  it('is not an open relay: mail for other domains is refused, even with a valid-looking token', async () => {
    const local = verpAddress(1, 'bounces.shop.example', secret).split('@')[0];
    // A genuine token for a domain that is not one of our return paths (say, one removed since).
    const genuineElsewhere = verpAddress(1, 'gmail.example', secret);
    for (const to of [
      'victim@gmail.example',
      genuineElsewhere,
      `${local}@gmail.example`,
      `${local}@bounces.shop.example.evil`,
    ]) {
      const r = await rcpt(to, 'spammer@evil.example');
      assert.equal(r.code, 550, to);
      assert.equal(r.enhanced, '5.7.1', to);
    }
    const c = await client();
    try {
      await c.command('MAIL FROM:<spammer@evil.example>');
      assert.equal((await c.command('RCPT TO:<victim@gmail.example>')).code, 550);
      assert.equal((await c.command('DATA')).code, 554, 'no accepted recipient, no DATA');
    } finally {
      c.close();
    }
    assert.equal(reports.length, 0);
  });

  it('accepts the feedback address exactly, ignoring case', async () => {
    assert.equal((await rcpt('fbl@postbote.example')).code, 250);
    assert.equal((await rcpt('FBL@POSTBOTE.EXAMPLE', 'feedback@isp.example')).code, 250);
    assert.equal((await rcpt('fbl+x@postbote.example')).code, 550);
    assert.equal((await rcpt('xfbl@postbote.example')).code, 550);
  });

  it('hands the recipient ids, the addresses and the exact bytes to onReport, then answers 250', async () => {
    const a = verpAddress(101, 'bounces.shop.example', secret);
    const b = verpAddress(202, 'bounces.news.example', secret);
    const c = await client();
    try {
      await c.command('MAIL FROM:<>');
      for (const to of [a, b, a.toUpperCase(), 'fbl@postbote.example']) {
        assert.equal((await c.command(`RCPT TO:<${to}>`)).code, 250, to);
      }
      assert.equal((await c.command('DATA')).code, 354);
      const body =
        'From: MAILER-DAEMON@remote.example\r\nSubject: Undelivered\r\n\r\n..a dot-stuffed line\r\n\u00e9\r\n';
      const r = await c.command(`${body}.`);
      assert.equal(r.code, 250);
      assert.equal(reports.length, 1);
      const report = reports[0]!;
      assert.deepEqual(report.recipientIds, [101, 202]);
      assert.deepEqual(report.to, [a, b, a.toUpperCase(), 'fbl@postbote.example']);
      assert.equal(report.clientIp, '127.0.0.1');
      assert.deepEqual(
        report.raw,
        Buffer.from(
          'From: MAILER-DAEMON@remote.example\r\nSubject: Undelivered\r\n\r\n.a dot-stuffed line\r\n\u00e9\r\n',
          'latin1',
        ),
      );
    } finally {
      c.close();
    }
  });

  it('answers 451 when onReport fails, so the sender retries, and keeps serving', async () => {
    const c = await client();
    try {
      failNext = new Error('store unavailable');
      await c.sendSmallMessage('', verpAddress(7, 'bounces.shop.example', secret));
      const r = await c.read();
      assert.equal(r.code, 451);
      assert.equal(r.enhanced, '4.3.0');
      assert.equal(reports.length, 0);
      assert.ok(logs.some((l) => l.level === 'error'));
      await c.sendSmallMessage('', verpAddress(7, 'bounces.shop.example', secret));
      assert.equal((await c.read()).code, 250);
      assert.deepEqual(reports[0]?.recipientIds, [7]);
    } finally {
      c.close();
    }
  });

  it('takes at most 50 recipients per transaction', async () => {
    const c = await client();
    try {
      await c.command('MAIL FROM:<>');
      for (let i = 0; i < 50; i++) {
        c.send(`RCPT TO:<${verpAddress(i, 'bounces.shop.example', secret)}>`);
      }
      const accepted = await c.readMany(50);
      assert.ok(accepted.every((r) => r.code === 250));
      const r = await c.command(`RCPT TO:<${verpAddress(50, 'bounces.shop.example', secret)}>`);
      assert.equal(r.code, 452);
      assert.equal(r.enhanced, '4.5.3');
    } finally {
      c.close();
    }
  });

  it('refuses a message over the size limit without calling onReport', async () => {
    const c = await client();
    try {
      await c.command('MAIL FROM:<>');
      await c.command(`RCPT TO:<${verpAddress(3, 'bounces.shop.example', secret)}>`);
      await c.command('DATA');
      const line = `${'x'.repeat(998)}\r\n`;
      const r = await c.command(`${line.repeat(Math.ceil(SIZE_LIMIT / line.length) + 1)}.`);
      assert.equal(r.code, 552);
      assert.equal(r.enhanced, '5.3.4');
      assert.equal(reports.length, 0);
      const declared = await c.command(`MAIL FROM:<> SIZE=${SIZE_LIMIT + 1}`);
      assert.equal(declared.code, 552);
    } finally {
      c.close();
    }
  });

  it('offers no AUTH and no STARTTLS without a certificate', async () => {
    const c = await SmtpTestClient.connect(mx.address.port);
    try {
      const ehlo = await c.hello();
      assert.ok(!ehlo.lines.some((l) => l.startsWith('AUTH')));
      assert.ok(!ehlo.lines.includes('STARTTLS'));
      assert.ok(ehlo.lines.includes(`SIZE ${SIZE_LIMIT}`));
      assert.equal((await c.command(`AUTH PLAIN ${Buffer.from('\0a\0b').toString('base64')}`)).code, 503);
    } finally {
      c.close();
    }
  });

  it('survives garbage and keeps serving other clients', async () => {
    const garbage = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.from('EHLO x\r\nMAIL FROM:<<<>>>\r\nRCPT TO:<@a,@b:c@d>\r\nRCPT TO:<\u0000>\r\nDATA\r\n'),
      Buffer.from(`EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<${'b+'.repeat(3000)}@bounces.shop.example>\r\n`),
      Buffer.from([0xff, 0xfe, 0x00, 0x0d, 0x0a, 0x16, 0x03, 0x01, 0x02, 0x00, 0x0d, 0x0a]),
      Buffer.from(`${'A'.repeat(70_000)}\r\nQUIT\r\n`),
      Buffer.from('EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<"b+1-aaaaaaaaaa"@bounces.shop.example>\r\n'),
    ];
    for (const bytes of garbage) {
      const c = await SmtpTestClient.connect(mx.address.port);
      await c.read(); // greeting
      c.write(bytes);
      c.socket.end();
      await c.waitClosed(3000);
    }
    // A client that drops the connection in the middle of DATA.
    const dropped = await client();
    await dropped.command('MAIL FROM:<>');
    await dropped.command(`RCPT TO:<${verpAddress(9, 'bounces.shop.example', secret)}>`);
    await dropped.command('DATA');
    dropped.write('Subject: half\r\n');
    dropped.close();

    assert.equal(reports.length, 0);
    const c = await client();
    try {
      await c.sendSmallMessage('', verpAddress(9, 'bounces.shop.example', secret));
      assert.equal((await c.read()).code, 250);
      assert.deepEqual(reports[0]?.recipientIds, [9]);
    } finally {
      c.close();
    }
  });
});

describe('inbound MX: unsubscribe mail (List-Unsubscribe mailto:)', () => {
  const key = trackingKey(secret);
  const MESSAGE = '01jd5x3k0f8n2pq4r6st';
  let mx: InboundMx;
  const unsubscribes: InboundUnsubscribe[] = [];
  const reports: InboundReport[] = [];
  let failNext: Error | undefined;

  before(async () => {
    const logger = recordingLogger([]);
    mx = await startInboundMx({
      listen: { host: '127.0.0.1', port: 0 },
      hostname: 'mx.postbote.test',
      sizeLimit: SIZE_LIMIT,
      greetingDelayMs: 1,
      logger,
      handlers: inboundHandlers({
        isOurReturnPath: (domain) => RETURN_PATHS.has(domain),
        feedbackAddresses: new Set(),
        secret,
        logger,
        onReport: async (input) => {
          reports.push(input);
        },
        unsubscribe: {
          key,
          async onUnsubscribe(input) {
            if (failNext) {
              const err = failNext;
              failNext = undefined;
              throw err;
            }
            unsubscribes.push(input);
          },
        },
      }),
    });
  });

  after(() => mx.close());

  beforeEach(() => {
    unsubscribes.length = 0;
    reports.length = 0;
  });

  /** One message from a mailbox provider to `to`, with the reply to the end of DATA. */
  async function mail(to: string[]): Promise<{ rcpt: number[]; data: number }> {
    const c = await SmtpTestClient.connect(mx.address.port);
    try {
      await c.hello('mta.gmail.example');
      await c.command('MAIL FROM:<reader@gmail.example>');
      const rcpt: number[] = [];
      for (const address of to) rcpt.push((await c.command(`RCPT TO:<${address}>`)).code);
      if (!rcpt.includes(250)) return { rcpt, data: 0 };
      assert.equal((await c.command('DATA')).code, 354);
      const r = await c.command('From: reader@gmail.example\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n.');
      return { rcpt, data: r.code };
    } finally {
      c.close();
    }
  }

  it('accepts a valid unsubscribe address (any case) and records it, not as a report, answered 250', async () => {
    const address = mailtoAddress({ messageId: MESSAGE, recipient: 3 }, 'bounces.shop.example', key);
    assert.deepEqual(await mail([address.toUpperCase()]), { rcpt: [250], data: 250 });
    assert.deepEqual(unsubscribes, [
      { token: { messageId: MESSAGE, recipient: 3 }, address: address.toUpperCase(), clientIp: '127.0.0.1' },
    ]);
    assert.equal(reports.length, 0);
  });

  it('refuses tampered, foreign-domain, foreign-key and unknown u+ addresses with 550', async () => {
    const address = mailtoAddress({ messageId: MESSAGE, recipient: 3 }, 'bounces.shop.example', key);
    const tampered = address.replace(/-3-(.)/, (_, c: string) => `-3-${c === 'a' ? 'b' : 'a'}`);
    for (const to of [
      tampered,
      address.replace('-3-', '-4-'),
      address.replace('bounces.shop.example', 'bounces.news.example'),
      address.replace('bounces.shop.example', 'gmail.example'),
      mailtoAddress({ messageId: MESSAGE, recipient: 3 }, 'gmail.example', key),
      mailtoAddress(
        { messageId: MESSAGE, recipient: 3 },
        'bounces.shop.example',
        trackingKey(Buffer.alloc(32, 1)),
      ),
      `u+${MESSAGE}-3-aaaaaaaaaaaa@bounces.shop.example`,
      'u+@bounces.shop.example',
    ]) {
      assert.deepEqual((await mail([to])).rcpt, [550], to);
    }
    assert.equal(unsubscribes.length, 0);
  });

  it('records each recipient once however often it is named; a bounce in the same transaction still reaches onReport', async () => {
    const a = mailtoAddress({ messageId: MESSAGE, recipient: 1 }, 'bounces.shop.example', key);
    const b = mailtoAddress({ messageId: MESSAGE, recipient: 2 }, 'bounces.news.example', key);
    const verp = verpAddress(77, 'bounces.shop.example', secret);
    assert.deepEqual(await mail([a, a.toUpperCase(), b, verp]), { rcpt: [250, 250, 250, 250], data: 250 });
    assert.deepEqual(
      unsubscribes.map((u) => u.token.recipient),
      [1, 2],
    );
    assert.equal(reports.length, 1);
    assert.deepEqual(reports[0]?.recipientIds, [77]);
    assert.deepEqual(reports[0]?.to, [verp]);
  });

  it('answers 451 when the unsubscribe could not be recorded, so the sender retries', async () => {
    const address = mailtoAddress({ messageId: MESSAGE, recipient: 9 }, 'bounces.shop.example', key);
    failNext = new Error('store unavailable');
    assert.deepEqual(await mail([address]), { rcpt: [250], data: 451 });
    assert.deepEqual(await mail([address]), { rcpt: [250], data: 250 });
    assert.equal(unsubscribes.length, 1);
  });

  it('without the unsubscribe handler, u+ addresses are refused like any unknown address', async () => {
    const logger = recordingLogger([]);
    const plain = await startInboundMx({
      listen: { host: '127.0.0.1', port: 0 },
      hostname: 'mx.postbote.test',
      sizeLimit: SIZE_LIMIT,
      greetingDelayMs: 1,
      handlers: inboundHandlers({
        isOurReturnPath: (domain) => RETURN_PATHS.has(domain),
        feedbackAddresses: new Set(),
        secret,
        logger,
        onReport: async () => {},
      }),
    });
    try {
      const c = await SmtpTestClient.connect(plain.address.port);
      try {
        await c.hello('mta.gmail.example');
        await c.command('MAIL FROM:<reader@gmail.example>');
        const address = mailtoAddress({ messageId: MESSAGE, recipient: 3 }, 'bounces.shop.example', key);
        assert.equal((await c.command(`RCPT TO:<${address}>`)).code, 550);
      } finally {
        c.close();
      }
    } finally {
      await plain.close();
    }
  });
});

describe('inbound MX listener', () => {
  const handlers = inboundHandlers({
    isOurReturnPath: () => true,
    feedbackAddresses: new Set(),
    secret,
    logger: recordingLogger([]),
    onReport: async () => {},
  });

  it('cuts off a client that talks before the greeting', async () => {
    const mx = await startInboundMx({
      listen: { host: '127.0.0.1', port: 0 },
      hostname: 'mx.postbote.test',
      sizeLimit: SIZE_LIMIT,
      greetingDelayMs: 300,
      handlers,
    });
    try {
      const c = await SmtpTestClient.connect(mx.address.port);
      c.send('EHLO hasty.example');
      const r = await c.read();
      assert.equal(r.code, 554);
      await c.waitClosed();
    } finally {
      await mx.close();
    }
  });

  it('offers STARTTLS when given a certificate', async () => {
    const mx = await startInboundMx({
      listen: { host: '127.0.0.1', port: 0 },
      hostname: 'mx.postbote.test',
      tls: testSecureContext,
      sizeLimit: SIZE_LIMIT,
      greetingDelayMs: 1,
      handlers,
    });
    try {
      const c = await SmtpTestClient.connect(mx.address.port);
      assert.ok((await c.hello()).lines.includes('STARTTLS'));
      assert.equal((await c.command('STARTTLS')).code, 220);
      await c.upgrade({ rejectUnauthorized: false });
      const ehlo = await c.command('EHLO client.example');
      assert.equal(ehlo.code, 250);
      assert.ok(!ehlo.lines.some((l) => l.startsWith('AUTH')), 'no AUTH after TLS either');
      c.close();
    } finally {
      await mx.close();
    }
  });
});

describe('reportReceiver', () => {
  const bounce: ParsedReport = {
    kind: 'bounce',
    format: 'dsn',
    recipients: [
      {
        email: 'user@gmail.example',
        status: '5.1.1',
        code: 550,
        category: 'unknown_user',
        permanent: true,
        diagnostic: 'no such user',
      },
    ],
  };
  const input = (over: Partial<InboundReport> = {}): InboundReport => ({
    recipientIds: [5],
    to: ['b+5-xxxxxxxxxx@bounces.shop.example'],
    raw: Buffer.from('Subject: x\r\n\r\nbody\r\n'),
    clientIp: '192.0.2.1',
    ...over,
  });

  it('records what the parser read, with the recipient ids', async () => {
    const recorded: [ParsedReport, InboundReport][] = [];
    const receive = reportReceiver({
      parseReport: () => bounce,
      record: async (report, i) => {
        recorded.push([report, i]);
      },
      secret,
      logger: recordingLogger([]),
    });
    await receive(input());
    assert.equal(recorded.length, 1);
    assert.equal(recorded[0]?.[0], bounce);
    assert.deepEqual(recorded[0]?.[1].recipientIds, [5]);
  });

  it('drops a message the parser cannot read, logs it, and does not reject (no retry storm)', async () => {
    const logs: LogLine[] = [];
    let recorded = 0;
    const receive = reportReceiver({
      parseReport: () => {
        throw new TypeError('malformed multipart');
      },
      record: async () => {
        recorded++;
      },
      secret,
      logger: recordingLogger(logs),
    });
    await receive(input());
    assert.equal(recorded, 0);
    assert.equal(logs.filter((l) => l.level === 'warn').length, 1);
  });

  it('rejects when recording fails, so the MX answers 451', async () => {
    const receive = reportReceiver({
      parseReport: () => bounce,
      record: async () => {
        throw new Error('database is locked');
      },
      secret,
      logger: recordingLogger([]),
    });
    await assert.rejects(receive(input()), /database is locked/);
  });

  it('takes the recipient of a feedback-loop complaint from the original return path, when genuine', async () => {
    const recorded: InboundReport[] = [];
    const receive = reportReceiver({
      parseReport: (raw) => ({
        kind: 'complaint',
        format: 'arf',
        recipients: [],
        feedbackType: 'abuse',
        returnPathToken: raw.toString('latin1').trim(),
      }),
      record: async (_, i) => {
        recorded.push(i);
      },
      secret,
      logger: recordingLogger([]),
    });
    const genuine = verpAddress(31337, 'bounces.shop.example', secret);
    const forged = verpAddress(31337, 'bounces.shop.example', Buffer.alloc(32, 2));
    for (const rp of [genuine, forged, 'not-a-verp@bounces.shop.example']) {
      await receive(input({ recipientIds: [], to: ['fbl@postbote.example'], raw: Buffer.from(rp) }));
    }
    assert.deepEqual(
      recorded.map((r) => r.recipientIds),
      [[31337], [], []],
    );
  });

  it('end to end: a parser failure still gets 250, a store failure 451', async () => {
    let storeDown = false;
    const mx = await startInboundMx({
      listen: { host: '127.0.0.1', port: 0 },
      hostname: 'mx.postbote.test',
      sizeLimit: SIZE_LIMIT,
      greetingDelayMs: 1,
      handlers: inboundHandlers({
        isOurReturnPath: (d) => d === 'bounces.shop.example',
        feedbackAddresses: new Set(),
        secret,
        logger: recordingLogger([]),
        onReport: reportReceiver({
          parseReport: (raw) => {
            if (raw.includes('garbled')) throw new Error('unparseable');
            return bounce;
          },
          record: async () => {
            if (storeDown) throw new Error('store down');
          },
          secret,
          logger: recordingLogger([]),
        }),
      }),
    });
    const to = verpAddress(1, 'bounces.shop.example', secret);
    const c = await SmtpTestClient.connect(mx.address.port);
    try {
      await c.hello();
      await c.command('MAIL FROM:<>');
      await c.command(`RCPT TO:<${to}>`);
      await c.command('DATA');
      assert.equal((await c.command('garbled\r\n.')).code, 250);
      storeDown = true;
      await c.sendSmallMessage('', to);
      assert.equal((await c.read()).code, 451);
    } finally {
      c.close();
      await mx.close();
    }
  });
});
