/**
 * What an API key may do. `send`: send mail, cancel it, preview templates; `read`: messages,
 * events, templates; `admin`: manage the account's templates, webhooks (and, later, domains and
 * suppressions). Keys created before scopes existed have `send,read`.
 */
export const API_SCOPES = ['send', 'read', 'admin'] as const;
export type ApiScope = (typeof API_SCOPES)[number];
export const DEFAULT_API_SCOPES: readonly ApiScope[] = ['send', 'read'];

export function isApiScope(value: string): value is ApiScope {
  return (API_SCOPES as readonly string[]).includes(value);
}
