/**
 * The bounce corpus: every sample under samples/ against its expected reading in expected.json
 * (kind, failed recipients with category and hard/soft, VERP token, original Message-ID).
 * Postfix samples come from a real Postfix (make-postfix-samples.sh), Postbote's from its own
 * DSN builder (make-postbote-samples.ts); the rest are written from each format's documentation.
 * The tally is printed for the integrator's report.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseReport } from '../../src/bounces/parse.ts';

interface ExpectedRecipient {
  email: string;
  category: string;
  permanent: boolean;
}

interface Expected {
  kind: string;
  format?: string;
  feedbackType?: string;
  recipients: ExpectedRecipient[];
  returnPathToken?: string;
  originalMessageId?: string;
}

const dir = join(import.meta.dirname, 'samples');
const expected = JSON.parse(readFileSync(join(import.meta.dirname, 'expected.json'), 'utf8')) as Record<
  string,
  Expected
>;
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.eml'))
  .sort();

test('every sample has an expected reading and every expected reading a sample', () => {
  assert.ok(files.length >= 40, `only ${files.length} samples`);
  assert.deepEqual(files, Object.keys(expected).sort());
});

test('bounce corpus', async (t) => {
  const tally = { samples: 0, kind: 0, recipients: 0, found: 0, category: 0, permanent: 0, both: 0 };
  for (const file of files) {
    const want = expected[file];
    if (!want) continue;
    await t.test(file, () => {
      const got = parseReport(readFileSync(join(dir, file)));
      tally.samples++;
      if (got.kind === want.kind) tally.kind++;
      for (const r of want.recipients) {
        tally.recipients++;
        const match = got.recipients.find((g) => g.email === r.email);
        if (!match) continue;
        tally.found++;
        if (match.category === r.category) tally.category++;
        if (match.permanent === r.permanent) tally.permanent++;
        if (match.category === r.category && match.permanent === r.permanent) tally.both++;
      }

      assert.equal(got.kind, want.kind, 'kind');
      if (want.format) assert.equal(got.format, want.format, 'format');
      assert.equal(got.feedbackType, want.feedbackType, 'feedback type');
      assert.deepEqual(
        got.recipients.map((r) => ({ email: r.email, category: r.category, permanent: r.permanent })),
        want.recipients,
        'recipients',
      );
      for (const r of got.recipients) {
        assert.match(r.status, got.kind === 'complaint' ? /^$/ : /^[245]\.\d{1,3}\.\d{1,3}$/, 'status');
      }
      assert.equal(got.returnPathToken, want.returnPathToken, 'return path token');
      assert.equal(got.originalMessageId, want.originalMessageId, 'original Message-ID');
    });
  }
  const pct = (n: number, of: number) => `${n}/${of} (${of === 0 ? 100 : Math.round((n / of) * 1000) / 10}%)`;
  t.diagnostic(
    `bounce corpus: ${tally.samples} samples, kind right ${pct(tally.kind, tally.samples)}; ` +
      `recipients found ${pct(tally.found, tally.recipients)}, category right ${pct(tally.category, tally.recipients)}, ` +
      `hard/soft right ${pct(tally.permanent, tally.recipients)}, both right ${pct(tally.both, tally.recipients)}`,
  );
});
