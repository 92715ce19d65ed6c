/**
 * The DNS records a customer publishes for a sending domain, as data (for the API and the
 * dashboard, one row per record) and as BIND zone-file lines (for the CLI and for pasting
 * into a zone).
 *
 *  - DKIM: one TXT per key at `<selector>._domainkey.<domain>` (RFC 6376 §3.6.2.1).
 *  - Return path (the MAIL FROM domain, where bounces go): an MX to Postbote's bounce host and
 *    an SPF TXT naming the egress addresses. It is a subdomain of its own so that neither
 *    replaces the customer's apex MX or SPF, and DMARC relaxed alignment still holds.
 *  - DMARC: a `p=none` suggestion at `_dmarc.<domain>`: the policy is the customer's decision,
 *    monitoring first is the safe start (RFC 7489 §6.6.3 / §10.1).
 *  - Tracking: a CNAME from the customer's click/open host to Postbote's tracking host.
 */
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import type { DkimAlgorithm } from './dkim-keys.ts';

export type RecordPurpose = 'dkim' | 'spf' | 'return_path' | 'dmarc' | 'tracking';

interface RecordBase {
  /** Owner name, lower-case ASCII (A-labels), without the trailing dot. */
  name: string;
  /**
   * What a DNS provider's web form asks for: the whole TXT text (unsplit), the MX host or the
   * CNAME target (no trailing dot).
   */
  value: string;
  purpose: RecordPurpose;
  /** One plain-language line for the dashboard and the CLI. */
  description: string;
}

export interface TxtRecord extends RecordBase {
  type: 'TXT';
  /**
   * `value` cut into character-strings of at most 255 octets (RFC 1035 §3.3.14): what a zone
   * file or an API such as Route 53 needs. Receivers concatenate them without a separator
   * (RFC 6376 §3.6.2.2, RFC 7208 §3.3), so the cut may fall anywhere.
   */
  strings: string[];
}

export interface MxRecord extends RecordBase {
  type: 'MX';
  priority: number;
}

export interface CnameRecord extends RecordBase {
  type: 'CNAME';
}

export type DnsRecord = TxtRecord | MxRecord | CnameRecord;

export interface DkimPublicKey {
  selector: string;
  algorithm: DkimAlgorithm;
  /** Base64 for `p=` (see `generateDkimKey`). */
  publicKey: string;
}

export interface RecordsInput {
  /** The sending domain: the From domain and the DKIM `d=`. */
  domain: string;
  /** Live keys: during a rotation the old and the new key are both published. */
  dkim: DkimPublicKey[];
  /** The MAIL FROM domain, e.g. `bounces.example.com`. */
  returnPath: string;
  /** Postbote's host that receives bounces for the return path. */
  mxHost: string;
  /** The customer's host in tracked links, e.g. `click.example.com`. */
  trackingHost: string;
  /** Postbote's tracking host that `trackingHost` points to. */
  trackingTarget: string;
  /** Addresses (or CIDR blocks) mail leaves from; ignored when `spfInclude` is set. */
  egressIps: string[];
  /** A domain to `include:` instead of listing the egress addresses (hosted setups). */
  spfInclude?: string;
  /**
   * False: no SPF record (a domain trusted by an administrator on a node that does not know the
   * addresses it sends from: there is nothing true to publish). Default true, and then an empty
   * `egressIps` without `spfInclude` is an error.
   */
  spf?: boolean;
  /** Where aggregate DMARC reports go: an address or a `mailto:` URI. */
  dmarcRua?: string;
}

/** TTL of the zone lines: an hour, short enough to correct a mistake the same day. */
export const ZONE_TTL = 3600;

/** Preference of the return-path MX: the only MX at that name, any value works. */
export const RETURN_PATH_MX_PRIORITY = 10;

const MAX_CHARACTER_STRING = 255;

/** An input that cannot become a DNS record; `field` names the input property. */
export class DnsRecordInputError extends Error {
  override readonly name = 'DnsRecordInputError';
  readonly field: string;

  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
/** Names that are not host names (`_spf.example.net`) may hold underscores (RFC 2181 §11). */
const SERVICE_LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/**
 * A name as DNS stores it: lower case, A-labels for IDNs, no trailing dot; refused unless it
 * has at least two labels of letters, digits and hyphens (RFC 1123 §2.1), plus underscores
 * for a name that is not a host, and is not an IP address.
 */
function domainName(field: string, input: string, label = LABEL): string {
  const trimmed = input.trim().replace(/\.$/, '');
  const ascii = domainToASCII(trimmed);
  if (!ascii || ascii.length > 253)
    throw new DnsRecordInputError(field, `${JSON.stringify(input)} is not a domain name`);
  const labels = ascii.split('.');
  // An all-numeric last label is an IP address, not a name (RFC 3696 §2).
  if (labels.length < 2 || !labels.every((l) => label.test(l)) || /^\d+$/.test(labels.at(-1)!)) {
    throw new DnsRecordInputError(field, `${JSON.stringify(input)} is not a host name`);
  }
  return ascii;
}

function isWithin(name: string, domain: string): boolean {
  return name === domain || name.endsWith(`.${domain}`);
}

/**
 * Cuts a TXT text into character-strings of at most 255 characters. Every text built here is
 * printable ASCII (inputs are validated), so characters and octets are the same count.
 */
export function txtStrings(text: string): string[] {
  if (text.length === 0) return [''];
  const strings: string[] = [];
  for (let start = 0; start < text.length; start += MAX_CHARACTER_STRING) {
    strings.push(text.slice(start, start + MAX_CHARACTER_STRING));
  }
  return strings;
}

function txt(name: string, value: string, purpose: RecordPurpose, description: string): TxtRecord {
  return { type: 'TXT', name, value, strings: txtStrings(value), purpose, description };
}

function dkimRecord(domain: string, key: DkimPublicKey, index: number): TxtRecord {
  const field = `dkim[${index}]`;
  if (!LABEL.test(key.selector)) {
    throw new DnsRecordInputError(`${field}.selector`, `${JSON.stringify(key.selector)} is not a DNS label`);
  }
  if (key.algorithm !== 'rsa' && key.algorithm !== 'ed25519') {
    throw new DnsRecordInputError(`${field}.algorithm`, `unknown algorithm ${JSON.stringify(key.algorithm)}`);
  }
  const raw = /^[A-Za-z0-9+/]+={0,2}$/.test(key.publicKey) ? Buffer.from(key.publicKey, 'base64') : undefined;
  if (!raw || raw.toString('base64') !== key.publicKey) {
    throw new DnsRecordInputError(`${field}.publicKey`, 'is not base64');
  }
  if (key.algorithm === 'ed25519' && raw.length !== 32) {
    // RFC 8463 §4.2: the bare 32-byte key, not a SubjectPublicKeyInfo.
    throw new DnsRecordInputError(`${field}.publicKey`, `an Ed25519 p= is 32 bytes, not ${raw.length}`);
  }
  return txt(
    `${key.selector}._domainkey.${domain}`,
    `v=DKIM1; k=${key.algorithm}; p=${key.publicKey}`,
    'dkim',
    `DKIM public key (${key.algorithm === 'rsa' ? 'RSA' : 'Ed25519'}), selector ${key.selector}`,
  );
}

/** `ip4:192.0.2.1`, `ip6:2001:db8::1`, `ip4:192.0.2.0/28` (RFC 7208 §5.6). */
function spfAddress(input: string, index: number): string {
  const [address = '', prefix, extra] = input.trim().split('/');
  const family = isIP(address);
  const maxPrefix = family === 4 ? 32 : 128;
  const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= maxPrefix);
  if (family === 0 || !prefixOk || extra !== undefined) {
    throw new DnsRecordInputError(
      `egressIps[${index}]`,
      `${JSON.stringify(input)} is not an IP address or block`,
    );
  }
  return `ip${family}:${address.toLowerCase()}${prefix === undefined ? '' : `/${Number(prefix)}`}`;
}

function spfRecord(returnPath: string, input: RecordsInput): TxtRecord {
  let mechanisms: string[];
  if (input.spfInclude !== undefined) {
    mechanisms = [`include:${domainName('spfInclude', input.spfInclude, SERVICE_LABEL)}`];
  } else {
    mechanisms = [...new Set(input.egressIps.map(spfAddress))];
    if (mechanisms.length === 0) {
      throw new DnsRecordInputError('egressIps', 'SPF needs at least one egress address or spfInclude');
    }
  }
  // ~all, not -all: a soft fail lets DMARC decide through DKIM when a forwarder breaks SPF.
  return txt(
    returnPath,
    `v=spf1 ${mechanisms.join(' ')} ~all`,
    'spf',
    'SPF for the return path: the addresses allowed to send with it as MAIL FROM',
  );
}

function dmarcRecord(domain: string, rua: string | undefined): TxtRecord {
  let tags = 'v=DMARC1; p=none';
  if (rua !== undefined) {
    const address = rua.trim().replace(/^mailto:/i, '');
    // Printable ASCII only; `!` and `,` separate size limits and URIs in rua (RFC 7489 §6.4),
    // `;` ends the tag.
    if (!/^[\x21-\x7e]+$/.test(address) || !/^[^@;,!]+@[^@;,!]+$/.test(address)) {
      throw new DnsRecordInputError('dmarcRua', `${JSON.stringify(rua)} is not an email address`);
    }
    tags += `; rua=mailto:${address}`;
  }
  return txt(
    `_dmarc.${domain}`,
    tags,
    'dmarc',
    'DMARC suggestion: monitor only (p=none); skip it if the domain already has a DMARC record',
  );
}

/** Every record to publish for a sending domain, DKIM first. */
export function recordsToPublish(input: RecordsInput): DnsRecord[] {
  const domain = domainName('domain', input.domain);
  const returnPath = domainName('returnPath', input.returnPath);
  const mxHost = domainName('mxHost', input.mxHost);
  const trackingHost = domainName('trackingHost', input.trackingHost);
  const trackingTarget = domainName('trackingTarget', input.trackingTarget);

  if (returnPath === domain) {
    // An MX and an SPF record at the domain itself would take over the customer's inbound
    // mail and replace their SPF (RFC 7208 §3.2: one SPF record per name).
    throw new DnsRecordInputError('returnPath', 'must be a name of its own, such as bounces.' + domain);
  }

  const records: DnsRecord[] = input.dkim.map((key, index) => dkimRecord(domain, key, index));
  records.push(
    {
      type: 'MX',
      name: returnPath,
      value: mxHost,
      priority: RETURN_PATH_MX_PRIORITY,
      purpose: 'return_path',
      description: 'Return path: bounces and complaints come back to Postbote',
    },
    ...(input.spf === false ? [] : [spfRecord(returnPath, input)]),
    dmarcRecord(domain, input.dmarcRua),
  );

  // RFC 1034 §3.6.2: a CNAME cannot share its name with any other record.
  const clash = records.find((record) => record.name === trackingHost);
  if (clash || trackingHost === domain) {
    throw new DnsRecordInputError(
      'trackingHost',
      `${trackingHost} also holds the ${clash?.purpose ?? 'domain'} records; a CNAME must be alone at its name`,
    );
  }
  if (isWithin(trackingTarget, trackingHost)) {
    throw new DnsRecordInputError('trackingTarget', 'must not be the tracking host or below it');
  }
  records.push({
    type: 'CNAME',
    name: trackingHost,
    value: trackingTarget,
    purpose: 'tracking',
    description: 'Link and open tracking host',
  });
  return records;
}

/** A character-string in zone-file syntax (RFC 1035 §5.1): quoted, `"` and `\` escaped. */
function quoted(text: string): string {
  return `"${text.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** The record's RDATA as a zone file writes it. */
export function zoneRdata(record: DnsRecord): string {
  switch (record.type) {
    case 'TXT':
      return record.strings.map(quoted).join(' ');
    case 'MX':
      return `${record.priority} ${record.value}.`;
    case 'CNAME':
      return `${record.value}.`;
  }
}

/**
 * BIND zone-file lines, one per record: absolute names with the trailing dot, so they paste
 * into any zone regardless of its $ORIGIN, and TXT split into quoted strings on one line.
 */
export function toZoneLines(records: readonly DnsRecord[]): string[] {
  return records.map((record) => `${record.name}. ${ZONE_TTL} IN ${record.type} ${zoneRdata(record)}`);
}
