/**
 * Mailbox providers as statistics group them (issue 9: Gmail, Outlook/Hotmail, Yahoo/AOL, Apple
 * iCloud, GMX, WEB.DE, T-Online, other). The grouping is by MX, like traffic shaping's sites: the
 * shaping providers (delivery/shaping/providers.yaml, plus `shaping.providers` of the config)
 * already name the MX host suffixes of each, so a custom domain hosted at Google Workspace counts
 * as Gmail once its MX host is known. Where no MX host is known (an `accepted` event, before any
 * attempt), the recipient's domain decides through the providers' own consumer domains below.
 */
import { shippedProviderData } from '../delivery/shaping/provider-data.ts';
import { normalizeHost, type Provider, providerOfHost } from '../delivery/shaping/site.ts';
import { mergeProviders, type ProviderSpec } from '../delivery/shaping/spec.ts';

export const MAILBOX_PROVIDERS = [
  'gmail',
  'outlook',
  'yahoo',
  'icloud',
  'gmx',
  'webde',
  't-online',
  'other',
] as const;
export type MailboxProvider = (typeof MAILBOX_PROVIDERS)[number];

/**
 * Shaping provider name → statistics bucket. Microsoft 365 tenants count with Outlook/Hotmail
 * (the same company's filtering and postmaster programme, as Workspace counts with Gmail); a
 * provider added in the config under another name counts as `other`.
 */
const BY_SHAPING_NAME: Readonly<Record<string, MailboxProvider>> = {
  google: 'gmail',
  outlook: 'outlook',
  microsoft365: 'outlook',
  yahoo: 'yahoo',
  apple: 'icloud',
  gmx: 'gmx',
  webde: 'webde',
  't-online': 't-online',
};

/**
 * The providers' consumer address domains, for events without an MX host. Only domains whose
 * mail the provider itself hosts; country variants of Yahoo, Hotmail and Live are matched by
 * their first label below.
 */
const BY_DOMAIN: Readonly<Record<string, MailboxProvider>> = {
  'gmail.com': 'gmail',
  'googlemail.com': 'gmail',
  'outlook.com': 'outlook',
  'msn.com': 'outlook',
  'aol.com': 'yahoo',
  'aol.de': 'yahoo',
  'ymail.com': 'yahoo',
  'rocketmail.com': 'yahoo',
  'icloud.com': 'icloud',
  'me.com': 'icloud',
  'mac.com': 'icloud',
  'gmx.de': 'gmx',
  'gmx.net': 'gmx',
  'gmx.at': 'gmx',
  'gmx.ch': 'gmx',
  'gmx.com': 'gmx',
  'web.de': 'webde',
  't-online.de': 't-online',
  'magenta.de': 't-online',
};
/** `yahoo.co.uk`, `hotmail.de`, `live.fr`: the provider's name followed by a public suffix. */
const BY_FIRST_LABEL: Readonly<Record<string, MailboxProvider>> = {
  yahoo: 'yahoo',
  hotmail: 'outlook',
  live: 'outlook',
  outlook: 'outlook',
};

/** The shaping providers' MX suffixes: shipped, with `shaping.providers` of the config over them. */
export function mxProviders(operator: Readonly<Record<string, ProviderSpec>> = {}): Provider[] {
  return mergeProviders(shippedProviderData().providers, operator).map(({ name, mx }) => ({ name, mx }));
}

export function providerOfShapingName(name: string | undefined): MailboxProvider {
  return (name !== undefined && BY_SHAPING_NAME[name]) || 'other';
}

/** The bucket of an MX host name (`alt1.gmail-smtp-in.l.google.com` → gmail), undefined when it is no host name. */
export function providerOfMxHost(host: string, providers: readonly Provider[]): MailboxProvider | undefined {
  const normalized = normalizeHost(host);
  if (normalized === undefined) return undefined;
  return providerOfShapingName(providerOfHost(normalized, providers));
}

/**
 * The bucket of a site key (recipients.last_site): `provider:google` → gmail; an MX host set or a
 * smarthost → other; '' (no attempt yet) → undefined.
 */
export function providerOfSite(site: string): MailboxProvider | undefined {
  if (site === '') return undefined;
  return site.startsWith('provider:') ? providerOfShapingName(site.slice('provider:'.length)) : 'other';
}

/** The bucket of a recipient domain from the consumer domains alone (no MX known). */
export function providerOfDomain(domain: string): MailboxProvider {
  const d = domain.toLowerCase().replace(/\.$/, '');
  const exact = BY_DOMAIN[d];
  if (exact) return exact;
  const labels = d.split('.');
  const first = labels[0] ?? '';
  // yahoo.de, yahoo.co.uk, hotmail.com.br: a country suffix right after the provider's label
  // (not live.example.com, someone else's domain).
  const countrySuffix =
    labels.length === 2 || (labels.length === 3 && ['co', 'com'].includes(labels[1] ?? ''));
  if (countrySuffix && BY_FIRST_LABEL[first]) return BY_FIRST_LABEL[first];
  return 'other';
}
