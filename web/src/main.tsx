import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { get, post, type SessionInfo, setSession, whenSessionEnds } from './api.ts';
import { useRoute } from './hooks.ts';
import { Activity } from './pages/Activity.tsx';
import { Credentials } from './pages/Credentials.tsx';
import { Domains } from './pages/Domains.tsx';
import { Keys } from './pages/Keys.tsx';
import { Login } from './pages/Login.tsx';
import { Message } from './pages/Message.tsx';
import { Overview } from './pages/Overview.tsx';
import { Queue } from './pages/Queue.tsx';
import { Streams } from './pages/Streams.tsx';
import { Suppressions } from './pages/Suppressions.tsx';
import { Templates } from './pages/Templates.tsx';
import { Webhooks } from './pages/Webhooks.tsx';
import './style.css';

const NAV: [string, string][] = [
  ['/overview', 'Overview'],
  ['/activity', 'Activity'],
  ['/queue', 'Queue'],
  ['/domains', 'Domains'],
  ['/streams', 'Streams'],
  ['/templates', 'Templates'],
  ['/suppressions', 'Suppressions'],
  ['/keys', 'API keys'],
  ['/credentials', 'SMTP credentials'],
  ['/webhooks', 'Webhooks'],
];

function Page(props: { path: string; params: URLSearchParams; session: SessionInfo }) {
  const message = /^\/messages\/(.+)$/.exec(props.path);
  if (message?.[1]) return <Message id={decodeURIComponent(message[1])} />;
  switch (props.path) {
    case '/activity':
      return <Activity params={props.params} />;
    case '/queue':
      return <Queue canAct={props.session.scopes.includes('admin')} />;
    case '/domains':
      return <Domains params={props.params} />;
    case '/streams':
      return <Streams canEdit={props.session.scopes.includes('admin')} />;
    case '/templates':
      return <Templates params={props.params} />;
    case '/suppressions':
      return <Suppressions />;
    case '/keys':
      return <Keys />;
    case '/credentials':
      return <Credentials />;
    case '/webhooks':
      return <Webhooks params={props.params} />;
    default:
      return <Overview accountId={props.session.account.id} />;
  }
}

function App() {
  const [session, setState] = useState<SessionInfo | null | undefined>(undefined);
  const [ended, setEnded] = useState(false);
  const route = useRoute();
  const use = (s: SessionInfo | null) => {
    setSession(s ?? undefined);
    setState(s);
  };
  useEffect(() => {
    whenSessionEnds(() => {
      setEnded(true);
      use(null);
    });
    get<SessionInfo>('/auth/session').then(use, () => use(null));
  }, []);
  useEffect(() => {
    const title = NAV.find(([p]) => route.path.startsWith(p))?.[1] ?? 'Message';
    document.title = `${title} · Postbote`;
  }, [route.path]);

  if (session === undefined) return <p aria-live="polite">Loading…</p>;
  if (session === null)
    return (
      <Login
        ended={ended}
        onLogin={(s) => {
          setEnded(false);
          use(s);
        }}
      />
    );
  return (
    <>
      <button
        type="button"
        class="skip"
        onClick={(e) => {
          e.preventDefault();
          document.getElementById('main')?.focus();
        }}
      >
        Skip to content
      </button>
      <header class="top">
        <span class="brand">Postbote</span>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([path, label]) => (
              <li key={path}>
                <a href={`#${path}`} aria-current={route.path.startsWith(path) ? 'page' : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span>
            {session.user.email} · {session.account.name} ({session.user.role})
          </span>
          <button
            type="button"
            class="small"
            onClick={async () => {
              try {
                await post('/auth/logout');
              } finally {
                use(null);
              }
            }}
          >
            Log out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Page path={route.path} params={route.params} session={session} />
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
