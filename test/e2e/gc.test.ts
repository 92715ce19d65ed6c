/**
 * `postbote gc` against the store of a running Postbote: retention removes finished mail and
 * never mail still waiting for delivery. Retention periods of a millisecond make the messages
 * just sent old enough; the command runs with them, the server with the defaults.
 *
 * Fake destinations (no MX host needs to answer):
 *   down.test    MX on 127.0.0.3, nothing listening: deferred, retried in an hour
 *   nullmx.test  null MX (RFC 7505): bounced at once
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import {
  listMessages,
  sharedPort,
  showMessage,
  simpleMessage,
  stopPostbote,
  submit,
  waitForEvent,
} from '../support/e2e-harness.ts';
import {
  createIpAccount,
  type PostboteProcess,
  runCli,
  startPostboteProcess,
  waitFor,
} from '../support/postbote-process.ts';
import { tempDir } from '../support/temp-dir.ts';

interface GcRow {
  messages: number;
  bodies: number;
  messagesReceivedBefore: string;
  bodiesReceivedBefore: string;
}

describe('postbote gc', { timeout: 60_000 }, () => {
  const dir = tempDir('postbote-e2e-gc-');
  let dns: TestDnsServer;
  let postbote: PostboteProcess;

  before(async () => {
    const port = await sharedPort(['127.0.0.3']);
    dns = await startDnsServer({
      zones: {
        'down.test': { MX: [{ preference: 10, exchange: 'mx.down.test' }] },
        'mx.down.test': { A: ['127.0.0.3'] },
        'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
      },
    });
    const env = {
      POSTBOTE_DATA_DIR: dir.path,
      POSTBOTE_DNS__SERVERS: dns.address,
      POSTBOTE_DELIVERY__PORT: String(port),
      POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
      POSTBOTE_DELIVERY__RETRY__FIRST: '1h',
      POSTBOTE_DELIVERY__CONNECT_TIMEOUT: '2s',
      // No DSNs: they would be messages of their own.
      POSTBOTE_DELIVERY__DSN: 'false',
    };
    await createIpAccount(env);
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
  });

  after(async () => {
    await stopPostbote(postbote);
    await dns?.close();
    dir.cleanup();
  });

  const send = (to: string): Promise<string> =>
    submit(postbote.submissionPort, {
      from: 'shop@sender.test',
      to: [to],
      message: simpleMessage({ from: 'shop@sender.test', to, subject: `to ${to}` }),
    });
  /** `postbote gc` with these retention periods, against the running node's store. */
  const gc = (retention: { bodies: string; metadata: string }, args: string[] = []) =>
    runCli(['gc', ...args], {
      ...postbote.env,
      POSTBOTE_RETENTION__BODIES: retention.bodies,
      POSTBOTE_RETENTION__METADATA: retention.metadata,
    });

  it('deletes the bodies, then the messages of finished mail; mail still queued stays whole', async () => {
    const bounced = await send('nobody@nullmx.test');
    const cancelled = await send('gone@down.test');
    const waiting = await send('later@down.test');
    await Promise.all([
      waitForEvent(postbote, bounced, 'bounced'),
      waitForEvent(postbote, cancelled, 'deferred'),
      waitForEvent(postbote, waiting, 'deferred'),
    ]);
    await postbote.cli(['queue', 'delete', cancelled]);

    // Defaults (7 days, 90 days): nothing is old enough.
    assert.deepEqual(
      (JSON.parse(await postbote.cli(['gc', '--json'])) as GcRow[]).map((r) => [r.messages, r.bodies]),
      [[0, 0]],
    );

    const bodiesOut = await gc({ bodies: '1ms', metadata: '1h' });
    assert.match(bodiesOut, /^0 message\(s\) deleted .*\(retention\.metadata 1h\)$/m);
    assert.match(bodiesOut, /^2 message body\(ies\) deleted: .*\(retention\.bodies 1ms\)$/m);
    for (const id of [bounced, cancelled]) {
      const shown = await showMessage(postbote, id);
      assert.equal(shown.message.bodyPurged, true, 'body deleted');
      assert.ok(shown.events.length >= 2, 'the history stays');
    }
    assert.equal((await showMessage(postbote, waiting)).message.bodyPurged, false);
    assert.match(await postbote.cli(['messages', 'show', bounced]), /bytes \(body deleted by retention\)/);

    const [row] = JSON.parse(await gc({ bodies: '1ms', metadata: '1ms' }, ['--json'])) as GcRow[];
    assert.deepEqual([row?.messages, row?.bodies], [2, 0]);
    assert.ok(Date.parse(row?.messagesReceivedBefore ?? '') <= Date.now());
    await assert.rejects(postbote.cli(['messages', 'show', bounced]), /no message with id/);
    assert.deepEqual(
      (await listMessages(postbote)).map((m) => m.id),
      [waiting],
    );
    const kept = await showMessage(postbote, waiting);
    assert.deepEqual(
      kept.recipients.map((r) => r.state),
      ['deferred'],
    );
    assert.equal(kept.message.bodyPurged, false, 'a message waiting for delivery keeps its body');
  });

  it('refuses retention.bodies longer than retention.metadata with exit code 2', async () => {
    await assert.rejects(gc({ bodies: '100d', metadata: '90d' }), (err: Error & { code?: number }) => {
      assert.equal(err.code, 2);
      assert.match(
        err.message,
        /retention\.bodies: must not be longer than retention\.metadata \(100d > 90d\)/,
      );
      return true;
    });
  });
});

describe('retention as a periodic task', { timeout: 60_000 }, () => {
  const dir = tempDir('postbote-e2e-retention-');
  let dns: TestDnsServer;
  let postbote: PostboteProcess;

  before(async () => {
    dns = await startDnsServer({ zones: { 'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] } } });
    const env = {
      POSTBOTE_DATA_DIR: dir.path,
      POSTBOTE_DNS__SERVERS: dns.address,
      POSTBOTE_DELIVERY__DSN: 'false',
      POSTBOTE_RETENTION__BODIES: '1s',
      POSTBOTE_RETENTION__METADATA: '1h',
      POSTBOTE_RETENTION__INTERVAL: '1s',
    };
    await createIpAccount(env);
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
  });

  after(async () => {
    await stopPostbote(postbote);
    await dns?.close();
    dir.cleanup();
  });

  it('the running node (the leader of its one-node cluster) deletes old bodies by itself', async () => {
    const to = 'nobody@nullmx.test';
    const id = await submit(postbote.submissionPort, {
      from: 'shop@sender.test',
      to: [to],
      message: simpleMessage({ from: 'shop@sender.test', to, subject: 'soon forgotten' }),
    });
    await waitForEvent(postbote, id, 'bounced');
    await waitFor(async () => (await showMessage(postbote, id)).message.bodyPurged || undefined, {
      what: 'the body deleted by the retention task',
      timeoutMs: 10_000,
      intervalMs: 250,
    });
    const status = JSON.parse(await postbote.cli(['cluster', 'status', '--json'])) as { leader: boolean }[];
    assert.deepEqual(
      status.map((n) => n.leader),
      [true],
    );
  });
});
