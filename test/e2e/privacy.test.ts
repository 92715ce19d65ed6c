/**
 * The operator's side of the guard, retention and privacy through the real CLI on a fresh data
 * dir (no running node needed): accounts pause/status/resume, set-retention, privacy export and
 * erase, audit. Every command is a separate process, as an operator runs them.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { runCli } from '../support/postbote-process.ts';
import { tempDir } from '../support/temp-dir.ts';

describe('CLI: accounts pause/resume/status/set-retention, privacy export/erase, audit', {
  timeout: 120_000,
}, () => {
  const dir = tempDir('postbote-e2e-privacy-');
  const env = { POSTBOTE_DATA_DIR: dir.path };
  after(() => dir.cleanup());

  it('pauses and resumes with the audit trail, keeps an account’s own retention, exports and erases an address', async () => {
    await runCli(['accounts', 'create', 'shop'], env);
    assert.match(
      await runCli(['accounts', 'pause', 'shop', '--stream', 'broadcast', '--reason', 'list cleanup'], env),
      /stream broadcast of account "shop" paused/,
    );
    const status = JSON.parse(await runCli(['accounts', 'status', 'shop', '--json'], env))[0];
    assert.deepEqual(
      status.streams.map((s: { stream: string; paused: boolean; reason: string }) => [
        s.stream,
        s.paused,
        s.reason,
      ]),
      [['broadcast', true, 'list cleanup']],
    );
    assert.equal(status.paused, false, 'a stream pause is not an account pause');
    assert.match(
      await runCli(['accounts', 'resume', 'shop'], env),
      /resumed stream broadcast; 0 held recipient\(s\) released/,
    );

    assert.match(
      await runCli(['accounts', 'set-retention', 'shop', '--bodies', '2d', '--metadata', '30d'], env),
      /keeps bodies 2d and messages 30d/,
    );
    await assert.rejects(
      runCli(['accounts', 'set-retention', 'shop', '--bodies', '40d'], env),
      /must not be kept longer/,
    );
    assert.deepEqual(JSON.parse(await runCli(['accounts', 'status', 'shop', '--json'], env))[0].retention, {
      bodies: '2d',
      metadata: '30d',
    });
    await runCli(['suppressions', 'add', 'Erin@Example.org', '--account', 'shop'], env);

    const exported = JSON.parse(
      await runCli(['privacy', 'export', 'erin@example.org', '--account', 'shop'], env),
    );
    assert.equal(exported.suppressions[0]?.address, 'erin@example.org');
    await assert.rejects(runCli(['privacy', 'erase', 'erin@example.org'], env), /add --yes/);
    await assert.rejects(
      runCli(['privacy', 'erase', 'not an address', '--yes'], env),
      /not an email address/,
    );
    const erased = JSON.parse(
      await runCli(['privacy', 'erase', 'erin@example.org', '--yes', '--json'], env),
    )[0];
    assert.equal(erased.suppressionsHashed, 1);
    const after = JSON.parse(await runCli(['suppressions', 'list', '--account', 'shop', '--json'], env));
    assert.deepEqual(
      after.map((s: { address: string }) => s.address),
      [erased.token],
    );

    // An erasure across every account is recorded without an account: the whole trail shows it.
    const audit = JSON.parse(await runCli(['audit', '--json'], env)) as {
      action: string;
      target: string;
    }[];
    assert.deepEqual(
      audit.map((e) => e.action),
      ['privacy.erase', 'account.set_retention', 'account.resume', 'account.pause'],
    );
    assert.ok(!JSON.stringify(audit).includes('erin@example.org'));
  });
});
