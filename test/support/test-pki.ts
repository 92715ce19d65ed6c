/**
 * A throwaway certificate authority for TLS tests that verify certificates (MTA-STS, REQUIRETLS):
 * made by the system's openssl, trusted only where a test passes its `ca`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A throwaway CA and one leaf certificate (signed by it) for every name in `names`. */
export async function testPki(names: string[]): Promise<{ ca: string; key: string; cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'postbote-ca-'));
  try {
    const f = (n: string) => join(dir, n);
    const openssl = (args: string[]) => run('openssl', args, { timeout: 30_000 });
    await openssl(
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=Postbote Test CA'].concat([
        '-days',
        '1',
        '-keyout',
        f('ca.key'),
        '-out',
        f('ca.pem'),
      ]),
    );
    await openssl(
      ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${names[0]}`].concat([
        '-keyout',
        f('leaf.key'),
        '-out',
        f('leaf.csr'),
      ]),
    );
    await writeFile(f('ext.cnf'), `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`);
    await openssl(
      ['x509', '-req', '-in', f('leaf.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key')].concat([
        '-CAcreateserial',
        '-days',
        '1',
        '-extfile',
        f('ext.cnf'),
        '-out',
        f('leaf.pem'),
      ]),
    );
    const [ca, key, cert] = await Promise.all(
      ['ca.pem', 'leaf.key', 'leaf.pem'].map((n) => readFile(f(n), 'utf8')),
    );
    return { ca: ca!, key: key!, cert: cert! };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
