import { useEffect, useState } from 'preact/hooks';
import { formatTime, get, post, put } from '../api.ts';
import { MessagePreview } from '../components/MessagePreview.tsx';
import { ErrorNote, Loading, Section } from '../components/ui.tsx';
import { navigate, useLoad } from '../hooks.ts';

interface Template {
  id: string;
  name: string;
  alias: string;
  version: number;
  latest_version: number;
  updated_at: string;
  subject?: string;
  html?: string;
  text?: string;
}
interface Rendered {
  subject: string;
  html: string | null;
  text: string | null;
}

/** Templates (/v1/templates): the list, a new one, and the editor with its preview. */
export function Templates(props: { params: URLSearchParams }) {
  const selected = props.params.get('id');
  const list = useLoad(() => get<{ data: Template[] }>('/v1/templates'), []);
  const [name, setName] = useState('');
  const [error, setError] = useState<string>();
  return (
    <>
      <h1>Templates</h1>
      <Section title="Templates">
        <ErrorNote error={list.error} />
        <Loading loading={list.loading && !list.data} />
        {list.data && list.data.data.length === 0 && <p class="muted">No templates yet.</p>}
        <ul class="plain">
          {list.data?.data.map((t) => (
            <li key={t.id}>
              <a href={`#/templates?id=${encodeURIComponent(t.id)}`} aria-current={selected === t.id}>
                {t.name}
              </a>{' '}
              {t.alias && <span class="mono">{t.alias}</span>}{' '}
              <span class="muted">
                version {t.latest_version}, {formatTime(t.updated_at)}
              </span>
            </li>
          ))}
        </ul>
        <form
          class="filters"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(undefined);
            try {
              const created = await post<Template>('/v1/templates', {
                name,
                subject: 'Hello {{name}}',
                html: '<p>Hello {{name}}</p>',
                text: 'Hello {{name}}',
              });
              setName('');
              list.reload();
              navigate(`/templates?id=${encodeURIComponent(created.id)}`);
            } catch (err) {
              setError(err instanceof Error ? err.message : String(err));
            }
          }}
        >
          <div class="field">
            <label for="template-name">New template</label>
            <input id="template-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </div>
          <button type="submit">Create</button>
        </form>
        <ErrorNote error={error} />
      </Section>
      {selected && <Editor key={selected} id={selected} onSaved={list.reload} />}
    </>
  );
}

function Editor(props: { id: string; onSaved: () => void }) {
  const loaded = useLoad(() => get<Template>(`/v1/templates/${encodeURIComponent(props.id)}`), [props.id]);
  const [draft, setDraft] = useState({ subject: '', html: '', text: '' });
  const [variables, setVariables] = useState('{\n  "name": "Ada"\n}');
  const [preview, setPreview] = useState<Rendered>();
  const [previewError, setPreviewError] = useState<string>();
  const [message, setMessage] = useState<string>();
  const [error, setError] = useState<string>();
  const t = loaded.data;
  useEffect(() => {
    if (t) setDraft({ subject: t.subject ?? '', html: t.html ?? '', text: t.text ?? '' });
  }, [t]);
  const version = t?.version;

  // The preview follows the draft and the variables as they are typed (300 ms after the last
  // key), rendered by the server's template engine (POST /v1/templates/preview, nothing stored).
  useEffect(() => {
    if (version === undefined) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(variables || '{}');
    } catch {
      setPreviewError('The variables are not valid JSON yet.');
      return;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      setPreviewError('The variables are a JSON object: {"name": "Ada"}.');
      return;
    }
    let live = true;
    const timer = setTimeout(() => {
      post<Rendered>('/v1/templates/preview', { ...draft, variables: parsed }).then(
        (r) => {
          if (!live) return;
          setPreview(r);
          setPreviewError(undefined);
        },
        (err: unknown) => live && setPreviewError(err instanceof Error ? err.message : String(err)),
      );
    }, 300);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [variables, draft, version]);

  const unsaved =
    t !== undefined &&
    (draft.subject !== (t.subject ?? '') || draft.html !== (t.html ?? '') || draft.text !== (t.text ?? ''));
  const field = (key: keyof typeof draft, label: string, rows: number) => (
    <div class="field">
      <label for={`tpl-${key}`}>{label}</label>
      {rows === 1 ? (
        <input
          id={`tpl-${key}`}
          value={draft[key]}
          onInput={(e) => setDraft({ ...draft, [key]: e.currentTarget.value })}
        />
      ) : (
        <textarea
          id={`tpl-${key}`}
          class="mono"
          rows={rows}
          value={draft[key]}
          onInput={(e) => setDraft({ ...draft, [key]: e.currentTarget.value })}
        />
      )}
    </div>
  );
  return (
    <Section title={t ? `${t.name} (version ${t.version})` : 'Template'}>
      <ErrorNote error={loaded.error} />
      <Loading loading={loaded.loading && !t} />
      {t && (
        <div class="editor">
          <form
            class="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              setError(undefined);
              setMessage(undefined);
              try {
                const saved = await put<Template>(`/v1/templates/${encodeURIComponent(props.id)}`, draft);
                setMessage(`Saved as version ${saved.version}.`);
                loaded.reload();
                props.onSaved();
              } catch (err) {
                setError(err instanceof Error ? err.message : String(err));
              }
            }}
          >
            {field('subject', 'Subject', 1)}
            {field('html', 'HTML', 12)}
            {field('text', 'Text', 6)}
            <div class="toolbar">
              <button type="submit" disabled={!unsaved}>
                Save as new version
              </button>
              {unsaved && <span class="muted">Unsaved changes (the preview shows them).</span>}
            </div>
            {message && (
              <p class="ok" role="status">
                {message}
              </p>
            )}
            <ErrorNote error={error} />
          </form>
          <div class="stack">
            <div class="field">
              <label for="tpl-variables">Variables (JSON)</label>
              <textarea
                id="tpl-variables"
                class="mono"
                rows={6}
                value={variables}
                onInput={(e) => setVariables(e.currentTarget.value)}
              />
            </div>
            <ErrorNote error={previewError} />
            {preview && (
              <section aria-label="Preview">
                <p>
                  Subject: <strong data-preview="subject">{preview.subject}</strong>{' '}
                  <span class="muted">({unsaved ? 'unsaved draft' : `version ${t.version}`})</span>
                </p>
                <MessagePreview
                  key={`${preview.html}\n${preview.text}`}
                  html={preview.html || null}
                  text={preview.text || null}
                />
              </section>
            )}
          </div>
        </div>
      )}
    </Section>
  );
}
