import { useEffect, useState } from 'preact/hooks';
import { formatTime, get, patch } from '../api.ts';
import { ErrorNote, Loading, Section } from '../components/ui.tsx';
import { useLoad } from '../hooks.ts';

type Switch = 'opens' | 'clicks' | 'text_links' | 'list_unsubscribe';
interface Stream {
  name: string;
  kind: 'transactional' | 'broadcast';
  pool: string | null;
  created_at: string;
  tracking: Record<Switch, boolean>;
  tracking_overrides: Partial<Record<Switch, boolean>>;
}

const SWITCHES: [Switch, string][] = [
  ['opens', 'Opens (pixel)'],
  ['clicks', 'Clicks (tracked links)'],
  ['text_links', 'Links in text parts'],
  ['list_unsubscribe', 'List-Unsubscribe'],
];

/**
 * Streams with kind, pool and tracking (/v1/streams); the tracking switches are editable
 * (PATCH), kind and pool are the operator's (`postbote streams`). Pools and routes live in the
 * configuration, which the API does not show.
 */
export function Streams(props: { canEdit: boolean }) {
  const list = useLoad(() => get<{ data: Stream[] }>('/v1/streams'), []);
  const [message, setMessage] = useState<string>();
  const [error, setError] = useState<string>();
  // What was clicked shows at once (a controlled checkbox would flip back until the list is
  // loaded again); the fresh list replaces it.
  const [pending, setPending] = useState<Record<string, boolean>>({});
  useEffect(() => setPending({}), [list.data]);
  const change = async (stream: Stream, key: Switch, value: boolean | null) => {
    setError(undefined);
    setMessage(undefined);
    const id = `${stream.name}/${key}`;
    if (value !== null) setPending((p) => ({ ...p, [id]: value }));
    try {
      await patch(`/v1/streams/${encodeURIComponent(stream.name)}`, { tracking: { [key]: value } });
      setMessage(
        `Saved: ${stream.name} ${key.replace('_', ' ')} ${value === null ? 'back to the default' : value ? 'on' : 'off'}. Running nodes apply it within 10 s.`,
      );
      list.reload();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setPending(({ [id]: _, ...rest }) => rest);
    }
  };
  return (
    <>
      <h1>Streams</h1>
      <ErrorNote error={list.error ?? error} />
      {message && (
        <p class="ok" role="status">
          {message}
        </p>
      )}
      <Loading loading={list.loading && !list.data} />
      {list.data?.data.map((s) => (
        <Section key={s.name} title={s.name}>
          <dl class="facts">
            <dt>Kind</dt>
            <dd>{s.kind}</dd>
            <dt>Egress pool</dt>
            <dd>{s.pool ?? `the default pool of ${s.kind} mail`}</dd>
            <dt>Created</dt>
            <dd>{formatTime(s.created_at)}</dd>
          </dl>
          <fieldset>
            <legend>Tracking</legend>
            {SWITCHES.map(([key, label]) => {
              const own = s.tracking_overrides[key];
              return (
                <div key={key} class="toolbar">
                  <label class="inline">
                    <input
                      type="checkbox"
                      checked={pending[`${s.name}/${key}`] ?? s.tracking[key]}
                      disabled={!props.canEdit}
                      onChange={(e) => change(s, key, e.currentTarget.checked)}
                    />{' '}
                    {label} <span class="visually-hidden">for {s.name}</span>
                  </label>
                  <span class="muted small-print">
                    {own === undefined ? `default of ${s.kind}` : 'set for this stream'}
                  </span>
                  {own !== undefined && props.canEdit && (
                    <button type="button" class="small" onClick={() => change(s, key, null)}>
                      Use default
                      <span class="visually-hidden">
                        {' '}
                        for {label} of {s.name}
                      </span>
                    </button>
                  )}
                </div>
              );
            })}
          </fieldset>
        </Section>
      ))}
      <p class="muted small-print">
        Kinds, pools and routes are configuration: <code>postbote streams create</code> and the{' '}
        <code>egress</code> section of the config file. The dashboard shows no configuration (it may hold
        addresses and credentials).
      </p>
    </>
  );
}
