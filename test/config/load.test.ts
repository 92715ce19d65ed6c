import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { formatDuration, parseDuration, parseSize } from '../../src/config/duration.ts';
import { ConfigError, loadConfig, parseHostPort } from '../../src/config/load.ts';
import { tempDir } from '../support/temp-dir.ts';

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  assert.fail('expected a ConfigError');
}

describe('config', () => {
  it('has a default for every key (embedded defaults match the README quick start)', () => {
    const dir = tempDir();
    const config = loadConfig({ env: {}, cwd: dir.path });
    assert.equal(config.data_dir, './data');
    assert.equal(config.smtp.submission.listen, '127.0.0.1:2525');
    assert.equal(config.http.listen, '127.0.0.1:8025');
    assert.deepEqual(config.dns.servers, []);
    assert.equal(config.delivery.port, 25);
    assert.equal(config.delivery.allow_private_mx, false);
    assert.equal(config.smtp.submission.max_message_size, 25 * 1024 * 1024);
    assert.equal(config.delivery.retry.max_age, 5 * 86_400_000);
    assert.equal(config.delivery.shutdown_grace, 10_000);
    assert.ok(Object.isFrozen(config.delivery.retry));
    dir.cleanup();
  });

  it('delivery.shutdown_grace: 0 cuts at once; more than an hour is refused', () => {
    const dir = tempDir();
    const grace = (value: string) =>
      loadConfig({ cwd: dir.path, env: { POSTBOTE_DELIVERY__SHUTDOWN_GRACE: value } }).delivery
        .shutdown_grace;
    assert.equal(grace('0'), 0);
    assert.equal(grace('2s'), 2000);
    assert.deepEqual(
      problemsOf(() => grace('2h')),
      ['delivery.shutdown_grace: must be at most 1h (from POSTBOTE_DELIVERY__SHUTDOWN_GRACE)'],
    );
    dir.cleanup();
  });

  it('reads ./postbote.yaml, then POSTBOTE_* environment overrides with __ between levels', () => {
    const dir = tempDir();
    writeFileSync(
      join(dir.path, 'postbote.yaml'),
      'data_dir: /var/lib/postbote\ndelivery:\n  port: 2526\n  retry:\n    first: 1m\ndns:\n  servers: [127.0.0.1:5353]\n',
    );
    const config = loadConfig({
      cwd: dir.path,
      env: {
        POSTBOTE_DATA_DIR: '/srv/pb',
        POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
        POSTBOTE_DNS__SERVERS: '127.0.0.1:53,[::1]:5300',
        POSTBOTE_SMTP__SUBMISSION__LISTEN: '0.0.0.0:587',
      },
    });
    assert.equal(config.data_dir, '/srv/pb');
    assert.equal(config.delivery.port, 2526);
    assert.equal(config.delivery.retry.first, 60_000);
    assert.equal(config.delivery.allow_private_mx, true);
    assert.deepEqual(config.dns.servers, ['127.0.0.1:53', '[::1]:5300']);
    assert.equal(config.smtp.submission.listen, '0.0.0.0:587');
    dir.cleanup();
  });

  it('reports every problem at once, one line per key, naming the source', () => {
    const dir = tempDir();
    const file = join(dir.path, 'bad.yaml');
    writeFileSync(file, 'delivery:\n  port: 99999\n  retyr: {}\nsmtp:\n  submission:\n    listen: nowhere\n');
    const problems = problemsOf(() =>
      loadConfig({ file, env: { POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'maybe', POSTBOTE_NOPE: '1' } }),
    );
    assert.deepEqual(
      [...problems].sort(),
      [
        'POSTBOTE_NOPE: unknown setting (environment)',
        'delivery.allow_private_mx: must be true or false, got "maybe" (from POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX)',
        'delivery.port: must be a port number (1-65535) (from config file)',
        'delivery.retyr: unknown key',
        'smtp.submission.listen: must be host:port (e.g. 127.0.0.1:2525), got "nowhere" (from config file)',
      ].sort(),
    );
    dir.cleanup();
  });

  it('database.url is empty (SQLite) or a postgres:// URL, and the schema a plain identifier', () => {
    const dir = tempDir();
    const problems = problemsOf(() =>
      loadConfig({
        cwd: dir.path,
        env: { POSTBOTE_DATABASE__URL: 'mysql://db/postbote', POSTBOTE_DATABASE__SCHEMA: 'Bad-Name' },
      }),
    );
    assert.deepEqual([...problems].sort(), [
      'database.schema: must be a lower-case SQL identifier (from POSTBOTE_DATABASE__SCHEMA)',
      'database.url: must be empty (SQLite) or a postgres:// URL (from POSTBOTE_DATABASE__URL)',
    ]);
    const ok = loadConfig({ cwd: dir.path, env: { POSTBOTE_DATABASE__URL: 'postgres://pb@db:5432/mail' } });
    assert.equal(ok.database.url, 'postgres://pb@db:5432/mail');
    assert.equal(ok.database.schema, 'postbote');
    dir.cleanup();
  });

  it('retention: bodies after 7 days, everything after 90; bodies may not outlive their message', () => {
    const dir = tempDir();
    const defaults = loadConfig({ cwd: dir.path, env: {} });
    assert.equal(defaults.retention.bodies, 7 * 86_400_000);
    assert.equal(defaults.retention.metadata, 90 * 86_400_000);
    const same = loadConfig({
      cwd: dir.path,
      env: { POSTBOTE_RETENTION__BODIES: '30d', POSTBOTE_RETENTION__METADATA: '720h' },
    });
    assert.equal(same.retention.bodies, same.retention.metadata);
    assert.deepEqual(
      problemsOf(() =>
        loadConfig({ cwd: dir.path, env: {}, overrides: { retention: { bodies: '100d', metadata: '90d' } } }),
      ),
      [
        'retention.bodies: must not be longer than retention.metadata (100d > 90d); a body is deleted with its message at the latest',
      ],
    );
    // Each key's own problem is reported first, without the comparison on a value that is not there.
    assert.deepEqual(
      problemsOf(() => loadConfig({ cwd: dir.path, env: { POSTBOTE_RETENTION__METADATA: '0' } })),
      ['retention.metadata: must be greater than 0 (from POSTBOTE_RETENTION__METADATA)'],
    );
    dir.cleanup();
  });

  it('a missing --config file or broken YAML is one clear line', () => {
    const dir = tempDir();
    assert.match(
      problemsOf(() => loadConfig({ file: join(dir.path, 'nope.yaml'), env: {} }))[0] ?? '',
      /cannot read/,
    );
    const file = join(dir.path, 'broken.yaml');
    writeFileSync(file, 'delivery: [unclosed\n');
    assert.match(problemsOf(() => loadConfig({ file, env: {} }))[0] ?? '', /not valid YAML/);
    dir.cleanup();
  });

  it('parses durations, sizes and host:port', () => {
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration(30), 30_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('5 days'), undefined);
    assert.equal(parseDuration('7d'), 604_800_000);
    assert.deepEqual([604_800_000, 5_400_000, 1500, 0].map(formatDuration), ['7d', '90m', '1500ms', '0ms']);
    assert.equal(parseSize('25MB'), 26_214_400);
    assert.equal(parseSize('-1'), undefined);
    assert.deepEqual(parseHostPort('[::1]:25'), { host: '::1', port: 25 });
    assert.deepEqual(parseHostPort('127.0.0.1', 53), { host: '127.0.0.1', port: 53 });
    assert.equal(parseHostPort('127.0.0.1:70000'), undefined);
  });
});
