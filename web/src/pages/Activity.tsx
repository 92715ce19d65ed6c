import { PUBLIC_EVENT_TYPES } from '../../../src/events/types.ts';
import { formatTime, get, query } from '../api.ts';
import { ErrorNote, Loading, Section, Status } from '../components/ui.tsx';
import { navigate, useLoad } from '../hooks.ts';

interface MessageItem {
  id: string;
  from: string;
  subject: string;
  stream: string;
  tags: string[];
  received_at: string;
  recipients: { email: string; status: string }[];
}
interface EventItem {
  id?: string;
  type: string;
  at: string;
  message_id?: string;
  recipient?: string;
  stream?: string;
  data?: Record<string, unknown>;
}

const STATUSES = [
  '',
  'queued',
  'delivering',
  'delivered',
  'deferred',
  'bounced',
  'expired',
  'suppressed',
  'held',
  'cancelled',
];
const EVENT_TYPES = ['', ...PUBLIC_EVENT_TYPES];

/** Search messages (GET /v1/messages) and events (GET /v1/events); filters live in the URL. */
export function Activity(props: { params: URLSearchParams }) {
  const tab = props.params.get('tab') === 'events' ? 'events' : 'messages';
  const set = (changes: Record<string, string>) => {
    const p = new URLSearchParams(props.params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) p.set(k, v);
      else p.delete(k);
    }
    navigate(`/activity?${p.toString()}`);
  };
  return (
    <>
      <div class="page-head">
        <h1>Activity</h1>
        <div role="tablist" class="toolbar" aria-label="What to search">
          <button
            type="button"
            role="tab"
            class="small"
            aria-selected={tab === 'messages'}
            onClick={() => set({ tab: '' })}
          >
            Messages
          </button>
          <button
            type="button"
            role="tab"
            class="small"
            aria-selected={tab === 'events'}
            onClick={() => set({ tab: 'events' })}
          >
            Events
          </button>
        </div>
      </div>
      {tab === 'messages' ? (
        <Messages params={props.params} set={set} />
      ) : (
        <Events params={props.params} set={set} />
      )}
    </>
  );
}

type Setter = (changes: Record<string, string>) => void;

function Filters(props: { fields: [string, string, string[]?][]; params: URLSearchParams; set: Setter }) {
  return (
    <form
      class="filters"
      onSubmit={(e) => {
        e.preventDefault();
        const data = new FormData(e.currentTarget);
        const changes: Record<string, string> = { cursor: '' };
        for (const [name] of props.fields) changes[name] = String(data.get(name) ?? '').trim();
        props.set(changes);
      }}
    >
      {props.fields.map(([name, label, options]) => (
        <div class="field" key={name}>
          <label for={`f-${name}`}>{label}</label>
          {options ? (
            <select id={`f-${name}`} name={name} value={props.params.get(name) ?? ''}>
              {options.map((o) => (
                <option value={o} key={o}>
                  {o || 'any'}
                </option>
              ))}
            </select>
          ) : (
            <input id={`f-${name}`} name={name} value={props.params.get(name) ?? ''} />
          )}
        </div>
      ))}
      <button type="submit">Search</button>
    </form>
  );
}

function Messages(props: { params: URLSearchParams; set: Setter }) {
  const p = props.params;
  const key = ['recipient', 'subject', 'status', 'tag', 'cursor'].map((k) => p.get(k) ?? '').join('|');
  const list = useLoad(
    () =>
      get<{ data: MessageItem[]; next_cursor: string | null }>(
        `/v1/messages${query({
          recipient: p.get('recipient') ?? undefined,
          subject: p.get('subject') ?? undefined,
          status: p.get('status') ?? undefined,
          tag: p.get('tag') ?? undefined,
          cursor: p.get('cursor') ?? undefined,
          limit: 50,
        })}`,
      ),
    [key],
  );
  return (
    <Section
      title="Messages"
      actions={
        <button type="button" class="small" onClick={list.reload}>
          Refresh
        </button>
      }
    >
      <Filters
        params={p}
        set={props.set}
        fields={[
          ['recipient', 'Recipient'],
          ['subject', 'Subject contains'],
          ['status', 'Status', STATUSES],
          ['tag', 'Tag'],
        ]}
      />
      <ErrorNote error={list.error} />
      <Loading loading={list.loading} />
      {list.data && list.data.data.length === 0 && <p class="muted">No messages match.</p>}
      {list.data && list.data.data.length > 0 && (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Received</th>
                <th scope="col">Subject</th>
                <th scope="col">Recipients</th>
                <th scope="col">Stream</th>
              </tr>
            </thead>
            <tbody>
              {list.data.data.map((m) => (
                <tr key={m.id}>
                  <td>{formatTime(m.received_at)}</td>
                  <td>
                    <a href={`#/messages/${encodeURIComponent(m.id)}`}>{m.subject || '(no subject)'}</a>
                    <div class="muted">{m.from}</div>
                  </td>
                  <td>
                    {m.recipients.slice(0, 3).map((r) => (
                      <div key={r.email}>
                        {r.email} <Status value={r.status} />
                      </div>
                    ))}
                    {m.recipients.length > 3 && <div class="muted">+{m.recipients.length - 3} more</div>}
                  </td>
                  <td>{m.stream}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {list.data?.next_cursor && (
        <button type="button" onClick={() => props.set({ cursor: list.data?.next_cursor ?? '' })}>
          Older
        </button>
      )}
    </Section>
  );
}

function Events(props: { params: URLSearchParams; set: Setter }) {
  const p = props.params;
  const key = ['type', 'recipient', 'tag', 'stream', 'from', 'to', 'cursor']
    .map((k) => p.get(k) ?? '')
    .join('|');
  const list = useLoad(
    () =>
      get<{ data: EventItem[]; next_cursor: string | null }>(
        `/v1/events${query({
          type: p.get('type') ?? undefined,
          recipient: p.get('recipient') ?? undefined,
          tag: p.get('tag') ?? undefined,
          stream: p.get('stream') ?? undefined,
          from: p.get('from') ?? undefined,
          to: p.get('to') ?? undefined,
          cursor: p.get('cursor') ?? undefined,
          limit: 100,
        })}`,
      ),
    [key],
  );
  return (
    <Section
      title="Events"
      actions={
        <button type="button" class="small" onClick={list.reload}>
          Refresh
        </button>
      }
    >
      <Filters
        params={p}
        set={props.set}
        fields={[
          ['type', 'Type', EVENT_TYPES],
          ['recipient', 'Recipient'],
          ['tag', 'Tag'],
          ['stream', 'Stream'],
          ['from', 'From (date or time)'],
          ['to', 'To'],
        ]}
      />
      <ErrorNote error={list.error} />
      <Loading loading={list.loading} />
      {list.data && list.data.data.length === 0 && <p class="muted">No events match.</p>}
      {list.data && list.data.data.length > 0 && (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Event</th>
                <th scope="col">Recipient</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {list.data.data.map((e, i) => (
                <tr key={e.id ?? i}>
                  <td>{formatTime(e.at)}</td>
                  <td>
                    <Status value={e.type} />
                  </td>
                  <td>
                    {e.message_id ? (
                      <a href={`#/messages/${encodeURIComponent(e.message_id)}`}>
                        {e.recipient ?? e.message_id}
                      </a>
                    ) : (
                      e.recipient
                    )}
                  </td>
                  <td class="mono">{replyText(e.data)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {list.data?.next_cursor && (
        <button type="button" onClick={() => props.set({ cursor: list.data?.next_cursor ?? '' })}>
          Older
        </button>
      )}
    </Section>
  );
}

/** The remote reply of an attempt, as one line. */
export function replyText(data: Record<string, unknown> | undefined): string {
  if (!data) return '';
  const reply = data.reply as { code?: number; enhanced?: string; text?: string } | undefined;
  if (reply && typeof reply === 'object')
    return [reply.code, reply.enhanced, reply.text].filter((x) => x !== undefined && x !== '').join(' ');
  const response = data.response;
  if (typeof response === 'string') return response;
  if (typeof data.url === 'string') return data.url;
  return '';
}
