/**
 * The vocabulary of the sending-domain DNS checks: what a domain's setup should be, how DNS is
 * asked, and what a check reports.
 */

export type RRType = 'TXT' | 'A' | 'AAAA' | 'MX' | 'CNAME' | 'PTR';

export interface MxAnswer {
  exchange: string;
  priority: number;
}

/**
 * Asks DNS, with the shapes of `dns.promises.resolve` — the shape mailauth's custom resolver
 * hook expects: TXT → `string[][]` (the character-strings of each record), MX → `{exchange,
 * priority}[]`, A/AAAA/CNAME/PTR → `string[]`.
 *
 * A rejection carries node's `code`: ENOTFOUND (no such name) and ENODATA (no record of that
 * type) mean "no record"; anything else (ETIMEOUT, ESERVFAIL, EREFUSED, ...) means the answer
 * is unknown, which a check reports as "could not check".
 */
export type Resolve = (name: string, rrtype: RRType) => Promise<string[] | string[][] | MxAnswer[]>;

export interface DkimKey {
  selector: string;
  algorithm: 'rsa' | 'ed25519';
  /** Base64, exactly as published in the `p=` tag of the key record. */
  publicKey: string;
}

export interface EgressAddress {
  /** The egress source's name, e.g. `ip-1`. */
  name: string;
  ip: string;
  /** The name the egress source announces in EHLO. */
  ehlo: string;
}

export interface DomainSetup {
  /** The From domain, ASCII (punycode for IDNs), e.g. `example.com`. */
  domain: string;
  /** The keys Postbote signs this domain's mail with (d= is always `domain`). */
  dkim: DkimKey[];
  /** The envelope-sender (MAIL FROM) domain, e.g. `bounces.example.com`; must MX (or CNAME) to `mxHost`. */
  returnPath: string;
  /** Postbote's inbound MX host, which receives bounces and feedback for `returnPath`. */
  mxHost: string;
  /** The link and open tracking host, e.g. `track.example.com`; must CNAME to `trackingTarget`. */
  trackingHost: string;
  trackingTarget: string;
  /** Every address this domain's mail may leave from. */
  egress: EgressAddress[];
}

export type RecordKind = 'spf' | 'dkim' | 'dmarc' | 'return_path' | 'tracking' | 'ptr';

/**
 * - `ok`: as it should be;
 * - `missing`: no record where one is needed;
 * - `wrong`: a record is there but mail will fail or be treated worse because of it;
 * - `warning`: works, but something should be improved;
 * - `error`: DNS did not answer, so nothing is known (try again later).
 */
export type CheckStatus = 'ok' | 'missing' | 'wrong' | 'warning' | 'error';

export interface CheckResult {
  record: RecordKind;
  /** The DNS name that was checked. */
  name: string;
  status: CheckStatus;
  /** Plain language, for someone who does not know DNS well. */
  explanation: string;
  /** The exact record to publish, or the action to take. */
  fix?: string;
  details?: Record<string, unknown>;
}
