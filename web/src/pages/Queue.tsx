import { useState } from 'preact/hooks';
import { formatTime, get, post, query } from '../api.ts';
import { confirmAction, ErrorNote, Loading, Section, Status } from '../components/ui.tsx';
import { useLoad } from '../hooks.ts';

interface Reason {
  text: string;
  count: number;
}
export interface QueueView {
  at: string;
  totals: { queued: number; deferred: number; delivering: number; held: number };
  domains: {
    domain: string;
    queued: number;
    deferred: number;
    delivering: number;
    oldest_at: string | null;
    reasons: Reason[];
  }[];
  sites: {
    site: string;
    provider: string | null;
    ready: number;
    scheduled: number;
    delivering: number;
    domains: number;
    oldest_at: string | null;
    reasons: Reason[];
  }[];
  held: { stream: string; reason: string; count: number }[];
  in_force: {
    kind: string;
    rule: string;
    state: string;
    site: string | null;
    stream: string | null;
    rate: string | null;
    until: string | null;
    reply: string;
  }[];
}
interface MessageRow {
  id: string;
  subject: string | null;
  created_at?: string;
  received_at?: string;
  recipients: { email: string; status: string }[];
}

type Action = 'retry' | 'hold' | 'release' | 'delete';
const VERBS: Record<Action, string> = {
  retry: 'Retry now',
  hold: 'Hold',
  release: 'Release',
  delete: 'Delete',
};
/** What the confirmation says each action does. */
const EFFECT: Record<Action, string> = {
  retry: 'be attempted now (held ones are released too)',
  hold: 'be held: nothing is sent until you release them',
  release: 'be released and attempted now',
  delete: 'be cancelled and never sent. This cannot be undone',
};

const WAITING = ['held', 'deferred', 'queued'] as const;

/** The account's queue (/v1/queue) with retry, hold, release and delete, each confirmed first. */
export function Queue(props: { canAct: boolean }) {
  const queue = useLoad(() => get<QueueView>('/v1/queue'), []);
  const [status, setStatus] = useState<(typeof WAITING)[number]>('held');
  const messages = useLoad(
    () => get<{ data: MessageRow[] }>(`/v1/messages${query({ status, limit: 25 })}`),
    [status],
  );
  const [message, setMessage] = useState<string>();
  const [error, setError] = useState<string>();

  const act = async (action: Action, target: { domain: string } | { message_id: string }, label: string) => {
    if (
      !confirmAction(`${VERBS[action]}: the waiting recipients of ${label} will ${EFFECT[action]}. Continue?`)
    )
      return;
    setError(undefined);
    setMessage(undefined);
    try {
      const r = await post<{ recipients: number }>(`/v1/queue/${action}`, target);
      setMessage(`${VERBS[action]} ${label}: ${r.recipients} recipient(s).`);
      queue.reload();
      messages.reload();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  const actions = (target: { domain: string } | { message_id: string }, label: string, held: boolean) =>
    props.canAct && (
      <div class="toolbar">
        {(['retry', held ? 'release' : 'hold', 'delete'] as Action[]).map((a) => (
          <button
            type="button"
            key={a}
            class={`small${a === 'delete' ? ' danger' : ''}`}
            aria-label={`${VERBS[a]} ${label}`}
            onClick={() => act(a, target, label)}
          >
            {VERBS[a]}
          </button>
        ))}
      </div>
    );

  const q = queue.data;
  return (
    <>
      <div class="page-head">
        <h1>Queue</h1>
        <button type="button" class="small" onClick={() => queue.reload()}>
          Refresh
        </button>
      </div>
      <ErrorNote error={queue.error ?? error} />
      {message && (
        <p class="ok" role="status">
          {message}
        </p>
      )}
      <Loading loading={queue.loading && !q} />
      {q && (
        <dl class="figures" aria-label="Queue totals">
          {(['queued', 'deferred', 'delivering', 'held'] as const).map((k) => (
            <div key={k} data-figure={k}>
              <dt>{k[0]?.toUpperCase() + k.slice(1)}</dt>
              <dd>{q.totals[k]}</dd>
            </div>
          ))}
        </dl>
      )}
      {q && q.in_force.length > 0 && (
        <Section title="Throttles in force">
          <ul class="plain">
            {q.in_force.map((f, i) => (
              <li key={i}>
                <Status value={f.kind} /> <strong>{f.rule}</strong> {f.state} at{' '}
                {f.site ?? f.stream ?? 'the account'}
                {f.rate ? `, ${f.rate}` : ''} until {formatTime(f.until)}
                {f.reply && <div class="reply mono">{f.reply}</div>}
              </li>
            ))}
          </ul>
        </Section>
      )}
      {q && q.held.length > 0 && (
        <Section title="Held">
          <ul class="plain">
            {q.held.map((h) => (
              <li key={`${h.stream}/${h.reason}`}>
                {h.count} in stream <strong>{h.stream}</strong>, held because: {h.reason}
                {h.reason === 'paused' && ' (released when sending is resumed)'}
              </li>
            ))}
          </ul>
        </Section>
      )}
      <Section title="By recipient domain">
        {q && q.domains.length === 0 && <p class="muted">Nothing waiting.</p>}
        {q && q.domains.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Domain</th>
                  <th scope="col">Queued</th>
                  <th scope="col">Deferred</th>
                  <th scope="col">Delivering</th>
                  <th scope="col">Oldest</th>
                  <th scope="col">Deferred because</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {q.domains.map((d) => (
                  <tr key={d.domain}>
                    <th scope="row">{d.domain}</th>
                    <td>{d.queued}</td>
                    <td>{d.deferred}</td>
                    <td>{d.delivering}</td>
                    <td>{formatTime(d.oldest_at)}</td>
                    <td>
                      {d.reasons.map((r) => (
                        <div class="reply mono" key={r.text}>
                          {r.count}× {r.text}
                        </div>
                      ))}
                    </td>
                    <td>{actions({ domain: d.domain }, d.domain, false)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
      <Section title="By site (mailbox provider or MX)">
        {q && q.sites.length === 0 && <p class="muted">Nothing waiting.</p>}
        {q && q.sites.length > 0 && (
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Site</th>
                  <th scope="col">Ready</th>
                  <th scope="col">Scheduled</th>
                  <th scope="col">Delivering</th>
                  <th scope="col">Domains</th>
                  <th scope="col">Deferred because</th>
                </tr>
              </thead>
              <tbody>
                {q.sites.map((s) => (
                  <tr key={s.site}>
                    <th scope="row">{s.provider ?? (s.site || 'not attempted yet')}</th>
                    <td>{s.ready}</td>
                    <td>{s.scheduled}</td>
                    <td>{s.delivering}</td>
                    <td>{s.domains}</td>
                    <td>
                      {s.reasons.map((r) => (
                        <div class="reply mono" key={r.text}>
                          {r.count}× {r.text}
                        </div>
                      ))}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
      <Section
        title="Waiting messages"
        actions={
          <fieldset aria-label="Which messages" class="toolbar group">
            {WAITING.map((s) => (
              <button
                type="button"
                class="small"
                key={s}
                aria-pressed={status === s}
                onClick={() => setStatus(s)}
              >
                {s}
              </button>
            ))}
          </fieldset>
        }
      >
        <ErrorNote error={messages.error} />
        {messages.data && messages.data.data.length === 0 && <p class="muted">No {status} messages.</p>}
        <ul class="plain">
          {messages.data?.data.map((m) => (
            <li key={m.id}>
              <a href={`#/messages/${encodeURIComponent(m.id)}`}>{m.subject || m.id}</a>{' '}
              <span class="muted">
                {m.recipients
                  .filter((r) => r.status === status)
                  .map((r) => r.email)
                  .join(', ')}
              </span>
              {actions({ message_id: m.id }, `message ${m.subject || m.id}`, status === 'held')}
            </li>
          ))}
        </ul>
        <p class="muted small-print">The newest 25; Activity searches them all.</p>
      </Section>
    </>
  );
}
