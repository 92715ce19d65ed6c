import { useState } from 'preact/hooks';
import { del, formatTime, get, post } from '../api.ts';
import { ErrorNote, Loading, RevokeButton, Section, ShownOnce } from '../components/ui.tsx';
import { useAction, useLoad } from '../hooks.ts';

interface Key {
  id: string;
  prefix: string;
  scopes: string[];
  stream: string;
  created_at: string;
}

const SCOPES = ['send', 'read', 'admin'];

/** API keys: list, create (the secret is shown once), revoke (GET/POST/DELETE /v1/keys). */
export function Keys() {
  const keys = useLoad(() => get<{ data: Key[] }>('/v1/keys'), []);
  const [scopes, setScopes] = useState<string[]>(['send', 'read']);
  const [created, setCreated] = useState<(Key & { secret: string }) | undefined>();
  const { error, run } = useAction(keys.reload);
  return (
    <>
      <h1>API keys</h1>
      <Section title="Create a key">
        <form
          class="filters"
          onSubmit={async (e) => {
            e.preventDefault();
            await run(async () => {
              setCreated(await post<Key & { secret: string }>('/v1/keys', { scopes }));
            });
          }}
        >
          <fieldset>
            <legend>Scopes</legend>
            {SCOPES.map((s) => (
              <label key={s} class="inline">
                <input
                  type="checkbox"
                  name="scope"
                  value={s}
                  checked={scopes.includes(s)}
                  onChange={(e) =>
                    setScopes(e.currentTarget.checked ? [...scopes, s] : scopes.filter((x) => x !== s))
                  }
                />{' '}
                {s}
              </label>
            ))}
          </fieldset>
          <button type="submit" disabled={scopes.length === 0}>
            Create key
          </button>
        </form>
        <ErrorNote error={error} />
        {created && <ShownOnce what="the key" secret={created.secret} testId="new-key-secret" />}
      </Section>
      <Section title="Active keys">
        <ErrorNote error={keys.error} />
        <Loading loading={keys.loading && !keys.data} />
        {keys.data && keys.data.data.length === 0 && <p class="muted">No active keys.</p>}
        {keys.data && keys.data.data.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Key</th>
                  <th scope="col">Scopes</th>
                  <th scope="col">Stream</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {keys.data.data.map((k) => (
                  <tr key={k.id} data-key={k.prefix}>
                    <td class="mono">{k.prefix}…</td>
                    <td>{k.scopes.join(', ')}</td>
                    <td>{k.stream}</td>
                    <td>{formatTime(k.created_at)}</td>
                    <td>
                      <RevokeButton
                        name={k.prefix}
                        consequence="Clients using it stop working at once."
                        onRevoke={() =>
                          run(async () => {
                            await del(`/v1/keys/${encodeURIComponent(k.id)}`);
                            if (created?.id === k.id) setCreated(undefined);
                          })
                        }
                      />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
    </>
  );
}
