/**
 * Egress sources, pools and routes end to end (issue "Streams, priorities, IP pools, routes and
 * traffic shaping", must show): mail for a stream leaves from its pool's source addresses only
 * (the sink sees which 127.0.0.x connected); a warm-up cap holds; when the primary smarthost is
 * down mail arrives through the fallback, and goes back to the primary once it recovers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { sharedPort, showMessage, simpleMessage, stopPostbote, submit } from '../support/e2e-harness.ts';
import {
  createIpAccount,
  type PostboteProcess,
  runCli,
  startPostboteProcess,
  waitFor,
} from '../support/postbote-process.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

describe('egress pools and routes', { timeout: 90_000 }, () => {
  const dir = tempDir('postbote-e2e-routing-');
  let dns: TestDnsServer;
  let mx: ScriptedSink;
  let backup: ScriptedSink;
  let primary: ScriptedSink | undefined;
  let smarthostPort: number;
  let postbote: PostboteProcess;

  before(async () => {
    mx = await startScriptedSink({ host: '127.0.0.2', hostname: 'mx.pools.test' });
    smarthostPort = await sharedPort(['127.0.0.21', '127.0.0.22']);
    backup = await startScriptedSink({
      host: '127.0.0.22',
      port: smarthostPort,
      hostname: 'backup.relay.test',
    });
    dns = await startDnsServer({
      zones: {
        'pools.test': { MX: [{ preference: 10, exchange: 'mx.pools.test' }] },
        'mx.pools.test': { A: ['127.0.0.2'] },
      },
    });
    const today = new Date().toISOString().slice(0, 10);
    const env = {
      POSTBOTE_DATA_DIR: dir.path,
      POSTBOTE_DNS__SERVERS: dns.address,
      POSTBOTE_DELIVERY__PORT: String(mx.port),
      POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
      POSTBOTE_DELIVERY__DSN: 'false',
      POSTBOTE_DELIVERY__RETRY__FIRST: '1s',
      POSTBOTE_DELIVERY__RETRY__MAX_INTERVAL: '2s',
      POSTBOTE_EGRESS__SOURCES: `[{name: tx, address: 127.0.0.11, ehlo: tx.postbote.test}, {name: bulk, address: 127.0.0.12}, {name: warm, address: 127.0.0.13, warmup: {start: '${today}', daily: [3], overflow: wait}}]`,
      POSTBOTE_EGRESS__POOLS: '{tx: [tx], bulk: [bulk], warm: [warm]}',
      POSTBOTE_EGRESS__TRANSACTIONAL_POOL: 'tx',
      POSTBOTE_EGRESS__BROADCAST_POOL: 'bulk',
      POSTBOTE_ROUTES: `[{name: primary, match: {domains: [failover.test]}, via: smarthost, smarthost: {host: 127.0.0.21, port: ${smarthostPort}, tls: none}, fallback: [backup], failover_after: 1s, probe_every: 1s}, {name: backup, via: smarthost, smarthost: {host: 127.0.0.22, port: ${smarthostPort}, tls: none}}, {name: quarantine, match: {domains: ['*.hold.test']}, via: hold}]`,
    };
    await createIpAccount(env);
    await runCli(
      ['streams', 'create', '--account', 'shop', 'warming', '--kind', 'transactional', '--pool', 'warm'],
      env,
    );
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
  });

  after(async () => {
    await stopPostbote(postbote);
    await mx?.close();
    await backup?.close();
    await primary?.close();
    await dns?.close();
    dir.cleanup();
  });

  const send = (to: string, stream?: string): Promise<string> =>
    submit(postbote.submissionPort, {
      from: 'shop@sender.test',
      to: [to],
      message: `${stream ? `X-Postbote-Stream: ${stream}\r\n` : ''}${simpleMessage({ from: 'shop@sender.test', to, subject: `to ${to}` })}`,
    });
  const arrivedFrom = (sink: ScriptedSink, to: string): string | undefined => {
    for (const connection of sink.connections) {
      if (
        connection.transactions.some(
          (tx) => tx.recipients.some((r) => r.address === to) && tx.dataReply?.startsWith('250'),
        )
      ) {
        return connection.remoteAddress;
      }
    }
    return undefined;
  };

  it("mail for a stream leaves from its pool's source address only", async () => {
    await send('reset@pools.test');
    await send('news@pools.test', 'broadcast');
    const from = await waitFor(
      () => {
        const reset = arrivedFrom(mx, 'reset@pools.test');
        const news = arrivedFrom(mx, 'news@pools.test');
        return reset && news ? { reset, news } : undefined;
      },
      { what: 'both messages at the MX', timeoutMs: 15_000 },
    );
    assert.deepEqual(from, { reset: '127.0.0.11', news: '127.0.0.12' });
    const ehlo = mx.connections
      .find((c) => c.remoteAddress === '127.0.0.11')
      ?.commands.find((c) => c.startsWith('EHLO'));
    assert.equal(ehlo, 'EHLO tx.postbote.test');
  });

  it('a warm-up cap holds: three a day from the warming source, the rest waits', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await send(`w${i}@pools.test`, 'warming'));
    await waitFor(
      async () => {
        const shown = await Promise.all(ids.map((id) => showMessage(postbote, id)));
        const states = shown.map((m) => m.recipients[0]?.state);
        return states.filter((s) => s === 'delivered').length === 3 &&
          states.filter((s) => s === 'deferred').length === 2
          ? shown
          : undefined;
      },
      { what: 'three delivered, two deferred by the cap', timeoutMs: 15_000, intervalMs: 250 },
    );
    const fromWarm = mx.connections
      .filter((c) => c.remoteAddress === '127.0.0.13')
      .flatMap((c) => c.transactions)
      .filter((tx) => tx.dataReply?.startsWith('250'));
    assert.equal(fromWarm.length, 3);
    const deferred = (await Promise.all(ids.map((id) => showMessage(postbote, id)))).find(
      (m) => m.recipients[0]?.state === 'deferred',
    );
    assert.match(deferred?.recipients[0]?.lastReply?.text ?? '', /warm-up caps of pool warm reached/);
    // queue summary shows the cap as the node reported it in its last heartbeat (every 10 s).
    const warm = await waitFor(
      async () => {
        const summary = JSON.parse(await postbote.cli(['queue', 'summary', '--json'])) as {
          warmup: { source: string; dailyCap: number; sentToday: number; capped: boolean }[];
        };
        return summary.warmup.find((w) => w.source === 'warm' && w.sentToday === 3);
      },
      { what: 'the warm-up cap in queue summary', timeoutMs: 15_000, intervalMs: 1000 },
    );
    assert.deepEqual([warm.dailyCap, warm.capped], [3, true]);
  });

  it('a hold route keeps the mail, without an attempt, in state held', async () => {
    const id = await send('someone@eu.hold.test');
    const held = await waitFor(
      async () => {
        const shown = await showMessage(postbote, id);
        return shown.recipients[0]?.state === 'held' ? shown : undefined;
      },
      { what: 'the recipient held' },
    );
    assert.equal(held.recipients[0]?.attempts, 0);
    assert.ok(held.events.some((e) => e.type === 'held'));
  });

  it('the primary smarthost down: mail arrives through the fallback, and returns to the primary when it recovers', async () => {
    await send('first@failover.test');
    await waitFor(() => arrivedFrom(backup, 'first@failover.test'), {
      what: 'the message through the fallback smarthost',
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    // While the primary is down, a delivery now and then is its trial (probe_every 1s); when the
    // trial finds it still down, that mail goes on to the fallback at once, never deferred.
    const during: string[] = [];
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 1200));
      during.push(await send(`during${i}@failover.test`));
    }
    for (const id of during) {
      const shown = await waitFor(
        async () => {
          const m = await showMessage(postbote, id);
          return m.recipients[0]?.state === 'delivered' ? m : undefined;
        },
        { what: 'delivered through the fallback', timeoutMs: 10_000 },
      );
      assert.deepEqual(
        shown.events.map((e) => e.type).filter((t) => t !== 'accepted'),
        ['delivered'],
        'a failed trial of the primary is not a deferral',
      );
    }
    primary = await startScriptedSink({
      host: '127.0.0.21',
      port: smarthostPort,
      hostname: 'primary.relay.test',
    });
    // While down, one delivery a second tries the primary; once one gets through, traffic is back.
    let n = 0;
    await waitFor(
      async () => {
        const to = `again${n++}@failover.test`;
        await send(to);
        return primary && primary.transactions.length > 0 ? true : undefined;
      },
      { what: 'mail at the recovered primary', timeoutMs: 30_000, intervalMs: 500 },
    );
    const later = 'later@failover.test';
    await send(later);
    await waitFor(() => arrivedFrom(primary!, later) ?? arrivedFrom(backup, later), {
      what: 'the last message',
      timeoutMs: 15_000,
    });
    assert.ok(arrivedFrom(primary!, later), 'after recovery, mail goes to the primary');
  });
});
