/**
 * RFC 3464 delivery status notifications: the `message/delivery-status` part of a
 * `multipart/report; report-type=delivery-status` (RFC 6522), and its RFC 6533 twin
 * `message/global-delivery-status`. One per-message group, then one group per recipient,
 * groups separated by blank lines (§2.1). What reaches us is often sloppier than that, so
 * a second Final-Recipient inside a group also starts a new recipient, and a report-type
 * delivery-status whose status part was sent as text/plain is read too.
 */
import { typedAddress } from './address.ts';
import {
  fieldValue,
  type HeaderField,
  type MimeMessage,
  type MimePart,
  partText,
  walkParts,
} from './mime.ts';

export interface DsnPerMessage {
  reportingMta?: string;
  dsnGateway?: string;
  receivedFromMta?: string;
  originalEnvelopeId?: string;
  arrivalDate?: string;
  /** Every field of the group as written (extensions such as X-Postfix-Sender included). */
  fields: HeaderField[];
}

export interface DsnRecipientBlock {
  finalRecipient?: string;
  /** ORCPT as the reporting MTA received it. */
  originalRecipient?: string;
  /** failed, delayed, delivered, relayed or expanded (lower case). */
  action?: string;
  /** RFC 3463 status, without the comment some MTAs append. */
  status?: string;
  remoteMta?: string;
  /** The diagnostic's type (`smtp`, `x-postfix`), lower case. */
  diagnosticType?: string;
  /** The diagnostic without its type, whitespace collapsed: `550 5.1.1 User unknown`. */
  diagnosticCode?: string;
  lastAttemptDate?: string;
  willRetryUntil?: string;
  fields: HeaderField[];
}

export interface DeliveryStatus {
  perMessage: DsnPerMessage;
  recipients: DsnRecipientBlock[];
}

export interface DsnReport extends DeliveryStatus {
  /** The human-readable part (first part of the report). */
  humanText?: string;
  /** The returned message or its headers (message/rfc822, text/rfc822-headers). */
  original?: MimePart;
}

export interface DsnReadOptions {
  /** Bytes of each text part read (default 256 KiB). */
  maxTextBytes?: number;
  /** Recipient groups kept (default 1000). */
  maxRecipients?: number;
}

const STATUS = /(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])/;
const RECIPIENT_FIELDS = new Set(['final-recipient', 'original-recipient', 'action', 'status']);
const STATUS_TYPES = new Set(['message/delivery-status', 'message/global-delivery-status']);
const ORIGINAL_TYPES = new Set([
  'message/rfc822',
  'message/global',
  'text/rfc822-headers',
  'message/rfc822-headers',
  'message/global-headers',
]);

/** Finds and reads the DSN in a parsed message; undefined when it carries none. */
export function readDsn(message: MimeMessage, options: DsnReadOptions = {}): DsnReport | undefined {
  const maxText = options.maxTextBytes ?? 256 * 1024;
  const root = message.root;
  const parts = [...walkParts(root)];
  let statusPart = parts.find((p) => STATUS_TYPES.has(p.type));
  if (
    !statusPart &&
    root.type === 'multipart/report' &&
    /delivery-status/i.test(root.params['report-type'] ?? '')
  ) {
    // Seen from some gateways: the machine-readable part labelled text/plain.
    statusPart = parts.find(
      (p) => p.type === 'text/plain' && /^final-recipient\s*:/im.test(partText(p, maxText)),
    );
  }
  if (!statusPart) return undefined;

  const status = parseDeliveryStatus(partText(statusPart, maxText), options);
  const report: DsnReport = status;
  const human = parts.find((p) => p !== statusPart && (p.type === 'text/plain' || p.type === 'text/html'));
  if (human) report.humanText = partText(human, maxText);
  const original = parts.find((p) => ORIGINAL_TYPES.has(p.type) && p.message);
  if (original?.message) report.original = original.message;
  return report;
}

/** Reads the fields of a delivery-status body (RFC 3464 §2.2, §2.3). */
export function parseDeliveryStatus(text: string, options: DsnReadOptions = {}): DeliveryStatus {
  const maxRecipients = options.maxRecipients ?? 1000;
  const perMessage: DsnPerMessage = { fields: [] };
  const recipients: DsnRecipientBlock[] = [];
  let block: HeaderField[] = [];
  let seenRecipientGroup = false;

  const flush = () => {
    if (block.length === 0) return;
    const isRecipient = block.some(([name]) => RECIPIENT_FIELDS.has(name.toLowerCase()));
    if (isRecipient) {
      seenRecipientGroup = true;
      if (recipients.length < maxRecipients) recipients.push(recipientBlock(block));
    } else if (!seenRecipientGroup) {
      perMessage.fields.push(...block);
    }
    block = [];
  };

  let current: HeaderField | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') {
      flush();
      current = undefined;
      continue;
    }
    if ((line[0] === ' ' || line[0] === '\t') && current) {
      current[1] += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0 || !/^[\x21-\x39\x3b-\x7e]+$/.test(line.slice(0, colon).trimEnd())) {
      current = undefined;
      continue;
    }
    const name = line.slice(0, colon).trim();
    // A new recipient without the blank line in between.
    if (
      name.toLowerCase() === 'final-recipient' &&
      block.some(([n]) => n.toLowerCase() === 'final-recipient' || n.toLowerCase() === 'action')
    ) {
      flush();
    }
    current = [name, line.slice(colon + 1).trim()];
    block.push(current);
  }
  flush();

  perMessage.reportingMta = typedValue(fieldValue(perMessage.fields, 'reporting-mta'));
  perMessage.dsnGateway = typedValue(fieldValue(perMessage.fields, 'dsn-gateway'));
  perMessage.receivedFromMta = typedValue(fieldValue(perMessage.fields, 'received-from-mta'));
  perMessage.originalEnvelopeId = fieldValue(perMessage.fields, 'original-envelope-id');
  perMessage.arrivalDate = fieldValue(perMessage.fields, 'arrival-date');
  for (const key of Object.keys(perMessage) as Array<keyof DsnPerMessage>) {
    if (perMessage[key] === undefined) delete perMessage[key];
  }
  return { perMessage, recipients };
}

function recipientBlock(fields: HeaderField[]): DsnRecipientBlock {
  const block: DsnRecipientBlock = { fields };
  const final = fieldValue(fields, 'final-recipient');
  const finalAddress = final === undefined ? undefined : typedAddress(final);
  if (finalAddress) block.finalRecipient = finalAddress.address;
  const original = fieldValue(fields, 'original-recipient');
  const originalAddress = original === undefined ? undefined : typedAddress(original, { xtext: true });
  if (originalAddress) block.originalRecipient = originalAddress.address;
  const action = fieldValue(fields, 'action')
    ?.toLowerCase()
    .match(/^[a-z-]+/)?.[0];
  if (action) block.action = action;
  const status = STATUS.exec(fieldValue(fields, 'status') ?? '');
  if (status) block.status = status[0];
  const remote = typedValue(fieldValue(fields, 'remote-mta'));
  if (remote) block.remoteMta = remote;
  const diagnostic = fieldValue(fields, 'diagnostic-code');
  if (diagnostic) {
    const semi = diagnostic.indexOf(';');
    const type = semi > 0 ? diagnostic.slice(0, semi).trim().toLowerCase() : '';
    const typed = semi > 0 && /^[a-z][a-z0-9-]*$/.test(type);
    if (typed) block.diagnosticType = type;
    block.diagnosticCode = collapse(typed ? diagnostic.slice(semi + 1) : diagnostic);
  }
  const last = fieldValue(fields, 'last-attempt-date');
  if (last) block.lastAttemptDate = last;
  const until = fieldValue(fields, 'will-retry-until');
  if (until) block.willRetryUntil = until;
  return block;
}

/** `dns; mx.example.com (comment)` → `mx.example.com`. */
function typedValue(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const semi = value.indexOf(';');
  const rest = collapse((semi < 0 ? value : value.slice(semi + 1)).replace(/\([^()]*\)/g, ' '));
  return rest === '' ? undefined : rest;
}

function collapse(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
