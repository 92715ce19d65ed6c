/**
 * Finding what tracking rewrites in an HTML or plain-text part, once per distinct body: the
 * result is a list of literal text and slots (a tracked link, the unsubscribe URL, the open
 * pixel's URL) that each recipient's copy fills with its own tokens (tracking/copies.ts).
 *
 * The text is the part's decoded bytes as latin1 (one character per byte): tags, attributes
 * and URLs are ASCII in every charset we accept (mime.ts), so multi-byte characters pass
 * through untouched and the bytes that come out are the bytes that went in.
 *
 * Not a full HTML parser, on purpose: it looks only at `<a>` and `<area>` start tags, skips
 * comments (Outlook's conditional comments included: their links stay untracked), `<script>`
 * and `<style>`, and stops rewriting where the markup stops making sense (an unterminated tag),
 * leaving the rest as it was. Opt-outs: `data-postbote-track="off"` on the tag, and every href
 * that is not an absolute http(s) URL (mailto:, tel:, #anchors, relative links, templates).
 */

// UNSUBSCRIBE_PLACEHOLDER (intake/send-request.ts) is matched below as a literal regex.

/** Where a recipient's own URL goes. `link` numbers the tracked links of the message from 0. */
export type Slot = { kind: 'click'; url: string; link: number } | { kind: 'unsubscribe' } | { kind: 'open' };
export type Segments = (string | Slot)[];

/** The forms the placeholder is found in: rendered, or the template variable left as written. */
const PLACEHOLDERS =
  /\{\{\{\s*unsubscribe_url\s*\}\}\}|\{\{\s*unsubscribe_url\s*\}\}|https:\/\/unsubscribe\.postbote\.invalid\//g;

export interface PlanOptions {
  clicks: boolean;
  /** HTML only: add the open pixel. */
  pixel?: boolean;
  /** Numbers tracked links across the parts of one message. */
  counter: { links: number };
  /** Why something was left alone (malformed markup), for the caller's log. */
  notes?: string[];
}

/** Splits literal text at unsubscribe placeholders. */
function withPlaceholders(text: string, out: Segments): void {
  if (text === '') return;
  PLACEHOLDERS.lastIndex = 0;
  let last = 0;
  for (let m = PLACEHOLDERS.exec(text); m !== null; m = PLACEHOLDERS.exec(text)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push({ kind: 'unsubscribe' });
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(last === 0 ? text : text.slice(last));
}

function isPlaceholder(url: string): boolean {
  PLACEHOLDERS.lastIndex = 0;
  const m = PLACEHOLDERS.exec(url);
  return m !== null && m.index === 0 && m[0].length === url.length;
}

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

/** Character references in an attribute value (the ones URLs use); unknown ones stay as written. */
export function decodeEntities(value: string): string {
  if (!value.includes('&')) return value;
  return value.replace(/&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,6});?/g, (whole, ref: string) => {
    if (ref[0] === '#') {
      const code =
        ref[1] === 'x' || ref[1] === 'X' ? Number.parseInt(ref.slice(2), 16) : Number(ref.slice(1));
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return NAMED[ref.toLowerCase()] ?? whole;
  });
}

/**
 * The URL a click token embeds, or undefined when the link is not tracked: only absolute
 * http(s) URLs without spaces or control characters. The href is latin1-decoded bytes; a URL
 * with non-ASCII characters is taken as UTF-8 and percent-encoded (WHATWG URL), so the
 * redirect's Location is always ASCII.
 */
export function trackableUrl(href: string): string | undefined {
  // The copies of a message repeat their links: each distinct href is parsed once.
  if (href.length > TRACKABLE_CACHE_CHARS) return checkUrl(href);
  if (trackable.has(href)) return trackable.get(href);
  const result = checkUrl(href);
  if (trackable.size >= TRACKABLE_CACHE_SIZE) trackable.clear();
  trackable.set(href, result);
  return result;
}

/** At most 2,048 URLs of up to 1,024 characters are kept (~2 MB at worst, hostile mail included). */
const TRACKABLE_CACHE_SIZE = 2048;
const TRACKABLE_CACHE_CHARS = 1024;
const trackable = new Map<string, string | undefined>();

function checkUrl(href: string): string | undefined {
  const url = href.trim();
  if (!/^https?:\/\//i.test(url) || url.length > 4096) return undefined;
  if (/[\x00-\x20\x7f]/.test(url)) return undefined;
  const ascii = /^[\x21-\x7e]*$/.test(url);
  try {
    const parsed = new URL(ascii ? url : Buffer.from(url, 'latin1').toString('utf8'));
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined;
    if (parsed.hostname === '') return undefined;
    return ascii ? url : parsed.href;
  } catch {
    return undefined;
  }
}

const TAG_NAME = /[a-zA-Z][a-zA-Z0-9:-]*/y;
const SPACE = /[\s/]*/y;
const ATTR_NAME = /[^\s"'<>/=]+/y;
const UNQUOTED = /[^\s>]*/y;

interface Attribute {
  name: string;
  /** Offsets of the whole attribute (name to value end) and of its value, in the text. */
  start: number;
  end: number;
  value: string;
}

/**
 * The attributes of the start tag whose name ends at `i`, and the offset after its `>`; or
 * undefined when the tag never ends (an unterminated quote or a missing `>`).
 */
function readAttributes(html: string, i: number): { attributes: Attribute[]; end: number } | undefined {
  const attributes: Attribute[] = [];
  let at = i;
  for (let guard = 0; guard < 10_000; guard++) {
    SPACE.lastIndex = at;
    SPACE.test(html);
    at = SPACE.lastIndex;
    if (at >= html.length) return undefined;
    if (html[at] === '>') return { attributes, end: at + 1 };
    if (html[at] === '<') return undefined; // a new tag before this one ended: malformed
    ATTR_NAME.lastIndex = at;
    if (!ATTR_NAME.test(html)) return undefined;
    const start = at;
    const name = html.slice(at, ATTR_NAME.lastIndex).toLowerCase();
    at = ATTR_NAME.lastIndex;
    let j = at;
    while (j < html.length && /\s/.test(html[j] as string)) j++;
    if (html[j] !== '=') {
      attributes.push({ name, start, end: at, value: '' });
      continue;
    }
    j++;
    while (j < html.length && /\s/.test(html[j] as string)) j++;
    const quote = html[j];
    if (quote === '"' || quote === "'") {
      const close = html.indexOf(quote, j + 1);
      if (close === -1) return undefined;
      attributes.push({ name, start, end: close + 1, value: html.slice(j + 1, close) });
      at = close + 1;
    } else {
      UNQUOTED.lastIndex = j;
      UNQUOTED.test(html);
      attributes.push({ name, start, end: UNQUOTED.lastIndex, value: html.slice(j, UNQUOTED.lastIndex) });
      at = UNQUOTED.lastIndex;
    }
  }
  return undefined;
}

/** Plans an HTML part: tracked links, the unsubscribe URL wherever its placeholder is, the pixel. */
export function planHtml(html: string, options: PlanOptions): Segments {
  const out: Segments = [];
  const lower = options.pixel ? html.toLowerCase() : '';
  const bodyEnd = options.pixel ? lower.lastIndexOf('</body') : -1;
  const limit = bodyEnd === -1 ? html.length : bodyEnd;
  let literalFrom = 0;
  const flush = (to: number) => {
    withPlaceholders(html.slice(literalFrom, to), out);
    literalFrom = to;
  };
  let i = 0;
  let stopped = false;
  while (i < limit && !stopped) {
    const lt = html.indexOf('<', i);
    if (lt === -1 || lt >= limit) break;
    if (html.startsWith('<!--', lt)) {
      const close = html.indexOf('-->', lt + 4);
      if (close === -1) {
        options.notes?.push('unterminated HTML comment: the rest of the part is left as it is');
        break;
      }
      i = close + 3;
      continue;
    }
    TAG_NAME.lastIndex = lt + 1;
    if (!TAG_NAME.test(html)) {
      i = lt + 1;
      continue;
    }
    const name = html.slice(lt + 1, TAG_NAME.lastIndex).toLowerCase();
    if (name === 'script' || name === 'style') {
      const close = html.toLowerCase().indexOf(`</${name}`, TAG_NAME.lastIndex);
      i = close === -1 ? html.length : close + 2;
      continue;
    }
    if (name !== 'a' && name !== 'area') {
      i = TAG_NAME.lastIndex;
      continue;
    }
    const tag = readAttributes(html, TAG_NAME.lastIndex);
    if (!tag) {
      options.notes?.push(`unterminated <${name}> tag: the rest of the part is left as it is`);
      stopped = true;
      break;
    }
    i = tag.end;
    const href = tag.attributes.find((a) => a.name === 'href');
    if (!href) continue;
    const optOut = tag.attributes.some(
      (a) => a.name === 'data-postbote-track' && a.value.trim().toLowerCase() === 'off',
    );
    const url = decodeEntities(href.value).trim();
    if (isPlaceholder(url)) {
      flush(href.start);
      out.push('href="', { kind: 'unsubscribe' }, '"');
      literalFrom = href.end;
      continue;
    }
    if (optOut || !options.clicks) continue;
    const target = trackableUrl(url);
    if (target === undefined) continue;
    flush(href.start);
    out.push('href="', { kind: 'click', url: target, link: options.counter.links++ }, '"');
    literalFrom = href.end;
  }
  if (options.pixel) {
    const at = bodyEnd === -1 ? html.length : bodyEnd;
    flush(at);
    out.push(
      '<img src="',
      { kind: 'open' },
      '" width="1" height="1" alt="" style="border:0;width:1px;height:1px" />',
    );
  }
  flush(html.length);
  return out;
}

// A URL in running text ends at white space, a quote or an angle bracket (RFC 3986 Appendix C).
const TEXT_URL = /https?:\/\/[^\s<>"]+/gi;

/** Plans a plain-text part: the unsubscribe placeholder, and its links when `clicks` is on. */
export function planText(text: string, options: PlanOptions): Segments {
  const out: Segments = [];
  if (!options.clicks) {
    withPlaceholders(text, out);
    return out;
  }
  let last = 0;
  TEXT_URL.lastIndex = 0;
  for (let m = TEXT_URL.exec(text); m !== null; m = TEXT_URL.exec(text)) {
    // Sentence punctuation after a URL is not part of it.
    const raw = m[0].replace(/[.,;:!?)\]']+$/, '');
    const url = isPlaceholder(raw) ? undefined : trackableUrl(raw);
    if (url === undefined) continue;
    withPlaceholders(text.slice(last, m.index), out);
    out.push({ kind: 'click', url, link: options.counter.links++ });
    last = m.index + raw.length;
    TEXT_URL.lastIndex = last;
  }
  withPlaceholders(text.slice(last), out);
  return out;
}

/** True when the segments hold a slot (the part changes per recipient). */
export function hasSlots(segments: Segments): boolean {
  return segments.some((s) => typeof s !== 'string');
}
