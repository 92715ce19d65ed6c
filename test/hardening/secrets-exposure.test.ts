/**
 * Secrets never leave the process: a real `postbote start` at log level debug with
 * secrets.key set, used the way an operator and an application would (API keys, an SMTP
 * password, a wrong one, a webhook, a sending domain with DKIM keys, signed mail going out and
 * failing, webhooks failing). Afterwards neither a log line nor an API answer holds a DKIM
 * private key (PEM or sealed), an API key, an SMTP password, a webhook secret or the secrets key.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, it } from 'node:test';
import { createKeyBox, parseSecretsKey } from '../../src/domains/key-encryption.ts';
import { startDnsServer, type TestDnsServer } from '../support/dns-server.ts';
import {
  type PostboteProcess,
  runCli,
  startPostboteProcess,
  testStore,
} from '../support/postbote-process.ts';
import { type ScriptedSink, startScriptedSink } from '../support/scripted-sink.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { tempDir } from '../support/temp-dir.ts';

const dir = tempDir();
const secretsKey = randomBytes(32).toString('base64');
let postbote: PostboteProcess;
let dns: TestDnsServer;
let sink: ScriptedSink;
const secrets = new Map<string, string>();

before(async () => {
  sink = await startScriptedSink({ host: '127.0.0.1' });
  dns = await startDnsServer({
    zones: {
      'nowhere.test': { MX: [{ preference: 10, exchange: 'mx.nowhere.test' }] },
      'mx.nowhere.test': { A: ['127.0.0.1'] },
    },
  });
  const env: Record<string, string> = {
    POSTBOTE_DATA_DIR: dir.path,
    POSTBOTE_SECRETS__KEY: secretsKey,
    POSTBOTE_LOG__LEVEL: 'debug',
    POSTBOTE_WEBHOOKS__ALLOW_PRIVATE: 'true',
    POSTBOTE_DOMAINS__PUBLIC_IPS: '192.0.2.10',
    POSTBOTE_DELIVERY__CONNECT_TIMEOUT: '2s',
    POSTBOTE_DELIVERY__PORT: String(sink.port),
    POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
    POSTBOTE_DNS__SERVERS: dns.address,
    POSTBOTE_DNS__TIMEOUT: '2s',
  };
  await runCli(['accounts', 'create', 'acme', '--sender-policy', 'any'], env);
  const [api] = JSON.parse(
    await runCli(
      ['credentials', 'create', '--account', 'acme', '--api', '--scopes', 'send,read,admin', '--json'],
      env,
    ),
  ) as { secret: string }[];
  const [smtp] = JSON.parse(
    await runCli(['credentials', 'create', '--account', 'acme', '--smtp', 'app', '--json'], env),
  ) as { secret: string }[];
  secrets.set('API key', api!.secret);
  secrets.set('SMTP password', smtp!.secret);
  secrets.set('secrets key', secretsKey);
  postbote = await startPostboteProcess({ dataDir: dir.path, env });
});
after(async () => {
  await postbote?.stop();
  await sink?.close();
  await dns?.close();
  dir.cleanup();
});

it('no secret in any log line or API answer', {
  skip: testStore !== 'sqlite' && 'reads the SQLite file',
}, async () => {
  const base = `http://127.0.0.1:${postbote.httpPort}`;
  const answers: string[] = [];
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${secrets.get('API key')}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, text };
  };

  const domain = await api('POST', '/v1/domains', { domain: 'secret.test' });
  assert.equal(domain.status, 201, domain.text);
  const hook = await api('POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook' });
  assert.equal(hook.status, 201, hook.text);
  secrets.set('webhook secret', (JSON.parse(hook.text) as { secret: string }).secret);
  const sent = await api('POST', '/v1/messages', {
    from: 'shop@secret.test',
    to: 'someone@nowhere.test',
    subject: 'signed',
    text: 'hello',
  });
  assert.equal(sent.status, 202, sent.text);

  // SMTP AUTH, once right and once wrong (plaintext AUTH is allowed on loopback).
  const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');
  const smtp = await SmtpTestClient.connect(postbote.submissionPort);
  await smtp.hello();
  assert.equal(
    (await smtp.command(`AUTH PLAIN ${plain('app', `${secrets.get('SMTP password')}x`)}`)).code,
    535,
  );
  assert.equal((await smtp.command(`AUTH PLAIN ${plain('app', secrets.get('SMTP password')!)}`)).code, 235);
  await smtp.command('QUIT');

  // The DKIM private key as stored (sealed) and as PEM.
  const db = new DatabaseSync(join(dir.path, 'postbote.db'), { readOnly: true });
  const rows = db.prepare('SELECT private_key FROM dkim_keys').all() as { private_key: string }[];
  db.close();
  assert.ok(rows.length > 0);
  const box = createKeyBox(parseSecretsKey(secretsKey, 'test'));
  rows.forEach((row, i) => {
    assert.ok(row.private_key.startsWith('enc:v1:'), 'stored encrypted');
    secrets.set(`sealed DKIM key ${i}`, row.private_key.slice(7, 47));
    // A line from the middle of the PEM body: enough to recognise it, wherever it is printed.
    secrets.set(`DKIM private key ${i}`, box.open(row.private_key).split('\n')[2]!);
  });

  for (const path of [
    '/v1/domains',
    '/v1/domains/secret.test',
    '/v1/webhooks',
    '/v1/keys',
    '/v1/credentials',
    '/v1/delivery',
  ]) {
    const answer = await api('GET', path);
    assert.equal(answer.status, 200, `${path}: ${answer.text}`);
    answers.push(`${path} ${answer.text}`);
  }
  answers.push(domain.text, sent.text);
  // The message goes out signed with the decrypted key, and its delivery is logged (bounded wait).
  for (let i = 0; i < 100 && !postbote.logs.some((l) => l.includes('someone@nowhere.test')); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(sink.transactions.length, 1);
  assert.match(sink.transactions[0]!.data!.toString(), /^DKIM-Signature:[\s\S]*d=secret\.test/m);
  assert.ok(
    postbote.logs.some((l) => l.includes('someone@nowhere.test')),
    'the delivery was logged',
  );
  assert.ok(postbote.logs.length > 5, 'the process logged');
  for (const [name, value] of secrets) {
    assert.ok(value.length >= 16, `${name} is a real needle`);
    const logged = postbote.logs.find((line) => line.includes(value));
    assert.equal(logged, undefined, `${name} appears in the log: ${logged?.slice(0, 200)}`);
    const shown = answers.find((a) => a.includes(value));
    assert.equal(shown, undefined, `${name} appears in an API answer: ${shown?.slice(0, 200)}`);
  }
  // The webhook secret was shown exactly once: in the answer that created it.
  assert.ok(hook.text.includes(secrets.get('webhook secret')!));
});
