/**
 * Webhooks end to end: a running `postbote start` delivers through a scripted sink, and a
 * receiver in this test verifies every request with the `standardwebhooks` package. The
 * receiver is down for a while (503, then connection refused); once it is back every event
 * arrives, none lost, and no event is accepted twice. Also: 410 disables an endpoint, the SSRF
 * guard refuses a private target, test and replay, and tenant isolation on every new route.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import { fakeMxEnv, stopPostbote } from '../support/e2e-harness.ts';
import { type PostboteProcess, runCli, startPostboteProcess, waitFor } from '../support/postbote-process.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { tempDir } from '../support/temp-dir.ts';

interface PublicEvent {
  id: number;
  type: string;
  message_id: string;
  recipient: string | null;
  recipient_id: string | null;
  account: string;
  tags: string[];
  metadata: Record<string, string>;
}

interface Received {
  webhookId: string;
  path: string;
  status: number;
  verified: boolean;
  events: PublicEvent[];
}

/** A webhook receiver: answers by mode, verifies signatures, records everything. */
class Receiver {
  mode: 'up' | 'unavailable' = 'up';
  readonly got: Received[] = [];
  secrets = new Map<string, string>();
  #server: Server | undefined;
  port = 0;

  async listen(port = 0): Promise<void> {
    this.#server = createServer(
      (req, res) => void this.#handle(req).then(([status]) => res.writeHead(status).end()),
    );
    await new Promise<void>((resolve) => this.#server?.listen(port, '127.0.0.1', resolve));
    this.port = (this.#server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage): Promise<[number]> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = req.url ?? '/';
    const status = path === '/gone' ? 410 : this.mode === 'up' ? 200 : 503;
    const headers = Object.fromEntries(
      ['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((h) => [h, String(req.headers[h] ?? '')]),
    );
    let verified = false;
    let events: PublicEvent[] = [];
    try {
      const secret = this.secrets.get(path) ?? '';
      const payload = new Webhook(secret).verify(body, headers) as { data: { events: PublicEvent[] } };
      verified = true;
      events = payload.data.events;
    } catch {
      verified = false;
    }
    this.got.push({ webhookId: headers['webhook-id'] ?? '', path, status, verified, events });
    return [status];
  }

  /** Event ids answered 200 on `path`, with how often each was accepted. */
  accepted(path: string): Map<number, number> {
    const seen = new Map<number, number>();
    for (const r of this.got)
      if (r.path === path && r.status === 200)
        for (const e of r.events) seen.set(e.id, (seen.get(e.id) ?? 0) + 1);
    return seen;
  }
}

describe('webhooks: signed batches, outage and recovery, 410, SSRF, isolation', { timeout: 120_000 }, () => {
  const dir = tempDir('postbote-e2e-webhooks-');
  let dns: TestDnsServer;
  let sink: ScriptedSink;
  let postbote: PostboteProcess;
  const receiver = new Receiver();
  let base = '';
  const keys = { acme: '', other: '' };

  before(async () => {
    await receiver.listen();
    sink = await startScriptedSink({ host: '127.0.0.2', hostname: 'mx.example.test' });
    dns = await startDnsServer({
      zones: {
        'example.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }] },
        'mx.example.test': { A: ['127.0.0.2'] },
      },
    });
    const env = {
      ...fakeMxEnv({ dataDir: dir.path, dns: dns.address, mxPort: sink.port }),
      // The SSRF guard stays on: only the receiver's loopback address is allowed by name.
      POSTBOTE_WEBHOOKS__ALLOW_HOSTS: '127.0.0.1',
      POSTBOTE_WEBHOOKS__BATCH_WAIT: '200ms',
      POSTBOTE_WEBHOOKS__BATCH_SIZE: '4',
      POSTBOTE_WEBHOOKS__RETRY_FIRST: '300ms',
      POSTBOTE_WEBHOOKS__TIMEOUT: '2s',
    };
    for (const name of ['acme', 'other'] as const) {
      await runCli(['accounts', 'create', name, '--sender-policy', 'any'], env);
      const [credential] = JSON.parse(
        await runCli(
          ['credentials', 'create', '--account', name, '--api', '--scopes', 'send,read,admin', '--json'],
          env,
        ),
      ) as { secret?: string }[];
      keys[name] = credential?.secret ?? '';
    }
    postbote = await startPostboteProcess({ dataDir: dir.path, env });
    base = `http://127.0.0.1:${postbote.httpPort}`;
  });

  after(async () => {
    await stopPostbote(postbote);
    await Promise.all([sink?.close(), dns?.close(), receiver.close()]);
    dir.cleanup();
  });

  async function api<T>(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    body?: unknown,
    key = keys.acme,
    accept?: string,
  ): Promise<{ status: number; body: T; text: string; headers: Headers }> {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(accept ? { accept } : {}),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, body: parsed as T, text, headers: response.headers };
  }

  const send = async (to: string, tag: string) => {
    const sent = await api<{ id: string }>('POST', '/v1/messages', {
      from: 'shop@sender.test',
      to,
      subject: 'hello',
      text: 'hello',
      tags: [tag],
      metadata: { order: tag },
    });
    assert.equal(sent.status, 202, sent.text);
    return sent.body.id;
  };

  it('refuses a private target (SSRF guard) and an unknown event type; the secret is shown once', async () => {
    const ssrf = await api<{ error: { code: string; field: string; message: string } }>(
      'POST',
      '/v1/webhooks',
      {
        url: 'http://169.254.169.254/latest/meta-data',
      },
    );
    assert.equal(ssrf.status, 400);
    assert.equal(ssrf.body.error.field, 'url');
    assert.match(ssrf.body.error.message, /non-public/);
    const loop = await api<{ error: { field: string } }>('POST', '/v1/webhooks', {
      url: 'http://127.0.0.2:9/',
    });
    assert.equal(loop.status, 400);
    const badType = await api<{ error: { field: string } }>('POST', '/v1/webhooks', {
      url: `http://127.0.0.1:${receiver.port}/x`,
      events: ['delivered', 'nope'],
    });
    assert.deepEqual([badType.status, badType.body.error.field], [400, 'events[1]']);
    const noAdmin = await api(
      'POST',
      '/v1/webhooks',
      { url: `http://127.0.0.1:${receiver.port}/x` },
      'pb_bad.key',
    );
    assert.equal(noAdmin.status, 401);
  });

  it('delivers every event after an outage (503, then connection refused), signed, none lost or accepted twice', async () => {
    const created = await api<{ id: string; secret: string; events: string[] }>('POST', '/v1/webhooks', {
      url: `http://127.0.0.1:${receiver.port}/all`,
    });
    assert.equal(created.status, 201, created.text);
    assert.match(created.body.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    receiver.secrets.set('/all', created.body.secret);
    const listed = await api<{ data: Record<string, unknown>[] }>('GET', '/v1/webhooks');
    assert.equal(listed.body.data.length, 1);
    assert.ok(!JSON.stringify(listed.body).includes(created.body.secret), 'the secret is never listed');
    assert.ok(!postbote.logs.some((l) => l.includes(created.body.secret)), 'nor logged');

    receiver.mode = 'unavailable';
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await send(`r${i}@example.test`, 'outage'));
    await waitFor(() => receiver.got.filter((r) => r.path === '/all' && r.status === 503).length >= 2, {
      what: 'two refused attempts',
    });
    // Down entirely for a while: connection refused.
    const port = receiver.port;
    await receiver.close();
    for (let i = 3; i < 6; i++) ids.push(await send(`r${i}@example.test`, 'outage'));
    await new Promise((r) => setTimeout(r, 1500));
    receiver.mode = 'up';
    await receiver.listen(port);

    // Every accepted and delivered event of the six messages, as the event log has them.
    const expected = await waitFor(
      async () => {
        const log = await api<{ data: PublicEvent[] }>('GET', '/v1/events?tag=outage&limit=100');
        const events = log.body.data.filter((e) => e.type === 'accepted' || e.type === 'delivered');
        return events.length === 12 ? events : undefined;
      },
      { what: 'accepted and delivered events of six messages', timeoutMs: 30_000 },
    );
    await waitFor(() => expected.every((e) => receiver.accepted('/all').has(e.id)), {
      what: 'every event at the receiver',
      timeoutMs: 30_000,
    });
    const accepted = receiver.accepted('/all');
    assert.deepEqual(
      [...accepted.values()].filter((n) => n > 1),
      [],
      'no event accepted twice',
    );
    assert.ok(
      receiver.got.every((r) => r.verified),
      'every request verifies with standardwebhooks',
    );
    const sample = receiver.got.flatMap((r) => r.events).find((e) => e.type === 'delivered');
    assert.deepEqual([sample?.tags, sample?.metadata.order], [['outage'], 'outage']);
    assert.match(sample?.recipient_id ?? '', /-0$/);
    // A batch resent after a failure keeps its webhook-id (receivers may drop duplicates by it).
    const failedIds = new Set(receiver.got.filter((r) => r.status === 503).map((r) => r.webhookId));
    assert.ok(receiver.got.some((r) => r.status === 200 && failedIds.has(r.webhookId)));

    const detail = await api<{ attempts: { status: number }[]; failing_since: string | null }>(
      'GET',
      `/v1/webhooks/${created.body.id}`,
    );
    assert.ok(detail.body.attempts.some((a) => a.status === 503));
    assert.ok(
      detail.body.attempts.some((a) => a.status === 0),
      'connection refused is logged as an attempt',
    );
    assert.equal(detail.body.failing_since, null, 'a success clears the failure');

    // test and replay
    const tested = await api<{ ok: boolean; status: number }>('POST', `/v1/webhooks/${created.body.id}/test`);
    assert.deepEqual([tested.body.ok, tested.body.status], [true, 200]);
    assert.ok(receiver.got.some((r) => r.events.some((e) => e.message_id === 'test')));
    const first = Math.min(...expected.map((e) => e.id));
    const last = Math.max(...expected.map((e) => e.id));
    const before = receiver.got.length;
    const replayed = await api<{ events: number; batches: number }>(
      'POST',
      `/v1/webhooks/${created.body.id}/replay`,
      {
        from_event_id: first,
        to_event_id: last,
      },
    );
    assert.equal(replayed.status, 202, replayed.text);
    assert.ok(replayed.body.events >= 12);
    await waitFor(() => receiver.got.slice(before).flatMap((r) => r.events).length >= replayed.body.events, {
      what: 'the replayed events',
    });
  });

  it('a 410 disables the endpoint with a webhook_disabled event', async () => {
    const gone = await api<{ id: string; secret: string }>('POST', '/v1/webhooks', {
      url: `http://127.0.0.1:${receiver.port}/gone`,
      events: ['delivered'],
    });
    receiver.secrets.set('/gone', gone.body.secret);
    await send('gone@example.test', 'gone');
    await waitFor(
      async () => {
        const w = await api<{ enabled: boolean; disabled_reason: string | null }>(
          'GET',
          `/v1/webhooks/${gone.body.id}`,
        );
        return !w.body.enabled && w.body.disabled_reason === 'gone';
      },
      { what: 'the endpoint disabled', timeoutMs: 20_000 },
    );
    const events = await api<{ data: PublicEvent[] }>('GET', '/v1/events?type=webhook_disabled');
    assert.equal(events.body.data.length, 1);
    assert.equal(events.body.data[0]?.message_id, '');
  });

  it('keeps accounts apart on every route, and exports CSV', async () => {
    const mine = await api<{ data: { id: string }[] }>('GET', '/v1/webhooks');
    const id = mine.body.data[0]?.id ?? '';
    for (const [method, path] of [
      ['GET', `/v1/webhooks/${id}`],
      ['DELETE', `/v1/webhooks/${id}`],
      ['POST', `/v1/webhooks/${id}/test`],
      ['POST', `/v1/webhooks/${id}/replay`],
    ] as const) {
      const r = await api(
        method,
        path,
        method === 'POST' && path.endsWith('replay') ? { from_event_id: 1 } : undefined,
        keys.other,
      );
      assert.equal(r.status, 404, `${method} ${path} by another account`);
    }
    assert.deepEqual(
      (await api<{ data: unknown[] }>('GET', '/v1/webhooks', undefined, keys.other)).body.data,
      [],
    );
    const theirs = await api<{ data: PublicEvent[] }>('GET', '/v1/events?limit=1000', undefined, keys.other);
    assert.deepEqual(theirs.body.data, [], "another account's key sees none of acme's events");
    const csv = await api('GET', '/v1/events?tag=outage&type=delivered', undefined, keys.acme, 'text/csv');
    assert.equal(csv.status, 200);
    assert.match(csv.headers.get('content-type') ?? '', /text\/csv/);
    const lines = csv.text.trim().split('\r\n');
    assert.equal(
      lines[0],
      'id,type,at,message_id,recipient,recipient_id,account,stream,tags,metadata,details',
    );
    assert.equal(lines.length, 7);
    const bad = await api<{ error: { field: string } }>('GET', '/v1/events?type=nope');
    assert.deepEqual([bad.status, bad.body.error.field], [400, 'type']);
    const paged = await api<{ data: PublicEvent[]; next_cursor: string }>('GET', '/v1/events?limit=2');
    const next = await api<{ data: PublicEvent[] }>(
      'GET',
      `/v1/events?limit=2&cursor=${paged.body.next_cursor}`,
    );
    assert.ok((next.body.data[0]?.id ?? 0) < (paged.body.data[1]?.id ?? 0));
  });
});
