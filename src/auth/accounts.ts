import { randomBytes } from 'node:crypto';
import { newId } from '../store/ids.ts';
import type { Store } from '../store/store.ts';
import type { Account, Credential } from '../store/types.ts';
import { parseCidr } from './cidr.ts';
import { AuthInputError } from './errors.ts';
import { type ApiScope, DEFAULT_API_SCOPES, isApiScope } from './scopes.ts';
import { generatePassword, hashSecret } from './secret-hash.ts';
import { requireStream } from './streams.ts';

export { AuthInputError };

const ACCOUNT_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/i;
const SMTP_USERNAME = /^[\x21-\x7e]{1,128}$/;
const API_KEY_PREFIX = 'pb_';
/** Account weights: an account's share of each lane against the others (store/lease-plan.ts). */
export const MAX_WEIGHT = 1000;

export async function createAccount(store: Store, name: string, now: number): Promise<Account> {
  if (!ACCOUNT_NAME.test(name)) {
    throw new AuthInputError(
      `account name "${name}" is not valid: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  if (await store.getAccountByName(name)) throw new AuthInputError(`account "${name}" already exists`);
  return store.createAccount({ id: newId(now), name, createdAt: now });
}

/** Sets the account's weight: a whole number from 1 to MAX_WEIGHT (default 1). */
export async function setAccountWeight(store: Store, account: Account, weight: number): Promise<Account> {
  if (!Number.isInteger(weight) || weight < 1 || weight > MAX_WEIGHT) {
    throw new AuthInputError(`weight must be a whole number from 1 to ${MAX_WEIGHT}`);
  }
  await store.setAccountWeight(account.id, weight);
  return { ...account, weight };
}

export async function requireAccount(store: Store, name: string): Promise<Account> {
  const account = await store.getAccountByName(name);
  if (!account) throw new AuthInputError(`no account named "${name}" (see: postbote accounts list)`);
  return account;
}

/** A new credential and, for SMTP and API kinds, its secret: shown once, stored only hashed. */
export interface IssuedCredential {
  credential: Credential;
  secret?: string;
}

export type CredentialRequest = (
  | { kind: 'smtp'; username: string }
  | { kind: 'api'; scopes?: readonly ApiScope[] }
  | { kind: 'ip'; cidrs: string[] }
) & {
  /** The stream of messages that name none; it must exist for the account (default `outbound`). */
  stream?: string;
};

export async function createCredential(
  store: Store,
  account: Account,
  request: CredentialRequest,
  now: number,
): Promise<IssuedCredential> {
  const defaultStream =
    request.stream === undefined ? '' : (await requireStream(store, account, request.stream)).name;
  const base = {
    id: newId(now),
    accountId: account.id,
    createdAt: now,
    revokedAt: null,
    defaultStream,
    scopes: [] as string[],
  };
  switch (request.kind) {
    case 'smtp': {
      if (!SMTP_USERNAME.test(request.username)) {
        throw new AuthInputError('SMTP username must be 1-128 printable ASCII characters without spaces');
      }
      if (await store.findCredential('smtp', request.username)) {
        throw new AuthInputError(`SMTP username "${request.username}" is already in use`);
      }
      const secret = generatePassword();
      const credential: Credential = {
        ...base,
        kind: 'smtp',
        name: request.username,
        secretHash: await hashSecret(secret),
        cidrs: [],
      };
      return { credential: await store.createCredential(credential), secret };
    }
    case 'api': {
      const scopes = [...new Set(request.scopes ?? DEFAULT_API_SCOPES)];
      const unknown = scopes.filter((s) => !isApiScope(s));
      if (unknown.length > 0 || scopes.length === 0) {
        throw new AuthInputError(
          `API key scopes must be some of send, read, admin (got "${scopes.join(',')}")`,
        );
      }
      // The prefix is visible (listings, logs); the rest is the secret.
      const prefix = `${API_KEY_PREFIX}${randomBytes(6).toString('hex')}`;
      const secretPart = randomBytes(24).toString('base64url');
      const credential: Credential = {
        ...base,
        kind: 'api',
        name: prefix,
        secretHash: await hashSecret(secretPart),
        cidrs: [],
        scopes,
      };
      return { credential: await store.createCredential(credential), secret: `${prefix}.${secretPart}` };
    }
    case 'ip': {
      if (request.cidrs.length === 0) throw new AuthInputError('an IP credential needs at least one CIDR');
      const problems = request.cidrs.map(parseCidr).filter((p): p is string => typeof p === 'string');
      if (problems.length) throw new AuthInputError(problems.join('; '));
      const credential: Credential = {
        ...base,
        kind: 'ip',
        name: request.cidrs.join(','),
        secretHash: '',
        cidrs: request.cidrs.map((c) => c.trim()),
      };
      return { credential: await store.createCredential(credential) };
    }
  }
}
