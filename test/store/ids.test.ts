import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newId, randomChars } from '../../src/store/ids.ts';

const BASE32 = /^[0-9a-hjkmnp-tv-z]*$/;

describe('ids', () => {
  it('newId: 20 characters that sort by time, random after the first 10', () => {
    const early = newId(1_700_000_000_000);
    const late = newId(1_700_000_000_001);
    assert.match(early, /^[0-9a-hjkmnp-tv-z]{20}$/);
    assert.ok(early < late);
    assert.equal(early.slice(0, 10), newId(1_700_000_000_000).slice(0, 10));
    assert.notEqual(early, newId(1_700_000_000_000));
  });

  it('randomChars: the requested length from the base32 alphabet, every letter used, no repeats', () => {
    assert.equal(randomChars(0), '');
    const seen = new Set<string>();
    const letters = new Set<string>();
    // 2,000 tokens of 15 characters cross the 4 KiB pool's refill several times.
    for (let i = 0; i < 2000; i++) {
      const token = randomChars(15);
      assert.equal(token.length, 15);
      assert.match(token, BASE32);
      seen.add(token);
      for (const c of token) letters.add(c);
    }
    assert.equal(seen.size, 2000);
    assert.equal(letters.size, 32);
  });
});
