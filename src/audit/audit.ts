import { userInfo } from 'node:os';
import type { Store } from '../store/store.ts';
import type { AuditEntry, AuditFilter } from '../store/types.ts';

/**
 * The audit trail: who changed the configuration, when, and what. Every admin and API action
 * that changes how mail is sent records one entry: credentials created or revoked, domains
 * added, trusted, rotated or removed, suppressions removed, accounts paused or resumed, webhooks
 * created or deleted, retention changed, addresses erased. Entries are never changed afterwards,
 * except that an erasure replaces the erased address in them by its hash (privacy/privacy.ts).
 */

/** Actions recorded, as `<noun>.<verb>`; other modules may add their own in this form. */
export type AuditAction =
  | 'credential.create'
  | 'credential.revoke'
  | 'domain.add'
  | 'domain.remove'
  | 'domain.trust'
  | 'domain.rotate_dkim'
  | 'suppression.remove'
  | 'account.pause'
  | 'account.resume'
  | 'account.set_retention'
  | 'webhook.create'
  | 'webhook.delete'
  | 'privacy.erase'
  | (string & {});

export interface AuditInput {
  /** `credential:<id>` (API), `cli:<os user>`, `system:<task>`: see the actor helpers below. */
  actor: string;
  /** The account concerned; '' for deployment-wide actions. */
  accountId: string;
  action: AuditAction;
  /** What it was done to: a credential id, a domain, a stream, an address. */
  target?: string;
  /** Small and JSON-able; never a secret. */
  details?: Record<string, unknown>;
}

/** The actor of an API request authenticated by an API key. */
export const credentialActor = (credentialId: string): string => `credential:${credentialId}`;
/** The actor of a CLI command: the operating-system user who ran it. */
export function cliActor(): string {
  let name = 'unknown';
  try {
    name = userInfo().username;
  } catch {
    // No passwd entry for the uid (containers): the uid is still a name.
    name = String(process.getuid?.() ?? 'unknown');
  }
  return `cli:${name}`;
}
/** Postbote itself (the reputation guard: `system:guard`). */
export const systemActor = (task: string): string => `system:${task}`;

const MAX_TARGET = 320;

/** Records audit entries through `store` with `clock`'s time. */
export function createAudit(options: {
  store: Pick<Store, 'recordAudit' | 'listAudit'>;
  clock?: () => number;
}) {
  const { store } = options;
  const clock = options.clock ?? Date.now;
  return {
    /** Appends one entry (durable when it resolves). A failure rejects: the caller decides. */
    async record(input: AuditInput): Promise<void> {
      await store.recordAudit([
        {
          at: clock(),
          actor: input.actor,
          accountId: input.accountId,
          action: input.action,
          target: (input.target ?? '').slice(0, MAX_TARGET),
          details: input.details ?? {},
        },
      ]);
    },
    /** Entries newest first (`before`: the previous page's last id). */
    list(filter: AuditFilter): Promise<AuditEntry[]> {
      return store.listAudit(filter);
    },
  };
}

export type Audit = ReturnType<typeof createAudit>;

/** One-call form for call sites that have a store at hand: `await recordAudit(store, {...})`. */
export async function recordAudit(store: Pick<Store, 'recordAudit'>, input: AuditInput): Promise<void> {
  await createAudit({ store: store as Pick<Store, 'recordAudit' | 'listAudit'> }).record(input);
}
