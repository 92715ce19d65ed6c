import { useCallback, useEffect, useState } from 'preact/hooks';

export interface Loaded<T> {
  data: T | undefined;
  error: string | undefined;
  loading: boolean;
  reload: () => void;
}

/** Loads `load()` when `deps` change; `reload` runs it again. Stale answers are dropped. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  // The dependencies are the caller's (`deps`) and the reload counter.
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (err: unknown) =>
        live && setState({ error: err instanceof Error ? err.message : String(err), loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** The hash route: `#/activity?recipient=x` → { path: '/activity', params }. */
export function useRoute(): { path: string; params: URLSearchParams } {
  const read = () => {
    const hash = location.hash.replace(/^#/, '') || '/overview';
    const [path = '/overview', search = ''] = hash.split('?');
    return { path, params: new URLSearchParams(search) };
  };
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const onChange = () => setRoute(read());
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

export function navigate(path: string): void {
  location.hash = path;
}

export interface Action {
  message: string | undefined;
  error: string | undefined;
  /**
   * Runs `action` (a string it returns becomes the message), then `after` (a reload); an error
   * becomes `error`. True when it succeeded.
   */
  run: (action: () => Promise<unknown>) => Promise<boolean>;
}

/** The state of a page's buttons that change something: one message or one error at a time. */
export function useAction(after: () => void): Action {
  const [message, setMessage] = useState<string>();
  const [error, setError] = useState<string>();
  const run = async (action: () => Promise<unknown>) => {
    setError(undefined);
    setMessage(undefined);
    try {
      const result = await action();
      if (typeof result === 'string') setMessage(result);
      after();
      return true;
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      return false;
    }
  };
  return { message, error, run };
}
