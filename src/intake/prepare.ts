import libmime from 'libmime';
import { randomChars } from '../store/ids.ts';
import { foldHeader, headerValue, prependHeaders, readHeaders, removeHeaders } from './headers.ts';

/** Names the message's stream; read and removed by intake, never delivered. */
export const STREAM_HEADER = 'x-postbote-stream';

/**
 * What an SMTP submission may ask for in header fields, like the API's fields: read and
 * removed by intake (every occurrence), never delivered.
 */
export const CONTROL_HEADERS = {
  stream: STREAM_HEADER,
  tags: 'x-postbote-tags',
  metadata: 'x-postbote-metadata',
  template: 'x-postbote-template',
  variables: 'x-postbote-variables',
} as const;
export type ControlName = keyof typeof CONTROL_HEADERS;
const CONTROL_NAMES = Object.values(CONTROL_HEADERS);

export interface TraceInfo {
  heloName: string;
  clientIp: string;
  /** RFC 3848 protocol: ESMTP, ESMTPS, ESMTPA, ESMTPSA (or HTTP for the API). */
  protocol: string;
  tls?: { protocol: string; cipher: string };
  hostname: string;
  queueId: string;
  /** Only when there is one recipient (RFC 5321 §4.4: never disclose BCC lists). */
  recipient?: string;
  now: Date;
}

export interface PreparedMessage {
  body: Buffer;
  messageIdHeader: string;
  subject: string;
  /** The first X-Postbote-Stream value, as written (every such field is removed from `body`). */
  streamHeader?: string;
  /** The first value of each control header other than the stream, UTF-8 decoded and trimmed. */
  controls: Partial<Record<Exclude<ControlName, 'stream'>, string>>;
}

/** RFC 5322 date-time in UTC. */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

function decodeSubject(raw: string | undefined): string {
  if (!raw) return '';
  try {
    return libmime.decodeWords(raw).slice(0, 998);
  } catch {
    return raw.slice(0, 998);
  }
}

/**
 * Takes out our own control header (X-Postbote-Stream), adds the trace header (Received,
 * RFC 5321 §4.4) and, where missing, Message-ID and Date (RFC 5322 §3.6; submission servers
 * may add them per RFC 6409 §8). Returns the new bytes and the fields listings show.
 */
export function prepareMessage(submitted: Buffer, trace: TraceInfo): PreparedMessage {
  const fields = readHeaders(submitted);
  const streamHeader = headerValue(fields, STREAM_HEADER)?.trim();
  const controls: PreparedMessage['controls'] = {};
  let hasControls = streamHeader !== undefined;
  for (const name of ['tags', 'metadata', 'template', 'variables'] as const) {
    const value = headerValue(fields, CONTROL_HEADERS[name]);
    if (value === undefined) continue;
    // Header fields were read as latin1; SMTPUTF8 clients send UTF-8 bytes.
    controls[name] = Buffer.from(value, 'latin1').toString('utf8').trim();
    hasControls = true;
  }
  const raw = hasControls ? removeHeaders(submitted, CONTROL_NAMES) : submitted;
  const added: string[] = [];
  const tlsComment = trace.tls ? ` (using ${trace.tls.protocol} with cipher ${trace.tls.cipher})` : '';
  const helo = trace.heloName.replace(/[^\x21-\x7e]/g, '') || 'unknown';
  const forClause = trace.recipient ? `\r\n\tfor <${trace.recipient}>` : '';
  added.push(
    foldHeader(
      `Received: from ${helo} ([${trace.clientIp}])${tlsComment} by ${trace.hostname} (Postbote) with ${trace.protocol} id ${trace.queueId}`,
    ) + `${forClause}; ${rfc5322Date(trace.now)}`,
  );
  let messageIdHeader = headerValue(fields, 'message-id');
  if (!messageIdHeader) {
    messageIdHeader = `<${trace.queueId}.${randomChars(10)}@${trace.hostname}>`;
    added.push(`Message-ID: ${messageIdHeader}`);
  }
  if (!headerValue(fields, 'date')) added.push(`Date: ${rfc5322Date(trace.now)}`);
  return {
    body: prependHeaders(raw, added),
    messageIdHeader,
    subject: decodeSubject(headerValue(fields, 'subject')),
    ...(streamHeader === undefined ? {} : { streamHeader }),
    controls,
  };
}
