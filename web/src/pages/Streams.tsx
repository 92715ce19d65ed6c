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

/** GET /v1/delivery: the configured pools and routes the account's streams use (no credentials). */
interface Delivery {
  streams: { name: string; pool: string; routes: string[] }[];
  pools: {
    name: string;
    sources: { name: string; weight: number; addresses: string[]; ehlo: string; warming_up: boolean }[];
  }[];
  routes: {
    name: string;
    via: 'mx' | 'smarthost' | 'hold';
    match?: { domains?: string[]; streams?: string[]; accounts_only?: boolean };
    smarthost?: { host: string; port: number; tls: string; authenticated: boolean };
    fallback: string[];
  }[];
}

/** A route's match in words. */
function matchText(m: NonNullable<Delivery['routes'][number]['match']>): string {
  const parts = [
    m.domains ? `domains ${m.domains.join(', ')}` : '',
    m.streams ? `streams ${m.streams.join(', ')}` : '',
    m.accounts_only ? 'this account' : '',
  ].filter(Boolean);
  return parts.length ? parts.join('; ') : 'all mail';
}

/** A smarthost as host:port (IPv6 in brackets), never its login. */
function hostPort(h: { host: string; port: number }): string {
  return `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`;
}

const SWITCHES: [Switch, string][] = [
  ['opens', 'Opens (pixel)'],
  ['clicks', 'Clicks (tracked links)'],
  ['text_links', 'Links in text parts'],
  ['list_unsubscribe', 'List-Unsubscribe'],
];

/**
 * Streams with kind, pool and tracking (/v1/streams); the tracking switches are editable
 * (PATCH), kind and pool are the operator's (`postbote streams`). The pools and routes the
 * streams use are shown read-only from the configuration (/v1/delivery): addresses, EHLO names,
 * smarthost host:port, never a login.
 */
export function Streams(props: { canEdit: boolean }) {
  const list = useLoad(() => get<{ data: Stream[] }>('/v1/streams'), []);
  const delivery = useLoad(() => get<Delivery>('/v1/delivery'), []);
  const route = (name: string) => delivery.data?.streams.find((d) => d.name === name);
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
            <dd>
              {route(s.name)?.pool ?? s.pool ?? 'the default'}
              {s.pool === null && <span class="muted"> (the default of {s.kind} mail)</span>}
            </dd>
            <dt>Routes</dt>
            <dd>{route(s.name)?.routes.join(', ') || 'MX (direct)'}</dd>
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
      <ErrorNote error={delivery.error} />
      {delivery.data && (
        <Section title="Egress pools">
          <div class="table-wrap">
            <table data-testid="pools">
              <thead>
                <tr>
                  <th scope="col">Pool</th>
                  <th scope="col">Source</th>
                  <th scope="col">Addresses</th>
                  <th scope="col">EHLO name</th>
                  <th scope="col">Weight</th>
                </tr>
              </thead>
              <tbody>
                {delivery.data.pools.flatMap((p) =>
                  p.sources.map((src) => (
                    <tr key={`${p.name}/${src.name}`} data-pool={p.name}>
                      <td>{p.name}</td>
                      <td class="mono">
                        {src.name}
                        {src.warming_up && <span class="muted"> (warming up)</span>}
                      </td>
                      <td class="mono">{src.addresses.join(', ') || '(the OS chooses)'}</td>
                      <td class="mono">{src.ehlo}</td>
                      <td>{src.weight}</td>
                    </tr>
                  )),
                )}
              </tbody>
            </table>
          </div>
        </Section>
      )}
      {delivery.data && (
        <Section title="Routes">
          {delivery.data.routes.length === 0 ? (
            <p class="muted">No routes apply: mail goes to each domain's MX.</p>
          ) : (
            <div class="table-wrap">
              <table data-testid="routes">
                <thead>
                  <tr>
                    <th scope="col">Route</th>
                    <th scope="col">Matches</th>
                    <th scope="col">Delivers via</th>
                    <th scope="col">Fallback</th>
                  </tr>
                </thead>
                <tbody>
                  {delivery.data.routes.map((r) => (
                    <tr key={r.name} data-route={r.name}>
                      <td>{r.name}</td>
                      <td>{r.match ? matchText(r.match) : 'only as a fallback'}</td>
                      <td class="mono">
                        {r.via === 'smarthost' && r.smarthost
                          ? `smarthost ${hostPort(r.smarthost)} (${r.smarthost.tls}${r.smarthost.authenticated ? ', logs in' : ''})`
                          : r.via === 'hold'
                            ? 'hold'
                            : 'MX'}
                      </td>
                      <td>{r.fallback.join(', ') || '—'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </Section>
      )}
      <p class="muted small-print">
        Kinds, pools and routes are configuration: <code>postbote streams create</code>, the{' '}
        <code>egress</code> and <code>routes</code> sections of the config file. Smarthost logins are not
        shown.
      </p>
    </>
  );
}
