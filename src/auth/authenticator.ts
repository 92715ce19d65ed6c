import { createHash } from 'node:crypto';
import type { Store } from '../store/store.ts';
import type { Credential } from '../store/types.ts';
import { cidrMatcher } from './cidr.ts';
import { clientKey, Lockout } from './lockout.ts';
import { dummyHashPromise, verifySecret } from './secret-hash.ts';

export interface AuthenticatorOptions {
  store: Store;
  clock: () => number;
  maxFailures: number;
  failureWindowMs: number;
  lockoutMs: number;
  /** How long a verified password is remembered, so reconnecting senders skip scrypt. */
  successCacheMs?: number;
  /** How often the IP credential list is re-read (credentials are created by the CLI). */
  ipRefreshMs?: number;
}

export type AuthResult =
  | { ok: true; credential: Credential }
  | { ok: false; reason: 'invalid' | 'locked_out' | 'unavailable' };

/**
 * Verifies SMTP credentials with lockout per client IP and per username, and finds the IP
 * credential that covers a client address. Unknown usernames cost the same scrypt as known
 * ones so timing does not tell which usernames exist.
 */
export class Authenticator {
  readonly #opts: Required<AuthenticatorOptions>;
  readonly #byIp: Lockout;
  readonly #byUser: Lockout;
  readonly #verified = new Map<string, { credentialId: string; until: number }>();
  #ipCredentials: { credential: Credential; matches: (ip: string) => boolean }[] = [];
  #ipLoadedAt = Number.NEGATIVE_INFINITY;
  #ipLoading: Promise<void> | undefined;

  constructor(options: AuthenticatorOptions) {
    this.#opts = { successCacheMs: 60_000, ipRefreshMs: 5_000, ...options };
    const lock = {
      maxFailures: options.maxFailures,
      windowMs: options.failureWindowMs,
      lockoutMs: options.lockoutMs,
    };
    this.#byIp = new Lockout({ ...lock, clock: options.clock });
    this.#byUser = new Lockout({ ...lock, clock: options.clock });
    // The dummy hash an unknown username is checked against exists before the first attempt:
    // made on demand, the first unknown name would cost two scrypts instead of one.
    void dummyHashPromise();
  }

  isLockedOut(clientIp: string, username?: string): boolean {
    return (
      this.#byIp.isLocked(clientKey(clientIp)) ||
      (username !== undefined && this.#byUser.isLocked(username.toLowerCase()))
    );
  }

  async verifyPassword(clientIp: string, username: string, password: string): Promise<AuthResult> {
    const userKey = username.toLowerCase();
    if (this.isLockedOut(clientIp, username)) return { ok: false, reason: 'locked_out' };
    const now = this.#opts.clock();
    const cacheKey = createHash('sha256').update(username).update('\0').update(password).digest('base64');
    const cached = this.#verified.get(cacheKey);
    let credential: Credential | undefined;
    try {
      credential = await this.#opts.store.findCredential('smtp', username);
      if (cached && cached.until > now && credential?.id === cached.credentialId) {
        return { ok: true, credential };
      }
      const valid = await verifySecret(password, credential?.secretHash ?? (await dummyHashPromise()));
      if (credential && valid) {
        this.#byIp.succeed(clientKey(clientIp));
        this.#byUser.succeed(userKey);
        if (this.#verified.size > 10_000) this.#verified.clear();
        this.#verified.set(cacheKey, { credentialId: credential.id, until: now + this.#opts.successCacheMs });
        return { ok: true, credential };
      }
    } catch {
      return { ok: false, reason: 'unavailable' };
    }
    const lockedIp = this.#byIp.fail(clientKey(clientIp));
    const lockedUser = this.#byUser.fail(userKey);
    return { ok: false, reason: lockedIp || lockedUser ? 'locked_out' : 'invalid' };
  }

  /** The IP credential covering this client address, if any. */
  async credentialForIp(clientIp: string): Promise<Credential | undefined> {
    if (this.#opts.clock() - this.#ipLoadedAt > this.#opts.ipRefreshMs) {
      this.#ipLoading ??= this.#loadIpCredentials().finally(() => {
        this.#ipLoading = undefined;
      });
      await this.#ipLoading;
    }
    return this.#ipCredentials.find((c) => c.matches(clientIp))?.credential;
  }

  async #loadIpCredentials(): Promise<void> {
    const list = await this.#opts.store.listCredentials({ kind: 'ip' });
    this.#ipCredentials = list.map((credential) => ({ credential, matches: cidrMatcher(credential.cidrs) }));
    this.#ipLoadedAt = this.#opts.clock();
  }
}
