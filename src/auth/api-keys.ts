import { createHash } from 'node:crypto';
import type { Store } from '../store/store.ts';
import type { Credential } from '../store/types.ts';
import { clientKey, Lockout } from './lockout.ts';
import { dummyHashPromise, verifySecret } from './secret-hash.ts';

// `pb_<12 hex>.<32 base64url>`, as auth/accounts.ts issues them.
const KEY_SHAPE = /^(pb_[0-9a-f]{12})\.([A-Za-z0-9_-]{16,128})$/;

export type KeyCheck =
  | { ok: true; credential: Credential }
  | { ok: false; reason: 'invalid' | 'locked_out' | 'unavailable' };

/**
 * Verifies API keys: the visible prefix finds the credential, scrypt checks the secret part.
 * A verified key is remembered (hash of the whole key → credential id) so a busy client does
 * not pay scrypt per request; the credential itself is read on every request, so a revoked key
 * stops working at once. Failures count per client IP towards a lockout, like SMTP AUTH.
 */
export class ApiKeyVerifier {
  readonly #store: Store;
  readonly #clock: () => number;
  readonly #lockout: Lockout;
  readonly #verified = new Map<string, { credentialId: string; until: number }>();
  readonly #cacheMs: number;

  constructor(options: {
    store: Store;
    clock: () => number;
    maxFailures: number;
    failureWindowMs: number;
    lockoutMs: number;
    cacheMs?: number;
  }) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#cacheMs = options.cacheMs ?? 60_000;
    this.#lockout = new Lockout({
      maxFailures: options.maxFailures,
      windowMs: options.failureWindowMs,
      lockoutMs: options.lockoutMs,
      clock: options.clock,
    });
    void dummyHashPromise(); // ready before the first unknown key (one scrypt, not two)
  }

  async verify(key: string, clientIp: string): Promise<KeyCheck> {
    if (this.#lockout.isLocked(clientKey(clientIp))) return { ok: false, reason: 'locked_out' };
    const shape = KEY_SHAPE.exec(key.trim());
    const now = this.#clock();
    let credential: Credential | undefined;
    try {
      if (shape?.[1]) credential = await this.#store.findCredential('api', shape[1]);
      const cacheKey = createHash('sha256').update(key.trim()).digest('base64');
      const cached = this.#verified.get(cacheKey);
      if (credential && cached && cached.until > now && cached.credentialId === credential.id) {
        return { ok: true, credential };
      }
      const valid = await verifySecret(
        shape?.[2] ?? key,
        credential?.secretHash ?? (await dummyHashPromise()),
      );
      if (credential && valid) {
        this.#lockout.succeed(clientKey(clientIp));
        if (this.#verified.size > 10_000) this.#verified.clear();
        this.#verified.set(cacheKey, { credentialId: credential.id, until: now + this.#cacheMs });
        return { ok: true, credential };
      }
    } catch {
      return { ok: false, reason: 'unavailable' };
    }
    this.#lockout.fail(clientKey(clientIp));
    return { ok: false, reason: 'invalid' };
  }
}
