/**
 * The dashboard's one way to the server: the public /v1 API and /auth, with the session cookie
 * (sent by the browser) and the session's CSRF token on every request that changes something.
 */

export interface SessionInfo {
  user: { id: string; email: string; role: 'admin' | 'viewer' };
  account: { id: string; name: string };
  scopes: string[];
  csrf_token: string;
  idle_timeout_seconds: number;
}

/** An error answer of the API: `{error: {code, message, field?}}`. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

let csrfToken = '';
let onSessionEnded: () => void = () => {};

export function setSession(session: SessionInfo | undefined): void {
  csrfToken = session?.csrf_token ?? '';
}

/** Called when the server says the session has ended (401), so the app shows the login. */
export function whenSessionEnds(callback: () => void): void {
  onSessionEnded = callback;
}

export interface RequestOptions {
  /** A body sent as is with this content type (CSV import); otherwise `body` goes as JSON. */
  contentType?: string;
  /** Answer as text (CSV export) instead of JSON. */
  text?: boolean;
}

export async function request<T>(
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  options: RequestOptions = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: options.text ? 'text/csv' : 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = csrfToken;
  let payload: string | undefined;
  if (body !== undefined) {
    headers['content-type'] = options.contentType ?? 'application/json';
    payload = options.contentType ? String(body) : JSON.stringify(body);
  }
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    ...(payload === undefined ? {} : { body: payload }),
  });
  if (response.status === 204) return undefined as T;
  if (!response.ok) {
    let code = 'http_error';
    let message = `${response.status} ${response.statusText}`;
    let field: string | undefined;
    try {
      const err = (await response.json()) as { error?: { code?: string; message?: string; field?: string } };
      code = err.error?.code ?? code;
      message = err.error?.message ?? message;
      field = err.error?.field;
    } catch {
      // not JSON: keep the status line
    }
    if (response.status === 401 && !path.startsWith('/auth/login')) onSessionEnded();
    throw new ApiError(response.status, code, message, field);
  }
  return (options.text ? await response.text() : await response.json()) as T;
}

export const get = <T>(path: string, options?: RequestOptions) => request<T>('GET', path, undefined, options);
export const post = <T>(path: string, body?: unknown, options?: RequestOptions) =>
  request<T>('POST', path, body ?? {}, options);
export const del = <T = void>(path: string) => request<T>('DELETE', path);
export const put = <T>(path: string, body: unknown) => request<T>('PUT', path, body);
export const patch = <T>(path: string, body: unknown) => request<T>('PATCH', path, body);

/** A query string from the non-empty values. */
export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function percent(rate: number | null | undefined): string {
  return rate === null || rate === undefined
    ? '–'
    : `${(rate * 100).toFixed(rate < 0.01 && rate > 0 ? 2 : 1)} %`;
}
