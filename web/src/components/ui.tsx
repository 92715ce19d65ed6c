import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';

export function ErrorNote(props: { error: string | undefined }) {
  return props.error ? (
    <p class="error" role="alert">
      {props.error}
    </p>
  ) : null;
}

export function Loading(props: { loading: boolean }) {
  return props.loading ? <p aria-live="polite">Loading…</p> : null;
}

/** Copies `text` to the clipboard; says so for screen readers. */
export function CopyButton(props: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="small"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(props.text);
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        } catch {
          // Clipboard denied (plain HTTP on another host): the value is selectable beside the button.
        }
      }}
    >
      <span aria-live="polite">{done ? 'Copied' : (props.label ?? 'Copy')}</span>
    </button>
  );
}

export function Status(props: { value: string }) {
  return <span class={`status status-${props.value.replace(/[^a-z_]/g, '')}`}>{props.value}</span>;
}

export function Section(props: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="card">
      <header class="card-head">
        <h2>{props.title}</h2>
        {props.actions}
      </header>
      {props.children}
    </section>
  );
}

/** Asks before something that cannot be undone. */
export function confirmAction(text: string): boolean {
  return window.confirm(text);
}

/** A secret the server shows once (a new API key, an SMTP password), with a copy button. */
export function ShownOnce(props: { what: string; secret: string; testId: string }) {
  return (
    <div class="secret" role="status">
      <p>
        <strong>Copy {props.what} now:</strong> it is shown only once.
      </p>
      <code data-testid={props.testId}>{props.secret}</code> <CopyButton text={props.secret} />
    </div>
  );
}

/** Revokes a credential after asking; `consequence` completes "Revoke NAME? …". */
export function RevokeButton(props: { name: string; consequence: string; onRevoke: () => Promise<unknown> }) {
  return (
    <button
      type="button"
      class="small danger"
      aria-label={`Revoke ${props.name}`}
      onClick={async () => {
        if (confirmAction(`Revoke ${props.name}? ${props.consequence}`)) await props.onRevoke();
      }}
    >
      Revoke
    </button>
  );
}

export function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
