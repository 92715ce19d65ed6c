/**
 * DKIM private keys encrypted at rest: whoever reads the database (a backup, a replica, a stolen
 * disk) without the secrets key cannot sign as our customers' domains.
 *
 * Stored form: `enc:v1:` + base64(12-byte IV ‖ ciphertext ‖ 16-byte GCM tag), AES-256-GCM with
 * a random IV per value (96 bits: NIST SP 800-38D's recommended size; a few thousand keys are far
 * from the 2^32 values one key may seal). The version prefix lets a later format or key
 * rotation live beside this one. Values without the prefix are plaintext PEM from before a key
 * was configured: they stay readable, and `postbote domains encrypt-keys` seals them.
 *
 * The key comes from `secrets.key` (env POSTBOTE_SECRETS__KEY: 32 bytes, base64) or
 * `secrets.key_file` (a file holding the same base64 text); never from the database.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const ENCRYPTED_PREFIX = 'enc:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
// Binds the ciphertext to its use: a value sealed for something else does not open as a DKIM key.
const AAD = Buffer.from('postbote dkim private key v1');

/** The secrets key is missing, malformed, or not the one the stored keys were sealed with. */
export class SecretsKeyError extends Error {
  override readonly name = 'SecretsKeyError';
}

export interface KeyBox {
  /** True when a secrets key is configured: new keys are stored sealed. */
  readonly encrypting: boolean;
  /** The stored form of a private key: sealed with a key, as given without one. */
  seal(privateKeyPem: string): string;
  /** The PEM of a stored value (sealed or plaintext); SecretsKeyError when it cannot be opened. */
  open(stored: string): string;
}

export function isSealed(stored: string): boolean {
  return stored.startsWith(ENCRYPTED_PREFIX);
}

/** 32 bytes from base64 text (standard or URL-safe alphabet, surrounding whitespace ignored). */
export function parseSecretsKey(text: string, origin: string): Buffer {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed) || key.length !== 32) {
    throw new SecretsKeyError(
      `${origin} must be 32 random bytes in base64 (e.g. \`openssl rand -base64 32\`), got ${key.length} bytes`,
    );
  }
  return key;
}

/** The configured secrets key, or undefined when neither `secrets.key` nor `secrets.key_file` is set. */
export function loadSecretsKey(secrets: { key: string; key_file: string }): Buffer | undefined {
  if (secrets.key !== '' && secrets.key_file !== '') {
    throw new SecretsKeyError('set secrets.key or secrets.key_file, not both');
  }
  if (secrets.key !== '') return parseSecretsKey(secrets.key, 'secrets.key');
  if (secrets.key_file === '') return undefined;
  let text: string;
  try {
    text = readFileSync(secrets.key_file, 'utf8');
  } catch (err) {
    throw new SecretsKeyError(`secrets.key_file ${secrets.key_file} cannot be read`, { cause: err });
  }
  return parseSecretsKey(text, `secrets.key_file ${secrets.key_file}`);
}

export function createKeyBox(key: Buffer | undefined): KeyBox {
  return {
    encrypting: key !== undefined,
    seal(privateKeyPem) {
      if (!key) return privateKeyPem;
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(AAD);
      const sealed = Buffer.concat([
        iv,
        cipher.update(privateKeyPem, 'utf8'),
        cipher.final(),
        cipher.getAuthTag(),
      ]);
      return ENCRYPTED_PREFIX + sealed.toString('base64');
    },
    open(stored) {
      if (!isSealed(stored)) return stored;
      if (!key) {
        throw new SecretsKeyError(
          'a DKIM private key is stored encrypted, but no secrets key is configured (secrets.key or secrets.key_file)',
        );
      }
      const raw = Buffer.from(stored.slice(ENCRYPTED_PREFIX.length), 'base64');
      if (raw.length < IV_BYTES + TAG_BYTES + 1)
        throw new SecretsKeyError('an encrypted DKIM key is truncated');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
        decipher.setAAD(AAD);
        decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
        return Buffer.concat([
          decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)),
          decipher.final(),
        ]).toString('utf8');
      } catch (err) {
        throw new SecretsKeyError(
          'the configured secrets key does not decrypt the stored DKIM keys (a different key sealed them)',
          { cause: err },
        );
      }
    },
  };
}

/**
 * Start-up check: the first sealed key among the signing keys must open with the configured key
 * (a wrong or missing key is a clear error now, not a signing failure on the first message).
 */
export async function checkStoredKeys(
  signingDomains: () => Promise<{ domain: string; keys: { selector: string; privateKeyPem: string }[] }[]>,
  box: KeyBox,
): Promise<void> {
  for (const domain of await signingDomains()) {
    const sealed = domain.keys.find((k) => isSealed(k.privateKeyPem));
    if (!sealed) continue;
    try {
      box.open(sealed.privateKeyPem);
    } catch (err) {
      throw new SecretsKeyError(
        `DKIM key ${sealed.selector} of ${domain.domain}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    return;
  }
}
