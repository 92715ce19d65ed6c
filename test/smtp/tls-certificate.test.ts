/**
 * The listeners' TLS: TLS 1.2 or newer only (RFC 8996), and certificate reload without restart
 * (the file poll, SIGHUP's reload(), and a broken replacement that keeps the old certificate).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type tls from 'node:tls';
import { promisify } from 'node:util';
import { loadCertificate } from '../../src/smtp/tls-certificate.ts';
import { generateSelfSignedCert } from '../support/scripted-sink.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { startTestServer, type TestServer } from '../support/smtp-test-server.ts';

const run = promisify(execFile);

/** The fingerprint (hex, no colons) of the certificate a STARTTLS handshake presents. */
async function presented(port: number, options: tls.ConnectionOptions = {}): Promise<string> {
  const c = await SmtpTestClient.connect(port);
  try {
    await c.hello();
    assert.equal((await c.command('STARTTLS')).code, 220);
    await c.upgrade({ rejectUnauthorized: false, ...options });
    const cert = (c.socket as tls.TLSSocket).getPeerCertificate();
    return cert.fingerprint256.replaceAll(':', '').toLowerCase();
  } finally {
    c.socket.destroy();
  }
}

describe('listener TLS', () => {
  let dir: string;
  let server: TestServer;
  let source: Awaited<ReturnType<typeof loadCertificate>>;
  const errors: object[] = [];
  let first: { key: string; cert: string };
  let second: { key: string; cert: string };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postbote-tls-'));
    [first, second] = await Promise.all([generateSelfSignedCert(), generateSelfSignedCert()]);
    await writeFile(join(dir, 'cert.pem'), first.cert);
    await writeFile(join(dir, 'key.pem'), first.key);
    source = await loadCertificate({
      certFile: join(dir, 'cert.pem'),
      keyFile: join(dir, 'key.pem'),
      dataDir: dir,
      hostname: 'localhost',
      pollMs: 50,
      logger: { info: () => {}, error: (obj) => errors.push(obj) },
    });
    server = await startTestServer({ tls: () => source.context() });
  });
  after(async () => {
    source.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses TLS 1.0 and 1.1 clients, serves TLS 1.2 and 1.3', async () => {
    // A client that could speak the old versions (OpenSSL's default level would refuse them itself).
    const legacy: tls.ConnectionOptions = { minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' };
    for (const maxVersion of ['TLSv1', 'TLSv1.1'] as const) {
      await assert.rejects(presented(server.port, { ...legacy, maxVersion }), (err: Error) => {
        assert.match(err.message, /protocol version|unsupported protocol/i);
        return true;
      });
    }
    assert.equal(await presented(server.port, { ...legacy, maxVersion: 'TLSv1.2' }), source.fingerprint());
    assert.equal(await presented(server.port, { minVersion: 'TLSv1.3' }), source.fingerprint());
  });

  it('reloads a replaced certificate for new connections, without restart', async () => {
    const before = await presented(server.port);
    assert.equal(before, source.fingerprint());
    await writeFile(join(dir, 'key.pem'), second.key);
    await writeFile(join(dir, 'cert.pem'), second.cert);
    // The poll notices the change (bounded wait, no timing assertion).
    for (let i = 0; i < 200 && source.fingerprint() === before; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.notEqual(source.fingerprint(), before, 'the poll picked up the new files');
    assert.equal(await presented(server.port), source.fingerprint());
  });

  it('SIGHUP reload: a broken file keeps the previous certificate and logs an error', async () => {
    assert.equal(source.reload(), true);
    const good = source.fingerprint();
    errors.length = 0;
    await writeFile(join(dir, 'cert.pem'), '-----BEGIN CERTIFICATE-----\nnot a certificate\n');
    assert.equal(source.reload(), false);
    assert.ok(errors.length >= 1, 'the failure is logged');
    assert.equal(await presented(server.port), good, 'still the previous certificate');
    // A certificate that does not match the key is refused the same way.
    await writeFile(join(dir, 'cert.pem'), first.cert);
    assert.equal(source.reload(), false);
    assert.equal(await presented(server.port), good);
    await writeFile(join(dir, 'key.pem'), first.key);
    assert.equal(source.reload(), true);
    assert.notEqual(source.fingerprint(), good);
    assert.equal(await presented(server.port), source.fingerprint());
  });
});

describe('self-signed certificate', () => {
  it('is generated once into the data dir; a restart reads it without loading the generator', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'postbote-tls-self-'));
    try {
      // Each start in a process of its own, with a loader hook that reports whether the
      // generator package (and its ASN.1 libraries, about 640 modules) was loaded.
      const module = new URL('../../src/smtp/tls-certificate.ts', import.meta.url).href;
      const script = `
        import { registerHooks } from 'node:module';
        let generator = false;
        registerHooks({ load(url, context, next) {
          if (url.includes('/node_modules/selfsigned/')) generator = true;
          return next(url, context);
        } });
        const { loadCertificate } = await import(${JSON.stringify(module)});
        const source = await loadCertificate({ certFile: '', keyFile: '', dataDir: ${JSON.stringify(dir)}, hostname: 'postbote.test' });
        process.stdout.write(JSON.stringify({ generator, fingerprint: source.fingerprint() }));
        source.close();`;
      const start = async (): Promise<{ generator: boolean; fingerprint: string }> => {
        const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
        return JSON.parse(stdout) as { generator: boolean; fingerprint: string };
      };
      const first = await start();
      assert.equal(first.generator, true, 'the first start generates a certificate');
      const restart = await start();
      assert.deepEqual(restart, { generator: false, fingerprint: first.fingerprint });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
