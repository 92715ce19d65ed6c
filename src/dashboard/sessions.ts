import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { clientKey, Lockout } from '../auth/lockout.ts';
import { dummyHashPromise, verifySecret } from '../auth/secret-hash.ts';
import type { Store } from '../store/store.ts';
import type { DashboardSession, DashboardUser } from '../store/types.ts';
import { MAX_PASSWORD, normaliseEmail } from './users.ts';

export interface SessionOptions {
  store: Store;
  clock: () => number;
  /** A session unused this long ends (the idle timeout). */
  idleMs: number;
  /** A session ends this long after login, however busy. */
  maxMs: number;
  /** Failed logins per e-mail and per client IP before a lockout (auth/lockout.ts). */
  maxFailures: number;
  failureWindowMs: number;
  lockoutMs: number;
}

export type LoginResult =
  | { ok: true; token: string; session: DashboardSession; user: DashboardUser }
  | { ok: false; reason: 'invalid' | 'locked_out' };

export interface ActiveSession {
  session: DashboardSession;
  user: DashboardUser;
}

export interface Sessions {
  /**
   * Checks e-mail and password. An unknown e-mail costs the same scrypt as a wrong password and
   * gets the same answer, so the answer does not tell which addresses have users.
   */
  login(email: string, password: string, clientIp: string): Promise<LoginResult>;
  /** The live session of a cookie token, or undefined (unknown, idle, too old, password changed). */
  resolve(token: string): Promise<ActiveSession | undefined>;
  logout(token: string): Promise<void>;
  readonly idleMs: number;
}

// 32 random bytes, base64url: what login hands out. Anything else is not looked up.
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** The store key of a session: a copy of the sessions table alone logs no one in. */
const sessionId = (token: string): string => createHash('sha256').update(token).digest('hex');

/** Constant-time comparison of two strings (false when lengths differ). */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function createSessions(options: SessionOptions): Sessions {
  const { store, clock } = options;
  const lockout = new Lockout({
    maxFailures: options.maxFailures,
    windowMs: options.failureWindowMs,
    lockoutMs: options.lockoutMs,
    clock,
  });
  // Writing last_seen_at on every API call would make each dashboard read a commit; a session's
  // activity is recorded at most this often, so the idle timeout is exact to within it.
  const touchEveryMs = Math.min(60_000, Math.floor(options.idleMs / 4));
  void dummyHashPromise(); // ready before the first unknown e-mail (one scrypt, not two)

  return {
    idleMs: options.idleMs,
    async login(rawEmail, password, clientIp) {
      const email = normaliseEmail(rawEmail).slice(0, 320);
      const keys = [`ip:${clientKey(clientIp)}`, `user:${email}`];
      if (keys.some((k) => lockout.isLocked(k))) return { ok: false, reason: 'locked_out' };
      const user = email === '' ? undefined : await store.findDashboardUser(email);
      // Unknown user or over-long password: the same scrypt against a dummy hash (same time).
      const usable = password.length <= MAX_PASSWORD;
      const valid = await verifySecret(
        usable ? password : '',
        user && usable ? user.passwordHash : await dummyHashPromise(),
      );
      if (!user || !valid || !usable) {
        const locked = keys.map((k) => lockout.fail(k)).some(Boolean);
        return { ok: false, reason: locked ? 'locked_out' : 'invalid' };
      }
      for (const k of keys) lockout.succeed(k);
      const now = clock();
      // Ended sessions go when someone logs in: an indexed delete, no timer needed.
      await store.purgeDashboardSessions(now - options.idleMs, now - options.maxMs);
      const token = randomBytes(32).toString('base64url');
      const session: DashboardSession = {
        id: sessionId(token),
        userId: user.id,
        csrfToken: randomBytes(24).toString('base64url'),
        createdAt: now,
        lastSeenAt: now,
      };
      await store.createDashboardSession(session);
      return { ok: true, token, session, user };
    },

    async resolve(token) {
      if (!TOKEN.test(token)) return undefined;
      const id = sessionId(token);
      const session = await store.getDashboardSession(id);
      if (!session) return undefined;
      const now = clock();
      if (now - session.lastSeenAt > options.idleMs || now - session.createdAt > options.maxMs) {
        await store.deleteDashboardSession(id);
        return undefined;
      }
      const user = await store.getDashboardUser(session.userId);
      if (!user || user.passwordChangedAt > session.createdAt) return undefined;
      if (now - session.lastSeenAt >= touchEveryMs) {
        await store.touchDashboardSession(id, now);
        session.lastSeenAt = now;
      }
      return { session, user };
    },

    async logout(token) {
      if (TOKEN.test(token)) await store.deleteDashboardSession(sessionId(token));
    },
  };
}
