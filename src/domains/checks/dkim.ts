/**
 * DKIM: is the public key of each of Postbote's signing keys published where receivers look
 * for it, `<selector>._domainkey.<domain>` (RFC 6376 §3.6.2.1), and is it the same key?
 *
 * The key record is a tag list (RFC 6376 §3.6.1): `v=DKIM1` (optional, first if present),
 * `k=` (default rsa; ed25519 per RFC 8463), `p=` (base64; empty means revoked), `h=` acceptable
 * hashes, `s=` service types, `t=` flags (`y` = testing).
 *
 * Key strength: RFC 8301 §3.2 makes verifiers reject RSA keys under 1024 bits and asks signers
 * for at least 2048; a 1024-bit key still verifies, so it is a warning, below that it is wrong.
 */
import { createPublicKey } from 'node:crypto';
import { lookupTxt, normalizeName, unknownResult } from './lookup.ts';
import type { CheckResult, DkimKey, Resolve } from './types.ts';

const MIN_RSA_BITS = 1024;
const RECOMMENDED_RSA_BITS = 2048;
const ED25519_KEY_BYTES = 32;

export async function checkDkim(domain: string, key: DkimKey, resolve: Resolve): Promise<CheckResult> {
  const name = `${key.selector}._domainkey.${normalizeName(domain)}`;
  const base = { record: 'dkim', name } as const;
  const ours = describeKey(key);
  const expected = `v=DKIM1; k=${key.algorithm}; p=${ours.base64}`;
  const publish = { name, type: 'TXT', value: expected };

  const txt = await lookupTxt(resolve, name);
  if (txt.kind === 'error') {
    return unknownResult(base, 'TXT', txt);
  }
  if (txt.kind === 'none') {
    return {
      ...base,
      status: 'missing',
      explanation:
        `Receivers cannot check the DKIM signature Postbote adds to mail from ${domain}, because no key is ` +
        `published for selector "${key.selector}". Add a TXT record at ${name} with the value shown ` +
        '(if your DNS provider limits the length, split it into strings of at most 255 characters).',
      fix: expected,
      details: { publish },
    };
  }

  const keyRecords = txt.records.flatMap((text) => {
    const tags = parseTagList(text);
    return tags && (tags.has('p') || tags.has('v')) ? [{ text, tags }] : [];
  });
  if (keyRecords.length !== 1) {
    return {
      ...base,
      status: 'wrong',
      explanation:
        keyRecords.length === 0
          ? `${name} has a TXT record, but it is not a DKIM key, so receivers cannot check the signatures ` +
            `of mail from ${domain}. Replace it with the value shown.`
          : `${name} has ${keyRecords.length} DKIM key records; receivers may use any of them and then fail ` +
            'the signature. Keep only one TXT record, with the value shown.',
      fix: expected,
      details: { records: txt.records, publish },
    };
  }

  const { text, tags } = keyRecords[0]!;
  const details: Record<string, unknown> = { record: text, algorithm: key.algorithm };
  if (ours.bits !== undefined) details['bits'] = ours.bits;
  const wrong = (explanation: string): CheckResult => ({
    ...base,
    status: 'wrong',
    explanation,
    fix: expected,
    details: { ...details, publish },
  });

  if (!ours.valid) {
    return {
      ...base,
      status: 'wrong',
      explanation:
        `The key Postbote holds for selector "${key.selector}" is not a valid ${key.algorithm.toUpperCase()} ` +
        'public key, so its signatures cannot verify. Create a new DKIM key for this domain.',
      fix: `Create a new DKIM key for ${domain} and publish its record.`,
      details,
    };
  }
  const version = tags.get('v');
  if (version !== undefined && (version !== 'DKIM1' || [...tags.keys()][0] !== 'v')) {
    return wrong(
      `The record at ${name} must start with "v=DKIM1" (it has "v=${version}"${[...tags.keys()][0] === 'v' ? '' : ' later in the record'}); ` +
        'receivers ignore it. Replace it with the value shown.',
    );
  }
  const published = (tags.get('p') ?? '').replace(/\s+/g, '');
  if (published === '') {
    return wrong(
      `The key at ${name} has been revoked (its p= is empty), so every signature with selector ` +
        `"${key.selector}" fails. Publish the key again with the value shown.`,
    );
  }
  const keyType = (tags.get('k') ?? 'rsa').toLowerCase();
  if (keyType !== key.algorithm) {
    return wrong(
      `The record at ${name} says the key is "${keyType}", but Postbote signs with an ${key.algorithm} key, ` +
        'so receivers cannot verify the signatures. Replace the record with the value shown.',
    );
  }
  if (!sameKey(published, ours.bytes)) {
    return wrong(
      `The key published at ${name} is not the key Postbote signs with, so receivers will reject the ` +
        'DKIM signatures. Replace the record with the value shown.',
    );
  }
  const hashes = tags.get('h');
  if (hashes !== undefined && !hashes.split(':').some((h) => h.trim().toLowerCase() === 'sha256')) {
    return wrong(
      `The record at ${name} allows only the hash "${hashes}", but Postbote signs with sha256. ` +
        'Remove the h= tag, or use the value shown.',
    );
  }
  const services = tags.get('s');
  if (
    services !== undefined &&
    !services.split(':').some((s) => ['*', 'email'].includes(s.trim().toLowerCase()))
  ) {
    return wrong(
      `The record at ${name} is limited to the service "${services}", not email. Remove the s= tag, or use ` +
        'the value shown.',
    );
  }

  const notes: string[] = [];
  if (key.algorithm === 'rsa' && ours.bits !== undefined && ours.bits < MIN_RSA_BITS) {
    return {
      ...base,
      status: 'wrong',
      explanation:
        `The key for selector "${key.selector}" has only ${ours.bits} bits; receivers reject RSA keys under ` +
        `${MIN_RSA_BITS} bits (RFC 8301). Create a ${RECOMMENDED_RSA_BITS}-bit key with a new selector.`,
      fix: `Create a ${RECOMMENDED_RSA_BITS}-bit DKIM key for ${domain} with a new selector and publish it.`,
      details,
    };
  }
  const weak = key.algorithm === 'rsa' && ours.bits !== undefined && ours.bits < RECOMMENDED_RSA_BITS;
  if (weak) {
    notes.push(
      `The key has ${ours.bits} bits; ${RECOMMENDED_RSA_BITS} bits is the recommended minimum (RFC 8301) ` +
        'and some receivers already distrust shorter keys. Create a 2048-bit key with a new selector.',
    );
  }
  const flags = (tags.get('t') ?? '').split(':').map((f) => f.trim().toLowerCase());
  if (flags.includes('y')) {
    notes.push(
      'The record is marked as a test (t=y): receivers may treat signed mail as unsigned. Remove "t=y" ' +
        'once signing works.',
    );
  }
  if (notes.length > 0) {
    return {
      ...base,
      status: 'warning',
      explanation: `Receivers can check the DKIM signatures for ${domain}, but: ${notes.join(' ')}`,
      // A new key comes with its own record; otherwise the record without t=y is the fix.
      fix: weak
        ? `Create a ${RECOMMENDED_RSA_BITS}-bit DKIM key for ${domain} with a new selector and publish it.`
        : expected,
      details,
    };
  }
  const strength = key.algorithm === 'rsa' ? `RSA, ${ours.bits} bits` : 'Ed25519';
  return {
    ...base,
    status: 'ok',
    explanation: `Receivers can check the DKIM signatures Postbote adds to mail from ${domain} (selector "${key.selector}", ${strength}).`,
    details,
  };
}

/**
 * RFC 6376 §3.2 tag list: `name=value` pairs split by ";", whitespace around both allowed.
 * Tag names are case-sensitive; a repeated tag makes the whole list invalid (undefined).
 */
export function parseTagList(text: string): Map<string, string> | undefined {
  const tags = new Map<string, string>();
  for (const spec of text.split(';')) {
    if (spec.trim() === '') continue;
    const eq = spec.indexOf('=');
    if (eq < 0) return undefined;
    const tagName = spec.slice(0, eq).trim();
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(tagName) || tags.has(tagName)) return undefined;
    tags.set(tagName, spec.slice(eq + 1).trim());
  }
  return tags;
}

interface KeyInfo {
  base64: string;
  bytes: Buffer;
  valid: boolean;
  bits?: number;
}

function describeKey(key: DkimKey): KeyInfo {
  const base64 = key.publicKey.replace(/\s+/g, '');
  const bytes = Buffer.from(base64, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return { base64, bytes, valid: false };
  if (key.algorithm === 'ed25519') {
    // RFC 8463 §4.2: p= is the bare 32-byte public key, not a SubjectPublicKeyInfo.
    return { base64, bytes, valid: bytes.length === ED25519_KEY_BYTES, bits: 256 };
  }
  // RFC 6376 §3.6.1 publishes SubjectPublicKeyInfo; some tools publish the bare RSAPublicKey.
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      const parsed = createPublicKey({ key: bytes, format: 'der', type });
      if (parsed.asymmetricKeyType !== 'rsa') return { base64, bytes, valid: false };
      const bits = parsed.asymmetricKeyDetails?.modulusLength;
      return bits === undefined ? { base64, bytes, valid: true } : { base64, bytes, valid: true, bits };
    } catch {
      // try the next encoding
    }
  }
  return { base64, bytes, valid: false };
}

function sameKey(published: string, ours: Buffer): boolean {
  return /^[A-Za-z0-9+/]+={0,2}$/.test(published) && Buffer.from(published, 'base64').equals(ours);
}
