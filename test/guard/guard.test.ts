import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type GuardThresholds, judge, parsePercent } from '../../src/guard/guard.ts';
import type { Store } from '../../src/store/store.ts';
import { type ApiApp, call, startApiApp } from '../support/api-app.ts';

const T: GuardThresholds = {
  windowMs: 24 * 3_600_000,
  minVolume: 100,
  bounceWarn: 0.05,
  bouncePause: 0.1,
  complaintWarn: 0.001,
  complaintPause: 0.003,
};

const count = (sent: number, bounced: number, complained = 0) => ({
  accountId: 'a',
  stream: 'outbound',
  sent,
  bounced,
  complained,
});

describe('guard thresholds', () => {
  it('parses the configured percentages', () => {
    assert.equal(parsePercent('5%'), 0.05);
    assert.equal(parsePercent(' 0.1% '), 0.001);
  });

  it('judges bounce and complaint rates against warn and pause, above the minimum volume only', () => {
    assert.equal(judge(count(99, 50), T).level, 'ok'); // too little traffic to judge
    assert.equal(judge(count(100, 4), T).level, 'ok');
    assert.equal(judge(count(100, 5), T).level, 'warn');
    assert.equal(judge(count(100, 10), T).level, 'pause');
    assert.equal(judge(count(1000, 0, 1), T).level, 'warn');
    assert.equal(judge(count(1000, 0, 3), T).level, 'pause');
    assert.match(judge(count(200, 30), T).reason, /bounce rate 15\.0 % \(30 of 200 sends\)/);
    assert.match(judge(count(1000, 0, 3), T).reason, /complaint rate 0\.30 %/);
  });
});

/** Sends `n` messages through the API to `domain` addresses; returns their ids. */
async function send(api: ApiApp, n: number, stream = 'outbound', domain = 'x.test'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await call(api, api.keys.all, 'POST', '/v1/messages', {
      from: 'a@sender.test',
      to: `r${i}-${Math.random().toString(36).slice(2, 8)}@${domain}`,
      subject: 's',
      text: 'hello',
      stream,
    });
    assert.equal(res.statusCode, 202, res.body);
    ids.push(res.json().id);
  }
  return ids;
}

/** Pauses account `acme` (by an operator) and sends it one message, which is held. */
async function pausedWithHeld(api: ApiApp): Promise<{ account: { id: string }; id: string }> {
  const account = await api.store.getAccountByName('acme');
  assert.ok(account);
  await api.guard.pause({ accountId: account.id, stream: '', actor: 'cli:ops', reason: 'x' });
  const [id = ''] = await send(api, 1);
  assert.equal((await api.store.getRecipients(id))[0]?.state, 'held');
  return { account, id };
}

/** Delivers every due recipient, bouncing those in `bounce` (addresses matched by domain). */
async function deliverAll(store: Store, now: number, bounceDomain?: string): Promise<number> {
  const leased = await store.leaseDue({ owner: 't', now, limit: 10_000, leaseUntil: now + 60_000 });
  await store.recordOutcomes(
    't',
    leased.map((r) => {
      const bounced = bounceDomain !== undefined && r.domain === bounceDomain;
      return {
        at: now,
        recipientId: r.id,
        messageId: r.messageId,
        accountId: r.accountId,
        recipient: r.address,
        state: bounced ? 'bounced' : 'delivered',
        attempted: true,
        reply: bounced ? { code: 550, enhanced: '5.1.1', text: 'no such user' } : { code: 250, text: 'ok' },
        event: { type: bounced ? 'bounced' : 'delivered', data: {} },
      } as const;
    }),
  );
  return leased.length;
}

describe('reputation guard', () => {
  it('warns once, pauses over the threshold, holds new mail, and an operator resume releases it', async () => {
    const api = await startApiApp();
    try {
      const account = await api.store.getAccountByName('acme');
      assert.ok(account);
      // 96 delivered + 4 bounced: 4 %, nothing.
      await send(api, 96);
      await deliverAll(api.store, api.clock.now);
      await send(api, 4, 'outbound', 'bounce.test');
      await deliverAll(api.store, api.clock.now, 'bounce.test');
      let run = await api.guard.run();
      assert.deepEqual([run.warned, run.paused], [[], []]);
      // 3 more bounces: 7 of 103, over the warning threshold: one event, not one per run.
      await send(api, 3, 'outbound', 'bounce.test');
      await deliverAll(api.store, api.clock.now, 'bounce.test');
      run = await api.guard.run();
      assert.deepEqual(run.warned, [`${account.id}/outbound`]);
      assert.deepEqual((await api.guard.run()).warned, []);
      // Other streams are judged on their own: broadcast has no traffic.
      api.clock.now += 1000;
      await send(api, 5, 'outbound', 'bounce.test');
      await deliverAll(api.store, api.clock.now, 'bounce.test');
      run = await api.guard.run(); // 12 of 108 = 11 %
      assert.deepEqual(run.paused, [`${account.id}/outbound`]);

      // Paused: accepted (202) and held, never leased; the broadcast stream still sends.
      const [held] = await send(api, 1);
      const [other] = await send(api, 1, 'broadcast');
      assert.equal((await api.store.getRecipients(held ?? ''))[0]?.state, 'held');
      assert.equal((await api.store.getRecipients(other ?? ''))[0]?.state, 'queued');
      assert.equal(await deliverAll(api.store, api.clock.now + 1), 1);
      const events = (await api.store.getEvents(held ?? '')).map((e) => [e.type, e.data.reason]);
      assert.deepEqual(events, [['held', 'paused']]);

      // Status through the API; the account's own key may not lift the guard's pause.
      const status = (await call(api, api.keys.all, 'GET', `/v1/accounts/${account.id}/status`)).json();
      assert.equal(status.streams[0].paused, true);
      assert.equal(status.streams[0].paused_by, 'system:guard');
      const refused = await call(api, api.keys.all, 'POST', `/v1/accounts/${account.id}/resume`, {});
      assert.equal(refused.statusCode, 403);
      assert.equal(
        (await call(api, api.keys.other, 'GET', `/v1/accounts/${account.id}/status`)).statusCode,
        404,
      );

      // The operator resumes: the held recipient becomes due; the same window does not pause again.
      api.clock.now += 1000;
      const resumed = await api.guard.resume({ accountId: account.id, actor: 'cli:ops' });
      assert.deepEqual(resumed, { resumed: ['outbound'], released: 1 });
      assert.equal((await api.store.getRecipients(held ?? ''))[0]?.state, 'queued');
      assert.deepEqual((await api.guard.run()).paused, []);
      assert.equal(await api.guard.holdReason(account.id, 'outbound'), undefined);

      // The audit trail has the pause and the resume, with their actors.
      const audit = (await call(api, api.keys.all, 'GET', '/v1/audit')).json().data;
      assert.deepEqual(
        audit.map((e: { action: string; actor: string }) => [e.action, e.actor]),
        [
          ['account.resume', 'cli:ops'],
          ['account.pause', 'system:guard'],
        ],
      );
      // Another account sees none of it.
      assert.deepEqual((await call(api, api.keys.other, 'GET', '/v1/audit')).json().data, []);
    } finally {
      await api.close();
    }
  });

  it('a key may pause its account and resume that pause; held mail is released', async () => {
    const api = await startApiApp();
    try {
      const account = await api.store.getAccountByName('acme');
      assert.ok(account);
      const res = await call(api, api.keys.all, 'POST', `/v1/accounts/${account.id}/pause`, {
        reason: 'migration',
      });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(
        (await call(api, api.keys.read, 'POST', `/v1/accounts/${account.id}/pause`, {})).statusCode,
        403,
      );
      const [id] = await send(api, 1, 'broadcast');
      assert.equal((await api.store.getRecipients(id ?? ''))[0]?.state, 'held');
      assert.equal((await api.store.getAccount(account.id))?.paused, true);
      const resumed = await call(api, api.keys.all, 'POST', `/v1/accounts/${account.id}/resume`, {});
      assert.equal(resumed.statusCode, 200, resumed.body);
      assert.deepEqual(resumed.json(), { id: account.id, resumed: [''], released: 1 });
      assert.equal((await api.store.getRecipients(id ?? ''))[0]?.state, 'queued');
      assert.equal(
        (await call(api, api.keys.all, 'POST', `/v1/accounts/${account.id}/resume`, {})).statusCode,
        404,
      );
    } finally {
      await api.close();
    }
  });

  it('a resume counts the mail it releases even when a guard pass runs the moment the pause ends', async () => {
    const api = await startApiApp();
    try {
      const { account, id } = await pausedWithHeld(api);
      // Another node's pass (every few hundred ms) lands right after the pause is lifted.
      const passes: number[] = [];
      const save = api.store.saveGuardState.bind(api.store);
      api.store.saveGuardState = async (state) => {
        await save(state);
        passes.push((await api.guard.run()).released);
      };
      assert.deepEqual(await api.guard.resume({ accountId: account.id, actor: 'cli:ops' }), {
        resumed: [''],
        released: 1,
      });
      assert.deepEqual(passes, [0], 'the pass found nothing left to release');
      assert.equal((await api.store.getRecipients(id))[0]?.state, 'queued');
    } finally {
      await api.close();
    }
  });

  it('releases mail held under a pause that has ended (a resume another node did not see in time)', async () => {
    const api = await startApiApp();
    try {
      const { account, id } = await pausedWithHeld(api);
      // The pause ends without a release (as a stale node would see it).
      const [state] = await api.store.listGuardStates(account.id);
      assert.ok(state);
      await api.store.saveGuardState({ ...state, pausedAt: null, resumedAt: api.clock.now });
      assert.equal((await api.store.getRecipients(id))[0]?.state, 'held');
      assert.equal((await api.guard.run()).released, 1);
      assert.equal((await api.store.getRecipients(id))[0]?.state, 'queued');
    } finally {
      await api.close();
    }
  });
});
