import { domainToASCII } from 'node:url';
import type { Config } from '../config/schema.ts';
import { newId } from '../store/ids.ts';
import type { Store } from '../store/store.ts';
import type { Account, DkimAlgorithm, DkimKey, SendingDomain } from '../store/types.ts';
import { checkDomain } from './checks/index.ts';
import type { CheckResult, Resolve } from './checks/types.ts';
import { generateDkimKey } from './dkim-keys.ts';
import { recordsToPublish } from './dns-records.ts';
import { egressAddresses } from './egress.ts';
import { createKeyBox, isSealed, type KeyBox, loadSecretsKey, SecretsKeyError } from './key-encryption.ts';

/** Why a domain command was refused; `code` is the API's error code. */
export class DomainError extends Error {
  readonly code: 'invalid_domain' | 'domain_taken' | 'domain_not_found' | 'sending_addresses_unknown';
  constructor(code: DomainError['code'], message: string) {
    super(message);
    this.name = 'DomainError';
    this.code = code;
  }
}

/** A domain name as we store it: lower-case ASCII (IDNs in punycode), no trailing dot. */
export function normaliseDomain(input: string): string {
  const ascii = domainToASCII(input.trim().replace(/\.$/, ''));
  if (
    !ascii ||
    ascii.length > 253 ||
    !ascii.includes('.') ||
    !/^[a-z0-9.-]+$/.test(ascii) ||
    ascii.split('.').some((l) => l === '' || l.length > 63 || l.startsWith('-') || l.endsWith('-'))
  ) {
    throw new DomainError('invalid_domain', `"${input.slice(0, 80)}" is not a domain name`);
  }
  return ascii;
}

export interface DomainView {
  domain: SendingDomain;
  keys: DkimKey[];
}

/**
 * Sending domains: DKIM keys, the DNS records to publish, the checks of what is published,
 * verification (by DNS: an active DKIM key's record is published as we generated it; or by an
 * administrator's `trust`), and DKIM key rotation (a pending key signs beside the active one
 * until its record verifies, then replaces it).
 */
export function createDomains(options: { store: Store; clock: () => number; config: Config }) {
  const { store, clock, config } = options;
  const mxHost = config.domains.mx_host || config.hostname;
  const trackingTarget = config.domains.tracking_target || config.hostname;
  // Loaded when a key is generated or sealed, not before: most commands never need it.
  let box: KeyBox | undefined;
  const keyBox = (): KeyBox => {
    box ??= createKeyBox(loadSecretsKey(config.secrets));
    return box;
  };

  async function newKeys(domainId: string, algorithms: readonly DkimAlgorithm[], state: DkimKey['state']) {
    const now = clock();
    const keys: DkimKey[] = [];
    for (const algorithm of algorithms) {
      const generated = await generateDkimKey(algorithm, { now: new Date(now) });
      keys.push({
        domainId,
        selector: generated.selector,
        algorithm,
        privateKeyPem: keyBox().seal(generated.privateKeyPem),
        publicKey: generated.publicKey,
        state,
        createdAt: now,
        changedAt: now,
      });
    }
    return keys;
  }

  /** Adds a domain whose DNS Postbote will check: refused when it could not write the SPF record. */
  async function add(account: Account, name: string): Promise<DomainView> {
    requireSpfSource(egressAddresses(config, account.name, await store.listStreams(account.id)));
    return create(account, name);
  }

  async function create(account: Account, name: string): Promise<DomainView> {
    const domainName = normaliseDomain(name);
    const existing = await store.getDomain(domainName);
    if (existing) {
      throw new DomainError(
        'domain_taken',
        existing.accountId === account.id
          ? `the account already has ${domainName}`
          : `${domainName} belongs to another account`,
      );
    }
    const now = clock();
    const id = newId(now);
    const keys = await newKeys(id, config.domains.dkim_algorithms as DkimAlgorithm[], 'active');
    const domain: SendingDomain = {
      id,
      accountId: account.id,
      domain: domainName,
      returnPath: `${config.domains.return_path_label}.${domainName}`,
      trackingHost: `${config.domains.tracking_label}.${domainName}`,
      verifiedAt: null,
      verifiedBy: null,
      lastCheck: null,
      checkedAt: null,
      createdAt: now,
    };
    const created = await store.createDomain({ ...domain, keys });
    if (!created) throw new DomainError('domain_taken', `${domainName} was added meanwhile`);
    return { domain: created, keys };
  }

  async function get(name: string, accountId?: string): Promise<DomainView> {
    const domainName = normaliseDomain(name);
    const domain = await store.getDomain(domainName);
    if (!domain || (accountId !== undefined && domain.accountId !== accountId)) {
      throw new DomainError('domain_not_found', `no sending domain ${domainName}`);
    }
    return { domain, keys: await store.listDkimKeys(domain.id) };
  }

  async function egressOf(domain: SendingDomain) {
    const account = await store.getAccount(domain.accountId);
    return egressAddresses(config, account?.name ?? '', await store.listStreams(domain.accountId));
  }

  /**
   * The SPF record names the addresses mail leaves from: without any (no domains.public_ips, no
   * egress pool addresses) and without domains.spf_include there is no record to publish, and a
   * domain added now could never pass its SPF check. Refused before anything is stored.
   */
  function requireSpfSource(egress: { ip: string }[]): void {
    if (egress.length > 0 || config.domains.spf_include) return;
    throw new DomainError(
      'sending_addresses_unknown',
      'Postbote does not know the public addresses it sends from, so it cannot write the SPF record: ' +
        'set domains.public_ips (or egress pool addresses, or domains.spf_include), or vouch for the domain ' +
        'without DNS checks with `postbote domains trust`',
    );
  }

  /** The records to publish, for the keys that sign or will sign (not retired ones). */
  async function records(view: DomainView) {
    const egress = await egressOf(view.domain);
    // A trusted domain can exist without a known sending address: its other records still apply.
    const spf = egress.length > 0 || config.domains.spf_include !== '';
    return recordsToPublish({
      domain: view.domain.domain,
      dkim: view.keys.filter((k) => k.state !== 'retired'),
      returnPath: view.domain.returnPath,
      mxHost,
      trackingHost: view.domain.trackingHost,
      trackingTarget,
      egressIps: [...new Set(egress.map((e) => e.ip))],
      ...(config.domains.spf_include ? { spfInclude: config.domains.spf_include } : {}),
      spf,
      dmarcRua: `dmarc@${view.domain.domain}`,
    });
  }

  /**
   * Checks what the domain publishes, stores the result, verifies the domain when an active
   * key's record matches, and promotes a pending key whose record verifies (retiring the key it
   * replaces). Returns the results and what changed.
   */
  async function check(
    view: DomainView,
    resolve: Resolve,
  ): Promise<{ results: CheckResult[]; verified: boolean; changes: string[] }> {
    const egress = await egressOf(view.domain);
    const live = view.keys.filter((k) => k.state !== 'retired');
    const results = await checkDomain(
      {
        domain: view.domain.domain,
        dkim: live.map((k) => ({ selector: k.selector, algorithm: k.algorithm, publicKey: k.publicKey })),
        returnPath: view.domain.returnPath,
        mxHost,
        trackingHost: view.domain.trackingHost,
        trackingTarget,
        egress: egress.map((e) => ({ name: e.source, ip: e.ip, ehlo: e.ehlo })),
      },
      resolve,
    );
    const now = clock();
    const changes: string[] = [];
    const dkimOk = (k: DkimKey) =>
      results.some(
        (r) =>
          r.record === 'dkim' &&
          r.name === `${k.selector}._domainkey.${view.domain.domain}` &&
          (r.status === 'ok' || r.status === 'warning'),
      );
    for (const pending of live.filter((k) => k.state === 'pending' && dkimOk(k))) {
      await store.setDkimKeyState(view.domain.id, pending.selector, 'active', now);
      for (const old of live.filter((k) => k.state === 'active' && k.algorithm === pending.algorithm)) {
        await store.setDkimKeyState(view.domain.id, old.selector, 'retired', now);
        changes.push(`key ${old.selector} retired`);
      }
      changes.push(`key ${pending.selector} active`);
    }
    let verified = view.domain.verifiedAt !== null;
    if (!verified && live.some((k) => k.state === 'active' && dkimOk(k))) {
      await store.setDomainVerified(view.domain.id, now, 'dns');
      verified = true;
      changes.push('verified');
    }
    const before = statusMap(view.domain.lastCheck);
    for (const r of results) {
      const was = before.get(`${r.record} ${r.name}`);
      if (was !== undefined && was !== r.status) changes.push(`${r.record} ${r.name}: ${was} → ${r.status}`);
    }
    await store.recordDomainCheck(view.domain.id, { checkedAt: now, result: results });
    // Whoever asked (the elected node's periodic check, the CLI, the API), what changed is an
    // event of the domain's account (no message: id '').
    if (changes.length > 0) {
      await store.appendEvents([
        {
          at: now,
          type: 'domain_status_changed',
          accountId: view.domain.accountId,
          data: { domain: view.domain.domain, changes },
        },
      ]);
    }
    return { results, verified, changes };
  }

  /** An administrator vouches for the domain (DNS managed elsewhere); it is added when new. */
  async function trust(account: Account, name: string): Promise<DomainView> {
    const domainName = normaliseDomain(name);
    const existing = await store.getDomain(domainName);
    if (existing && existing.accountId !== account.id) {
      throw new DomainError('domain_taken', `${domainName} belongs to another account`);
    }
    // No DNS checks for a trusted domain: it needs no SPF source to be added.
    const view = existing ? await get(domainName) : await create(account, domainName);
    await store.setDomainVerified(view.domain.id, clock(), 'admin');
    return get(domainName);
  }

  /** Starts a rotation: a new pending key per algorithm in use, signing beside the active one. */
  async function rotate(view: DomainView): Promise<DkimKey[]> {
    const algorithms = [...new Set(view.keys.filter((k) => k.state === 'active').map((k) => k.algorithm))];
    const pending = await newKeys(view.domain.id, algorithms.length ? algorithms : ['rsa'], 'pending');
    for (const key of pending) await store.addDkimKey(key);
    return pending;
  }

  /**
   * Seals every plaintext private key with the secrets key (`postbote domains encrypt-keys`).
   * Keys already sealed must open with this key: two keys in one database would leave one set
   * unreadable at the next start.
   */
  async function encryptKeys(): Promise<{ encrypted: number; alreadyEncrypted: number }> {
    const sealer = keyBox();
    if (!sealer.encrypting) {
      throw new SecretsKeyError(
        'no secrets key configured: set secrets.key (POSTBOTE_SECRETS__KEY) or secrets.key_file',
      );
    }
    let encrypted = 0;
    let alreadyEncrypted = 0;
    for (const domain of await store.listDomains()) {
      for (const key of await store.listDkimKeys(domain.id)) {
        if (isSealed(key.privateKeyPem)) {
          sealer.open(key.privateKeyPem);
          alreadyEncrypted++;
          continue;
        }
        const sealed = sealer.seal(key.privateKeyPem);
        if (await store.setDkimPrivateKey(domain.id, key.selector, key.privateKeyPem, sealed)) encrypted++;
      }
    }
    return { encrypted, alreadyEncrypted };
  }

  async function remove(view: DomainView): Promise<void> {
    await store.deleteDomain(view.domain.id);
  }

  return {
    add,
    get,
    list: (accountId?: string) => store.listDomains(accountId),
    records,
    check,
    trust,
    rotate,
    remove,
    encryptKeys,
  };
}

export type Domains = ReturnType<typeof createDomains>;

function statusMap(lastCheck: unknown): Map<string, string> {
  const map = new Map<string, string>();
  if (!Array.isArray(lastCheck)) return map;
  for (const r of lastCheck as Partial<CheckResult>[]) {
    if (r.record && r.name && r.status) map.set(`${r.record} ${r.name}`, r.status);
  }
  return map;
}
