import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  capsAt,
  parseWarmup,
  type WarmupSchedule,
  warmupFinished,
} from '../../../src/delivery/routing/warmup.ts';
import { createWarmupCounters } from '../../../src/delivery/routing/warmup-counters.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const day1 = Date.UTC(2026, 11, 1); // 2026-12-01T00:00Z

function schedule(raw: Record<string, unknown>): WarmupSchedule {
  const problems: string[] = [];
  const parsed = parseWarmup({ start: '2026-12-01', overflow: 'spill', ...raw }, '.warmup', problems);
  assert.deepEqual(problems, []);
  return parsed!;
}

describe('warm-up schedule', () => {
  const s = schedule({ daily: [50, 100, 0, 200], hourly: [10, 20] });

  it('gives day 1 caps on the start date and before it, then one entry per UTC day', () => {
    assert.deepEqual(capsAt(s, day1 - 5 * DAY), { day: 1, daily: 50, hourly: 10 });
    assert.deepEqual(capsAt(s, day1), { day: 1, daily: 50, hourly: 10 });
    assert.deepEqual(capsAt(s, day1 + DAY - 1), { day: 1, daily: 50, hourly: 10 });
    assert.deepEqual(capsAt(s, day1 + DAY), { day: 2, daily: 100, hourly: 20 });
    assert.deepEqual(capsAt(s, day1 + 2 * DAY), { day: 3, daily: 0 }); // hourly list ended: no hourly cap
    assert.deepEqual(capsAt(s, day1 + 3 * DAY), { day: 4, daily: 200 });
  });

  it('has no cap after the last day', () => {
    assert.equal(warmupFinished(s, day1 + 3 * DAY), false);
    assert.equal(warmupFinished(s, day1 + 4 * DAY), true);
    assert.deepEqual(capsAt(s, day1 + 4 * DAY), { day: 5 });
  });
});

describe('createWarmupCounters', () => {
  const sources = [{ name: 'new', warmup: schedule({ daily: [100, 1000], hourly: [30] }) }, { name: 'old' }];

  it('holds the hourly cap, and the next hour opens again', () => {
    const c = createWarmupCounters(sources);
    const t = day1 + 10 * HOUR + 5 * 60_000;
    assert.equal(c.room('new', t), 30);
    c.recordSent('new', 25, t);
    assert.equal(c.room('new', t), 5);
    c.recordSent('new', 5, t + 60_000);
    assert.equal(c.room('new', t + 60_000), 0);
    assert.equal(c.availableAt('new', t), day1 + 11 * HOUR);
    assert.equal(c.room('new', day1 + 11 * HOUR - 1), 0);
    assert.equal(c.room('new', day1 + 11 * HOUR), 30);
  });

  it('keeps to its share of the caps when nodes share them (a cluster counts per node)', () => {
    let nodes = 2;
    const c = createWarmupCounters(sources, { share: () => nodes });
    const t = day1 + 10 * HOUR;
    assert.equal(c.room('new', t), 15, 'half of the hourly cap of 30');
    c.recordSent('new', 15, t);
    assert.equal(c.room('new', t), 0);
    nodes = 1;
    assert.equal(c.room('new', t), 15, 'alone again: the whole cap');
  });

  it('holds the daily cap across hours and rolls over at UTC midnight to the next day’s cap', () => {
    const c = createWarmupCounters(sources);
    for (let h = 0; h < 3; h++) c.recordSent('new', 30, day1 + h * HOUR);
    assert.equal(c.room('new', day1 + 3 * HOUR), 10); // the daily cap binds before the hourly one
    c.recordSent('new', 10, day1 + 3 * HOUR);
    assert.equal(c.room('new', day1 + 4 * HOUR), 0);
    assert.equal(c.availableAt('new', day1 + 4 * HOUR), day1 + DAY);
    const s = c.status(day1 + 4 * HOUR)[0]!;
    assert.deepEqual(
      { day: s.day, dailyCap: s.dailyCap, hourlyCap: s.hourlyCap, sentToday: s.sentToday, capped: s.capped },
      { day: 1, dailyCap: 100, hourlyCap: 30, sentToday: 100, capped: true },
    );
    assert.equal(s.availableAt, day1 + DAY);
    assert.equal(c.room('new', day1 + DAY - 1), 0);
    // Day 2: new counters, the day-2 cap and no hourly cap any more.
    assert.equal(c.room('new', day1 + DAY), 1000);
    c.recordSent('new', 990, day1 + DAY + HOUR);
    assert.equal(c.room('new', day1 + DAY + 2 * HOUR), 10);
    // Day 3: the schedule is over.
    assert.equal(c.room('new', day1 + 2 * DAY), Number.POSITIVE_INFINITY);
  });

  it('never caps a source without warm-up', () => {
    const c = createWarmupCounters(sources);
    c.recordSent('old', 1e9, day1);
    assert.equal(c.room('old', day1), Number.POSITIVE_INFINITY);
    assert.equal(c.room('unknown', day1), Number.POSITIVE_INFINITY);
    assert.deepEqual(
      c.status(day1).map((s) => s.source),
      ['new'],
    );
  });

  it('counts reservations against the cap until they are sent, released or lapse', () => {
    const c = createWarmupCounters(sources, { reservationTtlMs: 10 * 60_000 });
    const t = day1 + 3 * HOUR;
    c.reserve('new', 20, t);
    c.reserve('new', 10, t + 1000);
    assert.equal(c.room('new', t + 1000), 0);
    assert.equal(c.availableAt('new', t + 1000), t + 1000 + 60_000); // capped by in-flight mail only: look again soon
    c.recordSent('new', 18, t + 2000); // consumes 18 of the first reservation
    c.release('new', 2, t + 2000); // the rest of it
    assert.equal(c.status(t + 2000)[0]?.reserved, 10);
    assert.equal(c.room('new', t + 2000), 30 - 18 - 10);
    // The second reservation is never reported: it lapses.
    assert.equal(c.room('new', t + 1000 + 10 * 60_000), 30 - 18);
  });

  it('skips rest days (cap 0) when telling when the source may send again', () => {
    const c = createWarmupCounters([{ name: 'r', warmup: schedule({ daily: [10, 0, 0, 40] }) }]);
    c.recordSent('r', 10, day1 + HOUR);
    assert.equal(c.availableAt('r', day1 + 2 * HOUR), day1 + 3 * DAY);
    assert.equal(c.room('r', day1 + DAY + HOUR), 0);
    assert.equal(c.availableAt('r', day1 + DAY + HOUR), day1 + 3 * DAY);
  });

  it('ignores late reports for an earlier hour or day', () => {
    const c = createWarmupCounters(sources);
    c.recordSent('new', 10, day1 + DAY + 5 * HOUR);
    c.recordSent('new', 30, day1 + 5 * HOUR); // yesterday
    c.recordSent('new', 5, day1 + DAY + 4 * HOUR); // an hour ago: today's count, not this hour's
    const s = c.status(day1 + DAY + 5 * HOUR)[0]!;
    assert.equal(s.sentToday, 15);
    assert.equal(s.sentThisHour, 10);
  });
});
