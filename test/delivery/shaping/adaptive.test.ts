import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createAdaptiveShaper,
  describeAction,
  MAX_TEXT_SEARCHED,
  type ShapingActionEvent,
  type ShapingContext,
} from '../../../src/delivery/shaping/adaptive.ts';
import { shippedProviderData } from '../../../src/delivery/shaping/provider-data.ts';
import { HOUR, MINUTE } from '../../../src/delivery/shaping/rate.ts';
import type { RuleSpec } from '../../../src/delivery/shaping/rule-spec.ts';
import { parseReply } from '../../../src/delivery/smtp-reply.ts';
import { fakeClock } from '../../support/fake-clock.ts';

const shipped = shippedProviderData().rules;
const anySite: ShapingContext = {
  source: 'ip-a',
  site: 'mx1.a.test,mx2.a.test',
  account: 'acme',
  stream: 'outbound',
};
const yahoo: ShapingContext = {
  source: 'ip-a',
  site: 'provider:yahoo',
  provider: 'yahoo',
  account: 'acme',
  stream: 'news',
};
const gmail: ShapingContext = {
  source: 'ip-a',
  site: 'provider:google',
  provider: 'google',
  account: 'acme',
};

function shaper(rules: readonly RuleSpec[] = shipped) {
  const events: ShapingActionEvent[] = [];
  const adaptive = createAdaptiveShaper({ rules, onEvent: (event) => events.push(event) });
  return { adaptive, events };
}

describe('createAdaptiveShaper', () => {
  it('throttles (source, site) when a sink answers "421 4.7.0 Try again later"', () => {
    const clock = fakeClock();
    const { adaptive, events } = shaper();
    const triggered = adaptive.observe(parseReply('421 4.7.0 Try again later'), anySite, clock.now());
    assert.equal(triggered.length, 1);
    assert.deepEqual(triggered[0], {
      rule: 'generic-421-try-again-later',
      kind: 'throttle',
      scope: { source: 'ip-a', site: 'mx1.a.test,mx2.a.test' },
      scopeKey: 'site:ip-a|mx1.a.test,mx2.a.test',
      rate: { count: 60, perMs: MINUTE },
      since: clock.now(),
      until: clock.now() + 30 * MINUTE,
      reply: '421 4.7.0 Try again later',
    });
    assert.deepEqual(adaptive.throttleFor('ip-a', 'mx1.a.test,mx2.a.test', clock.now()), {
      rate: { count: 60, perMs: MINUTE },
      since: clock.now(),
      until: clock.now() + 30 * MINUTE,
    });
    // Only that source and that site.
    assert.equal(adaptive.throttleFor('ip-b', 'mx1.a.test,mx2.a.test', clock.now()), undefined);
    assert.equal(adaptive.throttleFor('ip-a', 'provider:google', clock.now()), undefined);
    assert.equal(adaptive.suspendedUntil(anySite, clock.now()), undefined);
    assert.deepEqual(
      events.map((e) => [e.type, e.action.rule, e.at]),
      [['triggered', 'generic-421-try-again-later', clock.now()]],
    );
  });

  it('ends the action exactly at its expiry and reports it (fake clock, no sleeping)', () => {
    const clock = fakeClock();
    const { adaptive, events } = shaper();
    const t0 = clock.now();
    const tss04 = parseReply(
      '421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred - try again later',
    );
    adaptive.observe(tss04, yahoo, t0);
    assert.equal(adaptive.suspendedUntil(yahoo, t0), t0 + 4 * HOUR);
    assert.equal(adaptive.nextExpiry(), t0 + 30 * MINUTE); // the generic 421 throttle ends first
    clock.set(t0 + 4 * HOUR - 1);
    assert.equal(adaptive.suspendedUntil(yahoo, clock.now()), t0 + 4 * HOUR);
    assert.equal(adaptive.throttleFor(yahoo.source, yahoo.site, clock.now()), undefined);
    assert.deepEqual(
      events.map((e) => [e.type, e.action.rule, e.at - t0]),
      [
        ['triggered', 'generic-421-try-again-later', 0],
        ['triggered', 'yahoo-tss04', 0],
        ['expired', 'generic-421-try-again-later', 4 * HOUR - 1],
      ],
    );
    clock.set(t0 + 4 * HOUR);
    assert.equal(adaptive.suspendedUntil(yahoo, clock.now()), undefined);
    assert.deepEqual(adaptive.active(clock.now()), []);
    assert.deepEqual(
      events.slice(3).map((e) => [e.type, e.action.rule, e.at - t0]),
      [['expired', 'yahoo-tss04', 4 * HOUR]],
    );
    assert.equal(adaptive.nextExpiry(), undefined);
  });

  it('reports expiry punctually through expire() at nextExpiry()', () => {
    const { adaptive, events } = shaper();
    const t0 = Date.UTC(2026, 0, 1);
    adaptive.observe(parseReply('421 try again later'), anySite, t0);
    const at = adaptive.nextExpiry()!;
    assert.deepEqual(adaptive.expire(at - 1), []);
    assert.equal(adaptive.expire(at).length, 1);
    assert.deepEqual(events.at(-1), { type: 'expired', action: events[0]!.action, at });
  });

  it('applies provider rules to that provider’s sites only', () => {
    const now = Date.UTC(2026, 0, 1);
    const { adaptive } = shaper();
    const tss04 = parseReply('421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred');
    assert.deepEqual(adaptive.observe(tss04, anySite, now), []);
    assert.deepEqual(
      adaptive.observe(tss04, yahoo, now).map((a) => a.rule),
      ['yahoo-tss04'],
    );
    const gmail428 = parseReply(
      '421-4.7.28 Our system has detected an unusual rate of\r\n421 4.7.28 unsolicited mail originating from your IP address.',
    );
    assert.deepEqual(
      adaptive.observe(gmail428, gmail, now).map((a) => [a.rule, a.kind]),
      [['gmail-unusual-rate', 'throttle']],
    );
    assert.equal(adaptive.observe(gmail428, yahoo, now).length, 0);
  });

  it('recognises the shipped Yahoo and Microsoft replies', () => {
    const now = Date.UTC(2026, 0, 1);
    const outlook: ShapingContext = { source: 'ip-a', site: 'provider:outlook', provider: 'outlook' };
    const cases: [string, ShapingContext, string[]][] = [
      ['421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred', yahoo, ['yahoo-ts01-ts02']],
      ['421 4.7.0 [TSS02] Messages from 192.0.2.1 temporarily deferred', yahoo, ['yahoo-ts01-ts02']],
      ['421 4.7.1 [TS03] All messages from 192.0.2.1 will be permanently deferred', yahoo, ['yahoo-ts03']],
      [
        '451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation. (S775)',
        outlook,
        ['microsoft-ip-reputation'],
      ],
      [
        '421 RP-001 (BAY004-MC1F1) Unfortunately, some messages from 192.0.2.1 weren’t sent.',
        outlook,
        ['microsoft-rp-limits'],
      ],
      [
        '550 5.7.1 Unfortunately, messages from [192.0.2.1] weren’t sent. Please contact your Internet service provider since part of their network is on our block list (S3150).',
        outlook,
        ['microsoft-s3150-blocklist'],
      ],
      ['421 RP-001 rate limited', yahoo, []],
      ['250 2.0.0 OK', outlook, []],
    ];
    for (const [raw, context, rules] of cases) {
      const { adaptive } = shaper();
      assert.deepEqual(
        adaptive.observe(parseReply(raw), context, now).map((a) => a.rule),
        rules,
        raw,
      );
    }
  });

  it('triggers a threshold rule only at the Nth match within the window, then counts again', () => {
    const rule: RuleSpec = {
      name: 'busy',
      match: { code: '4\\d\\d', text: 'busy' },
      action: 'suspend_site',
      durationMs: 10 * MINUTE,
      threshold: { count: 3, perMs: HOUR },
    };
    const { adaptive } = shaper([rule]);
    const busy = parseReply('450 4.3.2 server busy');
    const t0 = Date.UTC(2026, 0, 1);
    assert.equal(adaptive.observe(busy, anySite, t0).length, 0);
    assert.equal(adaptive.observe(busy, anySite, t0 + 30 * MINUTE).length, 0);
    // The first match has left the hour: still two.
    assert.equal(adaptive.observe(busy, anySite, t0 + HOUR + MINUTE).length, 0);
    const fired = adaptive.observe(busy, anySite, t0 + HOUR + 2 * MINUTE);
    assert.equal(fired.length, 1);
    assert.equal(fired[0]?.until, t0 + HOUR + 12 * MINUTE);
    // Counted per scope: another source starts from zero.
    assert.equal(adaptive.observe(busy, { ...anySite, source: 'ip-b' }, t0 + HOUR + 2 * MINUTE).length, 0);
  });

  it('extends an action that is matched again while in force', () => {
    const { adaptive, events } = shaper();
    const t0 = Date.UTC(2026, 0, 1);
    adaptive.observe(parseReply('421 try again later'), anySite, t0);
    const [again] = adaptive.observe(parseReply('421 4.7.0 try later'), anySite, t0 + 20 * MINUTE);
    assert.equal(again?.since, t0);
    assert.equal(again?.until, t0 + 50 * MINUTE);
    assert.deepEqual(
      events.map((e) => e.type),
      ['triggered', 'extended'],
    );
    assert.equal(adaptive.active(t0 + 49 * MINUTE).length, 1);
  });

  it('suspends a stream or an account, and needs them in the context', () => {
    const rules: RuleSpec[] = [
      {
        name: 'auth',
        match: { text: 'authentication information' },
        action: 'suspend_account',
        durationMs: 3 * HOUR,
      },
      { name: 'complaints', match: { enhanced: '4\\.7\\.1' }, action: 'suspend_stream', durationMs: HOUR },
    ];
    const { adaptive } = shaper(rules);
    const t0 = Date.UTC(2026, 0, 1);
    assert.equal(
      adaptive.observe(
        parseReply('550 5.7.26 no authentication information'),
        { source: 's', site: 'x.test' },
        t0,
      ).length,
      0,
    );
    adaptive.observe(
      parseReply('550 5.7.26 This message does not have authentication information'),
      yahoo,
      t0,
    );
    adaptive.observe(
      parseReply('421 4.7.1 complaints'),
      { ...anySite, account: 'globex', stream: 'news' },
      t0,
    );
    // The account is suspended on every site and source, for every stream.
    assert.equal(adaptive.suspendedUntil({ account: 'acme' }, t0), t0 + 3 * HOUR);
    assert.equal(
      adaptive.suspendedUntil({ source: 'ip-z', site: 'other.test', account: 'acme', stream: 'x' }, t0),
      t0 + 3 * HOUR,
    );
    // globex/news only.
    assert.equal(adaptive.suspendedUntil({ account: 'globex', stream: 'news' }, t0), t0 + HOUR);
    assert.equal(adaptive.suspendedUntil({ account: 'globex', stream: 'outbound' }, t0), undefined);
    assert.equal(adaptive.suspendedUntil({ account: 'globex' }, t0), undefined);
    assert.deepEqual(
      adaptive.active(t0).map((a) => a.scopeKey),
      ['stream:globex/news', 'account:acme'],
    );
  });

  it('matches code as a number or a regex over the whole code, enhanced over the whole enhanced code', () => {
    const rules: RuleSpec[] = [
      { name: 'exact', match: { code: '421' }, action: 'suspend_site', durationMs: MINUTE },
      {
        name: 'class',
        match: { code: '4\\d\\d', enhanced: '4\\.7\\.2' },
        action: 'suspend_site',
        durationMs: MINUTE,
      },
    ];
    const now = Date.UTC(2026, 0, 1);
    const fire = (raw: string) =>
      shaper(rules)
        .adaptive.observe(parseReply(raw), anySite, now)
        .map((a) => a.rule);
    assert.deepEqual(fire('4210 nonsense'), []);
    assert.deepEqual(fire('421 closing'), ['exact']);
    assert.deepEqual(fire('451 4.7.2 x'), ['class']);
    assert.deepEqual(fire('451 4.7.28 x'), []); // not 4.7.2
    assert.deepEqual(fire('451 no enhanced code'), []);
    assert.deepEqual(fire('garbage'), []);
  });

  it('lets the slowest of several throttles win', () => {
    const rules: RuleSpec[] = [
      {
        name: 'slow',
        match: { text: 'slow' },
        action: 'throttle',
        rate: { count: 1, perMs: MINUTE },
        durationMs: HOUR,
      },
      {
        name: 'fast',
        match: { text: 'slow' },
        action: 'throttle',
        rate: { count: 10, perMs: 1000 },
        durationMs: 2 * HOUR,
      },
    ];
    const { adaptive } = shaper(rules);
    const t0 = Date.UTC(2026, 0, 1);
    adaptive.observe(parseReply('421 go slow'), anySite, t0);
    assert.equal(adaptive.throttleFor(anySite.source, anySite.site, t0)?.rate.count, 1);
    assert.equal(adaptive.throttleFor(anySite.source, anySite.site, t0 + HOUR)?.rate.count, 10);
    assert.equal(adaptive.throttleFor(anySite.source, anySite.site, t0 + 2 * HOUR), undefined);
  });

  it('searches only the first part of a hostile, huge reply text', () => {
    const rules: RuleSpec[] = [
      { name: 'tail', match: { text: 'needle' }, action: 'suspend_site', durationMs: MINUTE },
    ];
    const { adaptive } = shaper(rules);
    const now = Date.UTC(2026, 0, 1);
    const huge = { code: 421, text: `${'a'.repeat(MAX_TEXT_SEARCHED)}needle${'b'.repeat(5_000_000)}` };
    assert.deepEqual(adaptive.observe(huge, anySite, now), []);
    assert.equal(
      adaptive.observe({ code: 421, text: `needle${'b'.repeat(5_000_000)}` }, anySite, now).length,
      1,
    );
  });

  it('lets an operator lift actions early, reporting them', () => {
    const { adaptive, events } = shaper();
    const t0 = Date.UTC(2026, 0, 1);
    adaptive.observe(parseReply('421 4.7.0 [TSS04] deferred'), yahoo, t0);
    const lifted = adaptive.lift('site:ip-a|provider:yahoo', t0 + MINUTE);
    assert.deepEqual(
      lifted.map((a) => a.rule),
      ['yahoo-tss04'],
    );
    assert.equal(adaptive.suspendedUntil(yahoo, t0 + MINUTE), undefined);
    assert.equal(events.at(-1)?.type, 'lifted');
    assert.deepEqual(adaptive.lift('site:nobody|x', t0), []);
  });

  it('describes an action in one line', () => {
    const { adaptive } = shaper();
    const t0 = Date.UTC(2026, 0, 1);
    const [action] = adaptive.observe(parseReply('421 4.7.0 Try again later'), anySite, t0);
    assert.equal(
      describeAction(action!),
      'throttle 60/min site:ip-a|mx1.a.test,mx2.a.test until 2026-01-01T00:30:00.000Z (generic-421-try-again-later)',
    );
  });
});
