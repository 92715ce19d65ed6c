import { AuthInputError } from '../auth/errors.ts';
import type { ApiScope } from '../auth/scopes.ts';
import { generatePassword, hashSecret } from '../auth/secret-hash.ts';
import { newId } from '../store/ids.ts';
import type { Store } from '../store/store.ts';
import type { Account, DashboardRole, DashboardUser } from '../store/types.ts';

export const DASHBOARD_ROLES = ['admin', 'viewer'] as const satisfies readonly DashboardRole[];

/** What a role may do through /v1, as an API key with these scopes would. */
export function roleScopes(role: DashboardRole): readonly ApiScope[] {
  return role === 'admin' ? ['send', 'read', 'admin'] : ['read'];
}

export const MIN_PASSWORD = 12;
// scrypt takes any length; a cap keeps a megabyte "password" from being an expensive request.
export const MAX_PASSWORD = 256;
const EMAIL = /^[^\s@]{1,64}@[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

/** The login name as stored: trimmed, lower case. */
export const normaliseEmail = (email: string): string => email.trim().toLowerCase();

export function passwordProblem(password: string): string | undefined {
  if (password.length < MIN_PASSWORD) return `the password must have at least ${MIN_PASSWORD} characters`;
  if (password.length > MAX_PASSWORD) return `the password must have at most ${MAX_PASSWORD} characters`;
  return undefined;
}

/** A new user and, when none was given, the generated password: shown once, stored only hashed. */
export interface IssuedUser {
  user: DashboardUser;
  generatedPassword?: string;
}

export async function createDashboardUser(
  store: Store,
  input: { account: Account; email: string; role?: DashboardRole; password?: string },
  now: number,
): Promise<IssuedUser> {
  const email = normaliseEmail(input.email);
  if (!EMAIL.test(email)) throw new AuthInputError(`"${input.email.slice(0, 100)}" is not an e-mail address`);
  const role = input.role ?? 'admin';
  if (!(DASHBOARD_ROLES as readonly string[]).includes(role)) {
    throw new AuthInputError(`role must be one of ${DASHBOARD_ROLES.join(', ')}`);
  }
  const password = input.password ?? generatePassword();
  const problem = passwordProblem(password);
  if (problem) throw new AuthInputError(problem);
  if (await store.findDashboardUser(email)) throw new AuthInputError(`a user "${email}" exists already`);
  const user = await store.createDashboardUser({
    id: newId(now),
    accountId: input.account.id,
    email,
    role,
    passwordHash: await hashSecret(password),
    createdAt: now,
    passwordChangedAt: now,
  });
  return { user, ...(input.password === undefined ? { generatedPassword: password } : {}) };
}

export async function requireDashboardUser(store: Store, email: string): Promise<DashboardUser> {
  const user = await store.findDashboardUser(normaliseEmail(email));
  if (!user)
    throw new AuthInputError(`no dashboard user "${email.slice(0, 100)}" (see: postbote users list)`);
  return user;
}

/** Sets a new password (generated when none is given) and ends the user's sessions. */
export async function resetDashboardPassword(
  store: Store,
  user: DashboardUser,
  password: string | undefined,
  now: number,
): Promise<{ generatedPassword?: string }> {
  const next = password ?? generatePassword();
  const problem = passwordProblem(next);
  if (problem) throw new AuthInputError(problem);
  await store.setDashboardPassword(user.id, await hashSecret(next), now);
  return password === undefined ? { generatedPassword: next } : {};
}
