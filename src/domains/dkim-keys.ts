/**
 * DKIM key pairs for a sending domain: the private key Postbote signs with and the public key
 * the customer publishes in DNS.
 *
 * Selector scheme: `pb<YYYYMMDD>-<algorithm>-<suffix>`, for example `pb20261103-rsa-k7q2` and
 * `pb20261103-ed25519-m4xa`.
 *  - `pb` says which system published the key when someone reads the zone years later;
 *  - the UTC date of generation lets an operator see at a glance which key is older during a
 *    rotation (old and new keys are live together for days);
 *  - the algorithm keeps a dual-signing pair (RSA + Ed25519, RFC 8463 §5 recommends both
 *    while receivers catch up) apart, in DNS and in `s=`;
 *  - four random base32 characters (20 bits) keep two keys made on the same day for the same
 *    domain and algorithm apart. That is "unique enough" for one domain; the store should still
 *    refuse a duplicate selector for a domain and generate again.
 * Only `a-z`, `0-9` and `-`, at most 24 characters: a valid DNS label (RFC 1035 §2.3.1) and a
 * valid `s=` value (RFC 6376 §3.1), lower case because DNS is case-insensitive but some
 * provider UIs are not.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const generateKeyPairAsync = promisify(generateKeyPair);

export type DkimAlgorithm = 'rsa' | 'ed25519';

export interface DkimKey {
  /** The DNS label under `_domainkey.<domain>` and the `s=` of every signature made with it. */
  selector: string;
  algorithm: DkimAlgorithm;
  /** PKCS#8 PEM. A secret: store it encrypted at rest, never log it. */
  privateKeyPem: string;
  /**
   * Base64 for the `p=` tag of the DNS record: the DER SubjectPublicKeyInfo for RSA
   * (RFC 6376 §3.6.1), the raw 32-byte public key for Ed25519 (RFC 8463 §4.2).
   */
  publicKey: string;
}

export interface GenerateDkimKeyOptions {
  /** RSA modulus length: 2048 (default), 3072 or 4096. Ignored for Ed25519. */
  bits?: number;
  /** The clock's now: dates the selector. */
  now: Date;
}

/**
 * RFC 8301 §3.2 allows 1024-bit RSA, but such keys are factorable by well-funded attackers
 * and Gmail and others treat them as weak; 4096 is where a TXT record still fits comfortably
 * in one UDP answer of typical DNS servers (~740 characters).
 */
export const RSA_KEY_SIZES: readonly number[] = [2048, 3072, 4096];

/** SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (33 bytes, 0 unused bits) }. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** Four base32 characters from 20 random bits. */
function randomSuffix(): string {
  const bytes = randomBytes(3);
  const bits = (bytes[0]! << 16) | (bytes[1]! << 8) | bytes[2]!;
  let suffix = '';
  for (let i = 0; i < 4; i++) suffix += BASE32[(bits >> (i * 5)) & 31];
  return suffix;
}

/** `pb20261103-rsa-k7q2`, dated in UTC (see the module comment). */
export function dkimSelector(algorithm: DkimAlgorithm, now: Date): string {
  if (Number.isNaN(now.getTime())) throw new RangeError('now is not a valid date');
  const date = now.toISOString().slice(0, 10).replaceAll('-', '');
  return `pb${date}-${algorithm}-${randomSuffix()}`;
}

/** Generates a key pair off the main thread (RSA-2048 takes tens of milliseconds of CPU). */
export async function generateDkimKey(
  algorithm: DkimAlgorithm,
  options: GenerateDkimKeyOptions,
): Promise<DkimKey> {
  const selector = dkimSelector(algorithm, options.now);
  if (algorithm === 'rsa') {
    const bits = options.bits ?? 2048;
    if (!RSA_KEY_SIZES.includes(bits)) {
      throw new RangeError(`RSA key size must be one of ${RSA_KEY_SIZES.join(', ')} bits, not ${bits}`);
    }
    const { privateKey, publicKey } = await generateKeyPairAsync('rsa', {
      modulusLength: bits,
      publicExponent: 0x10001,
      publicKeyEncoding: { type: 'spki', format: 'der' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    return { selector, algorithm, privateKeyPem: privateKey, publicKey: publicKey.toString('base64') };
  }
  if (algorithm === 'ed25519') {
    const { privateKey, publicKey } = await generateKeyPairAsync('ed25519', {
      publicKeyEncoding: { type: 'spki', format: 'der' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    // An Ed25519 SubjectPublicKeyInfo is a fixed 12-byte DER prefix (RFC 8410 §4) followed by
    // the raw 32-byte key, which is what RFC 8463 puts in p=.
    if (publicKey.length !== 44 || !publicKey.subarray(0, 12).equals(ED25519_SPKI_PREFIX)) {
      throw new Error('unexpected Ed25519 SubjectPublicKeyInfo encoding');
    }
    return {
      selector,
      algorithm,
      privateKeyPem: privateKey,
      publicKey: publicKey.subarray(12).toString('base64'),
    };
  }
  throw new TypeError(`unknown DKIM algorithm ${String(algorithm)}`);
}
