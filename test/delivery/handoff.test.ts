import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeliveryRequest, Destination, DestinationResult } from '../../src/delivery/destination.ts';
import { createRetryPolicy } from '../../src/delivery/retry-policy.ts';
import { Scheduler } from '../../src/delivery/scheduler.ts';
import { HandoffCredits } from '../../src/intake/handoff.ts';
import { createIntake } from '../../src/intake/intake.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import { fakeClock } from '../support/fake-clock.ts';
import { waitFor } from '../support/postbote-process.ts';

/** A scheduler and an intake wired as postbote.ts wires them, with the handoff, on an in-memory store. */
async function setup(
  options: { window?: number; hold?: () => Promise<void>; failInserts?: () => boolean; pollMs?: number } = {},
) {
  const sqlite = new SqliteStore(':memory:');
  await sqlite.migrate();
  await sqlite.createAccount({ id: 'acct', name: 'acct', createdAt: 0 });
  const counts = { leaseDue: 0, leased: 0, getBody: 0 };
  // The store as delivery and intake see it, counting the calls the handoff is meant to save.
  const store = new Proxy(sqlite, {
    get(target, key, receiver) {
      if (key === 'leaseDue') {
        return async (...args: Parameters<Store['leaseDue']>) => {
          counts.leaseDue++;
          const leased = await target.leaseDue(...args);
          counts.leased += leased.length;
          return leased;
        };
      }
      if (key === 'getBody') {
        return (...args: Parameters<Store['getBody']>) => {
          counts.getBody++;
          return target.getBody(...args);
        };
      }
      if (key === 'insertMessages' && options.failInserts) {
        return (...args: Parameters<Store['insertMessages']>) =>
          options.failInserts?.() ? Promise.reject(new Error('disk full')) : target.insertMessages(...args);
      }
      const value = Reflect.get(target, key, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as Store;
  const clock = fakeClock();
  const calls: DeliveryRequest[] = [];
  const bodies: string[] = [];
  let inflight = 0;
  let maxInflight = 0;
  let maxBroadcast = 0;
  let broadcast = 0;
  const destination: Destination = {
    async deliver(request): Promise<DestinationResult> {
      calls.push(request);
      bodies.push(request.body.toString());
      inflight += request.recipients.length;
      if (request.kind === 'broadcast') broadcast += request.recipients.length;
      maxInflight = Math.max(maxInflight, inflight);
      maxBroadcast = Math.max(maxBroadcast, broadcast);
      await options.hold?.();
      inflight -= request.recipients.length;
      if (request.kind === 'broadcast') broadcast -= request.recipients.length;
      return {
        recipients: request.recipients.map((address) => ({
          address,
          outcome: 'delivered',
          reply: { code: 250, enhanced: '2.0.0', text: 'ok' },
        })),
        site: 'mx.example.test',
        durationMs: 1,
      };
    },
  };
  const credits = new HandoffCredits();
  const scheduler = new Scheduler({
    store,
    destination,
    retryPolicy: createRetryPolicy({ firstRetrySeconds: 60, maxAgeSeconds: 600, jitter: 0 }, () => 0.5),
    clock: clock.now,
    logger: silentLogger(),
    owner: 'test-node',
    window: options.window ?? 100,
    batchSize: 50,
    leaseMs: 60_000,
    maxRecipientsPerTransaction: 100,
    pollMs: options.pollMs ?? 20,
    credits,
  });
  let wakes = 0;
  const intake = createIntake({
    store,
    clock: clock.now,
    hostname: 'relay.test',
    dsnOnFailure: true,
    onAccepted: () => {
      wakes++;
      scheduler.wake();
    },
    handoff: { owner: 'test-node', leaseMs: 60_000, credits, deliver: (h) => scheduler.adopt(h) },
  });
  const submit = (to: string[], options: { stream?: string; text?: string } = {}) =>
    intake.submit({
      ...(options.stream ? { stream: options.stream } : {}),
      accountId: 'acct',
      credentialId: null,
      mailFrom: 'sender@example.com',
      recipients: to.map((address) => ({ address })),
      raw: Buffer.from(`Subject: t\r\n\r\n${options.text ?? 'hello'}\r\n`),
      source: 'smtp',
      clientIp: '127.0.0.1',
      dsn: {},
      trace: { heloName: 'client', protocol: 'ESMTP' },
    });
  const delivered = async () => (await sqlite.countByState()).delivered ?? 0;
  return {
    sqlite,
    credits,
    scheduler,
    submit,
    calls,
    bodies,
    counts,
    delivered,
    wakes: () => wakes,
    maxInflight: () => maxInflight,
    maxBroadcast: () => maxBroadcast,
    async close() {
      await scheduler.stop();
      await sqlite.close();
    },
  };
}

describe('handoff credits', () => {
  it('are taken all or none, given back, withdrawn, and never taken once closed', () => {
    const credits = new HandoffCredits();
    assert.equal(credits.take(1), false, 'none granted yet');
    credits.grant(3);
    assert.equal(credits.take(4), false, 'all or none');
    assert.equal(credits.take(2), true);
    assert.equal(credits.available(), 1);
    credits.giveBack(2);
    assert.equal(credits.withdraw(), 3);
    assert.equal(credits.available(), 0);
    credits.grant(5);
    credits.close();
    assert.equal(credits.take(1), false);
    // Another thread sees the same counter through the buffer.
    const other = new HandoffCredits(credits.buffer);
    assert.equal(other.available(), 5);
    assert.equal(other.take(1), false, 'closed for every side');
  });
});

describe('handoff of fresh mail from intake to delivery', () => {
  it('delivers fresh mail without a lease round trip or a body read, leased to this node in its commit', async () => {
    let release: () => void = () => {};
    let held = new Promise<void>((r) => (release = r));
    // No poll during the test: any lease call would be a finished delivery's.
    const t = await setup({ hold: () => held, pollMs: 60_000 });
    t.scheduler.start();
    await waitFor(() => t.credits.available() > 0 || undefined, {
      what: 'credits granted by an idle scheduler',
    });
    const leasesBefore = t.counts.leaseDue;
    const { id } = await t.submit(['a@one.test', 'b@two.test'], { text: 'handed over' });
    // In flight at the destination: committed as leased to this node, before any network I/O.
    await waitFor(() => t.calls.length === 2 || undefined, { what: 'both transactions dispatched' });
    for (const r of await t.sqlite.getRecipients(id)) {
      assert.equal(r.state, 'delivering');
      assert.equal(r.leaseOwner, 'test-node');
    }
    held = Promise.resolve();
    release();
    await waitFor(async () => (await t.delivered()) === 2 || undefined, { what: 'delivery' });
    assert.equal(t.counts.leased, 0, 'nothing came through leaseDue');
    assert.equal(t.counts.getBody, 0, 'the body came with the handoff');
    assert.equal(t.wakes(), 0, 'intake did not wake the scheduler');
    assert.equal(t.counts.leaseDue, leasesBefore, 'finished deliveries do not ask the store for more');
    assert.match(t.bodies[0] ?? '', /handed over/);
    assert.deepEqual(
      (await t.sqlite.getEvents(id)).map((e) => e.type),
      ['accepted', 'accepted', 'delivered', 'delivered'],
    );
    await t.close();
  });

  it('keeps the window: what it has no room for waits in the store and is leased from there', async () => {
    let release: () => void = () => {};
    const hold = new Promise<void>((r) => (release = r));
    const t = await setup({ window: 5, hold: () => hold });
    t.scheduler.start();
    // A credit does not know its kind: credits stay within the broadcast share (80 %).
    await waitFor(() => t.credits.available() === 4 || undefined, { what: 'the window granted' });
    for (let i = 0; i < 20; i++) await t.submit([`r${i}@d${i}.test`]);
    await waitFor(() => t.calls.length === 5 || undefined, { what: 'the window full' });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(t.calls.length, 5, 'no more dispatched while the window is full');
    assert.equal((await t.sqlite.countByState()).queued, 15, 'the rest waits queued in the store');
    assert.ok(t.wakes() >= 1, 'intake woke the scheduler for mail it could not hand over');
    release();
    await waitFor(async () => (await t.delivered()) === 20 || undefined, { what: 'all delivered' });
    assert.ok(t.maxInflight() <= 5);
    // At most the window (5) was handed over before it filled; the rest came from the store.
    assert.ok(t.counts.leased >= 15, `leased from the store: ${t.counts.leased}`);
    await t.close();
  });

  it('keeps part of the window for transactional mail while broadcast mail is handed over', async () => {
    let release: () => void = () => {};
    const hold = new Promise<void>((r) => (release = r));
    const t = await setup({ window: 10, hold: () => hold });
    t.scheduler.start();
    await waitFor(() => t.credits.available() > 0 || undefined, { what: 'credits' });
    for (let i = 0; i < 30; i++) await t.submit([`bulk${i}@d${i}.test`], { stream: 'broadcast' });
    await waitFor(() => t.calls.length === 8 || undefined, { what: 'the broadcast share of the window' });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(t.calls.length, 8, 'broadcast fills 80% of the window, no more');
    await t.submit(['reset@shop.test']);
    await waitFor(() => t.calls.find((c) => c.recipients[0] === 'reset@shop.test') || undefined, {
      what: 'the transactional message dispatched at once',
    });
    release();
    await waitFor(async () => (await t.delivered()) === 31 || undefined, { what: 'all delivered' });
    assert.ok(t.maxBroadcast() <= 8, `at most 8 broadcast recipients in flight, saw ${t.maxBroadcast()}`);
    await t.close();
  });

  it('gives the credits back when the commit fails, and the next commit is handed over', async () => {
    let fail = true;
    const t = await setup({ failInserts: () => fail });
    t.scheduler.start();
    await waitFor(() => t.credits.available() === 80 || undefined, { what: 'the window granted' });
    await assert.rejects(t.submit(['a@one.test']), /disk full/);
    assert.equal(t.credits.available(), 80, 'the credit taken for the failed commit is back');
    fail = false;
    await t.submit(['a@one.test']);
    await waitFor(async () => (await t.delivered()) === 1 || undefined, { what: 'delivery' });
    assert.equal(t.counts.leased, 0);
    await t.close();
  });

  it('releases recipients handed over while it stops, unattempted, for the next lease', async () => {
    const t = await setup();
    t.scheduler.start();
    await waitFor(() => t.credits.available() > 0 || undefined, { what: 'credits' });
    // A commit that took its credits just before stop() and hands over just after.
    assert.ok(t.credits.take(1));
    const leased = await t.sqlite.insertMessages(
      [
        {
          id: 'late',
          accountId: 'acct',
          credentialId: null,
          mailFrom: 's@example.com',
          recipients: [{ address: 'a@one.test', domain: 'one.test' }],
          body: Buffer.from('Subject: late\r\n\r\nx\r\n'),
          messageIdHeader: '<late@example.com>',
          subject: 'late',
          source: 'smtp',
          clientIp: '127.0.0.1',
          dsn: {},
          dsnOnFailure: true,
          receivedAt: Date.now(),
        },
      ],
      { lease: { owner: 'test-node', until: Date.now() + 60_000, now: Date.now() } },
    );
    const stopped = t.scheduler.stop();
    assert.equal(t.credits.take(1), false, 'no credit is taken once stopping');
    t.scheduler.adopt({ recipients: leased, bodies: [] });
    await stopped;
    await waitFor(async () => (await t.sqlite.getRecipients('late'))[0]?.state === 'queued' || undefined, {
      what: 'the late recipient released',
    });
    const [row] = await t.sqlite.getRecipients('late');
    assert.equal(row?.attempts, 0);
    assert.equal(row?.leaseOwner, null);
    assert.equal(t.calls.length, 0, 'never attempted');
    await t.sqlite.close();
  });
});
