import { existsSync, mkdirSync, readFileSync, unwatchFile, watchFile, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { generate } from 'selfsigned';

export interface CertificateSource {
  /** The current secure context (re-read when the files change). */
  context(): tls.SecureContext;
  close(): void;
}

/**
 * The listeners' TLS certificate: the configured PEM files, or a self-signed certificate
 * generated once into the data dir (good for STARTTLS between your own apps and Postbote;
 * configure a real one for anything public). Files are watched and reloaded without restart.
 */
export async function loadCertificate(options: {
  certFile: string;
  keyFile: string;
  dataDir: string;
  hostname: string;
}): Promise<CertificateSource> {
  let certFile = options.certFile;
  let keyFile = options.keyFile;
  if (certFile === '' || keyFile === '') {
    if (certFile !== '' || keyFile !== '') {
      throw new Error('smtp.tls.cert and smtp.tls.key must be set together');
    }
    const dir = join(options.dataDir, 'tls');
    certFile = join(dir, 'self-signed.crt');
    keyFile = join(dir, 'self-signed.key');
    if (!existsSync(certFile) || !existsSync(keyFile)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const notAfterDate = new Date(Date.now() + 5 * 365 * 86_400_000);
      const pems = await generate([{ name: 'commonName', value: options.hostname }], {
        keySize: 2048,
        algorithm: 'sha256',
        notAfterDate,
        extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: options.hostname }] }],
      } as Parameters<typeof generate>[1]);
      writeFileSync(keyFile, pems.private, { mode: 0o600 });
      writeFileSync(certFile, pems.cert);
    }
  }
  const read = (): tls.SecureContext =>
    tls.createSecureContext({
      cert: readFileSync(certFile),
      key: readFileSync(keyFile),
      minVersion: 'TLSv1.2',
    });
  let current = read();
  const reload = (): void => {
    try {
      current = read();
    } catch {
      // Keep serving the old certificate while a half-written file is being replaced.
    }
  };
  watchFile(certFile, { interval: 5000, persistent: false }, reload);
  watchFile(keyFile, { interval: 5000, persistent: false }, reload);
  return {
    context: () => current,
    close: () => {
      unwatchFile(certFile, reload);
      unwatchFile(keyFile, reload);
    },
  };
}
