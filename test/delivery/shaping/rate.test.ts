import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatRate, HOUR, MINUTE, parseRate, perMs, SECOND } from '../../../src/delivery/shaping/rate.ts';

describe('parseRate', () => {
  it('reads a count per second, minute or hour in the usual spellings', () => {
    assert.deepEqual(parseRate('10/s'), { rate: { count: 10, perMs: SECOND } });
    assert.deepEqual(parseRate('600/min'), { rate: { count: 600, perMs: MINUTE } });
    assert.deepEqual(parseRate('600/m'), { rate: { count: 600, perMs: MINUTE } });
    assert.deepEqual(parseRate(' 5000 / hour '), { rate: { count: 5000, perMs: HOUR } });
    assert.deepEqual(parseRate('3/H'), { rate: { count: 3, perMs: HOUR } });
    assert.deepEqual(parseRate('1/sec'), { rate: { count: 1, perMs: SECOND } });
  });

  it('refuses zero, fractions, negative, unknown windows, huge counts and non-strings', () => {
    for (const bad of ['0/s', '1.5/s', '-1/s', '10/d', '10/fortnight', '10', 's/10', '', '10/s/s']) {
      assert.ok('problem' in parseRate(bad), bad);
    }
    assert.match((parseRate('0/min') as { problem: string }).problem, /at least 1/);
    assert.match((parseRate('99999999999/s') as { problem: string }).problem, /at most 1000000000/);
    assert.match((parseRate(10) as { problem: string }).problem, /like 10\/s.*got 10/);
    assert.match((parseRate(undefined) as { problem: string }).problem, /got nothing/);
  });

  it('formats back and compares across windows', () => {
    assert.equal(formatRate({ count: 5000, perMs: HOUR }), '5000/h');
    assert.equal(formatRate({ count: 60, perMs: MINUTE }), '60/min');
    assert.equal(formatRate({ count: 2, perMs: 500 }), '2/500ms');
    assert.ok(perMs({ count: 1, perMs: MINUTE }) < perMs({ count: 1, perMs: SECOND }));
  });
});
