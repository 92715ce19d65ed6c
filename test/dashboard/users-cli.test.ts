/**
 * `postbote users` end to end on a fresh data dir: create (generated password and
 * --password-stdin), list (all, per account, JSON), reset-password (generated and from stdin;
 * the old password stops working, sessions end), delete (sessions end), and the refusals: a
 * short password on stdin, an unknown user, an unknown role.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { verifySecret } from '../../src/auth/secret-hash.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { runCli, testStore } from '../support/postbote-process.ts';
import { tempDir } from '../support/temp-dir.ts';

const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** The CLI with `input` on stdin (runCli has none); resolves code, stdout and stderr. */
function cliWithStdin(
  args: string[],
  env: Record<string, string>,
  input: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('POSTBOTE_') && v !== undefined) clean[k] = v;
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [main, ...args],
      { env: { ...clean, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    child.stdin?.end(input);
  });
}

describe('postbote users', { skip: testStore === 'postgres' ? 'reads the SQLite file' : false }, () => {
  const dir = tempDir('postbote-users-');
  const env = { POSTBOTE_DATA_DIR: dir.path };
  const PASSWORD = 'a long enough passphrase';

  /** The stored user, read from the data dir's SQLite file. */
  async function stored(email: string) {
    const store = new SqliteStore(join(dir.path, 'postbote.db'));
    try {
      const user = await store.findDashboardUser(email);
      const sessions = user ? await store.getDashboardSession('s-test') : undefined;
      return { user, sessions };
    } finally {
      await store.close();
    }
  }
  async function addSession(userId: string) {
    const store = new SqliteStore(join(dir.path, 'postbote.db'));
    try {
      await store.createDashboardSession({
        id: 's-test',
        userId,
        csrfToken: 't',
        createdAt: 1,
        lastSeenAt: 1,
      });
    } finally {
      await store.close();
    }
  }

  before(async () => {
    await runCli(['accounts', 'create', 'acme'], env);
    await runCli(['accounts', 'create', 'other'], env);
  });
  after(() => dir.cleanup());

  it('creates users with a generated password or one from stdin, and lists them', async () => {
    const [generated] = JSON.parse(
      await runCli(['users', 'create', '--account', 'acme', '--email', 'Ops@Acme.test', '--json'], env),
    ) as { email: string; role: string; password?: string }[];
    assert.equal(generated?.email, 'ops@acme.test');
    assert.equal(generated?.role, 'admin');
    assert.ok((generated?.password ?? '').length >= 16);
    const ops = (await stored('ops@acme.test')).user;
    assert.ok(ops && (await verifySecret(generated?.password ?? '', ops.passwordHash)));

    const piped = await cliWithStdin(
      [
        'users',
        'create',
        '--account',
        'other',
        '--email',
        'viewer@other.test',
        '--role',
        'viewer',
        '--password-stdin',
      ],
      env,
      `${PASSWORD}\nignored second line\n`,
    );
    assert.equal(piped.code, 0, piped.stderr);
    assert.doesNotMatch(piped.stdout, /password:/, 'a password from stdin is not echoed');
    const viewer = (await stored('viewer@other.test')).user;
    assert.equal(viewer?.role, 'viewer');
    assert.ok(
      viewer && (await verifySecret(PASSWORD, viewer.passwordHash)),
      'the first line is the password',
    );

    const all = JSON.parse(await runCli(['users', 'list', '--json'], env)) as {
      email: string;
      account: string;
    }[];
    assert.deepEqual(all.map((u) => `${u.email} ${u.account}`).sort(), [
      'ops@acme.test acme',
      'viewer@other.test other',
    ]);
    const acme = JSON.parse(await runCli(['users', 'list', '--account', 'acme', '--json'], env)) as {
      email: string;
    }[];
    assert.deepEqual(
      acme.map((u) => u.email),
      ['ops@acme.test'],
    );
    assert.match(await runCli(['users', 'list'], env), /viewer@other\.test/);
  });

  it('refuses a short password on stdin, an unknown role and an unknown user', async () => {
    const short = await cliWithStdin(
      ['users', 'create', '--account', 'acme', '--email', 'x@acme.test', '--password-stdin'],
      env,
      'short\n',
    );
    assert.notEqual(short.code, 0);
    assert.match(short.stderr, /password/i);
    assert.equal((await stored('x@acme.test')).user, undefined, 'nothing created');
    await assert.rejects(
      runCli(['users', 'create', '--account', 'acme', '--email', 'y@acme.test', '--role', 'root'], env),
      /--role must be one of/,
    );
    await assert.rejects(runCli(['users', 'delete', 'nobody@acme.test'], env), /nobody@acme\.test/);
    await assert.rejects(runCli(['users', 'reset-password', 'nobody@acme.test'], env), /nobody@acme\.test/);
  });

  it('resets a password (generated, then from stdin): the old one stops working, sessions end', async () => {
    const before = (await stored('ops@acme.test')).user;
    assert.ok(before);
    await addSession(before.id);
    assert.ok((await stored('ops@acme.test')).sessions);
    const out = await runCli(['users', 'reset-password', 'ops@acme.test'], env);
    const generated = /password: (\S+)/.exec(out)?.[1] ?? '';
    assert.ok(generated.length >= 16, out);
    const afterReset = await stored('ops@acme.test');
    assert.equal(afterReset.sessions, undefined, 'the session ended');
    assert.ok(afterReset.user && (await verifySecret(generated, afterReset.user.passwordHash)));
    assert.equal(await verifySecret(generated, before.passwordHash), false);

    const piped = await cliWithStdin(
      ['users', 'reset-password', 'ops@acme.test', '--password-stdin'],
      env,
      PASSWORD,
    );
    assert.equal(piped.code, 0, piped.stderr);
    assert.doesNotMatch(piped.stdout, /password:/);
    const user = (await stored('ops@acme.test')).user;
    assert.ok(user && (await verifySecret(PASSWORD, user.passwordHash)));
    assert.equal(
      await verifySecret(generated, user.passwordHash),
      false,
      'the generated one no longer works',
    );
  });

  it('deletes a user, ending its sessions; the audit trail records each change', async () => {
    const user = (await stored('ops@acme.test')).user;
    assert.ok(user);
    await addSession(user.id);
    assert.match(await runCli(['users', 'delete', 'ops@acme.test'], env), /deleted/);
    const gone = await stored('ops@acme.test');
    assert.equal(gone.user, undefined);
    assert.equal(gone.sessions, undefined);
    const list = JSON.parse(await runCli(['users', 'list', '--json'], env)) as { email: string }[];
    assert.deepEqual(
      list.map((u) => u.email),
      ['viewer@other.test'],
    );
    const audit = await runCli(['audit', '--json'], env);
    for (const action of [
      'dashboard_user.create',
      'dashboard_user.reset_password',
      'dashboard_user.delete',
    ]) {
      assert.match(audit, new RegExp(action.replace('.', '\\.')));
    }
  });
});
