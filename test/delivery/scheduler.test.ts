import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeliveryRequest, Destination, DestinationResult } from '../../src/delivery/destination.ts';
import { createRetryPolicy } from '../../src/delivery/retry-policy.ts';
import { type FinalFailure, Scheduler } from '../../src/delivery/scheduler.ts';
import { createIntake } from '../../src/intake/intake.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { fakeClock } from '../support/fake-clock.ts';
import { waitFor } from '../support/postbote-process.ts';

type Answer = (address: string, request: DeliveryRequest) => 'delivered' | 'temporary' | 'permanent';

async function setup(options: {
  answer: Answer;
  window?: number;
  hold?: Promise<void>;
  outcomeGatherMs?: number;
}) {
  const store = new SqliteStore(':memory:');
  await store.migrate();
  const account = { id: 'acct', name: 'acct', createdAt: 0 };
  await store.createAccount(account);
  const clock = fakeClock();
  const calls: DeliveryRequest[] = [];
  let inflight = 0;
  let maxInflight = 0;
  const destination: Destination = {
    async deliver(request): Promise<DestinationResult> {
      calls.push(request);
      inflight += request.recipients.length;
      maxInflight = Math.max(maxInflight, inflight);
      await options.hold;
      inflight -= request.recipients.length;
      return {
        recipients: request.recipients.map((address) => {
          const outcome = options.answer(address, request);
          const reply =
            outcome === 'delivered'
              ? { code: 250, enhanced: '2.0.0', text: 'ok' }
              : outcome === 'temporary'
                ? { code: 451, enhanced: '4.7.1', text: 'greylisted' }
                : { code: 550, enhanced: '5.1.1', text: 'no such user' };
          return { address, outcome, reply };
        }),
        connection: { mxHost: 'mx.example.test', ip: '192.0.2.1', port: 25, tls: null },
        site: 'mx.example.test',
        durationMs: 3,
      };
    },
  };
  const finals: FinalFailure[] = [];
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
    pollMs: 20,
    ...(options.outcomeGatherMs !== undefined ? { outcomeGatherMs: options.outcomeGatherMs } : {}),
    onFinalFailure: (f) => finals.push(...f),
  });
  const intake = createIntake({
    store,
    clock: clock.now,
    hostname: 'relay.test',
    dsnOnFailure: true,
    onAccepted: () => scheduler.wake(),
  });
  const submit = (to: string[], stream?: string) =>
    intake.submit({
      ...(stream ? { stream } : {}),
      accountId: 'acct',
      credentialId: null,
      mailFrom: 'sender@example.com',
      recipients: to.map((address) => ({ address })),
      raw: Buffer.from('Subject: t\r\n\r\nhello\r\n'),
      source: 'smtp',
      clientIp: '127.0.0.1',
      dsn: {},
      trace: { heloName: 'client', protocol: 'ESMTP' },
    });
  const states = async (id: string) =>
    Object.fromEntries((await store.getRecipients(id)).map((r) => [r.address, r.state]));
  return { store, clock, calls, scheduler, submit, states, finals, maxInflight: () => maxInflight };
}

describe('delivery scheduler', () => {
  it('delivers recipients of one message and domain in one transaction, other domains apart', async () => {
    const t = await setup({ answer: () => 'delivered' });
    t.scheduler.start();
    const { id } = await t.submit(['a@one.test', 'b@one.test', 'c@two.test']);
    await waitFor(async () => Object.values(await t.states(id)).every((s) => s === 'delivered'), {
      what: 'delivery',
    });
    assert.deepEqual(t.calls.map((c) => [c.domain, c.recipients]).sort(), [
      ['one.test', ['a@one.test', 'b@one.test']],
      ['two.test', ['c@two.test']],
    ]);
    const delivered = (await t.store.getEvents(id)).filter((e) => e.type === 'delivered');
    assert.equal(delivered.length, 3);
    assert.equal(delivered[0]?.data.mxHost, 'mx.example.test');
    assert.equal(delivered[0]?.data.attempt, 1);
    await t.scheduler.stop();
    await t.store.close();
  });

  it('defers temporary failures by the retry policy and tries again when due', async () => {
    let attempts = 0;
    const t = await setup({ answer: () => (++attempts === 1 ? 'temporary' : 'delivered') });
    t.scheduler.start();
    const { id } = await t.submit(['a@one.test']);
    await waitFor(async () => (await t.states(id))['a@one.test'] === 'deferred', { what: 'deferral' });
    const [row] = await t.store.getRecipients(id);
    assert.equal(row?.nextAttemptAt, t.clock.now() + 60_000);
    assert.deepEqual(row?.lastReply, { code: 451, enhanced: '4.7.1', text: 'greylisted' });
    // The site it went to stays with the recipient (`queue summary` groups by it).
    assert.equal(row?.lastSite, 'mx.example.test');
    t.clock.advance(60_000);
    t.scheduler.wake();
    await waitFor(async () => (await t.states(id))['a@one.test'] === 'delivered', { what: 'retry' });
    const types = (await t.store.getEvents(id)).map((e) => e.type);
    assert.deepEqual(types, ['accepted', 'deferred', 'delivered']);
    await t.scheduler.stop();
    await t.store.close();
  });

  it('bounces permanent failures, expires old temporary ones, and reports both as final', async () => {
    const t = await setup({ answer: (a) => (a.startsWith('bad') ? 'permanent' : 'temporary') });
    t.scheduler.start();
    const { id } = await t.submit(['bad@one.test', 'slow@one.test']);
    await waitFor(async () => (await t.states(id))['bad@one.test'] === 'bounced', { what: 'bounce' });
    // Keep moving the clock past each retry until the message is older than max age (600 s).
    for (let i = 0; i < 10; i++) {
      const state = await waitFor(
        async () => {
          const s = (await t.states(id))['slow@one.test'];
          return s === 'deferred' || s === 'expired' ? s : undefined;
        },
        { what: 'an attempt' },
      );
      if (state === 'expired') break;
      const attempts = t.calls.length;
      t.clock.advance(300_000);
      t.scheduler.wake();
      await waitFor(() => t.calls.length > attempts || undefined, { what: 'the next attempt' });
    }
    await waitFor(async () => (await t.states(id))['slow@one.test'] === 'expired', { what: 'expiry' });
    assert.deepEqual(t.finals.map((f) => [f.recipient.address, f.outcome.state]).sort(), [
      ['bad@one.test', 'bounced'],
      ['slow@one.test', 'expired'],
    ]);
    await t.scheduler.stop();
    await t.store.close();
  });

  it('keeps at most `window` recipients in flight', async () => {
    let release: () => void = () => {};
    const hold = new Promise<void>((r) => (release = r));
    const t = await setup({ answer: () => 'delivered', window: 5, hold });
    t.scheduler.start();
    for (let i = 0; i < 20; i++) await t.submit([`r${i}@d${i}.test`]);
    await waitFor(() => t.calls.length === 5 || undefined, { what: 'first window' });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(t.calls.length, 5, 'no more leased while the window is full');
    release();
    await waitFor(async () => (await t.store.countByState()).delivered === 20, { what: 'all delivered' });
    assert.ok(t.maxInflight() <= 5);
    await t.scheduler.stop();
    await t.store.close();
  });

  it('keeps part of the window for transactional mail while a broadcast backlog fills the rest', async () => {
    let release: () => void = () => {};
    const hold = new Promise<void>((r) => (release = r));
    const t = await setup({ answer: () => 'delivered', window: 10, hold });
    t.scheduler.start();
    for (let i = 0; i < 30; i++) await t.submit([`bulk${i}@d${i}.test`], 'broadcast');
    await waitFor(() => t.calls.length === 8 || undefined, { what: 'the broadcast share of the window' });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(t.calls.length, 8, 'broadcast fills 80% of the window, no more');
    await t.submit(['reset@shop.test']);
    await waitFor(() => t.calls.find((c) => c.recipients[0] === 'reset@shop.test') || undefined, {
      what: 'the transactional message dispatched at once',
    });
    const urgent = t.calls.find((c) => c.recipients[0] === 'reset@shop.test');
    assert.equal(urgent?.priority, 0);
    assert.equal(t.calls[0]?.priority, 1);
    release();
    await waitFor(async () => (await t.store.countByState()).delivered === 31, { what: 'all delivered' });
    await t.scheduler.stop();
    await t.store.close();
  });

  it('never sends a message twice when its own lease runs out mid-delivery', async () => {
    let release: () => void = () => {};
    const hold = new Promise<void>((r) => (release = r));
    const t = await setup({ answer: () => 'delivered', hold });
    t.scheduler.start();
    const { id } = await t.submit(['a@one.test']);
    await waitFor(() => t.calls.length === 1 || undefined, { what: 'first attempt' });
    t.clock.advance(120_000); // past the 60 s lease, as after a stalled event loop
    t.scheduler.wake();
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(t.calls.length, 1);
    release();
    await waitFor(async () => (await t.states(id))['a@one.test'] === 'delivered', { what: 'delivery' });
    assert.equal((await t.store.getEvents(id)).filter((e) => e.type === 'delivered').length, 1);
    await t.scheduler.stop();
    await t.store.close();
  });

  it('stop() releases the leases of deliveries that did not finish', async () => {
    const never = new Promise<void>(() => {});
    const t = await setup({ answer: () => 'delivered', hold: never });
    t.scheduler.start();
    const { id } = await t.submit(['a@one.test']);
    await waitFor(async () => (await t.states(id))['a@one.test'] === 'delivering', { what: 'lease' });
    await t.scheduler.stop(50);
    assert.equal((await t.states(id))['a@one.test'], 'queued');
    await t.store.close();
  });

  it('stop() writes the outcomes still gathering before it releases leases', async () => {
    // A deferral needs no journal, so it gathers (here far longer than the test runs).
    const t = await setup({ answer: () => 'temporary', outcomeGatherMs: 60_000 });
    t.scheduler.start();
    const { id } = await t.submit(['a@one.test']);
    await waitFor(async () => t.calls.length === 1, { what: 'the attempt' });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await t.states(id))['a@one.test'], 'delivering', 'still gathering');
    const started = performance.now();
    await t.scheduler.stop(5_000);
    assert.ok(
      performance.now() - started < 2_000,
      'stop wrote them at once, it did not wait out the gathering',
    );
    const [row] = await t.store.getRecipients(id);
    assert.equal(row?.state, 'deferred', 'recorded, not released to be sent again');
    assert.equal(row?.attempts, 1);
    await t.store.close();
  });
});
