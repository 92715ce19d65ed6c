/**
 * Return path: bounces and complaints for mail Postbote sends come back to the MAIL FROM domain,
 * so `returnPath` must route mail to Postbote's inbound MX: an MX record naming `mxHost`, or a
 * CNAME to `mxHost` (then the MX of `mxHost`'s own name applies, which Postbote controls).
 *
 * The CNAME is asked first: an MX lookup would follow it and show the target's MX records,
 * hiding whether the alias itself is right.
 */
import { lookupMx, lookupNames, normalizeName, unknownResult } from './lookup.ts';
import type { CheckResult, DomainSetup, Resolve } from './types.ts';

export async function checkReturnPath(setup: DomainSetup, resolve: Resolve): Promise<CheckResult> {
  const name = normalizeName(setup.returnPath);
  const mxHost = normalizeName(setup.mxHost);
  const base = { record: 'return_path', name } as const;
  const mxRecord = `10 ${mxHost}`;
  const publish = { name, type: 'MX', value: mxRecord };

  const alias = await lookupNames(resolve, name, 'CNAME');
  if (alias.kind === 'error') {
    return unknownResult(base, 'CNAME', alias);
  }
  if (alias.kind === 'found') {
    const target = alias.records[0]!;
    if (target === mxHost) {
      return {
        ...base,
        status: 'ok',
        explanation: `${name} is an alias of ${mxHost}, so bounces and complaints reach Postbote.`,
        details: { cname: target },
      };
    }
    return {
      ...base,
      status: 'wrong',
      explanation:
        `${name} is an alias of ${target}, not of ${mxHost}, so bounces and complaints do not reach Postbote ` +
        `and it cannot stop sending to addresses that do not exist. Change the CNAME record of ${name} to ${mxHost}.`,
      fix: mxHost,
      details: { cname: target, publish: { name, type: 'CNAME', value: mxHost } },
    };
  }

  const mx = await lookupMx(resolve, name);
  if (mx.kind === 'error') {
    return unknownResult(base, 'MX', mx);
  }
  if (mx.kind === 'none') {
    return {
      ...base,
      status: 'missing',
      explanation:
        `${name} has no MX record, so bounces and complaints for your mail cannot reach Postbote, and some ` +
        `receivers refuse mail from a return address that cannot receive mail. Add an MX record at ${name} ` +
        `pointing to ${mxHost} (priority 10), or a CNAME record to ${mxHost}.`,
      fix: mxRecord,
      details: { publish },
    };
  }
  const exchanges = mx.records.map((r) => `${r.priority} ${r.exchange || '.'}`);
  const ours = mx.records.filter((r) => r.exchange === mxHost);
  if (ours.length === 0) {
    const nullMx = mx.records.every((r) => r.exchange === '');
    return {
      ...base,
      status: 'wrong',
      explanation: nullMx
        ? `${name} says it accepts no mail at all (a "null MX" record), so bounces cannot reach Postbote. ` +
          `Replace it with an MX record pointing to ${mxHost}.`
        : `The MX records of ${name} point to ${mx.records.map((r) => r.exchange).join(', ')}, not to ${mxHost}, ` +
          `so bounces and complaints do not reach Postbote. Replace them with an MX record pointing to ${mxHost}.`,
      fix: mxRecord,
      details: { mx: exchanges, publish },
    };
  }
  const best = Math.min(...ours.map((r) => r.priority));
  const others = mx.records.filter((r) => r.exchange !== mxHost && r.priority <= best);
  if (others.length > 0) {
    return {
      ...base,
      status: 'warning',
      explanation:
        `${name} has an MX record for ${mxHost}, but also ${others.map((r) => r.exchange).join(', ')} with the ` +
        `same or a better priority, so some bounces go there and Postbote never sees them. Remove the other MX records of ${name}.`,
      fix: mxRecord,
      details: { mx: exchanges, publish },
    };
  }
  return {
    ...base,
    status: 'ok',
    explanation: `Bounces and complaints for mail sent with the return path ${name} reach Postbote (MX ${mxHost}).`,
    details: { mx: exchanges },
  };
}
