import { useState } from 'preact/hooks';
import { formatTime, get } from '../api.ts';
import { MessagePreview } from '../components/MessagePreview.tsx';
import { ErrorNote, Loading, Section, Status } from '../components/ui.tsx';
import { useLoad } from '../hooks.ts';
import { replyText } from './Activity.tsx';

interface Details {
  id: string;
  from: string;
  subject: string;
  message_id: string;
  stream: string;
  tags: string[];
  metadata: Record<string, string>;
  size: number;
  source: string;
  received_at: string;
  recipients: { id: string; email: string; status: string; attempts: number; next_attempt_at?: string }[];
  events: { type: string; at: string; recipient?: string; data: Record<string, unknown> }[];
}
interface Content {
  headers: [string, string][];
  text: string | null;
  html: string | null;
  body_purged: boolean;
  truncated: boolean;
}

/** One message: recipients, the event timeline with each attempt's reply, headers and content. */
export function Message(props: { id: string }) {
  const details = useLoad(() => get<Details>(`/v1/messages/${encodeURIComponent(props.id)}`), [props.id]);
  const content = useLoad(
    () => get<Content>(`/v1/messages/${encodeURIComponent(props.id)}/content`),
    [props.id],
  );
  const [showHeaders, setShowHeaders] = useState(false);
  const m = details.data;
  return (
    <>
      <p>
        <a href="#/activity">← Activity</a>
      </p>
      <ErrorNote error={details.error} />
      <Loading loading={details.loading} />
      {m && (
        <>
          <h1>{m.subject || '(no subject)'}</h1>
          <dl class="facts">
            <dt>From</dt>
            <dd>{m.from}</dd>
            <dt>Received</dt>
            <dd>{formatTime(m.received_at)}</dd>
            <dt>Stream</dt>
            <dd>{m.stream}</dd>
            <dt>Message-ID</dt>
            <dd class="mono">{m.message_id}</dd>
            <dt>Postbote id</dt>
            <dd class="mono">{m.id}</dd>
            {m.tags.length > 0 && (
              <>
                <dt>Tags</dt>
                <dd>{m.tags.join(', ')}</dd>
              </>
            )}
          </dl>
          <Section title="Recipients">
            <ul class="plain">
              {m.recipients.map((r) => (
                <li key={r.id}>
                  {r.email} <Status value={r.status} /> <span class="muted">{r.attempts} attempt(s)</span>
                  {r.next_attempt_at && <span class="muted"> · next {formatTime(r.next_attempt_at)}</span>}
                </li>
              ))}
            </ul>
          </Section>
          <Section title="Timeline">
            <ol class="timeline">
              {m.events.map((e, i) => (
                <li key={i}>
                  <time>{formatTime(e.at)}</time> <Status value={e.type} />{' '}
                  {e.recipient && <span>{e.recipient}</span>}
                  {replyText(e.data) && <div class="mono reply">{replyText(e.data)}</div>}
                  {typeof e.data.mx === 'string' && <div class="muted">via {e.data.mx}</div>}
                </li>
              ))}
            </ol>
          </Section>
        </>
      )}
      <Section
        title="Content"
        actions={
          <button
            type="button"
            class="small"
            aria-expanded={showHeaders}
            onClick={() => setShowHeaders(!showHeaders)}
          >
            {showHeaders ? 'Hide headers' : 'Show headers'}
          </button>
        }
      >
        <ErrorNote error={content.error} />
        {content.data?.body_purged && <p class="muted">The content was deleted by the retention policy.</p>}
        {content.data && showHeaders && (
          <div class="table-wrap">
            <table class="headers">
              <tbody>
                {content.data.headers.map(([name, value], i) => (
                  <tr key={i}>
                    <th scope="row">{name}</th>
                    <td class="mono">{value}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {content.data && !content.data.body_purged && (
          <MessagePreview html={content.data.html} text={content.data.text} />
        )}
        {content.data?.truncated && <p class="muted">Long parts are shown shortened.</p>}
      </Section>
    </>
  );
}
