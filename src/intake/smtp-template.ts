import { renderTemplate } from '../templates/render.ts';
import type { Templates } from '../templates/templates.ts';
import { TemplateError } from '../templates/templates.ts';
import { composeMessage } from './compose.ts';
import { headerLength, readHeaders, removeHeaders } from './headers.ts';
import type { SmtpTemplateRenderer } from './intake.ts';
import { SendError } from './send-errors.ts';

/** What the template replaces in the submitted message; every other field stays as sent. */
const REPLACED = ['subject', 'mime-version', 'content-type', 'content-transfer-encoding'];

/**
 * X-Postbote-Template (id or alias, optionally `name@version`) with X-Postbote-Variables (a
 * JSON object) over an SMTP submission: the template's subject and parts replace the message's
 * Subject and body; From, To, Cc, Reply-To, Message-ID and custom fields stay as submitted.
 */
export function createSmtpTemplateRenderer(options: { templates: Templates }): SmtpTemplateRenderer {
  return async ({ accountId, template, variables, body }) => {
    const match = /^(.+?)(?:@(\d+))?$/.exec(template.trim());
    const idOrAlias = match?.[1] ?? '';
    const version = match?.[2] === undefined ? undefined : Number(match[2]);
    let vars: unknown = {};
    if (variables !== undefined && variables !== '') {
      try {
        vars = JSON.parse(variables);
      } catch {
        throw new SendError(
          'invalid_request',
          'X-Postbote-Variables is not a JSON object',
          'X-Postbote-Variables',
        );
      }
    }
    if (typeof vars !== 'object' || vars === null || Array.isArray(vars)) {
      throw new SendError(
        'invalid_request',
        'X-Postbote-Variables is not a JSON object',
        'X-Postbote-Variables',
      );
    }
    let found: Awaited<ReturnType<Templates['get']>>;
    try {
      found = await options.templates.get(accountId, idOrAlias, version);
    } catch (err) {
      if (err instanceof TemplateError)
        throw new SendError('template_not_found', err.message, 'X-Postbote-Template');
      throw err;
    }
    const rendered = renderTemplate(
      { name: found.template.alias || found.template.name, ...found.version },
      vars as Record<string, unknown>,
    );
    // The MIME structure and the encoded Subject come from the composer; the addresses of the
    // placeholder From never leave this function.
    const composed = composeMessage({
      from: { address: 'template@postbote.invalid' },
      to: [],
      cc: [],
      replyTo: [],
      subject: rendered.subject,
      ...(rendered.text ? { text: rendered.text } : {}),
      ...(rendered.html ? { html: rendered.html } : {}),
      attachments: [],
      headers: [],
      date: new Date(0),
      messageId: '<template@postbote.invalid>',
    });
    const drop = readHeaders(composed)
      .map(([name]) => name)
      .filter((name) => !REPLACED.includes(name));
    const mime = removeHeaders(composed, drop);
    const kept = removeHeaders(body, REPLACED);
    const keptHeaders = kept.subarray(0, Math.max(0, headerLength(kept) - 2));
    return {
      body: Buffer.concat([keptHeaders, mime]),
      subject: rendered.subject,
      template: `${found.template.id}@${found.version.version}`,
    };
  };
}
