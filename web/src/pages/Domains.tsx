import { useState } from 'preact/hooks';
import { del, formatTime, get, post } from '../api.ts';
import { CopyButton, confirmAction, ErrorNote, Loading, Section, Status } from '../components/ui.tsx';
import { navigate, useLoad } from '../hooks.ts';

interface Domain {
  domain: string;
  verified: boolean;
  checked_at: string | null;
  dkim: { selector: string; algorithm: string; state: string }[];
}
interface DnsRecord {
  type: string;
  name: string;
  value: string;
  priority?: number;
  purpose: string;
}
interface Check {
  record: string;
  name: string;
  status: string;
  explanation: string;
  fix?: string;
}
interface DomainDetails extends Domain {
  records: DnsRecord[];
  checks: Check[];
}

/** Sending domains: the records to publish (copy buttons) and each check with its fix. */
export function Domains(props: { params: URLSearchParams }) {
  const selected = props.params.get('domain');
  const list = useLoad(() => get<{ data: Domain[] }>('/v1/domains'), []);
  const [name, setName] = useState('');
  const [error, setError] = useState<string>();
  return (
    <>
      <h1>Domains</h1>
      <Section title="Sending domains">
        <ErrorNote error={list.error} />
        <Loading loading={list.loading && !list.data} />
        {list.data && list.data.data.length === 0 && <p class="muted">No sending domains yet.</p>}
        <ul class="plain">
          {list.data?.data.map((d) => (
            <li key={d.domain}>
              <a
                href={`#/domains?domain=${encodeURIComponent(d.domain)}`}
                aria-current={selected === d.domain}
              >
                {d.domain}
              </a>{' '}
              <Status value={d.verified ? 'verified' : 'unverified'} />{' '}
              <span class="muted">checked {formatTime(d.checked_at)}</span>
            </li>
          ))}
        </ul>
        <form
          class="filters"
          onSubmit={async (e) => {
            e.preventDefault();
            setError(undefined);
            try {
              await post('/v1/domains', { domain: name });
              list.reload();
              navigate(`/domains?domain=${encodeURIComponent(name.trim().toLowerCase())}`);
              setName('');
            } catch (err) {
              setError(err instanceof Error ? err.message : String(err));
            }
          }}
        >
          <div class="field">
            <label for="domain-name">Add a domain</label>
            <input id="domain-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </div>
          <button type="submit">Add</button>
        </form>
        <ErrorNote error={error} />
      </Section>
      {selected && (
        <DomainChecks
          key={selected}
          domain={selected}
          onChecked={list.reload}
          onDeleted={() => {
            list.reload();
            navigate('/domains');
          }}
        />
      )}
    </>
  );
}

function DomainChecks(props: { domain: string; onChecked: () => void; onDeleted: () => void }) {
  const [message, setMessage] = useState<string>();
  const [error, setError] = useState<string>();
  const rotate = async () => {
    if (
      !confirmAction(
        `Start a DKIM key rotation for ${props.domain}? A new key signs beside the current one; publish its record, and the next check makes it the key.`,
      )
    )
      return;
    setError(undefined);
    try {
      const r = await post<{ rotated: { selector: string }[] }>(
        `/v1/domains/${encodeURIComponent(props.domain)}/rotate-dkim`,
      );
      setMessage(`New DKIM key ${r.rotated.map((k) => k.selector).join(', ')}: publish its record below.`);
      details.reload();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  const remove = async () => {
    if (!confirmAction(`Delete ${props.domain} and its DKIM keys? Mail from it is refused afterwards.`))
      return;
    setError(undefined);
    try {
      await del(`/v1/domains/${encodeURIComponent(props.domain)}`);
      props.onDeleted();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  // GET /v1/domains/{domain} runs the DNS checks live: "Check now" is a reload.
  const details = useLoad(async () => {
    const d = await get<DomainDetails>(`/v1/domains/${encodeURIComponent(props.domain)}`);
    props.onChecked();
    return d;
  }, [props.domain]);
  const d = details.data;
  return (
    <Section
      title={props.domain}
      actions={
        <div class="toolbar">
          <button type="button" class="small" onClick={details.reload} disabled={details.loading}>
            {details.loading ? 'Checking…' : 'Check now'}
          </button>
          <button type="button" class="small" onClick={rotate}>
            Rotate DKIM key
          </button>
          <button type="button" class="small danger" onClick={remove}>
            Delete domain
          </button>
        </div>
      }
    >
      <ErrorNote error={details.error ?? error} />
      {message && (
        <p class="ok" role="status">
          {message}
        </p>
      )}
      {d && (
        <>
          <h3>Records to publish</h3>
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Type</th>
                  <th scope="col">Name</th>
                  <th scope="col">Value</th>
                  <th scope="col">Purpose</th>
                </tr>
              </thead>
              <tbody>
                {d.records.map((r, i) => (
                  <tr key={i}>
                    <td>{r.type}</td>
                    <td class="mono">
                      {r.name} <CopyButton text={r.name} label="Copy name" />
                    </td>
                    <td class="mono wrap">
                      {r.priority !== undefined ? `${r.priority} ` : ''}
                      {r.value} <CopyButton text={r.value} label="Copy value" />
                    </td>
                    <td>{r.purpose}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <h3>Checks</h3>
          <ul class="checks">
            {d.checks.map((c, i) => (
              <li key={i}>
                <Status value={c.status} /> <strong>{c.record}</strong> <span class="mono">{c.name}</span>
                <p>{c.explanation}</p>
                {c.fix && (
                  <p>
                    Fix: <span class="mono wrap">{c.fix}</span> <CopyButton text={c.fix} />
                  </p>
                )}
              </li>
            ))}
          </ul>
          <p class="muted small-print">
            DKIM keys: {d.dkim.map((k) => `${k.selector} (${k.algorithm}, ${k.state})`).join('; ') || 'none'}.
          </p>
        </>
      )}
    </Section>
  );
}
