import { useState } from 'preact/hooks';
import { del, formatTime, get, post } from '../api.ts';
import { ErrorNote, Loading, RevokeButton, Section, ShownOnce } from '../components/ui.tsx';
import { useAction, useLoad } from '../hooks.ts';

interface Credential {
  id: string;
  kind: 'smtp' | 'ip';
  username?: string;
  cidrs?: string[];
  stream: string;
  created_at: string;
}

/** What a row is called in lists and confirmations. */
const label = (c: Credential) => (c.kind === 'smtp' ? (c.username ?? '') : (c.cidrs ?? []).join(', '));

/**
 * SMTP logins and IP credentials (GET/POST/DELETE /v1/credentials): list without secrets,
 * create (an SMTP password is shown once), revoke. API keys have their own page.
 */
export function Credentials() {
  const list = useLoad(() => get<{ data: Credential[] }>('/v1/credentials'), []);
  const [username, setUsername] = useState('');
  const [cidrs, setCidrs] = useState('');
  const [created, setCreated] = useState<(Credential & { password: string }) | undefined>();
  const { error, run } = useAction(list.reload);
  const create = (body: Record<string, unknown>) =>
    run(async () => {
      const answer = await post<Credential & { password?: string }>('/v1/credentials', body);
      // A new login's password stays on screen (until revoked or replaced by another login's)
      // while networks are added: it cannot be shown again.
      if (answer.password) setCreated({ ...answer, password: answer.password });
    });
  return (
    <>
      <h1>SMTP credentials</h1>
      <Section title="Create an SMTP login">
        <form
          class="filters"
          onSubmit={async (e) => {
            e.preventDefault();
            if (await create({ kind: 'smtp', username: username.trim() })) setUsername('');
          }}
        >
          <label>
            Username{' '}
            <input
              name="username"
              required
              maxLength={128}
              value={username}
              onInput={(e) => setUsername(e.currentTarget.value)}
            />
          </label>
          <button type="submit">Create login</button>
        </form>
      </Section>
      <Section title="Allow client networks (IP credential)">
        <form
          class="filters"
          onSubmit={async (e) => {
            e.preventDefault();
            const list = cidrs
              .split(/[\s,]+/)
              .map((c) => c.trim())
              .filter(Boolean);
            if (await create({ kind: 'ip', cidrs: list })) setCidrs('');
          }}
        >
          <label>
            CIDRs{' '}
            <input
              name="cidrs"
              required
              placeholder="192.0.2.0/24, 2001:db8::/32"
              value={cidrs}
              onInput={(e) => setCidrs(e.currentTarget.value)}
            />
          </label>
          <button type="submit">Add networks</button>
        </form>
      </Section>
      <ErrorNote error={error} />
      {created && (
        <ShownOnce
          what={`the password of ${created.username}`}
          secret={created.password}
          testId="new-smtp-password"
        />
      )}
      <Section title="Active credentials">
        <ErrorNote error={list.error} />
        <Loading loading={list.loading && !list.data} />
        {list.data && list.data.data.length === 0 && <p class="muted">No SMTP logins or IP credentials.</p>}
        {list.data && list.data.data.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Kind</th>
                  <th scope="col">Username / networks</th>
                  <th scope="col">Stream</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.data.map((c) => (
                  <tr key={c.id} data-credential={label(c)}>
                    <td>{c.kind === 'smtp' ? 'SMTP login' : 'IP'}</td>
                    <td class="mono">{label(c)}</td>
                    <td>{c.stream}</td>
                    <td>{formatTime(c.created_at)}</td>
                    <td>
                      <RevokeButton
                        name={label(c)}
                        consequence="Clients using it stop relaying at once."
                        onRevoke={() =>
                          run(async () => {
                            await del(`/v1/credentials/${encodeURIComponent(c.id)}`);
                            if (created?.id === c.id) setCreated(undefined);
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
