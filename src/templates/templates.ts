import { SendError } from '../intake/send-errors.ts';
import { newId } from '../store/ids.ts';
import type { Store } from '../store/store.ts';
import type { Template, TemplateContent, TemplateVersion } from '../store/types.ts';
import { checkTemplate } from './render.ts';

const ALIAS = /^[a-z0-9][a-z0-9._-]{0,99}$/i;
/** Largest part of a template (subject, html or text), in characters. */
export const MAX_TEMPLATE_PART = 512 * 1024;

export interface TemplateInput {
  name: string;
  /** '' = none. Unique among the account's templates. */
  alias?: string;
  subject: string;
  html?: string;
  text?: string;
}

/** Template management failed: `code` is the API's error code. */
export class TemplateError extends Error {
  readonly code: 'invalid_template' | 'template_not_found' | 'template_alias_taken';
  readonly field: string | undefined;
  constructor(code: TemplateError['code'], message: string, field?: string) {
    super(message);
    this.name = 'TemplateError';
    this.code = code;
    this.field = field;
  }
}

function checkInput(input: TemplateInput): { name: string; alias: string; content: TemplateContent } {
  const name = input.name.trim();
  if (name === '' || name.length > 200) {
    throw new TemplateError('invalid_template', 'a template needs a name of 1-200 characters', 'name');
  }
  const alias = (input.alias ?? '').trim();
  if (alias !== '' && !ALIAS.test(alias)) {
    throw new TemplateError(
      'invalid_template',
      `alias "${alias}" is not valid: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit`,
      'alias',
    );
  }
  const content = { subject: input.subject, html: input.html ?? '', text: input.text ?? '' };
  for (const part of ['subject', 'html', 'text'] as const) {
    if (content[part].length > MAX_TEMPLATE_PART) {
      throw new TemplateError(
        'invalid_template',
        `the ${part} is longer than ${MAX_TEMPLATE_PART} characters`,
        part,
      );
    }
  }
  if (content.subject.trim() === '')
    throw new TemplateError('invalid_template', 'a template needs a subject', 'subject');
  if (content.html === '' && content.text === '') {
    throw new TemplateError('invalid_template', 'a template needs an html or a text part', 'html');
  }
  try {
    checkTemplate(content);
  } catch (err) {
    if (err instanceof SendError) throw new TemplateError('invalid_template', err.message, err.field);
    throw err;
  }
  return { name, alias, content };
}

/**
 * An account's templates with versions: every update adds a version, so a message always
 * names the exact content it was rendered from (`<id>@<version>`).
 */
export function createTemplates(options: { store: Store; clock: () => number }) {
  const { store, clock } = options;

  async function create(accountId: string, input: TemplateInput): Promise<Template> {
    const { name, alias, content } = checkInput(input);
    const now = clock();
    const created = await store.createTemplate({
      id: newId(now),
      accountId,
      name,
      alias,
      createdAt: now,
      updatedAt: now,
      content,
    });
    if (!created)
      throw new TemplateError('template_alias_taken', `the alias "${alias}" is already in use`, 'alias');
    return created;
  }

  async function update(
    accountId: string,
    idOrAlias: string,
    input: Partial<TemplateInput>,
  ): Promise<Template> {
    const current = await get(accountId, idOrAlias);
    const latest = await store.getTemplateVersion(current.template.id);
    const merged: TemplateInput = {
      name: input.name ?? current.template.name,
      alias: input.alias ?? current.template.alias,
      subject: input.subject ?? latest?.subject ?? '',
      html: input.html ?? latest?.html ?? '',
      text: input.text ?? latest?.text ?? '',
    };
    const { name, alias, content } = checkInput(merged);
    const updated = await store.addTemplateVersion({
      accountId,
      id: current.template.id,
      name,
      alias,
      content,
      now: clock(),
    });
    if (updated) return updated;
    if (await store.getTemplate(accountId, current.template.id)) {
      throw new TemplateError('template_alias_taken', `the alias "${alias}" is already in use`, 'alias');
    }
    throw notFound(idOrAlias);
  }

  /** A live template and one of its versions (the latest when `version` is absent). */
  async function get(
    accountId: string,
    idOrAlias: string,
    version?: number,
  ): Promise<{ template: Template; version: TemplateVersion }> {
    const template = await store.getTemplate(accountId, idOrAlias);
    if (!template) throw notFound(idOrAlias);
    const found = await store.getTemplateVersion(template.id, version);
    if (!found) {
      throw new TemplateError(
        'template_not_found',
        `template "${idOrAlias}" has no version ${version} (latest: ${template.latestVersion})`,
        'version',
      );
    }
    return { template, version: found };
  }

  async function remove(accountId: string, idOrAlias: string): Promise<void> {
    const template = await store.getTemplate(accountId, idOrAlias);
    if (!template || !(await store.deleteTemplate(accountId, template.id, clock())))
      throw notFound(idOrAlias);
  }

  return { create, update, get, remove, list: (accountId: string) => store.listTemplates(accountId) };
}

function notFound(idOrAlias: string): TemplateError {
  return new TemplateError('template_not_found', `no template "${idOrAlias}"`, 'id');
}

export type Templates = ReturnType<typeof createTemplates>;
