/**
 * Tracking: links and the open pixel in tracked mail point at `trackingHost`, which must be a
 * CNAME to Postbote's `trackingTarget` so that the clicks reach Postbote under the customer's
 * own name (links on a shared host are a spam signal, and break if that host is blocklisted).
 */
import { lookupNames, normalizeName, unknownResult } from './lookup.ts';
import type { CheckResult, DomainSetup, Resolve } from './types.ts';

export async function checkTracking(setup: DomainSetup, resolve: Resolve): Promise<CheckResult> {
  const name = normalizeName(setup.trackingHost);
  const target = normalizeName(setup.trackingTarget);
  const base = { record: 'tracking', name } as const;
  const publish = { name, type: 'CNAME', value: target };

  const alias = await lookupNames(resolve, name, 'CNAME');
  if (alias.kind === 'error') {
    return unknownResult(base, 'CNAME', alias);
  }
  if (alias.kind === 'found') {
    const current = alias.records[0]!;
    if (current === target) {
      return {
        ...base,
        status: 'ok',
        explanation: `${name} is an alias of ${target}, so tracked links and opens reach Postbote.`,
        details: { cname: current },
      };
    }
    return {
      ...base,
      status: 'wrong',
      explanation:
        `${name} is an alias of ${current} instead of ${target}, so tracked links in your mail lead to the ` +
        `wrong place. Change the CNAME record of ${name} to ${target}.`,
      fix: target,
      details: { cname: current, publish },
    };
  }
  // No alias: a name with addresses of its own points somewhere else; otherwise it is missing.
  const address = await lookupNames(resolve, name, 'A');
  if (address.kind === 'found') {
    return {
      ...base,
      status: 'wrong',
      explanation:
        `${name} points to the address ${address.records.join(', ')} instead of being an alias of ${target}, ` +
        `so tracked links in your mail do not reach Postbote. Replace its A record with a CNAME record to ${target}.`,
      fix: target,
      details: { a: address.records, publish },
    };
  }
  return {
    ...base,
    status: 'missing',
    explanation:
      `${name} does not exist yet, so tracked links in your mail would lead nowhere. Add a CNAME record at ` +
      `${name} pointing to ${target}.`,
    fix: target,
    details: { publish },
  };
}
