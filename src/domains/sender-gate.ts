import addressparser from 'nodemailer/lib/addressparser';
import { headerValue, readHeaders } from '../intake/headers.ts';
import { SendError } from '../intake/send-errors.ts';
import type { Store } from '../store/store.ts';
import type { DkimKey, SenderPolicy, SendingDomain } from '../store/types.ts';
import { signMessage } from './dkim-sign.ts';
import type { KeyBox } from './key-encryption.ts';

type SigningDomain = SendingDomain & { keys: DkimKey[] };

/** The local part intake gives the envelope sender of a signed message (`pb-<message id>`). */
const ENVELOPE_PREFIX = 'pb-';

/**
 * The return-path domain of the envelope sender intake gave message `messageId`
 * (`pb-<message id>@<return path>`), or undefined for any other sender (a submitter's own).
 */
export function returnPathDomain(envelopeFrom: string, messageId: string): string | undefined {
  const local = `${ENVELOPE_PREFIX}${messageId}@`;
  return envelopeFrom.startsWith(local) && envelopeFrom.length > local.length
    ? envelopeFrom.slice(local.length)
    : undefined;
}

/** What intake stores for one accepted message after the gate. */
export interface GateResult {
  /** The copies, DKIM-signed when the From domain has keys (same order as given). */
  bodies: Buffer[];
  /** The envelope sender for delivery: on the domain's return path, so SPF aligns. */
  envelopeFrom?: string;
}

/** The domains of the From and Sender fields (every address of a From list). */
export function authorDomains(message: Buffer): string[] {
  const fields = readHeaders(message);
  const domains: string[] = [];
  for (const name of ['from', 'sender']) {
    const value = headerValue(fields, name);
    if (value === undefined) continue;
    for (const { address } of addressparser(Buffer.from(value, 'latin1').toString('utf8'), {
      flatten: true,
    })) {
      const at = address?.lastIndexOf('@') ?? -1;
      if (address && at > 0)
        domains.push(
          address
            .slice(at + 1)
            .toLowerCase()
            .replace(/\.$/, ''),
        );
    }
  }
  return domains;
}

/**
 * Intake's sending-domain step: the sender policy (an account of policy `verified` may send only
 * with From and Sender in its verified domains, or their subdomains) and DKIM signing of every
 * stored copy with the From domain's active and pending keys (the nearest registered parent
 * domain of a subdomain signs: aligned under relaxed DMARC). Domains and policies are read
 * whole and kept for `cacheMs` (they are changed by the CLI and the API, in other processes).
 */
export function createSenderGate(options: {
  store: Store;
  clock: () => number;
  cacheMs?: number;
  /** Opens private keys stored encrypted (secrets.key); without it they must be plaintext. */
  keys?: KeyBox;
}) {
  const { store, clock } = options;
  // Stored value → PEM, so a reload (every cacheMs) does not decrypt every key again.
  let opened = new Map<string, string>();
  const cacheMs = options.cacheMs ?? 5_000;
  let domains = new Map<string, SigningDomain>();
  let loadedAt = Number.NEGATIVE_INFINITY;
  let loading: Promise<void> | undefined;
  const policies = new Map<string, { policy: SenderPolicy; until: number }>();

  async function refresh(): Promise<void> {
    if (clock() - loadedAt < cacheMs) return;
    loading ??= store
      .signingDomains()
      .then((list) => {
        const box = options.keys;
        if (box) {
          const next = new Map<string, string>();
          for (const d of list) {
            d.keys = d.keys.map((k) => {
              const pem = opened.get(k.privateKeyPem) ?? box.open(k.privateKeyPem);
              next.set(k.privateKeyPem, pem);
              return { ...k, privateKeyPem: pem };
            });
          }
          opened = next;
        }
        domains = new Map(list.map((d) => [d.domain, d]));
        loadedAt = clock();
      })
      .finally(() => {
        loading = undefined;
      });
    await loading;
  }

  async function policyOf(accountId: string): Promise<SenderPolicy> {
    const now = clock();
    const hit = policies.get(accountId);
    if (hit && hit.until > now) return hit.policy;
    const policy = (await store.getAccount(accountId))?.senderPolicy ?? 'verified';
    if (policies.size > 10_000) policies.clear();
    policies.set(accountId, { policy, until: now + cacheMs });
    return policy;
  }

  /** The registered domain `name` is (or is a subdomain of), if any. */
  function registered(name: string): SigningDomain | undefined {
    for (let d = name; d.includes('.'); d = d.slice(d.indexOf('.') + 1)) {
      const found = domains.get(d);
      if (found) return found;
    }
    return undefined;
  }

  /**
   * Checks the sender against the account's policy and signs every copy; SendError
   * `sender_not_allowed` when the account may not send as the From (or Sender) domain.
   */
  async function apply(input: {
    accountId: string;
    messageId: string;
    bodies: Buffer[];
  }): Promise<GateResult> {
    await refresh();
    const policy = await policyOf(input.accountId);
    // Nothing to check and nothing to sign with: skip reading the header (the relay's hot path).
    if (policy === 'any' && domains.size === 0) return { bodies: input.bodies };
    const first = input.bodies.find((b) => b.length > 0) ?? Buffer.alloc(0);
    const authors = authorDomains(first);
    // Policy `verified`: every author domain is one of the account's verified domains. Policy
    // `any` still keeps off a domain another account has verified: it belongs to its owner.
    const foreign = (d: string): boolean => {
      const owner = registered(d);
      return owner !== undefined && owner.accountId !== input.accountId && owner.verifiedAt !== null;
    };
    const unverified = (d: string): boolean => {
      const owner = registered(d);
      return !owner || owner.accountId !== input.accountId || owner.verifiedAt === null;
    };
    if (policy === 'verified' && authors.length === 0) {
      throw new SendError('sender_not_allowed', 'the message has no From address', 'from');
    }
    const refused = authors.find(policy === 'verified' ? unverified : foreign);
    if (refused !== undefined) {
      throw new SendError(
        'sender_not_allowed',
        `Sender domain not verified for this account: ${refused}`,
        'from',
      );
    }
    const signer = authors[0] === undefined ? undefined : registered(authors[0]);
    // Only the owner's keys sign; a foreign domain under policy `any` goes out unsigned.
    if (!signer || signer.accountId !== input.accountId || signer.keys.length === 0)
      return { bodies: input.bodies };
    const keys = signer.keys.map((k) => ({
      domain: signer.domain,
      selector: k.selector,
      algorithm: k.algorithm,
      privateKeyPem: k.privateKeyPem,
    }));
    const bodies = await Promise.all(input.bodies.map((b) => (b.length === 0 ? b : signMessage(b, keys))));
    return { bodies, envelopeFrom: `${ENVELOPE_PREFIX}${input.messageId}@${signer.returnPath}` };
  }

  return { apply };
}

export type SenderGate = ReturnType<typeof createSenderGate>;
