import { useState } from 'preact/hooks';
import { del, formatTime, get, post, query } from '../api.ts';
import { confirmAction, download, ErrorNote, Loading, Section } from '../components/ui.tsx';
import { useAction, useLoad } from '../hooks.ts';

interface Suppression {
  address: string;
  scope: string;
  reason: string;
  source: string;
  created_at: string;
  expires_at: string | null;
}

/** The suppression list: search, add, remove, CSV import and export (/v1/suppressions). */
export function Suppressions() {
  const [search, setSearch] = useState('');
  const [cursor, setCursor] = useState<string>();
  const list = useLoad(
    () =>
      get<{ data: Suppression[]; next_cursor: string | null }>(
        `/v1/suppressions${query({ address: search || undefined, cursor, limit: 100 })}`,
      ),
    [search, cursor],
  );
  const [address, setAddress] = useState('');
  const [scope, setScope] = useState('');
  const { message, error, run } = useAction(list.reload);
  return (
    <>
      <h1>Suppressions</h1>
      <Section title="Add an address">
        <form
          class="filters"
          onSubmit={(e) => {
            e.preventDefault();
            run(async () => {
              await post('/v1/suppressions', { suppressions: [{ address, ...(scope ? { scope } : {}) }] });
              setAddress('');
              return `${address} is suppressed.`;
            });
          }}
        >
          <div class="field">
            <label for="sup-address">Address</label>
            <input
              id="sup-address"
              type="email"
              required
              value={address}
              onInput={(e) => setAddress(e.currentTarget.value)}
            />
          </div>
          <div class="field">
            <label for="sup-scope">Stream (empty = every stream)</label>
            <input id="sup-scope" value={scope} onInput={(e) => setScope(e.currentTarget.value)} />
          </div>
          <button type="submit">Suppress</button>
        </form>
        <div class="toolbar">
          <label class="button small" for="sup-import">
            Import CSV
          </label>
          <input
            id="sup-import"
            class="visually-hidden"
            type="file"
            accept=".csv,text/csv,text/plain"
            onChange={(e) => {
              const file = e.currentTarget.files?.[0];
              if (!file) return;
              run(async () => {
                const text = await file.text();
                const answer = await post<{ imported: number }>('/v1/suppressions/import', text, {
                  contentType: 'text/csv',
                });
                return `${answer.imported} address(es) imported.`;
              });
              e.currentTarget.value = '';
            }}
          />
          <button
            type="button"
            class="small"
            onClick={() =>
              run(async () => {
                download(
                  'suppressions.csv',
                  await get<string>('/v1/suppressions/export', { text: true }),
                  'text/csv',
                );
                return 'Exported.';
              })
            }
          >
            Export CSV
          </button>
        </div>
        {message && (
          <p role="status" class="ok">
            {message}
          </p>
        )}
        <ErrorNote error={error} />
      </Section>
      <Section title="List">
        <form
          class="filters"
          aria-label="Search suppressions"
          onSubmit={(e) => {
            e.preventDefault();
            setCursor(undefined);
            setSearch(String(new FormData(e.currentTarget).get('q') ?? '').trim());
          }}
        >
          <div class="field">
            <label for="sup-q">Address</label>
            <input id="sup-q" name="q" type="search" />
          </div>
          <button type="submit">Search</button>
        </form>
        <ErrorNote error={list.error} />
        <Loading loading={list.loading && !list.data} />
        {list.data && list.data.data.length === 0 && (
          <p class="muted">No suppressed addresses{search ? ' match' : ''}.</p>
        )}
        {list.data && list.data.data.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Address</th>
                  <th scope="col">Scope</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Since</th>
                  <th scope="col">Expires</th>
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.data.map((s) => (
                  <tr key={`${s.address}|${s.scope}`} data-address={s.address}>
                    <td>{s.address}</td>
                    <td>{s.scope || 'all streams'}</td>
                    <td>
                      {s.reason} <span class="muted">({s.source})</span>
                    </td>
                    <td>{formatTime(s.created_at)}</td>
                    <td>{s.expires_at ? formatTime(s.expires_at) : 'never'}</td>
                    <td>
                      <button
                        type="button"
                        class="small danger"
                        aria-label={`Remove ${s.address}`}
                        onClick={() => {
                          if (!confirmAction(`Remove ${s.address}? Mail to it will be sent again.`)) return;
                          run(async () => {
                            await del(
                              `/v1/suppressions/${encodeURIComponent(s.address)}${query({ scope: s.scope || undefined })}`,
                            );
                            return `${s.address} removed.`;
                          });
                        }}
                      >
                        Remove
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {list.data?.next_cursor && (
          <button type="button" onClick={() => setCursor(list.data?.next_cursor ?? undefined)}>
            More
          </button>
        )}
      </Section>
    </>
  );
}
