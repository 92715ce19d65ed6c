import { useState } from 'preact/hooks';
import { PUBLIC_EVENT_TYPES } from '../../../src/events/types.ts';
import { del, formatTime, get, post } from '../api.ts';
import { confirmAction, ErrorNote, Loading, Section, Status } from '../components/ui.tsx';
import { useAction, useLoad } from '../hooks.ts';

interface Webhook {
  id: string;
  url: string;
  events: string[];
  enabled?: boolean;
  disabled_reason?: string | null;
  failing_since?: string | null;
  created_at?: string;
}
interface Attempt {
  batch_id: number;
  at: string;
  status: number;
  error: string | null;
  duration_ms: number;
}

const EVENT_TYPES = [...PUBLIC_EVENT_TYPES];

/**
 * Webhooks: list, create with an event filter (the signing secret is shown once), send a test,
 * deliveries (the latest attempts), replay a time range, delete (/v1/webhooks).
 */
export function Webhooks(props: { params: URLSearchParams }) {
  const selected = props.params.get('id');
  const list = useLoad(() => get<{ data: Webhook[] }>('/v1/webhooks'), []);
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<string[]>([]);
  const [secret, setSecret] = useState<string>();
  const { message, error, run } = useAction(list.reload);
  return (
    <>
      <h1>Webhooks</h1>
      <Section title="Add an endpoint">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            run(async () => {
              const created = await post<{ secret?: string }>('/v1/webhooks', { url, events });
              setSecret(created.secret);
              setUrl('');
              setEvents([]);
              return events.length === 0
                ? 'Endpoint added; it receives every event type.'
                : `Endpoint added for ${events.join(', ')}.`;
            });
          }}
        >
          <div class="filters">
            <div class="field">
              <label for="wh-url">URL</label>
              <input
                id="wh-url"
                type="url"
                required
                value={url}
                onInput={(e) => setUrl(e.currentTarget.value)}
              />
            </div>
            <button type="submit">Add</button>
          </div>
          <fieldset>
            <legend>Event types (none ticked: every type)</legend>
            {EVENT_TYPES.map((t) => (
              <label class="inline" key={t}>
                <input
                  type="checkbox"
                  checked={events.includes(t)}
                  onChange={(e) =>
                    setEvents(e.currentTarget.checked ? [...events, t] : events.filter((x) => x !== t))
                  }
                />{' '}
                {t}
              </label>
            ))}
          </fieldset>
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
              <a
                href={`#/webhooks?id=${encodeURIComponent(w.id)}`}
                class="mono"
                aria-current={selected === w.id}
              >
                {w.url}
              </a>{' '}
              <span class="muted">{w.events.length > 0 ? w.events.join(', ') : 'all events'}</span>{' '}
              {w.enabled === false && <strong>disabled ({w.disabled_reason})</strong>}{' '}
              <span class="muted">{formatTime(w.created_at)}</span>{' '}
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
      </Section>
      {selected && <Deliveries key={selected} id={selected} />}
    </>
  );
}

/** `datetime-local` value → RFC 3339 (the browser's zone), or undefined when empty. */
function rfc3339(local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

function Deliveries(props: { id: string }) {
  const details = useLoad(
    () => get<Webhook & { attempts: Attempt[] }>(`/v1/webhooks/${encodeURIComponent(props.id)}`),
    [props.id],
  );
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [message, setMessage] = useState<string>();
  const [error, setError] = useState<string>();
  const d = details.data;
  return (
    <Section
      title={d ? `Deliveries to ${d.url}` : 'Deliveries'}
      actions={
        <button type="button" class="small" onClick={details.reload}>
          Refresh
        </button>
      }
    >
      <ErrorNote error={details.error} />
      {d?.failing_since && <p class="error">Failing since {formatTime(d.failing_since)}.</p>}
      {d && d.attempts.length === 0 && <p class="muted">No deliveries yet.</p>}
      {d && d.attempts.length > 0 && (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Batch</th>
                <th scope="col">Status</th>
                <th scope="col">Time</th>
                <th scope="col">Error</th>
              </tr>
            </thead>
            <tbody>
              {d.attempts.map((a, i) => (
                <tr key={i}>
                  <td>{formatTime(a.at)}</td>
                  <td>{a.batch_id}</td>
                  <td>
                    <Status value={a.status >= 200 && a.status < 300 ? 'ok' : 'error'} /> {a.status || '–'}
                  </td>
                  <td>{a.duration_ms} ms</td>
                  <td class="wrap">{a.error ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h3>Replay</h3>
      <form
        class="filters"
        onSubmit={async (e) => {
          e.preventDefault();
          setError(undefined);
          setMessage(undefined);
          const start = rfc3339(from);
          if (!start) {
            setError('Give the start of the range.');
            return;
          }
          const end = rfc3339(to);
          try {
            const r = await post<{ events: number; batches: number; next_from_event_id: number | null }>(
              `/v1/webhooks/${encodeURIComponent(props.id)}/replay`,
              { from: start, ...(end ? { to: end } : {}) },
            );
            setMessage(
              `${r.events} event(s) queued again in ${r.batches} batch(es)` +
                (r.next_from_event_id !== null
                  ? `; more from event ${r.next_from_event_id} (replay again to go on).`
                  : '.'),
            );
            details.reload();
          } catch (err) {
            setError(err instanceof Error ? err.message : String(err));
          }
        }}
      >
        <div class="field">
          <label for="replay-from">From</label>
          <input
            id="replay-from"
            type="datetime-local"
            value={from}
            onInput={(e) => setFrom(e.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="replay-to">To (empty: now)</label>
          <input
            id="replay-to"
            type="datetime-local"
            value={to}
            onInput={(e) => setTo(e.currentTarget.value)}
          />
        </div>
        <button type="submit">Replay</button>
      </form>
      {message && (
        <p class="ok" role="status">
          {message}
        </p>
      )}
      <ErrorNote error={error} />
    </Section>
  );
}
