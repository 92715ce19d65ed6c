/**
 * DKIM-signs an outgoing message with every live key of its domain: RSA and Ed25519 side by
 * side (RFC 8463 §5), or the old and the new key while a rotation is under way. Receivers
 * pass the message when any one signature verifies (RFC 6376 §6.1).
 *
 * Signing is mailauth's (canonicalization, body hash, crypto), with two things on top:
 *  - The From field is oversigned: listed in h= once more than it occurs, so a From added in
 *    transit breaks every signature (RFC 6376 §8.15). mailauth lists only the fields present;
 *    `OversigningSigner` below makes it list From once more.
 *  - mailauth reports failures in `errors` and then returns no signature at all. Its bundled
 *    types also describe options (top-level `signingDomain`/`selector`/`privateKey`) that it
 *    ignores, so following them yields an unsigned message without any error. Here, a message
 *    that did not get exactly one signature per key is an exception, never a return value.
 *
 * Pass the message as it goes on the wire (CRLF line ends): the signature fields are
 * prepended with CRLF and every other byte is returned unchanged.
 */
import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import type { DkimAlgorithm } from './dkim-keys.ts';

export interface DkimSigningKey {
  /** d=: the sending domain (ASCII). */
  domain: string;
  /** s=: the key's DNS label under `_domainkey.<domain>`. */
  selector: string;
  algorithm: DkimAlgorithm;
  /** PKCS#8 PEM (as `generateDkimKey` makes it). */
  privateKeyPem: string;
}

export interface SignOptions {
  /** The t= of the signatures; the current time when left out. */
  now?: Date;
}

/**
 * The fields signed when present: RFC 6376 §5.4.1's list, the MIME fields (a changed
 * Content-Type can re-frame the body), the List-* fields (RFC 8058 §4 requires
 * List-Unsubscribe and List-Unsubscribe-Post to be signed for one-click unsubscribe), and the
 * headers receivers act on: Feedback-ID (Gmail's feedback loop) and BIMI-Selector.
 * Trace fields (Received, Return-Path) are left out: they are added after signing.
 */
export const SIGNED_HEADERS: readonly string[] = [
  'From',
  'Sender',
  'Reply-To',
  'Subject',
  'Date',
  'Message-ID',
  'To',
  'Cc',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
  'Content-ID',
  'Content-Description',
  'In-Reply-To',
  'References',
  'Resent-Date',
  'Resent-From',
  'Resent-Sender',
  'Resent-To',
  'Resent-Cc',
  'Resent-Message-ID',
  'List-Id',
  'List-Help',
  'List-Unsubscribe',
  'List-Unsubscribe-Post',
  'List-Subscribe',
  'List-Post',
  'List-Owner',
  'List-Archive',
  'Feedback-ID',
  'BIMI-Selector',
];

/**
 * Fields listed once more than present. From only: it is the field DMARC and every mail
 * reader go by. Oversigning fields that mailing lists legitimately add (List-*, Sender)
 * would only break forwarding.
 */
export const OVERSIGNED_HEADERS: readonly string[] = ['from'];

export type DkimSignErrorCode =
  /** mailauth refused a key or the message (no From, bad key, bad selector...). */
  | 'SIGN_FAILED'
  /** Fewer or more signatures came back than keys were given. */
  | 'SIGNATURE_MISSING'
  /** A signature does not list From once more than the message has it. */
  | 'OVERSIGN_FAILED'
  /** Nothing to sign with. */
  | 'NO_KEYS';

export interface DkimSignFailure {
  domain: string;
  selector: string;
  /** mailauth's error code (e.g. `ENOFROM`, `EINVALIDTYPE`), when it gave one. */
  code?: string;
  message: string;
}

export class DkimSignError extends Error {
  override readonly name = 'DkimSignError';
  readonly code: DkimSignErrorCode;
  /** One entry per key that did not sign, when mailauth said why. */
  readonly failures: DkimSignFailure[];

  constructor(code: DkimSignErrorCode, message: string, failures: DkimSignFailure[] = [], cause?: unknown) {
    super(message, { cause });
    this.code = code;
    this.failures = failures;
  }
}

// --- mailauth's signer, typed for what is used here ----------------------------------------

/** A header field as mailauth parses it; `casedKey` is what it writes into h=. */
interface ParsedHeaderRow {
  key: string;
  casedKey: string;
  line: Buffer;
}

interface ParsedHeaders {
  parsed: ParsedHeaderRow[];
  original: Buffer;
}

interface MailauthSignatureData {
  signingDomain: string;
  selector: string;
  privateKey: string;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
}

interface MailauthSignerOptions {
  canonicalization: 'relaxed/relaxed';
  headerList: string[];
  signTime?: Date;
  strict: boolean;
  signatureData: MailauthSignatureData[];
}

interface MailauthSignerFailure {
  selector?: string;
  signingDomain?: string;
  err?: { message?: string; code?: string };
}

interface MailauthDkimSigner extends Writable {
  /** The DKIM-Signature fields made, folded, without the final CRLF. */
  signatureHeaders: string[];
  errors: MailauthSignerFailure[];
  messageHeaders(headers: ParsedHeaders): Promise<void>;
}

// The class behind mailauth's `dkimSign` (which is `new DkimSigner(options)`, write, join the
// fields). It has no type declarations and no package export map, hence the require.
const { DkimSigner } = createRequire(import.meta.url)('mailauth/lib/dkim/dkim-signer.js') as {
  DkimSigner: new (options: MailauthSignerOptions) => MailauthDkimSigner;
};

/**
 * mailauth builds h= from the `casedKey` of each signed field, bottom-up, and hashes each
 * field's `line`. Appending `: From` to the name of the top-most From adds the extra, absent
 * From at the end of the From entries, where a verifier looks it up, finds no further From
 * and hashes nothing for it (RFC 6376 §5.4.2) — exactly what the signer hashed.
 */
class OversigningSigner extends DkimSigner {
  /** How often each oversigned field occurs in the message, as mailauth parsed it. */
  readonly present = new Map<string, number>();

  override async messageHeaders(headers: ParsedHeaders): Promise<void> {
    for (const name of OVERSIGNED_HEADERS) {
      const rows = headers.parsed.filter((row) => row.key === name);
      this.present.set(name, rows.length);
      const topmost = rows[0];
      if (topmost) topmost.casedKey = `${topmost.casedKey}: ${topmost.casedKey}`;
    }
    await super.messageHeaders(headers);
  }
}

// --- signing --------------------------------------------------------------------------------

const ALGORITHMS: Record<DkimAlgorithm, MailauthSignatureData['algorithm']> = {
  rsa: 'rsa-sha256',
  ed25519: 'ed25519-sha256',
};

/** The h= entries of a DKIM-Signature field, lower case. */
export function signedFieldNames(signatureField: string): string[] {
  const value = signatureField.replace(/\r?\n[ \t]/g, ' ').replace(/^[^:]*:/, '');
  const h = /(?:^|;)\s*h\s*=([^;]*)/.exec(value)?.[1] ?? '';
  return h
    .split(':')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
}

async function runSigner(signer: MailauthDkimSigner, message: Buffer): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    signer.once('error', reject);
    signer.once('finish', resolve);
    signer.end(message);
  });
}

/**
 * Returns the message with one DKIM-Signature field per key in front of it, in the order of
 * `keys`; throws `DkimSignError` when any key did not sign.
 */
export async function signMessage(
  message: Buffer,
  keys: readonly DkimSigningKey[],
  options: SignOptions = {},
): Promise<Buffer> {
  if (keys.length === 0) throw new DkimSignError('NO_KEYS', 'no DKIM key to sign with');

  const signer = new OversigningSigner({
    canonicalization: 'relaxed/relaxed',
    headerList: [...SIGNED_HEADERS],
    ...(options.now ? { signTime: options.now } : {}),
    // Refuse, rather than sign and warn, a d= or s= that is not valid syntax or a weak key.
    strict: true,
    // Fresh objects: mailauth writes into them.
    signatureData: keys.map((key) => ({
      signingDomain: key.domain,
      selector: key.selector,
      privateKey: key.privateKeyPem,
      algorithm: ALGORITHMS[key.algorithm],
    })),
  });
  try {
    await runSigner(signer, message);
  } catch (err) {
    throw new DkimSignError('SIGN_FAILED', `DKIM signing failed: ${(err as Error).message}`, [], err);
  }

  if (signer.errors.length > 0) {
    const failures = signer.errors.map((failure) => ({
      domain: failure.signingDomain ?? '',
      selector: failure.selector ?? '',
      ...(failure.err?.code ? { code: failure.err.code } : {}),
      message: failure.err?.message ?? 'unknown error',
    }));
    const summary = failures.map((f) => `${f.selector}._domainkey.${f.domain}: ${f.message}`).join('; ');
    throw new DkimSignError('SIGN_FAILED', `DKIM signing failed: ${summary}`, failures);
  }
  const signatures = signer.signatureHeaders;
  if (signatures.length !== keys.length) {
    throw new DkimSignError(
      'SIGNATURE_MISSING',
      `DKIM signing made ${signatures.length} signature(s) for ${keys.length} key(s)`,
    );
  }

  // A later mailauth could stop using casedKey for h=: then the signature would still verify,
  // only without the protection, so check what was actually signed.
  for (const signature of signatures) {
    const listed = signedFieldNames(signature);
    for (const name of OVERSIGNED_HEADERS) {
      const present = signer.present.get(name) ?? 0;
      const inH = listed.filter((n) => n === name).length;
      if (inH !== present + 1) {
        throw new DkimSignError(
          'OVERSIGN_FAILED',
          `DKIM signature lists ${name} ${inH} time(s) for ${present} field(s), expected ${present + 1}`,
        );
      }
    }
  }

  return Buffer.concat([Buffer.from(`${signatures.join('\r\n')}\r\n`, 'latin1'), message]);
}
