/**
 * `postbote bounces classify`, run as a child process through run-cli.ts (the same commander
 * wiring as main.ts, where the integrator registers it).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CATEGORIES } from '../../src/bounces/classify.ts';

const samples = join(import.meta.dirname, 'samples');
const script = join(import.meta.dirname, 'run-cli.ts');

/** Runs `postbote <args>` and returns what it printed and its exit code. */
function run(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return runWithInput(undefined, ...args);
}

function runWithInput(
  input: Buffer | undefined,
  ...args: string[]
): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [script, ...args], (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ stdout, stderr, code });
    });
    child.stdin?.end(input);
  });
}

describe('postbote bounces classify', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-bounces-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--json prints one object per file, with the fields the issue names', async () => {
    const files = ['postfix-multi.eml', 'arf-yahoo.eml', 'auto-exchange-ooo.eml'].map((f) =>
      join(samples, f),
    );
    const { stdout, code } = await run('bounces', 'classify', '--json', ...files);
    assert.equal(code, 0);
    const lines = stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    assert.deepEqual(lines[0], {
      file: files[0],
      kind: 'bounce',
      format: 'dsn',
      recipients: [
        {
          email: 'nobody@mail.example',
          status: '5.1.1',
          code: 550,
          category: 'unknown_user',
          permanent: true,
          diagnostic: '550 5.1.1 Recipient address rejected: User unknown in virtual mailbox table',
        },
        {
          email: 'jane@full.example',
          status: '5.2.2',
          code: 552,
          category: 'mailbox_full',
          permanent: true,
          diagnostic: '552 5.2.2 Mailbox quota exceeded: this account is over its storage limit',
        },
      ],
      return_path_token: 'b+Q7H2XK9M4TPA@pb-bounces.shop.test',
      original_message_id: '<multi.4711@shop.test>',
    });
    assert.equal(lines[1].kind, 'complaint');
    assert.equal(lines[1].feedback_type, 'abuse');
    assert.deepEqual(lines[1].recipients[0].code, null);
    assert.equal(lines[2].kind, 'auto_reply');
    assert.deepEqual(lines[2].recipients, []);
  });

  it('without --json prints a table, one row per recipient', async () => {
    const { stdout } = await run(
      'bounces',
      'classify',
      join(samples, 'postfix-multi.eml'),
      join(samples, 'other-garbage.eml'),
    );
    const rows = stdout.trimEnd().split('\n');
    assert.match(rows[0] ?? '', /^FILE\s+KIND\s+EMAIL\s+STATUS\s+CODE\s+CATEGORY\s+PERMANENT\s+DIAGNOSTIC$/);
    assert.equal(rows.length, 4);
    assert.match(
      rows[1] ?? '',
      /postfix-multi\.eml\s+bounce\s+nobody@mail\.example\s+5\.1\.1\s+550\s+unknown_user\s+hard\s+550 5\.1\.1/,
    );
    assert.match(rows[2] ?? '', /jane@full\.example\s+5\.2\.2\s+552\s+mailbox_full\s+hard/);
    assert.match(rows[3] ?? '', /other-garbage\.eml\s+other(\s+-)+$/);
  });

  it('--rules classifies with another rule file; a broken one is a usage error', async () => {
    const rules = join(dir, 'rules.yaml');
    writeFileSync(
      rules,
      `categories:\n${CATEGORIES.map((c) => `  ${c}: soft`).join('\n')}\n` +
        "rules:\n  - id: all-policy\n    category: policy\n    match: 'quota'\n",
    );
    const { stdout } = await run(
      'bounces',
      'classify',
      '--json',
      '--rules',
      rules,
      join(samples, 'postfix-full.eml'),
    );
    assert.equal(JSON.parse(stdout).recipients[0].category, 'policy');

    writeFileSync(rules, 'categories: {}\n');
    const broken = await run('bounces', 'classify', '--rules', rules, join(samples, 'postfix-full.eml'));
    assert.equal(broken.code, 2);
    assert.match(broken.stderr, /^postbote: .*rules\.yaml: categories without hard\/soft/);
  });

  it('reads standard input for -', async () => {
    const input = readFileSync(join(samples, 'exim-unknown.eml'));
    const { stdout, code } = await runWithInput(input, 'bounces', 'classify', '--json', '-');
    assert.equal(code, 0);
    assert.deepEqual(
      JSON.parse(stdout).recipients.map((r: { email: string; category: string }) => [r.email, r.category]),
      [['peter.n@customer.example', 'unknown_user']],
    );
  });

  it('reports files it cannot read and still classifies the others', async () => {
    const { stdout, stderr, code } = await run(
      'bounces',
      'classify',
      '--json',
      join(dir, 'missing.eml'),
      join(samples, 'qmail-unknown.eml'),
    );
    assert.match(stderr, /cannot read .*missing\.eml/);
    assert.match(stderr, /postbote: 1 of 2 file\(s\) could not be read/);
    assert.equal(JSON.parse(stdout).kind, 'bounce');
    assert.equal(code, 1);
  });
});
