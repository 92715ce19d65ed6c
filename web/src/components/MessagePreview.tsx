import { useState } from 'preact/hooks';

// The preview's own policy (a frame made from srcdoc also inherits the page's): no scripts at
// all, inline styles only, and images only from data: URIs until the user asks for remote content.
const BLOCKED = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:";
const REMOTE =
  "default-src 'none'; style-src 'unsafe-inline' https: http:; img-src data: https: http:; font-src data: https: http:";

function srcdoc(html: string, remote: boolean): string {
  const head = `<meta http-equiv="Content-Security-Policy" content="${remote ? REMOTE : BLOCKED}"><base target="_blank">`;
  return `<!doctype html><html><head>${head}</head><body>${html}</body></html>`;
}

/**
 * A message's HTML in a sandboxed frame: no scripts, no same-origin access, no forms, links
 * open in a new tab; remote images and styles stay blocked until "Load remote content".
 */
export function MessagePreview(props: { html: string | null; text: string | null }) {
  const [remote, setRemote] = useState(false);
  const [view, setView] = useState<'html' | 'text'>(props.html ? 'html' : 'text');
  return (
    <div class="preview">
      <fieldset class="toolbar group" aria-label="Content view">
        {props.html !== null && (
          <button type="button" class="small" aria-pressed={view === 'html'} onClick={() => setView('html')}>
            HTML
          </button>
        )}
        {props.text !== null && (
          <button type="button" class="small" aria-pressed={view === 'text'} onClick={() => setView('text')}>
            Text
          </button>
        )}
        {view === 'html' && !remote && (
          <button type="button" class="small" onClick={() => setRemote(true)}>
            Load remote content
          </button>
        )}
        {view === 'html' && remote && <span class="muted">Remote content loaded</span>}
      </fieldset>
      {view === 'html' && props.html !== null ? (
        <iframe
          title="Message content"
          sandbox="allow-popups allow-popups-to-escape-sandbox"
          referrerpolicy="no-referrer"
          srcDoc={srcdoc(props.html, remote)}
        />
      ) : (
        <pre class="text-body">{props.text ?? '(no text part)'}</pre>
      )}
    </div>
  );
}
