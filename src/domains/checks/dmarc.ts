/**
 * DMARC: which policy receivers apply to mail from the domain, and whether Postbote's mail
 * passes it — DKIM signs with d=<domain>, SPF authenticates the return-path domain, and DMARC
 * needs one of the two to align with the From domain.
 *
 * Policy discovery and relaxed alignment use mailauth's `dmarc()`: it finds the record at
 * `_dmarc.<domain>` or, failing that, at the organizational domain with the DNS tree walk of
 * RFC 9989 §4.10 (DMARCbis), which replaces the public suffix list of RFC 7489. So no suffix
 * list is bundled here. Relaxed alignment compares organizational domains found that way;
 * strict alignment compares names exactly (RFC 9989 §4.4).
 */
import { lookupTxt, normalizeName, sameName, unknownResult } from './lookup.ts';
import type { CheckResult, DomainSetup, Resolve, RRType } from './types.ts';

type Dmarc = typeof import('mailauth/lib/dmarc/index.js').dmarc;
let dmarcModule: Promise<Dmarc> | undefined;

/**
 * mailauth's policy discovery, loaded at first use: it takes ~170 ms to load, which the CLI need
 * not pay. Loading blocks the event loop: checkDomain loads it before its queries are in flight.
 */
export function loadDmarc(): Promise<Dmarc> {
  dmarcModule ??= import('mailauth/lib/dmarc/index.js').then((m) => m.dmarc);
  return dmarcModule;
}

/** mailauth's rule: the version tag comes first and its value is exactly "DMARC1" (RFC 9989 §4.7). */
const EXACT_VERSION = /^[vV][ \t]*=[ \t]*DMARC1[ \t]*(?:;|$)/;
const LOOSE_VERSION = /^\s*v\s*=\s*dmarc1\s*(?:;|$)/i;
const POLICIES = new Set(['none', 'quarantine', 'reject']);

const POLICY_MEANING: Record<string, string> = {
  none: 'receivers deliver mail that fails DMARC as usual and only send you reports',
  quarantine: 'receivers put mail that fails DMARC in the spam folder',
  reject: 'receivers refuse mail that fails DMARC',
};

export async function checkDmarc(setup: DomainSetup, resolve: Resolve): Promise<CheckResult> {
  const domain = normalizeName(setup.domain);
  const returnPath = normalizeName(setup.returnPath);
  const name = `_dmarc.${domain}`;
  const base = { record: 'dmarc', name } as const;
  const suggested = `v=DMARC1; p=none; rua=mailto:dmarc@${domain}`;
  const publish = { name, type: 'TXT', value: suggested };
  const resolver = (n: string, rrtype: string) => resolve(n, rrtype as RRType) as Promise<string[][]>;

  const own = await lookupTxt(resolve, name);
  if (own.kind === 'error') {
    return unknownResult(base, 'TXT', own);
  }
  const ownRecords = own.kind === 'found' ? own.records.filter((r) => LOOSE_VERSION.test(r)) : [];
  if (ownRecords.length > 1) {
    return {
      ...base,
      status: 'wrong',
      explanation:
        `${name} has ${ownRecords.length} DMARC records. Receivers ignore all of them when there is more than ` +
        'one, so the domain has no DMARC policy. Keep exactly one.',
      fix: ownRecords.find((r) => EXACT_VERSION.test(r)) ?? suggested,
      details: { records: ownRecords },
    };
  }
  const ownRecord = ownRecords[0];
  if (ownRecord !== undefined && !EXACT_VERSION.test(ownRecord)) {
    return {
      ...base,
      status: 'wrong',
      explanation: `The record at ${name} must start with "v=DMARC1" exactly (upper case); receivers ignore it as written.`,
      fix: ownRecord.replace(LOOSE_VERSION, 'v=DMARC1;'),
      details: { record: ownRecord },
    };
  }
  const ownPolicy = ownRecord === undefined ? undefined : tagValue(ownRecord, 'p');
  if (ownRecord !== undefined && ownPolicy !== undefined && !POLICIES.has(ownPolicy.toLowerCase())) {
    return {
      ...base,
      status: 'wrong',
      explanation:
        `The DMARC record at ${name} has the policy "p=${ownPolicy}", which does not exist; receivers ignore ` +
        'the policy. Use p=none, p=quarantine or p=reject.',
      fix: ownRecord.replace(/(;\s*)p\s*=[^;]*/i, '$1p=none'),
      details: { record: ownRecord },
    };
  }

  const dmarc = await loadDmarc();
  const response = await dmarc({
    headerFrom: `postmaster@${domain}`,
    spfDomains: [returnPath],
    dkimDomains: setup.dkim.length > 0 ? [{ domain }] : [],
    resolver,
  }).catch((cause: unknown) => ({ failed: cause }));
  if (!response || 'failed' in response || response.status.result === 'temperror') {
    return {
      ...base,
      status: 'error',
      explanation:
        `Could not check the DMARC policy of ${domain}: a DNS lookup failed. This is usually temporary; ` +
        'try the check again in a few minutes.',
    };
  }
  if (response.status.result === 'none' || !response.alignment) {
    if (ownRecord !== undefined) {
      return {
        ...base,
        status: 'wrong',
        explanation:
          `The DMARC record at ${name} has no policy (p=) and no report address (rua=), so receivers ignore it. ` +
          'Replace it with the value shown.',
        fix: suggested,
        details: { record: ownRecord, publish },
      };
    }
    return {
      ...base,
      status: 'missing',
      explanation:
        `${domain} has no DMARC policy, so receivers cannot tell what to do with mail that pretends to come ` +
        `from it, and large mailbox providers expect one from bulk senders. Add a TXT record at ${name} with ` +
        'the value shown: it changes nothing for delivery and sends you reports on who sends as your domain.',
      fix: suggested,
      details: { publish },
    };
  }

  const aspfStrict = response.alignment.spf.strict;
  const adkimStrict = response.alignment.dkim.strict;
  const spfStrict = sameName(returnPath, domain);
  const spfRelaxed = aspfStrict
    ? await sameOrganization(returnPath, response.domain, resolver)
    : Boolean(response.alignment.spf.result);
  const dkimSigns = setup.dkim.length > 0;
  const spfAligns = aspfStrict ? spfStrict : spfRelaxed;
  const inherited = !sameName(response.policyDomain ?? domain, domain);

  const details: Record<string, unknown> = {
    record: response.rr,
    policy: response.policy,
    p: response.p,
    sp: response.sp,
    policyDomain: response.policyDomain,
    organizationalDomain: response.domain,
    adkim: adkimStrict ? 'strict' : 'relaxed',
    aspf: aspfStrict ? 'strict' : 'relaxed',
    alignment: {
      // d= is the From domain itself: aligned in both modes whenever Postbote signs.
      dkim: { domain, strict: dkimSigns, relaxed: dkimSigns },
      spf: { domain: returnPath, strict: spfStrict, relaxed: spfRelaxed ?? 'unknown' },
    },
  };
  if (response.testMode) details['testMode'] = true;

  const source = inherited
    ? `${domain} has no DMARC record of its own; the policy of ${response.policyDomain} applies`
    : `The DMARC policy of ${domain} is "${response.policy}"`;
  const meaning = `${source}: ${POLICY_MEANING[response.policy] ?? `policy ${response.policy}`}.`;
  const spfText = describeSpfAlignment(returnPath, domain, {
    strict: spfStrict,
    relaxed: spfRelaxed,
    aspfStrict,
  });

  if (!dkimSigns && !spfAligns) {
    return {
      ...base,
      status: 'wrong',
      explanation:
        `${meaning} Mail from Postbote will fail DMARC: there is no DKIM key to sign with. ${spfText} ` +
        `Add a DKIM key for ${domain}${aspfStrict ? ', or relax SPF alignment (aspf=r)' : ''}.`,
      fix: `Add a DKIM key for ${domain}.`,
      details,
    };
  }
  const passes = dkimSigns
    ? `Postbote signs with d=${domain}, which aligns under both strict and relaxed rules, so mail passes ` +
      `DMARC whenever its DKIM check is ok. ${spfText}`
    : `Postbote has no DKIM key for ${domain}, so DMARC rests on SPF alone. ${spfText}`;
  const missingPolicy =
    ownRecord !== undefined && ownPolicy === undefined
      ? ' The record has no p= tag: older receivers ignore such records, so add "p=none" (or stronger) to it.'
      : '';
  return {
    ...base,
    status: missingPolicy ? 'warning' : 'ok',
    explanation: `${meaning} ${passes}${missingPolicy}`,
    ...(missingPolicy && ownRecord
      ? { fix: ownRecord.replace(EXACT_VERSION, (v) => `${v.replace(/;?$/, ';')} p=none;`) }
      : {}),
    details,
  };
}

/** Alignment only: whether SPF passes is the SPF check's business. */
function describeSpfAlignment(
  returnPath: string,
  domain: string,
  a: { strict: boolean; relaxed: boolean | undefined; aspfStrict: boolean },
): string {
  if (a.strict) return `The return path is ${domain} itself, so SPF counts for DMARC too when it passes.`;
  if (a.relaxed === undefined) {
    return `Whether the return path ${returnPath} aligns for SPF could not be checked (a DNS lookup failed).`;
  }
  if (a.relaxed && a.aspfStrict) {
    return (
      `The return path ${returnPath} belongs to ${domain} but is not ${domain} itself, and the policy asks ` +
      'for exact SPF alignment (aspf=s), so SPF does not count for DMARC.'
    );
  }
  if (a.relaxed) {
    return (
      `The return path ${returnPath} belongs to the same organization as ${domain} (relaxed alignment), ` +
      'so SPF counts for DMARC too when it passes.'
    );
  }
  return `The return path ${returnPath} is not part of ${domain}, so SPF does not count for DMARC.`;
}

/** Relaxed alignment for a name the policy did not evaluate relaxed: compare organizational domains. */
async function sameOrganization(
  name: string,
  organizationalDomain: string,
  resolver: (n: string, rrtype: string) => Promise<string[][]>,
): Promise<boolean | undefined> {
  try {
    const dmarc = await loadDmarc();
    const other = await dmarc({ headerFrom: `postmaster@${name}`, resolver });
    if (!other || other.status.result === 'temperror') return undefined;
    return sameName(other.domain, organizationalDomain);
  } catch {
    return undefined;
  }
}

function tagValue(record: string, tag: string): string | undefined {
  for (const spec of record.split(';')) {
    const eq = spec.indexOf('=');
    if (eq > 0 && spec.slice(0, eq).trim().toLowerCase() === tag) return spec.slice(eq + 1).trim();
  }
  return undefined;
}
