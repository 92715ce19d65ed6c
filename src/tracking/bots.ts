/**
 * Machine activity: opens and clicks no human made. They are recorded (an operator may want
 * them) but flagged `machine: true` with a reason, and statistics count them apart.
 *
 * - `apple_mpp`: Apple Mail Privacy Protection fetches every image of every message through
 *   Apple's proxies as soon as it arrives, whether the message is read or not. Its requests
 *   come from Apple's own network (17.0.0.0/8) with the bare user agent `Mozilla/5.0`.
 * - `scanner_user_agent`: security gateways and link checkers that say what they are
 *   (Barracuda, Mimecast, Proofpoint, …), and HTTP libraries no mail client uses.
 * - `fast_click`: link scanners that open every link of a message within seconds of delivery
 *   (Microsoft Safe Links, gateways that do not name themselves); a human needs longer.
 * - `listed_range`: an address in `tracking.machine_ranges` (an operator's own list).
 * - `head_request`: a HEAD request fetches nothing a person could look at.
 */
import { cidrMatcher } from '../auth/cidr.ts';

export type MachineReason =
  | 'apple_mpp'
  | 'scanner_user_agent'
  | 'listed_range'
  | 'fast_click'
  | 'head_request';

/** Apple's own address block (Apple's published egress ranges of its proxies lie within it). */
export const APPLE_RANGES: readonly string[] = ['17.0.0.0/8'];

// Named security products and generic tools; matched anywhere in the user agent, case-insensitive.
// Mail clients' own image proxies (GoogleImageProxy, YahooMailProxy) are humans opening mail
// and are deliberately not here.
const SCANNER_AGENTS =
  /barracuda|mimecast|proofpoint|urldefense|symantec|messagelabs|trend ?micro|forcepoint|ironport|cisco|sophos|fireeye|trustwave|zscaler|checkpoint|cloudmark|spamtitan|vadesecure|hornetsecurity|bingpreview|googlebot|bot\b|crawler|spider|scanner|python-requests|python-urllib|aiohttp|go-http-client|okhttp|java\/|libwww-perl|curl\/|wget\/|httpclient|headlesschrome|phantomjs|node-fetch|axios\//i;

export interface MachineInput {
  kind: 'open' | 'click';
  method: string;
  userAgent: string;
  ip: string;
  /** When this happened and when the recipient's delivery was recorded (undefined: not delivered). */
  at: number;
  deliveredAt: number | undefined;
}

export interface MachineOptions {
  /** Clicks this soon after delivery are a scanner's (0 = off). */
  scannerWindowMs: number;
  /** Further addresses whose requests are machines' (config tracking.machine_ranges). */
  machineRanges?: readonly string[];
}

/** Classifies requests; the CIDR lists are compiled once. */
export function createMachineDetector(options: MachineOptions) {
  const apple = cidrMatcher(APPLE_RANGES);
  const extra = cidrMatcher(options.machineRanges ?? []);

  /** Why the request is a machine's, or undefined for a (presumed) human. */
  return function machineReason(input: MachineInput): MachineReason | undefined {
    if (input.method === 'HEAD') return 'head_request';
    const agent = input.userAgent.trim();
    // MPP's user agent is exactly "Mozilla/5.0": no mail client sends so little.
    if (apple(input.ip) && (agent === 'Mozilla/5.0' || agent === '' || input.kind === 'open'))
      return 'apple_mpp';
    if (extra(input.ip)) return 'listed_range';
    if (agent === '' || SCANNER_AGENTS.test(agent)) return 'scanner_user_agent';
    if (
      input.kind === 'click' &&
      options.scannerWindowMs > 0 &&
      input.deliveredAt !== undefined &&
      input.at - input.deliveredAt < options.scannerWindowMs
    ) {
      return 'fast_click';
    }
    return undefined;
  };
}

export type MachineDetector = ReturnType<typeof createMachineDetector>;
