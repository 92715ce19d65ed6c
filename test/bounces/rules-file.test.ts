import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { classify, loadRules, setRules } from '../../src/bounces/classify.ts';
import { useRulesFile } from '../../src/bounces/rules-file.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { tempDir } from '../support/temp-dir.ts';

const dir = tempDir();
after(() => {
  setRules(loadRules());
  dir.cleanup();
});

it('bounces.rules_file replaces the shipped rules and is reloaded when it changes; a broken edit keeps the rules', async () => {
  const file = join(dir.path, 'rules.yaml');
  const shipped = readFileSync(new URL('../../src/bounces/rules.yaml', import.meta.url), 'utf8');
  const text = 'Mailbox quota exceeded for this user';
  const reply = { code: 452, enhanced: '4.2.2', text };
  writeFileSync(file, shipped);
  const stop = useRulesFile(file, silentLogger(), 50);
  try {
    assert.equal(classify(reply).category, 'mailbox_full');
    // An operator's rule: this text means the mailbox is gone.
    const custom = shipped.replace(
      /^rules:\s*$/m,
      `rules:\n  - match: 'quota exceeded for this user'\n    category: mailbox_disabled`,
    );
    assert.notEqual(custom, shipped, 'the shipped file has a rules: list to prepend to');
    writeFileSync(file, custom);
    await waitUntil(() => classify(reply).category === 'mailbox_disabled');
    writeFileSync(file, 'rules: [ {');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(classify(reply).category, 'mailbox_disabled', 'a broken file keeps the rules in force');
  } finally {
    stop();
  }
});

async function waitUntil(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(ok(), 'the rules were reloaded');
}
