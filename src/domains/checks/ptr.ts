/**
 * Reverse DNS of an egress address. Receivers look up the PTR of the connecting address and
 * then the addresses of that name (forward-confirmed reverse DNS, "FCrDNS"); many refuse or
 * penalise mail from an address without it (RFC 1912 §2.1 asks for a PTR for every address;
 * the large mailbox providers' sender guidelines require it). The confirmed name should also be
 * the EHLO name, so that the HELO identity, the PTR and the address tell one story.
 *
 * The PTR is set by whoever owns the address block (the hosting provider), not in the
 * customer's zone, so the fixes here are actions for the Postbote operator.
 */
import { parseIp, reverseName } from '../../dns/ip-address.ts';
import { lookupNames, normalizeName, sameName, unknownResult } from './lookup.ts';
import type { CheckResult, EgressAddress, Resolve } from './types.ts';

/** Like RFC 7208 §4.6.4 for the ptr mechanism: a hostile reverse zone gets 10 forward lookups, no more. */
const MAX_PTR_NAMES = 10;

export async function checkPtr(egress: EgressAddress, resolve: Resolve): Promise<CheckResult> {
  const ip = parseIp(egress.ip);
  const ehlo = normalizeName(egress.ehlo);
  if (!ip) {
    return {
      record: 'ptr',
      name: egress.ip,
      status: 'wrong',
      explanation: `The egress source ${egress.name} has the address "${egress.ip}", which is not an IP address.`,
      fix: `Correct the address of egress source ${egress.name}.`,
    };
  }
  const name = reverseName(egress.ip);
  const base = { record: 'ptr', name } as const;
  const family = ip.family === 4 ? 'A' : 'AAAA';
  const setPtr = `Ask the provider of ${egress.ip} to set its reverse DNS (PTR) to ${ehlo}, and make sure ${ehlo} has an ${family} record ${egress.ip}.`;

  const ptr = await lookupNames(resolve, name, 'PTR');
  if (ptr.kind === 'error') {
    return unknownResult(base, 'PTR', ptr);
  }
  if (ptr.kind === 'none') {
    return {
      ...base,
      status: 'missing',
      explanation:
        `${egress.ip} (egress source ${egress.name}) has no reverse DNS name. Many receivers refuse or ` +
        'distrust mail from addresses without one.',
      fix: setPtr,
      details: { ip: egress.ip, ehlo },
    };
  }

  const names = ptr.records.slice(0, MAX_PTR_NAMES);
  const forward = await Promise.all(names.map((n) => lookupNames(resolve, n, family)));
  const confirmed = names.filter((_, i) => {
    const answer = forward[i]!;
    return answer.kind === 'found' && answer.records.some((a) => sameAddress(a, ip.bytes));
  });
  const details = { ip: egress.ip, ehlo, ptr: ptr.records, confirmed };

  if (confirmed.length === 0) {
    if (forward.some((a) => a.kind === 'error')) {
      return {
        ...base,
        status: 'error',
        explanation:
          `Could not check whether ${names.join(', ')} points back to ${egress.ip}: a DNS lookup failed. ` +
          'This is usually temporary; try the check again in a few minutes.',
        details,
      };
    }
    return {
      ...base,
      status: 'wrong',
      explanation:
        `The reverse DNS name of ${egress.ip} is ${names.join(', ')}, but that name does not point back to ` +
        `${egress.ip}, so receivers treat the address as having no valid name.`,
      fix: names.includes(ehlo)
        ? `Add an ${family} record for ${ehlo} with the address ${egress.ip}.`
        : setPtr,
      details,
    };
  }
  if (confirmed.some((n) => sameName(n, ehlo))) {
    return {
      ...base,
      status: 'ok',
      explanation: `${egress.ip} has the reverse DNS name ${ehlo}, which points back to it and is the name it uses in EHLO.`,
      details,
    };
  }
  return {
    ...base,
    status: 'warning',
    explanation:
      `${egress.ip} has the reverse DNS name ${confirmed[0]}, but egress source ${egress.name} introduces ` +
      `itself as ${ehlo}. Some receivers score mail lower when the two differ.`,
    fix: `Change the EHLO name of egress source ${egress.name} to ${confirmed[0]}, or ${setPtr.charAt(0).toLowerCase()}${setPtr.slice(1)}`,
    details,
  };
}

function sameAddress(text: string, bytes: Uint8Array): boolean {
  const other = parseIp(text);
  return (
    other !== undefined && other.bytes.length === bytes.length && other.bytes.every((b, i) => b === bytes[i])
  );
}
