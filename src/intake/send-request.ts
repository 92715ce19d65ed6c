/**
 * A send request as every HTTP front end (the native API, the Postmark and Mailgun compatible
 * endpoints, SMTP's X-Postbote-* headers) hands it to intake: already parsed from its wire
 * shape, not yet validated against accounts, templates or limits (intake/send.ts does that).
 */

/** An address with an optional display name. */
export interface Mailbox {
  address: string;
  name?: string;
}

export interface Attachment {
  filename: string;
  content: Buffer;
  /** MIME type; empty = guessed from the file name. */
  contentType: string;
  /** Set for inline parts referenced from the HTML as `cid:<contentId>`. */
  contentId?: string;
}

/** A stored template, by id or alias, rendered with `variables`. */
export interface TemplateRef {
  id?: string;
  alias?: string;
  /** A version number; absent = the latest. */
  version?: number;
  variables: Record<string, unknown>;
}

/** A recipient of a personalised message: its own rendered copy, variables merged over the message's. */
export interface PersonalRecipient {
  address: string;
  name?: string;
  variables: Record<string, unknown>;
}

export interface TrackOptions {
  opens?: boolean;
  clicks?: boolean;
}

/**
 * What `{{unsubscribe_url}}` renders to until the recipient's token is known: tracking
 * (tracking/html.ts) puts each recipient's own URL in its place. The `.invalid` TLD (RFC 2606)
 * never resolves, should one ever escape.
 */
export const UNSUBSCRIBE_PLACEHOLDER = 'https://unsubscribe.postbote.invalid/';

export interface SendRequest {
  from: Mailbox;
  to: Mailbox[];
  cc: Mailbox[];
  bcc: Mailbox[];
  replyTo: Mailbox[];
  subject?: string;
  text?: string;
  html?: string;
  attachments: Attachment[];
  /** Extra header fields in order (name as given, value unfolded). */
  headers: [string, string][];
  tags: string[];
  /** Echoed in every event and webhook of the message. */
  metadata: Record<string, string>;
  stream?: string;
  /** Subject, text and html come from the template (fields given here win over it). */
  template?: TemplateRef;
  /** Epoch ms: the first delivery attempt is no earlier. */
  sendAt?: number;
  track?: TrackOptions;
  /** Personalisation: each gets its own copy (instead of `to`). */
  recipients?: PersonalRecipient[];
  /** Variables for the subject/text/html when no template is named (Mailgun's recipient-variables). */
  variables?: Record<string, unknown>;
}

/** RFC 5322 bytes as they are, with the envelope. */
export interface RawSendRequest {
  mailFrom: string;
  rcptTo: string[];
  raw: Buffer;
  tags: string[];
  metadata: Record<string, string>;
  stream?: string;
  sendAt?: number;
  track?: TrackOptions;
}

/** `suppressed`: on the account's suppression list, stored but never sent. */
export type RecipientStatus = 'queued' | 'scheduled' | 'suppressed';

/** What a sent message answers (the native API's 202 body). */
export interface SendResult {
  id: string;
  /** Message-ID header of the stored message. */
  messageIdHeader: string;
  /** When intake accepted it (epoch ms). */
  acceptedAt: number;
  recipients: { email: string; id: string; status: RecipientStatus; reason?: string }[];
}
