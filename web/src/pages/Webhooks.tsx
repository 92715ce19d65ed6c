import { useState } from 'preact/hooks';
import { del, formatTime, get, post } from '../api.ts';
import { confirmAction, ErrorNote, Loading, Section } from '../components/ui.tsx';
import { useLoad } from '../hooks.ts';

interface Webhook {
  id: string;
  url: string;
  events: string[] | null;
  enabled?: boolean;
  created_at?: string;
}

/** Webhooks: list, create (the signing secret is shown once), send a test, delete (/v1/webhooks). */
export function Webhooks() {
  const list = useLoad(() => get<{ data: Webhook[] }>('/v1/webhooks'), []);
  const [url, setUrl] = useState('');
  const [secret, setSecret] = useState<string>();
  const [message, setMessage] = useState<string>();
  const [error, setError] = useState<string>();
  const run = async (action: () => Promise<string | undefined>) => {
    setError(undefined);
    setMessage(undefined);
    try {
      setMessage(await action());
      list.reload();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <>
      <h1>Webhooks</h1>
      <Section title="Add an endpoint">
        <form
          class="filters"
          onSubmit={(e) => {
            e.preventDefault();
            run(async () => {
              const created = await post<{ secret?: string }>('/v1/webhooks', { url });
              setSecret(created.secret);
              setUrl('');
              return 'Endpoint added; it receives every event type.';
            });
          }}
        >
          <div class="field">
            <label for="wh-url">URL</label>
            <input id="wh-url" type="url" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
          </div>
          <button type="submit">Add</button>
        </form>
        {secret && (
          <p role="status">
            Signing secret (shown once): <code>{secret}</code>
          </p>
        )}
        {message && <p class="ok">{message}</p>}
        <ErrorNote error={error} />
      </Section>
      <Section title="Endpoints">
        <ErrorNote error={list.error} />
        <Loading loading={list.loading && !list.data} />
        {list.data && list.data.data.length === 0 && <p class="muted">No webhooks.</p>}
        <ul class="plain">
          {list.data?.data.map((w) => (
            <li key={w.id}>
              <span class="mono">{w.url}</span> <span class="muted">{w.events?.join(', ') ?? 'all events'}</span>{' '}
              {w.enabled === false && <strong>disabled</strong>} <span class="muted">{formatTime(w.created_at)}</span>{' '}
              <button
                type="button"
                class="small"
                onClick={() =>
                  run(async () => {
                    await post(`/v1/webhooks/${encodeURIComponent(w.id)}/test`);
                    return `A test event is on its way to ${w.url}.`;
                  })
                }
              >
                Send test
              </button>{' '}
              <button
                type="button"
                class="small danger"
                onClick={() => {
                  if (!confirmAction(`Delete the webhook ${w.url}?`)) return;
                  run(async () => {
                    await del(`/v1/webhooks/${encodeURIComponent(w.id)}`);
                    return 'Deleted.';
                  });
                }}
              >
                Delete
              </button>
            </li>
          ))}
        </ul>
        <p class="muted small-print">Deliveries and replay are in the API (/v1/webhooks/&#123;id&#125;, /replay); not shown here yet.</p>
      </Section>
    </>
  );
}
