/**
 * Handlebars rendering of a message's subject, HTML and text, with errors that say where:
 * template, version, part, line and the variable. Rendering runs once per recipient of a batch,
 * so compiled templates are cached and a render is only the call of the compiled function.
 */
import Handlebars from 'handlebars';
import { SendError } from '../intake/send-errors.ts';

export interface TemplateSource {
  name: string;
  version: number;
  subject: string;
  html: string;
  text: string;
}

export interface Rendered {
  subject: string;
  html: string;
  text: string;
}

type Part = keyof Rendered;
const PARTS: readonly Part[] = ['subject', 'html', 'text'];

// An environment of our own: helpers or partials registered on the global Handlebars by any
// other module never reach templates written by account users.
const handlebars = Handlebars.create();
// {{log}} would let a template author write into the server's output. The compiler calls a
// known helper directly, so it must also stop knowing it: then {{log}} is a missing variable.
handlebars.unregisterHelper('log');

// strict: a variable the template names but the request lacks is an error, not an empty
// string in a sent message. Prototype access stays refused (the Handlebars ≥ 4.6 default).
const HTML_OPTIONS = { strict: true, knownHelpers: { log: false } } as const;
// Subject and text are not HTML: "Tom & Jerry" stays "Tom & Jerry".
const PLAIN_OPTIONS = { ...HTML_OPTIONS, noEscape: true } as const;
// A copy each time: Handlebars writes into the options object it is given (data, useDepths).
const options = (part: Part): CompileOptions => ({ ...(part === 'html' ? HTML_OPTIONS : PLAIN_OPTIONS) });

const CACHE_LIMIT = 500;
/**
 * Compiled parts by escaping mode and source text. The text alone is the key (name and version
 * only label errors): two versions with the same text share one compiled function, and a
 * name+version whose text changed can never be served the old one. A batch passes the same
 * string for every recipient, and V8 keeps a string's hash, so a hit costs no rehash.
 */
const compiled = {
  html: new Map<string, HandlebarsTemplateDelegate>(),
  plain: new Map<string, HandlebarsTemplateDelegate>(),
};

function compiledPart(part: Part, source: string): HandlebarsTemplateDelegate {
  const cache = part === 'html' ? compiled.html : compiled.plain;
  let template = cache.get(source);
  if (template === undefined) {
    template = handlebars.compile(source, options(part));
    // Oldest first out: Map iterates in insertion order.
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
    cache.set(source, template);
  }
  return template;
}

/** Compiles (cached) and renders a stored template. Throws SendError('template_render_error'). */
export function renderTemplate(source: TemplateSource, variables: Record<string, unknown>): Rendered {
  const label = `template ${JSON.stringify(source.name)} version ${source.version}`;
  return {
    subject: renderPart(source, 'subject', variables, label, 'template'),
    html: renderPart(source, 'html', variables, label, 'template'),
    text: renderPart(source, 'text', variables, label, 'template'),
  };
}

/**
 * Renders a message's own subject/html/text as templates (personalised sends without a stored
 * template). Only the parts given come back; errors name `label` (e.g. `message`) and the part.
 */
export function renderInline(
  parts: { subject?: string; html?: string; text?: string },
  variables: Record<string, unknown>,
  label: string,
): Partial<Rendered> {
  const rendered: Partial<Rendered> = {};
  for (const part of PARTS) {
    if (parts[part] !== undefined) rendered[part] = renderPart(parts, part, variables, label, part);
  }
  return rendered;
}

function renderPart(
  parts: Partial<Rendered>,
  part: Part,
  variables: Record<string, unknown>,
  label: string,
  field: string,
): string {
  const source = parts[part] ?? '';
  if (source === '') return '';
  try {
    return compiledPart(part, source)(variables);
  } catch (error) {
    const { line, text } = explain(error, source);
    const where = line === undefined ? part : `${part} line ${line}`;
    throw new SendError('template_render_error', `${label}, ${where}: ${text}`, field, { cause: error });
  }
}

/** Checks the syntax of every part. Throws SendError('invalid_template') naming part and line. */
export function checkTemplate(parts: { subject: string; html: string; text: string }): void {
  for (const part of PARTS) {
    const source = parts[part];
    if (source === '') continue;
    try {
      // precompile runs the parser and the compiler, so it finds every error compile() would
      // find on the first render (compile() itself is lazy), without running the template.
      handlebars.precompile(source, options(part));
    } catch (error) {
      const { line, text } = explain(error, source);
      const where = line === undefined ? part : `${part} line ${line}`;
      throw new SendError('invalid_template', `${where}: ${text}`, part, { cause: error });
    }
  }
}

interface Explanation {
  line: number | undefined;
  text: string;
}

// Handlebars' own wording, 4.7: `"x" not defined in [object Object] - 3:8`,
// `if doesn't match each - 2:3`, and the parser's `Parse error on line 2:\n<excerpt>\n---^\nExpecting …, got 'EOF'`.
const MISSING = /^"([^"]*)" not defined in /;
const MISMATCH = /^(\S+) doesn't match (\S+) - \d+:\d+$/;
// strict mode looking a name up in a string or number, e.g. {{name}} in {{#each}} over strings.
const NOT_AN_OBJECT = /^Cannot use 'in' operator to search for '(.*)' in (.*)$/;
const PARSE = /^Parse error on line (\d+):\n(.*)\n-*\^\nExpecting (.*), got '(\w+)'$/s;
const LEXICAL = /^Lexical error on line (\d+)\. Unrecognized text\.\n(.*)\n-*\^$/s;

const TOKENS: Record<string, string> = {
  EOF: 'end of the text',
  INVALID: 'invalid character',
  OPEN_ENDBLOCK: 'closing {{/…}} with no block open',
  INVERSE: '{{else}} outside a block',
  CLOSE: '"}}"',
};

/** Turns a Handlebars error into a line number and a sentence about the template's text. */
function explain(error: unknown, source: string): Explanation {
  const message = error instanceof Error ? error.message : String(error);
  const position = error as { lineNumber?: unknown; column?: unknown };
  const line = typeof position.lineNumber === 'number' ? position.lineNumber : undefined;
  const missing = MISSING.exec(message);
  if (missing) {
    const column = typeof position.column === 'number' ? position.column : undefined;
    return {
      line,
      text: `variable ${JSON.stringify(variablePath(source, line, column, missing[1]!))} is missing`,
    };
  }
  const notAnObject = NOT_AN_OBJECT.exec(message);
  if (notAnObject) {
    return {
      line,
      text: `variable ${JSON.stringify(notAnObject[1])} is missing: it is looked up in ${JSON.stringify(notAnObject[2])}, which is not an object`,
    };
  }
  const mismatch = MISMATCH.exec(message);
  if (mismatch) return { line, text: `{{#${mismatch[1]}}} is closed by {{/${mismatch[2]}}}` };
  const parse = PARSE.exec(message);
  if (parse) {
    const [, reported, excerpt, expected, got] = parse as unknown as [string, string, string, string, string];
    if (got === 'EOF' && expected.includes("'OPEN_ENDBLOCK'")) {
      const open = unclosedBlock(source);
      if (open) return { line: open.line, text: `the {{#${open.name}}} block is never closed` };
    }
    return {
      line: Number(reported),
      text: `syntax error near ${JSON.stringify(excerpt.trim())}: unexpected ${TOKENS[got] ?? got}`,
    };
  }
  const lexical = LEXICAL.exec(message);
  if (lexical) {
    return { line: Number(lexical[1]), text: `syntax error near ${JSON.stringify(lexical[2]!.trim())}` };
  }
  return { line, text: message.replace(/ - \d+:\d+$/, '') };
}

/**
 * The whole path as written (`user.first_name`), read from the source at the error's position:
 * Handlebars names only the last segment. Falls back to that segment.
 */
function variablePath(
  source: string,
  line: number | undefined,
  column: number | undefined,
  name: string,
): string {
  if (line === undefined || column === undefined) return name;
  const text = source.split('\n')[line - 1]?.slice(column);
  const written = text && /^[^\s}~()=|]+/.exec(text)?.[0];
  return written?.endsWith(name) ? written : name;
}

/** The innermost block opened and never closed, with the line it opens on. */
function unclosedBlock(source: string): { name: string; line: number } | undefined {
  const open: { name: string; index: number }[] = [];
  // Comments may hold tags that are not tags; {{else}} neither opens nor closes.
  const tags = /\{\{!--[\s\S]*?--\}\}|\{\{![\s\S]*?\}\}|\{\{~?\s*([#^/])\s*>?\s*([^\s}~]+)/g;
  for (const tag of source.matchAll(tags)) {
    const [, kind, name] = tag;
    if (kind === undefined || name === undefined) continue;
    if (kind === '/') {
      if (open.at(-1)?.name === name) open.pop();
    } else open.push({ name, index: tag.index });
  }
  const innermost = open.at(-1);
  if (!innermost) return undefined;
  return { name: innermost.name, line: source.slice(0, innermost.index).split('\n').length };
}
