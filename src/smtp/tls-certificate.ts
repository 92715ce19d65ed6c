import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, unwatchFile, watchFile, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import type { generate } from 'selfsigned';

/**
 * The oldest protocol any of our listeners speaks. RFC 8996 deprecates TLS 1.0 and 1.1; every
 * MTA and mail client of the last decade speaks 1.2, and one that does not can still submit in
 * plaintext on loopback or be refused (AUTH is never offered without TLS off loopback).
 */
export const MIN_TLS_VERSION: tls.SecureVersion = 'TLSv1.2';

export interface CertificateLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface CertificateSource {
  /** The current secure context; new connections take it, open ones keep theirs. */
  context(): tls.SecureContext;
  /**
   * Reads the files again now (SIGHUP, or a change the watcher saw). A file that does not
   * parse, or a key that does not match the certificate, keeps the previous context: false.
   */
  reload(): boolean;
  /** SHA-256 of the current certificate (DER, hex): what the logs and tests compare. */
  fingerprint(): string;
  close(): void;
}

/**
 * The listeners' TLS certificate: the configured PEM files, or a self-signed certificate
 * generated once into the data dir (good for STARTTLS between your own apps and Postbote;
 * configure a real one for anything public). Files are polled every `pollMs` (default 5 s:
 * fs.watch misses the rename with which certbot and friends replace a file) and reloaded
 * without restart; `reload()` is the SIGHUP path.
 */
export async function loadCertificate(options: {
  certFile: string;
  keyFile: string;
  dataDir: string;
  hostname: string;
  logger?: CertificateLogger;
  pollMs?: number;
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
      // Loaded only to make a certificate (the first start): with its ASN.1 libraries it is
      // about 640 modules, which a restart would otherwise load for nothing.
      const selfsigned = await import('selfsigned');
      const pems = await selfsigned.generate([{ name: 'commonName', value: options.hostname }], {
        keySize: 2048,
        algorithm: 'sha256',
        notAfterDate,
        extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: options.hostname }] }],
      } as Parameters<typeof generate>[1]);
      writeFileSync(keyFile, pems.private, { mode: 0o600 });
      writeFileSync(certFile, pems.cert);
    }
  }
  const read = (): { context: tls.SecureContext; fingerprint: string } => {
    const cert = readFileSync(certFile);
    // createSecureContext checks that the key matches the certificate (OpenSSL's
    // X509_check_private_key): a half-replaced pair throws here instead of failing handshakes.
    const context = tls.createSecureContext({
      cert,
      key: readFileSync(keyFile),
      minVersion: MIN_TLS_VERSION,
    });
    return { context, fingerprint: fingerprintOf(cert) };
  };
  let current = read();
  const log = options.logger;
  const reload = (): boolean => {
    try {
      const next = read();
      if (next.fingerprint !== current.fingerprint) {
        log?.info({ certFile, fingerprint: next.fingerprint }, 'TLS certificate reloaded');
      }
      current = next;
      return true;
    } catch (err) {
      // Keep serving the old certificate: a renewal may be half-written (certificate replaced,
      // key not yet), and a broken file must not take TLS down.
      log?.error(
        { certFile, keyFile, err: err instanceof Error ? err.message : String(err) },
        'TLS certificate reload failed; keeping the previous certificate',
      );
      return false;
    }
  };
  const onChange = (): void => {
    reload();
  };
  const pollMs = options.pollMs ?? 5000;
  watchFile(certFile, { interval: pollMs, persistent: false }, onChange);
  watchFile(keyFile, { interval: pollMs, persistent: false }, onChange);
  return {
    context: () => current.context,
    reload,
    fingerprint: () => current.fingerprint,
    close: () => {
      unwatchFile(certFile, onChange);
      unwatchFile(keyFile, onChange);
    },
  };
}

/** SHA-256 over the DER of the first certificate of a PEM chain (hex, as browsers show it). */
function fingerprintOf(pem: Buffer): string {
  const match = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem.toString('latin1'));
  if (!match) throw new Error('no PEM certificate in the file');
  return createHash('sha256')
    .update(Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64'))
    .digest('hex');
}
