import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  BounceRulesError,
  CATEGORIES,
  categoryOfStatus,
  classify,
  createClassifier,
  currentRules,
  loadRules,
  parseRules,
  setRules,
  splitReply,
} from '../../src/bounces/classify.ts';
import { parseReply } from '../../src/delivery/smtp-reply.ts';

const allSoft = `categories:\n${CATEGORIES.map((c) => `  ${c}: soft`).join('\n')}\n`;

describe('classify: the enhanced status code decides when no rule matches', () => {
  const noRules = createClassifier(parseRules(`${allSoft}rules: []\n`));
  const cases: Array<[string, string, boolean]> = [
    ['5.1.1', 'unknown_user', true],
    ['4.1.1', 'unknown_user', false],
    ['5.1.2', 'unknown_domain', true],
    ['5.1.10', 'unknown_domain', true],
    ['5.1.6', 'mailbox_disabled', true],
    ['5.2.1', 'mailbox_disabled', true],
    ['5.2.2', 'mailbox_full', true],
    ['4.2.2', 'mailbox_full', false],
    ['5.2.3', 'message_too_large', true],
    ['5.3.4', 'message_too_large', true],
    ['4.3.1', 'system', false],
    ['4.4.1', 'network', false],
    ['5.4.4', 'unknown_domain', true],
    ['4.4.4', 'network', false],
    ['4.4.7', 'expired', false],
    ['4.5.3', 'rate_limited', false],
    ['5.5.2', 'protocol', true],
    ['5.6.1', 'content_rejected', true],
    ['5.6.7', 'protocol', true],
    ['5.7.1', 'policy', true],
    ['5.7.8', 'auth_failure', true],
    ['5.7.26', 'auth_failure', true],
    ['4.7.28', 'rate_limited', false],
    ['5.7.509', 'policy', true], // unlisted detail: the subject (security or policy) decides
  ];
  for (const [enhanced, category, permanent] of cases) {
    it(`${enhanced} → ${category}, ${permanent ? 'hard' : 'soft'}`, () => {
      assert.deepEqual(noRules({ enhanced, text: 'no words that any rule knows' }), { category, permanent });
    });
  }

  it('falls back to the basic reply code, then to other', () => {
    assert.deepEqual(noRules({ code: 552, text: '' }), { category: 'mailbox_full', permanent: true });
    assert.deepEqual(noRules({ code: 421, text: '' }), { category: 'system', permanent: false });
    assert.deepEqual(noRules({ code: 535, text: '' }), { category: 'auth_failure', permanent: true });
    assert.deepEqual(noRules({ code: 550, enhanced: '5.0.0', text: '' }), {
      category: 'other',
      permanent: true,
    });
    assert.deepEqual(noRules({ code: 450, text: '' }), { category: 'other', permanent: false });
  });

  it('ignores malformed codes', () => {
    assert.deepEqual(noRules({ code: 42, enhanced: '9.9.9', text: '' }), {
      category: 'other',
      permanent: false,
    });
    assert.equal(categoryOfStatus('5.1'), undefined);
    assert.equal(categoryOfStatus('5.0.0'), undefined);
  });
});

describe('classify: the code class makes a category hard or soft, the category default decides without one', () => {
  it('a 4xx unknown user is soft, a 5xx one hard, a bare text takes the default', () => {
    assert.equal(
      classify({ code: 450, enhanced: '4.1.1', text: 'Recipient address rejected: unverified address' })
        .permanent,
      false,
    );
    assert.equal(classify({ code: 550, enhanced: '5.1.1', text: 'User unknown' }).permanent, true);
    assert.deepEqual(classify({ text: 'User unknown' }), {
      category: 'unknown_user',
      permanent: true,
      rule: 'unknown-user',
    });
    assert.deepEqual(classify({ text: 'mailbox full' }), {
      category: 'mailbox_full',
      permanent: false,
      rule: 'mailbox-full',
    });
  });

  it('takes the codes from a whole reply given as text', () => {
    assert.deepEqual(classify({ text: '552 5.2.2 Mailbox quota exceeded' }), {
      category: 'mailbox_full',
      permanent: true,
      rule: 'mailbox-full',
    });
    assert.equal(classify({ text: '#4.4.7 QUEUE.Expired; message expired' }).category, 'expired');
  });

  it('classifies what the delivery engine holds (parseReply) the same way as a bounce', () => {
    const sync = parseReply(
      '550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 gsmtp',
    );
    const async = {
      code: 550,
      enhanced: '5.1.1',
      text: 'The email account that you tried to reach does not exist.',
    };
    assert.deepEqual(classify(sync), classify(async));
    assert.deepEqual(classify(sync), { category: 'unknown_user', permanent: true, rule: 'unknown-user' });
  });
});

describe('classify: bundled rules override generic codes', () => {
  const cases: Array<[string, string, boolean]> = [
    [
      '554 5.7.1 Service unavailable; Client host [192.0.2.25] blocked using zen.spamhaus.org',
      'reputation_block',
      true,
    ],
    ['550 5.7.606 Access denied, banned sending IP [192.0.2.25].', 'reputation_block', true],
    [
      '421 4.7.650 The mail server [192.0.2.25] has been temporarily rate limited due to IP reputation.',
      'reputation_block',
      false,
    ],
    [
      '550 5.7.1 Our system has detected that this message is likely unsolicited mail.',
      'content_rejected',
      true,
    ],
    ['550 5.7.1 Message contains a virus', 'content_rejected', true],
    [
      "550 5.7.1 Unauthenticated email from shop.test is not accepted due to domain's DMARC policy.",
      'auth_failure',
      true,
    ],
    ['451 4.7.1 Greylisting in action, please come back later', 'policy', false],
    ['554 5.7.1 <x@y.example>: Relay access denied', 'policy', true],
    ['450 4.1.8 <b@shop.test>: Sender address rejected: Domain not found', 'policy', false],
    ['550 5.4.1 Recipient address rejected: Access denied. AS(201806281)', 'unknown_user', true],
    ['452 4.2.2 The email account that you tried to reach is over quota.', 'mailbox_full', false],
    ["552 5.2.3 Your message exceeded Google's message size limits.", 'message_too_large', true],
    ['550 5.2.1 The email account that you tried to reach is disabled.', 'mailbox_disabled', true],
    ['452 4.5.3 Too many recipients', 'rate_limited', false],
    [
      '421 4.7.0 [TSS04] Messages from 192.0.2.25 temporarily deferred due to unexpected volume',
      'reputation_block',
      false,
    ],
    ['451 4.4.0 DNS query failed', 'network', false],
    ['421 4.3.0 Temporary System Problem. Try again later.', 'system', false],
    ['500 5.5.2 Syntax error, command unrecognized', 'protocol', true],
    ['550 Host or domain name not found', 'unknown_domain', true],
  ];
  for (const [reply, category, permanent] of cases) {
    it(`${reply.slice(0, 70)} → ${category}`, () => {
      const got = classify({ text: reply });
      assert.equal(got.category, category);
      assert.equal(got.permanent, permanent);
    });
  }

  it('a status-only rule: 4.4.7 is expired whatever the last attempt said', () => {
    assert.deepEqual(classify({ code: 421, enhanced: '4.4.7', text: 'connection timed out' }), {
      category: 'expired',
      permanent: false,
      rule: 'delivery-time-expired',
    });
    assert.equal(
      classify({ code: 421, enhanced: '4.4.2', text: 'connection timed out' }).category,
      'network',
    );
  });
});

describe('rule files', () => {
  it('a rule may be limited to status prefixes and may pin hard/soft', () => {
    const rules = parseRules(
      `${allSoft}rules:\n` +
        "  - id: only-57\n    category: reputation_block\n    status: ['5.7']\n    match: 'blocked'\n" +
        "  - id: full-is-soft\n    category: mailbox_full\n    permanent: false\n    match: 'full'\n",
    );
    const c = createClassifier(rules);
    assert.deepEqual(c({ enhanced: '5.7.1', text: 'you are blocked' }), {
      category: 'reputation_block',
      permanent: true,
      rule: 'only-57',
    });
    // 5.7.10 is not under "5.7.1"; 4.7.1 is not under "5.7".
    assert.equal(c({ enhanced: '4.7.1', text: 'you are blocked' }).rule, undefined);
    assert.deepEqual(c({ code: 552, enhanced: '5.2.2', text: 'mailbox full' }), {
      category: 'mailbox_full',
      permanent: false,
      rule: 'full-is-soft',
    });
  });

  it('rejects what it cannot use, naming the file and the rule', () => {
    const bad: Array<[string, RegExp]> = [
      ['categories: [1, 2]\n', /"categories" must map/],
      [`${allSoft.replace('  other: soft\n', '')}rules: []\n`, /without hard\/soft: other/],
      [`${allSoft.replace('other: soft', 'other: maybe')}`, /must be hard or soft/],
      [`${allSoft}rules:\n  - category: nope\n    match: x\n`, /rule 1 \(rule-1\): unknown category "nope"/],
      [
        `${allSoft}rules:\n  - id: r\n    category: other\n    match: '(unclosed'\n`,
        /rule 1 \(r\): invalid regular expression/,
      ],
      [`${allSoft}rules:\n  - id: r\n    category: other\n`, /"match" must be a regular expression/],
      [
        `${allSoft}rules:\n  - {id: a, category: other, match: x}\n  - {id: a, category: other, match: y}\n`,
        /duplicate id "a"/,
      ],
      [`${allSoft}rules:\n  - {id: a, category: other, match: x, status: '7.1'}\n`, /enhanced-code prefixes/],
      [`${allSoft}rules:\n  - {id: a, category: other, match: x, permanent: 'yes'}\n`, /true or false/],
      ['categories: {unknown_user: hard\n', /not valid YAML/],
    ];
    for (const [text, message] of bad) {
      assert.throws(
        () => parseRules(text, 'test.yaml'),
        (err: Error) => {
          assert.ok(err instanceof BounceRulesError);
          assert.match(err.message, /^test\.yaml: /);
          assert.match(err.message, message);
          return true;
        },
      );
    }
    assert.throws(
      () => loadRules('/nonexistent/rules.yaml'),
      /cannot read bounce rules \/nonexistent\/rules\.yaml/,
    );
  });

  it('the bundled file loads and every rule names a known category', () => {
    const rules = loadRules();
    assert.ok(rules.rules.length >= 10);
    assert.deepEqual(Object.keys(rules.defaults).sort(), [...CATEGORIES].sort());
  });

  describe('reloading', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-rules-'));
    after(() => {
      setRules(loadRules());
      rmSync(dir, { recursive: true, force: true });
    });

    it('setRules(loadRules(file)) changes what classify says, for every caller', () => {
      const text = 'Message rejected: blah-filter says no';
      assert.equal(classify({ code: 550, enhanced: '5.7.1', text }).category, 'policy');
      const file = join(dir, 'rules.yaml');
      writeFileSync(
        file,
        `${allSoft}rules:\n  - id: blah\n    category: content_rejected\n    match: 'blah-filter'\n`,
      );
      setRules(loadRules(file));
      assert.equal(currentRules().source, file);
      assert.deepEqual(classify({ code: 550, enhanced: '5.7.1', text }), {
        category: 'content_rejected',
        permanent: true,
        rule: 'blah',
      });
    });
  });
});

describe('splitReply', () => {
  it('takes the codes off and the glued continuation prefixes out', () => {
    assert.deepEqual(
      splitReply(
        '550-5.1.1 The email account does not exist. 550-5.1.1 Please try 550 5.1.1 https://x.example/ - gsmtp',
      ),
      {
        code: 550,
        enhanced: '5.1.1',
        text: 'The email account does not exist. Please try https://x.example/ - gsmtp',
      },
    );
    assert.deepEqual(splitReply('#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##'), {
      code: 550,
      enhanced: '5.1.1',
      text: 'RESOLVER.ADR.RecipNotFound; not found ##',
    });
    assert.deepEqual(splitReply('5.1.1 bad mailbox'), { enhanced: '5.1.1', text: 'bad mailbox' });
    assert.deepEqual(splitReply('connect to mx: Connection refused'), {
      text: 'connect to mx: Connection refused',
    });
  });

  it('keeps an enhanced code of another class in the text (RFC 3463 §3)', () => {
    assert.deepEqual(splitReply('451 5.7.1 greylisted'), { code: 451, text: '5.7.1 greylisted' });
  });

  it('does not take an IP address or a version for a status', () => {
    assert.deepEqual(splitReply('550 5.1.1.4 odd'), { code: 550, text: '5.1.1.4 odd' });
    assert.deepEqual(splitReply('4.2.2.1 resolver'), { text: '4.2.2.1 resolver' });
  });
});
