import { randomChars } from '../store/ids.ts';
import type { InsertOptions, NewMessage } from '../store/types.ts';
import { renderInline, renderTemplate } from '../templates/render.ts';
import { TemplateError, type Templates } from '../templates/templates.ts';
import { recipientDomain } from './address.ts';
import { composeMessage } from './compose.ts';
import { type Intake, InvalidRecipientError, UnknownStreamError } from './intake.ts';
import { checkMetadata, checkTags } from './labels.ts';
import { SendError } from './send-errors.ts';
import {
  type Mailbox,
  type RawSendRequest,
  type SendRequest,
  type SendResult,
  UNSUBSCRIBE_PLACEHOLDER,
} from './send-request.ts';

/** Who sends: the API key's account and credential, and where the request came from. */
export interface SendContext {
  accountId: string;
  credentialId: string;
  /** The credential's default stream ('' = `outbound`). */
  defaultStream: string;
  clientIp: string;
}

export interface SendLimits {
  /** Largest copy of a message, in bytes (smtp.submission.max_message_size). */
  maxMessageBytes: number;
  /** Recipients per message, to + cc + bcc (or personalised recipients). */
  maxRecipients: number;
  maxAttachments: number;
}

export type SendOutcome = { ok: true; result: SendResult } | { ok: false; error: SendError };

/** How a request's answer is stored with its messages (the API's idempotency key). */
export interface Remember {
  accountId: string;
  key: string;
  /** The answer to store, from the results (in request order). */
  answer: (outcomes: SendOutcome[]) => string;
}

const ADDRESS_MAX = 254;
// No spaces, controls, angle brackets or commas inside an address we write into header fields.
const ADDRESS_CHARS = /^[^\s<>,;"()\p{Cc}]+@[^\s<>,;"()@\p{Cc}]+$/u;

/** The public id of a message's `index`-th recipient (the order they were given in). */
export function recipientId(messageId: string, index: number): string {
  return `${messageId}-${index}`;
}

function checkAddress(address: string, field: string): string {
  const trimmed = address.trim();
  if (trimmed.length > ADDRESS_MAX || !ADDRESS_CHARS.test(trimmed) || !recipientDomain(trimmed)) {
    throw new SendError('invalid_address', `"${trimmed.slice(0, 80)}" is not a valid email address`, field);
  }
  return trimmed;
}

function checkMailbox(m: Mailbox, field: string): Mailbox {
  const address = checkAddress(m.address, field);
  const name = m.name?.trim();
  if (name !== undefined && (name.length > 200 || /[\r\n\0]/.test(name))) {
    throw new SendError(
      'invalid_address',
      'a display name must be one line of at most 200 characters',
      `${field}.name`,
    );
  }
  return name ? { address, name } : { address };
}

function checkSendAt(sendAt: number | undefined): number | undefined {
  if (sendAt === undefined) return undefined;
  // Any future time is fine (no 72-hour cap); the year 10000 is not.
  if (!Number.isFinite(sendAt) || sendAt < 0 || sendAt > 253_402_300_799_000) {
    throw new SendError('invalid_send_at', 'send_at must be an RFC 3339 date-time', 'send_at');
  }
  return sendAt;
}

/**
 * The send pipeline behind every HTTP front end: check the request, resolve its template,
 * render (one copy per personalised recipient), compose RFC 5322 bytes, and store it through
 * intake in one durable commit per call (a batch included).
 */
export function createSender(options: {
  intake: Intake;
  templates: Templates;
  clock: () => number;
  hostname: string;
  limits: SendLimits;
}) {
  const { intake, templates, clock, hostname, limits } = options;

  async function content(
    ctx: SendContext,
    request: SendRequest,
  ): Promise<{
    subject: string;
    html: string;
    text: string;
    template: string;
    templateName: string;
    personal: boolean;
  }> {
    const personal = request.recipients !== undefined;
    if (request.template) {
      const ref = request.template;
      const idOrAlias = ref.id ?? ref.alias;
      if (!idOrAlias)
        throw new SendError('template_not_found', 'template needs an id or an alias', 'template');
      try {
        const { template, version } = await templates.get(ctx.accountId, idOrAlias, ref.version);
        return {
          subject: request.subject ?? version.subject,
          html: request.html ?? version.html,
          text: request.text ?? version.text,
          template: `${template.id}@${version.version}`,
          templateName: template.alias || template.name,
          personal,
        };
      } catch (err) {
        if (err instanceof TemplateError && err.code === 'template_not_found') {
          throw new SendError('template_not_found', err.message, ref.id ? 'template.id' : 'template.alias');
        }
        throw err;
      }
    }
    return {
      subject: request.subject ?? '',
      html: request.html ?? '',
      text: request.text ?? '',
      template: '',
      templateName: '',
      personal,
    };
  }

  /** Checks and renders one request into the message to store and its answer. */
  async function build(
    ctx: SendContext,
    request: SendRequest,
  ): Promise<{ message: NewMessage; result: SendResult }> {
    const from = checkMailbox(request.from, 'from');
    const personal = request.recipients;
    if (personal !== undefined && request.to.length > 0) {
      throw new SendError('invalid_request', 'give either to or recipients, not both', 'recipients');
    }
    if (personal !== undefined && (request.cc.length > 0 || request.bcc.length > 0)) {
      throw new SendError(
        'invalid_request',
        'cc and bcc cannot be combined with personalised recipients',
        'cc',
      );
    }
    const to = request.to.map((m, i) => checkMailbox(m, `to[${i}]`));
    const cc = request.cc.map((m, i) => checkMailbox(m, `cc[${i}]`));
    const bcc = request.bcc.map((m, i) => checkMailbox(m, `bcc[${i}]`));
    const people = (personal ?? []).map((p, i) => ({
      ...checkMailbox(p, `recipients[${i}]`),
      variables: p.variables,
    }));
    const replyTo = request.replyTo.map((m, i) => checkMailbox(m, `reply_to[${i}]`));
    const count = to.length + cc.length + bcc.length + people.length;
    if (count === 0)
      throw new SendError('missing_recipients', 'a message needs at least one recipient', 'to');
    if (count > limits.maxRecipients) {
      throw new SendError(
        'too_many_recipients',
        `at most ${limits.maxRecipients} recipients per message`,
        'to',
      );
    }
    if (request.attachments.length > limits.maxAttachments) {
      throw new SendError(
        'too_many_attachments',
        `at most ${limits.maxAttachments} attachments per message`,
        'attachments',
      );
    }
    const tags = checkTags(request.tags);
    const metadata = checkMetadata(request.metadata);
    const sendAt = checkSendAt(request.sendAt);
    const parts = await content(ctx, request);
    if (parts.html === '' && parts.text === '') {
      throw new SendError('missing_content', 'a message needs text, html or a template', 'text');
    }
    const now = clock();
    const date = new Date(now);
    // Each copy is a message of its own (RFC 5322 §3.6.4): personalised copies get `.1`, `.2`, …
    const baseId = `${now.toString(36)}.${randomChars(15)}`;
    const messageIdOf = (copy: number) => `<${baseId}${copy === 0 ? '' : `.${copy}`}@${hostname}>`;
    // {{unsubscribe_url}} is each recipient's own: a placeholder until tracking knows the token.
    const variables = {
      unsubscribe_url: UNSUBSCRIBE_PLACEHOLDER,
      ...(request.variables ?? {}),
      ...(request.template?.variables ?? {}),
    };
    const unsubscribeLink = /unsubscribe_url|unsubscribe\.postbote\.invalid/.test(
      `${parts.html}\n${parts.text}`,
    );
    const render = (vars: Record<string, unknown>) => {
      if (!parts.template && !parts.personal && request.variables === undefined) return parts;
      const rendered = parts.template
        ? renderTemplate(
            {
              name: parts.templateName,
              version: Number(parts.template.split('@')[1]),
              subject: parts.subject,
              html: parts.html,
              text: parts.text,
            },
            vars,
          )
        : renderInline({ subject: parts.subject, html: parts.html, text: parts.text }, vars, 'message');
      return { subject: rendered.subject ?? '', html: rendered.html ?? '', text: rendered.text ?? '' };
    };
    const compose = (
      rendered: { subject: string; html: string; text: string },
      toList: Mailbox[],
      copy: number,
    ): Buffer => {
      const bytes = composeMessage({
        from,
        to: toList,
        cc,
        replyTo,
        subject: rendered.subject,
        ...(rendered.text ? { text: rendered.text } : {}),
        ...(rendered.html ? { html: rendered.html } : {}),
        attachments: request.attachments,
        headers: request.headers,
        date,
        messageId: messageIdOf(copy),
      });
      if (bytes.byteLength > limits.maxMessageBytes) {
        throw new SendError(
          'payload_too_large',
          `the message is ${bytes.byteLength} bytes; the limit is ${limits.maxMessageBytes}`,
          'attachments',
        );
      }
      return bytes;
    };
    const raw = people.length > 0 ? Buffer.alloc(0) : compose(render(variables), to, 0);
    const variants = people.map((p, i) =>
      compose(
        render({ ...variables, ...(p.variables ?? {}) }),
        [{ address: p.address, ...(p.name ? { name: p.name } : {}) }],
        i + 1,
      ),
    );
    const envelope = [
      ...[...to, ...cc, ...bcc].map((m) => ({ address: m.address })),
      ...people.map((p, i) => ({ address: p.address, variant: i + 1 })),
    ];
    const message = await intake.build({
      accountId: ctx.accountId,
      credentialId: ctx.credentialId,
      mailFrom: from.address,
      recipients: envelope,
      raw,
      ...(variants.length > 0 ? { variants } : {}),
      source: 'api',
      clientIp: ctx.clientIp,
      dsn: {},
      trace: { heloName: 'api', protocol: 'HTTP' },
      ...(request.stream === undefined ? {} : { stream: request.stream }),
      defaultStream: ctx.defaultStream,
      tags,
      metadata,
      ...(parts.template ? { template: parts.template } : {}),
      ...(sendAt === undefined ? {} : { notBefore: sendAt }),
      ...(request.track ? { track: request.track } : {}),
      ...(unsubscribeLink ? { unsubscribeLink } : {}),
    });
    return { message, result: answer(message) };
  }

  function answer(message: NewMessage): SendResult {
    const status =
      message.notBefore !== undefined && message.notBefore > message.receivedAt ? 'scheduled' : 'queued';
    return {
      id: message.id,
      messageIdHeader: message.messageIdHeader,
      acceptedAt: message.receivedAt,
      recipients: message.recipients.map((r, i) => ({
        email: r.address,
        id: recipientId(message.id, i),
        status: r.suppressed ? ('suppressed' as const) : status,
        ...(r.suppressed ? { reason: r.suppressed.reason } : {}),
      })),
    };
  }

  /** Builds every request (a bad one fails alone), then stores the good ones in one commit. */
  async function sendMany(
    builders: (() => Promise<{ message: NewMessage; result: SendResult }>)[],
    remember?: Remember,
  ): Promise<SendOutcome[]> {
    const outcomes: SendOutcome[] = [];
    const messages: NewMessage[] = [];
    for (const buildOne of builders) {
      try {
        const { message, result } = await buildOne();
        messages.push(message);
        outcomes.push({ ok: true, result });
      } catch (err) {
        outcomes.push({ ok: false, error: asSendError(err) });
      }
    }
    const insert: InsertOptions | undefined =
      remember && messages.length > 0
        ? {
            idempotency: {
              accountId: remember.accountId,
              key: remember.key,
              response: remember.answer(outcomes),
            },
          }
        : undefined;
    await intake.commit(messages, insert);
    return outcomes;
  }

  async function sendBatch(
    ctx: SendContext,
    requests: SendRequest[],
    remember?: Remember,
  ): Promise<SendOutcome[]> {
    return sendMany(
      requests.map((r) => () => build(ctx, r)),
      remember,
    );
  }

  async function send(ctx: SendContext, request: SendRequest, remember?: Remember): Promise<SendResult> {
    const [outcome] = await sendMany([() => build(ctx, request)], remember);
    if (!outcome) throw new Error('no outcome');
    if (!outcome.ok) throw outcome.error;
    return outcome.result;
  }

  async function sendRaw(
    ctx: SendContext,
    request: RawSendRequest,
    remember?: Remember,
  ): Promise<SendResult> {
    const buildRaw = async () => {
      const mailFrom = request.mailFrom === '' ? '' : checkAddress(request.mailFrom, 'mail_from');
      if (request.rcptTo.length === 0) {
        throw new SendError('missing_recipients', 'rcpt_to needs at least one address', 'rcpt_to');
      }
      if (request.rcptTo.length > limits.maxRecipients) {
        throw new SendError(
          'too_many_recipients',
          `at most ${limits.maxRecipients} recipients per message`,
          'rcpt_to',
        );
      }
      const rcpt = request.rcptTo.map((a, i) => checkAddress(a, `rcpt_to[${i}]`));
      if (request.raw.byteLength === 0) throw new SendError('missing_content', 'the message is empty', 'raw');
      if (request.raw.byteLength > limits.maxMessageBytes) {
        throw new SendError(
          'payload_too_large',
          `the message is ${request.raw.byteLength} bytes; the limit is ${limits.maxMessageBytes}`,
          'raw',
        );
      }
      const sendAt = checkSendAt(request.sendAt);
      const message = await intake.build({
        accountId: ctx.accountId,
        credentialId: ctx.credentialId,
        mailFrom,
        recipients: rcpt.map((address) => ({ address })),
        raw: normaliseLineEnds(request.raw),
        source: 'api',
        clientIp: ctx.clientIp,
        dsn: {},
        trace: { heloName: 'api', protocol: 'HTTP' },
        ...(request.stream === undefined ? {} : { stream: request.stream }),
        defaultStream: ctx.defaultStream,
        tags: checkTags(request.tags),
        metadata: checkMetadata(request.metadata),
        ...(sendAt === undefined ? {} : { notBefore: sendAt }),
        ...(request.track ? { track: request.track } : {}),
      });
      return { message, result: answer(message) };
    };
    const [outcome] = await sendMany([buildRaw], remember);
    if (!outcome) throw new Error('no outcome');
    if (!outcome.ok) throw outcome.error;
    return outcome.result;
  }

  return { send, sendBatch, sendRaw };
}

export type Sender = ReturnType<typeof createSender>;

/** Intake's own refusals as the API's errors; anything else (the store) is rethrown. */
function asSendError(err: unknown): SendError {
  if (err instanceof SendError) return err;
  if (err instanceof InvalidRecipientError) {
    return new SendError(
      'invalid_address',
      `"${err.address.slice(0, 80)}" is not a valid email address`,
      'to',
    );
  }
  if (err instanceof UnknownStreamError) return new SendError('unknown_stream', err.message, 'stream');
  if (err instanceof TemplateError) {
    return new SendError(
      err.code === 'template_not_found' ? 'template_not_found' : 'invalid_template',
      err.message,
      err.field,
    );
  }
  throw err;
}

/**
 * Bare LF and bare CR line ends become CRLF (RFC 5322 §2.3: CR and LF only together); CRLF
 * stays as it is. A bare one would also reach the next hop, where some servers take `\n.\n`
 * or `\r.\r` for the end of the data (SMTP smuggling): nothing we send may carry one.
 */
function normaliseLineEnds(raw: Buffer): Buffer {
  if (!raw.includes(0x0a) && !raw.includes(0x0d)) return raw;
  const text = raw.toString('latin1');
  if (!/\r(?!\n)|(?<!\r)\n/.test(text)) return raw;
  return Buffer.from(text.replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
}
