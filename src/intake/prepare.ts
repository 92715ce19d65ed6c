import { randomBytes } from 'node:crypto';
import libmime from 'libmime';
import { foldHeader, headerValue, prependHeaders, readHeaders, removeHeaders } from './headers.ts';

/** Names the message's stream; read and removed by intake, never delivered. */
export const STREAM_HEADER = 'x-postbote-stream';

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
  const raw = streamHeader === undefined ? submitted : removeHeaders(submitted, STREAM_HEADER);
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
    messageIdHeader = `<${trace.queueId}.${randomBytes(6).toString('hex')}@${trace.hostname}>`;
    added.push(`Message-ID: ${messageIdHeader}`);
  }
  if (!headerValue(fields, 'date')) added.push(`Date: ${rfc5322Date(trace.now)}`);
  return {
    body: prependHeaders(raw, added),
    messageIdHeader,
    subject: decodeSubject(headerValue(fields, 'subject')),
    ...(streamHeader === undefined ? {} : { streamHeader }),
  };
}
