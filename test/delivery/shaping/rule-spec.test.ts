import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compileMatcher,
  describeRule,
  mergeRules,
  parseRules,
  type RuleSpec,
} from '../../../src/delivery/shaping/rule-spec.ts';

const rule = (name: string, action: RuleSpec['action'] = 'suspend_site'): RuleSpec => ({
  name,
  match: { code: '421' },
  action,
  durationMs: 3_600_000,
});

describe('rule specs', () => {
  it('anchors code and enhanced-code patterns, searches text case-insensitively', () => {
    assert.equal(compileMatcher('code', '42').test('421'), false);
    assert.equal(compileMatcher('code', '4\\d\\d|5\\d\\d').test('550'), true);
    assert.equal(compileMatcher('enhanced', '4\\.7\\.2').test('4.7.28'), false);
    assert.equal(compileMatcher('text', 'try again').test('Please TRY AGAIN later'), true);
  });

  it('parses the written form into plain data with defaults left out', () => {
    const parsed = parseRules(
      [
        {
          name: 'r',
          provider: ['a', 'b'],
          match: { code: '4\\d\\d' },
          action: 'throttle',
          rate: '5/min',
          duration: 90,
        },
      ],
      { path: '' },
    );
    assert.deepEqual(parsed, {
      value: [
        {
          name: 'r',
          providers: ['a', 'b'],
          match: { code: '4\\d\\d' },
          action: 'throttle',
          rate: { count: 5, perMs: 60_000 },
          durationMs: 90_000,
        },
      ],
    });
    assert.deepEqual(parseRules(null, { path: '' }), { value: [] });
    assert.ok(
      'problems' in
        parseRules(
          [{ name: 'r', provider: 'Bad Name', match: { code: 421 }, action: 'suspend_site', duration: '1h' }],
          { path: '' },
        ),
    );
    assert.ok(
      'problems' in
        parseRules(
          [{ name: 'r', match: { text: 'x'.repeat(1001) }, action: 'suspend_site', duration: '1h' }],
          { path: '' },
        ),
    );
    assert.ok(
      'problems' in
        parseRules(
          [{ name: 'r', enabled: 'no', match: { code: 421 }, action: 'suspend_site', duration: '1h' }],
          { path: '' },
        ),
    );
  });

  it('merges in order: shipped (replaced in place, disabled dropped), then new ones', () => {
    const merged = mergeRules(
      [rule('a'), rule('b'), rule('c')],
      [rule('new'), { name: 'b', enabled: false }, rule('a', 'suspend_account')],
    );
    assert.deepEqual(
      merged.map((r) => [r.name, r.action]),
      [
        ['a', 'suspend_account'],
        ['c', 'suspend_site'],
        ['new', 'suspend_site'],
      ],
    );
  });

  it('describes a rule in one line', () => {
    assert.equal(
      describeRule({ ...rule('t', 'throttle'), rate: { count: 1, perMs: 60_000 } }),
      't: throttle 1/min for 1h',
    );
    assert.equal(describeRule(rule('s')), 's: suspend_site for 1h');
  });
});
