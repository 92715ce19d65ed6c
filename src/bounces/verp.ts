/**
 * VERP return paths: every recipient gets its own envelope sender, `b+<token>@<return-path
 * domain>`, so a bounce names the recipient it is about by the address it was sent to, whatever
 * the bouncing MTA wrote (or failed to write) in its report.
 *
 * Token: `<recipient id in base32>-<MAC>`. The MAC is HMAC-SHA256 over the id *and* the
 * return-path domain, cut to 10 base32 characters (50 bits): without the secret nobody can mint
 * a token that makes us suppress an address, and a token seen on one domain is worthless on
 * another. 50 bits is plenty for a value that can only be guessed online, one SMTP RCPT at a
 * time.
 *
 * One alphabet for both halves, RFC 4648 §7 "base32hex" in lower case (`0-9a-v`): it is what
 * `Number#toString(32)` writes. Reading is case-insensitive because some MTAs lower- or
 * upper-case the whole address on the way back (RFC 5321 §2.4 says they should not).
 *
 * The secret must be the same on every node of a cluster (a bounce may reach any of them): set
 * `bounces.secret`. Without it each node generates its own into its data dir, which is fine
 * for one node only.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { base32Mac, canonicalDomain, parseBase32 } from '../hmac.ts';

/** Local-part prefix of every VERP address. */
export const VERP_PREFIX = 'b+';

const MAC_CHARS = 10;
/** `Number.MAX_SAFE_INTEGER` is 11 base32 digits. */
const MAX_ID_CHARS = 11;
/** Shorter configured secrets are refused: an HMAC key is only as good as its entropy. */
const MIN_SECRET_BYTES = 16;
const GENERATED_SECRET_BYTES = 32;
export const BOUNCE_SECRET_FILE = 'bounce-secret';

/** The first `MAC_CHARS` base32 characters of the HMAC. */
function mac(id: number, domain: string, secret: Buffer): string {
  // Versioned and separated: the input can never be read as another (id, domain) pair.
  return base32Mac(secret, `postbote-verp-v1\n${id}\n${domain}`, MAC_CHARS);
}

/** `b+<token>@<domain>` for one recipient of one message. */
export function verpAddress(recipientId: number, returnPathDomain: string, secret: Buffer): string {
  if (!Number.isSafeInteger(recipientId) || recipientId < 0) {
    throw new RangeError(`VERP: recipient id must be a non-negative safe integer, not ${recipientId}`);
  }
  const domain = canonicalDomain(returnPathDomain);
  if (domain === '') throw new RangeError('VERP: empty return-path domain');
  return `${VERP_PREFIX}${recipientId.toString(32)}-${mac(recipientId, domain, secret)}@${domain}`;
}

/** The id digits: canonical (no leading zero) so one id has exactly one token. */
function parseId(digits: string): number | undefined {
  return parseBase32(digits, MAX_ID_CHARS);
}

/**
 * The recipient id of a VERP local part (`b+<token>`, any case) received for `domain`, or
 * `undefined` when it is not one of ours, was altered, or was minted for another domain.
 * Never throws, whatever the input.
 */
export function readVerp(localPart: string, domain: string, secret: Buffer): number | undefined {
  // Longest valid: "b+" + 11 + "-" + 10.
  if (localPart.length > VERP_PREFIX.length + MAX_ID_CHARS + 1 + MAC_CHARS) return undefined;
  const lower = localPart.toLowerCase();
  if (!lower.startsWith(VERP_PREFIX)) return undefined;
  const token = lower.slice(VERP_PREFIX.length);
  const dash = token.indexOf('-');
  if (dash === -1) return undefined;
  const id = parseId(token.slice(0, dash));
  const given = token.slice(dash + 1);
  const canonical = canonicalDomain(domain);
  if (id === undefined || given.length !== MAC_CHARS || canonical === '') return undefined;
  const expected = mac(id, canonical, secret);
  return timingSafeEqual(Buffer.from(given, 'latin1'), Buffer.from(expected, 'latin1')) ? id : undefined;
}

/** `readVerp` on a whole `local@domain` address (split at the last `@`). */
export function readVerpAddress(address: string, secret: Buffer): number | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0) return undefined;
  return readVerp(address.slice(0, at), address.slice(at + 1), secret);
}

/**
 * The VERP secret: `bounces.secret` (base64) when configured, else 32 random bytes generated
 * once into `<dataDir>/bounce-secret` (mode 0600, base64 text so it can be copied into
 * `bounces.secret` when a second node joins) and read from there afterwards.
 */
export function loadBounceSecret(dataDir: string, configured: string): Buffer {
  if (configured.trim() !== '') return decodeSecret(configured, 'bounces.secret');
  const file = join(dataDir, BOUNCE_SECRET_FILE);
  try {
    return decodeSecret(readFileSync(file, 'latin1'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // Written aside and linked into place: the file appears complete or not at all, and of two
  // processes starting at once the second keeps the first one's secret (link fails EEXIST).
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, `${randomBytes(GENERATED_SECRET_BYTES).toString('base64')}\n`, { mode: 0o600 });
  try {
    linkSync(temp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(temp, { force: true });
  }
  return decodeSecret(readFileSync(file, 'latin1'), file);
}

function decodeSecret(text: string, source: string): Buffer {
  const trimmed = text.trim();
  const bytes = Buffer.from(trimmed, 'base64');
  // Buffer.from skips invalid characters silently: a round trip shows whether it was base64.
  const canonical = bytes.toString('base64');
  if (canonical.replace(/=+$/, '') !== trimmed.replace(/=+$/, '') || bytes.length < MIN_SECRET_BYTES) {
    throw new Error(`${source}: must be base64 of at least ${MIN_SECRET_BYTES} random bytes`);
  }
  return bytes;
}
