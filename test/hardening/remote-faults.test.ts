/**
 * Remote faults (issue 11, "Crash and fault safety"): one running Postbote delivers one message
 * to ten destinations at once, nine of them broken in a different way, each its own MX host on
 * its own loopback address behind a test DNS server. None may hold up the healthy destination
 * (it is delivered before any of the stalled ones gives up), and each recipient ends in the
 * state its fault calls for:
 *
 * | destination      | fault                                           | outcome                        |
 * |------------------|-------------------------------------------------|--------------------------------|
 * | ok.test          | none                                            | delivered                      |
 * | silent.test      | accepts the connection, never sends a banner    | deferred (greeting timeout)    |
 * | tarpit.test      | sends its banner one byte per second            | deferred (greeting timeout)    |
 * | reset.test       | resets the connection in the middle of DATA     | deferred                       |
 * | drop.test        | 421 at MAIL FROM, then closes                   | deferred, reply kept           |
 * | badtls.test      | offers STARTTLS, then breaks the handshake      | delivered in plaintext (opportunistic) |
 * | partial.test     | 550 for one of two recipients at RCPT           | one bounced, one delivered     |
 * | rejected.test    | 554 after the data                              | bounced                        |
 * | servfail.test    | DNS SERVFAIL for the MX lookup                  | deferred                       |
 * | dnstimeout.test  | DNS never answers                               | deferred                       |
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import {
  fakeMxEnv,
  type MessageJson,
  sharedPort,
  showMessage,
  simpleMessage,
  stopPostbote,
  submit,
} from '../support/e2e-harness.ts';
import {
  createIpAccount,
  type PostboteProcess,
  startPostboteProcess,
  waitFor,
} from '../support/postbote-process.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

const HOSTS = {
  ok: '127.0.0.21',
  silent: '127.0.0.22',
  tarpit: '127.0.0.23',
  reset: '127.0.0.24',
  drop: '127.0.0.25',
  badtls: '127.0.0.26',
  partial: '127.0.0.27',
  rejected: '127.0.0.28',
} as const;

const RECIPIENTS = [
  'a@ok.test',
  'a@silent.test',
  'a@tarpit.test',
  'a@reset.test',
  'a@drop.test',
  'a@badtls.test',
  'a@partial.test',
  'refused@partial.test',
  'a@rejected.test',
  'a@servfail.test',
  'a@dnstimeout.test',
];

/** A raw TCP peer for faults the scripted sink cannot play (a tarpit, a reset mid-DATA). */
function rawPeer(host: string, port: number, onSocket: (socket: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    onSocket(socket);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

describe('remote faults: one broken destination never holds up another', () => {
  const dir = tempDir();
  let dns: TestDnsServer;
  let postbote: PostboteProcess | undefined;
  const sinks: ScriptedSink[] = [];
  const raw: net.Server[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<net.Socket>();

  before(async () => {
    const port = await sharedPort(Object.values(HOSTS));
    dns = await startDnsServer();
    for (const [name, ip] of Object.entries(HOSTS)) {
      dns.set(`${name}.test`, { MX: [{ preference: 10, exchange: `mx.${name}.test` }] });
      dns.set(`mx.${name}.test`, { A: [ip] });
    }
    dns.set('servfail.test', { MX: [{ preference: 10, exchange: 'mx.servfail.test' }] });
    dns.fail('servfail.test', 'SERVFAIL');
    dns.set('dnstimeout.test', { MX: [{ preference: 10, exchange: 'mx.dnstimeout.test' }] });
    dns.fail('dnstimeout.test', 'TIMEOUT');

    sinks.push(await startScriptedSink({ host: HOSTS.ok, port }));
    sinks.push(
      await startScriptedSink({
        host: HOSTS.silent,
        port,
        respond: (c) => (c.verb === 'CONNECT' ? { silent: true } : undefined),
      }),
    );
    sinks.push(
      await startScriptedSink({
        host: HOSTS.drop,
        port,
        respond: (c) =>
          c.verb === 'MAIL' ? { reply: '421 4.3.2 Service shutting down', close: true } : undefined,
      }),
    );
    sinks.push(await startScriptedSink({ host: HOSTS.badtls, port, brokenTls: true }));
    sinks.push(
      await startScriptedSink({
        host: HOSTS.partial,
        port,
        respond: (c) =>
          c.verb === 'RCPT' && c.arg.includes('refused@') ? '550 5.1.1 No such user' : undefined,
      }),
    );
    sinks.push(
      await startScriptedSink({
        host: HOSTS.rejected,
        port,
        respond: (c) => (c.verb === 'DATA_END' ? '554 5.7.1 Message refused: policy' : undefined),
      }),
    );
    // The tarpit: "220 …" one byte per second, for as long as anyone listens.
    raw.push(
      await rawPeer(HOSTS.tarpit, port, (socket) => {
        sockets.add(socket);
        const banner = '220 tarpit.test ESMTP slowly\r\n';
        let i = 0;
        const drip = setInterval(() => {
          if (socket.destroyed) return clearInterval(drip);
          socket.write(banner[i % banner.length] ?? ' ');
          i++;
        }, 1000);
        timers.add(drip);
        socket.on('close', () => clearInterval(drip));
      }),
    );
    // The reset: a normal dialogue until the message data starts, then an RST.
    raw.push(
      await rawPeer(HOSTS.reset, port, (socket) => {
        sockets.add(socket);
        socket.write('220 reset.test ESMTP\r\n');
        let inData = false;
        let buffer = '';
        socket.setEncoding('latin1');
        socket.on('data', (chunk: string) => {
          if (inData) return socket.resetAndDestroy();
          buffer += chunk;
          let end = buffer.indexOf('\r\n');
          while (end !== -1) {
            const line = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const verb = line.split(' ')[0]?.toUpperCase();
            if (verb === 'EHLO') socket.write('250-reset.test\r\n250 PIPELINING\r\n');
            else if (verb === 'DATA') {
              socket.write('354 go ahead\r\n');
              inData = true;
              if (buffer.length > 0) return socket.resetAndDestroy();
            } else if (verb === 'QUIT') socket.end('221 bye\r\n');
            else socket.write('250 ok\r\n');
            end = buffer.indexOf('\r\n');
          }
        });
      }),
    );

    const env = {
      ...fakeMxEnv({ dataDir: dir.path, dns: dns.address, mxPort: port }),
      POSTBOTE_DELIVERY__GREETING_TIMEOUT: '3s',
      POSTBOTE_DELIVERY__SOCKET_TIMEOUT: '3s',
      POSTBOTE_DNS__TIMEOUT: '2s',
    };
    await createIpAccount({ ...env, POSTBOTE_DATA_DIR: dir.path });
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
  });

  after(async () => {
    await stopPostbote(postbote);
    for (const t of timers) clearInterval(t);
    for (const s of sockets) s.destroy();
    await Promise.all(raw.map((s) => new Promise((r) => s.close(r))));
    await Promise.all(sinks.map((s) => s.close()));
    await dns?.close();
    dir.cleanup();
  });

  it('delivers to the healthy destination at once and gives every broken one the right outcome', {
    timeout: 60_000,
  }, async () => {
    assert.ok(postbote);
    const p = postbote;
    const id = await submit(p.submissionPort, {
      from: 'app@sender.test',
      to: RECIPIENTS,
      message: simpleMessage({ from: 'app@sender.test', to: 'a@ok.test', subject: 'faults' }),
    });
    // Every recipient reaches its first outcome (the stalled ones after their timeouts).
    const shown: MessageJson = await waitFor(
      async () => {
        const s = await showMessage(p, id);
        const first = new Set(
          s.events
            .filter((e) => ['delivered', 'deferred', 'bounced'].includes(e.type))
            .map((e) => e.recipient),
        );
        return RECIPIENTS.every((r) => first.has(r)) ? s : undefined;
      },
      { timeoutMs: 40_000, intervalMs: 200, what: 'a first outcome for every recipient' },
    );
    const outcome = (r: string) =>
      shown.events.find((e) => e.recipient === r && ['delivered', 'deferred', 'bounced'].includes(e.type));
    const expected: Record<string, string> = {
      'a@ok.test': 'delivered',
      'a@silent.test': 'deferred',
      'a@tarpit.test': 'deferred',
      'a@reset.test': 'deferred',
      'a@drop.test': 'deferred',
      'a@badtls.test': 'delivered',
      'a@partial.test': 'delivered',
      'refused@partial.test': 'bounced',
      'a@rejected.test': 'bounced',
      'a@servfail.test': 'deferred',
      'a@dnstimeout.test': 'deferred',
    };
    for (const [recipient, type] of Object.entries(expected)) {
      const event = outcome(recipient);
      assert.equal(event?.type, type, `${recipient}: ${JSON.stringify(event)}`);
    }
    assert.equal(outcome('a@drop.test')?.data.reply?.code, 421);
    assert.equal(outcome('refused@partial.test')?.data.reply?.code, 550);
    assert.equal(outcome('a@rejected.test')?.data.reply?.code, 554);
    // The healthy one did not wait for the stalled ones.
    const okAt = outcome('a@ok.test')?.at ?? Number.POSITIVE_INFINITY;
    for (const stalled of ['a@silent.test', 'a@tarpit.test', 'a@dnstimeout.test']) {
      assert.ok(okAt < (outcome(stalled)?.at ?? 0), `a@ok.test was delivered before ${stalled} gave up`);
    }
    // The badtls message arrived in plaintext after the failed handshake; ok.test got it once.
    const okSink = sinks[0];
    assert.equal(okSink?.transactions.filter((t) => t.data).length, 1);
    // Deferred recipients wait for a retry; nothing is left in flight.
    const states = Object.fromEntries(shown.recipients.map((r) => [r.address, r.state]));
    for (const [recipient, type] of Object.entries(expected)) {
      assert.equal(states[recipient], type === 'deferred' ? 'deferred' : type, recipient);
    }
  });
});
