import { recipientDomain } from '../intake/address.ts';
import type { Store } from '../store/store.ts';
import {
  type StreamKind,
  SUPPRESSION_REASONS,
  type Suppression,
  type SuppressionCheck,
  type SuppressionReason,
  suppressionPrecedence,
} from '../store/types.ts';

/** A suppression request that cannot be honoured; `field` names the offending input. */
export class SuppressionError extends Error {
  readonly field: string;
  constructor(message: string, field: string) {
    super(message);
    this.name = 'SuppressionError';
    this.field = field;
  }
}

export interface SuppressionInput {
  address: string;
  /** '' or absent = the whole account; else one stream. */
  scope?: string;
  reason?: SuppressionReason;
  details?: string;
  /** Epoch ms; absent = never. */
  expiresAt?: number | null;
}

const CSV_COLUMNS = [
  'address',
  'scope',
  'reason',
  'category',
  'source',
  'details',
  'created_at',
  'expires_at',
];

/** A CSV field, quoted when it must be (RFC 4180). */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** RFC 4180 rows (quoted fields, doubled quotes, CRLF or LF). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === '') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      if (row.some((f) => f !== '')) rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  row.push(field);
  if (row.some((f) => f !== '')) rows.push(row);
  return rows;
}

/**
 * An account's suppression lists: what is added automatically (hard bounces, complaints,
 * repeated soft bounces, unsubscribes) and by hand (API, CLI, CSV import), and what intake
 * checks before it stores a recipient.
 */
export function createSuppressions(options: {
  store: Store;
  clock: () => number;
  /** Whether transactional streams ignore `unsubscribe` entries (never bounces or complaints). */
  transactionalIgnoresUnsubscribes: boolean;
  /**
   * Erased addresses stay suppressed under their salted hash (privacy/privacy.ts): token →
   * address for the addresses checked, so such entries match too.
   */
  erasedTokens?: (addresses: string[]) => Promise<Map<string, string>>;
}) {
  const { store, clock } = options;

  function entry(accountId: string, input: SuppressionInput, source: string, index?: number): Suppression {
    const at = index === undefined ? '' : `[${index}]`;
    const address = input.address.trim().toLowerCase();
    if (address.length > 254 || !recipientDomain(address) || /[\s<>]/.test(address)) {
      throw new SuppressionError(`"${input.address.slice(0, 80)}" is not an email address`, `address${at}`);
    }
    const reason = input.reason ?? 'manual';
    if (!(SUPPRESSION_REASONS as readonly string[]).includes(reason)) {
      throw new SuppressionError(`reason must be one of ${SUPPRESSION_REASONS.join(', ')}`, `reason${at}`);
    }
    const scope = (input.scope ?? '').trim().toLowerCase();
    if (scope.length > 64) throw new SuppressionError('scope is a stream name', `scope${at}`);
    const expiresAt = input.expiresAt ?? null;
    if (expiresAt !== null && (!Number.isFinite(expiresAt) || expiresAt <= clock())) {
      throw new SuppressionError('expires_at must be a future time', `expires_at${at}`);
    }
    return {
      accountId,
      address,
      scope,
      reason,
      category: '',
      source,
      details: (input.details ?? '').slice(0, 1000),
      createdAt: clock(),
      expiresAt,
    };
  }

  /** Adds entries by hand (API, CLI); all are checked before any is stored. */
  async function add(accountId: string, inputs: SuppressionInput[], source: string): Promise<Suppression[]> {
    const entries = inputs.map((input, i) =>
      entry(accountId, input, source, inputs.length > 1 ? i : undefined),
    );
    await store.upsertSuppressions(entries);
    return entries;
  }

  /** What a bounce, a complaint or an unsubscribe adds (the delivery engine, the inbound MX). */
  async function suppress(input: {
    accountId: string;
    address: string;
    reason: SuppressionReason;
    category?: string;
    source: string;
    details?: string;
    scope?: string;
  }): Promise<void> {
    await store.upsertSuppressions([
      {
        accountId: input.accountId,
        address: input.address.toLowerCase(),
        scope: input.scope ?? '',
        reason: input.reason,
        category: input.category ?? '',
        source: input.source,
        details: (input.details ?? '').slice(0, 1000),
        createdAt: clock(),
        expiresAt: null,
      },
    ]);
  }

  /** Whether `unsubscribe` entries apply to mail of `kind`. */
  const unsubscribesApply = (kind: StreamKind): boolean =>
    !(kind === 'transactional' && options.transactionalIgnoresUnsubscribes);

  /**
   * The suppressed addresses among `addresses` for mail of `stream` (of `kind`), each with the
   * entry it records (types.ts suppressionPrecedence), as stored now; an erased address is found
   * by its token. The HTTP API checks before it builds a message, to answer each recipient's
   * status; SMTP leaves the check to the store's insert (`storeCheck`).
   */
  async function check(input: {
    accountId: string;
    stream: string;
    kind: StreamKind;
    addresses: string[];
  }): Promise<Map<string, Suppression>> {
    const lower = [...new Set(input.addresses.map((a) => a.toLowerCase()))];
    const tokens = options.erasedTokens ? await options.erasedTokens(lower) : undefined;
    const found = await store.findSuppressions({
      accountId: input.accountId,
      stream: input.stream,
      addresses: tokens ? [...lower, ...tokens.keys()] : lower,
      now: clock(),
    });
    const byAddress = new Map<string, Suppression[]>();
    for (const hit of found) {
      if (hit.reason === 'unsubscribe' && !unsubscribesApply(input.kind)) continue;
      const address = tokens?.get(hit.address) ?? hit.address;
      byAddress.set(address, [...(byAddress.get(address) ?? []), hit]);
    }
    const out = new Map<string, Suppression>();
    for (const [address, hits] of byAddress) {
      const first = hits.sort(suppressionPrecedence(address))[0];
      if (first) out.set(address, { ...first, address });
    }
    return out;
  }

  /**
   * What the store needs to check `addresses` (a message's recipients, in order) inside the
   * insert of a message of `kind` (types.ts SuppressionCheck).
   */
  async function storeCheck(input: { kind: StreamKind; addresses: string[] }): Promise<SuppressionCheck> {
    const unsubscribes = unsubscribesApply(input.kind);
    if (!options.erasedTokens) return { unsubscribes };
    const lower = input.addresses.map((a) => a.toLowerCase());
    const tokenOf = new Map<string, string>();
    for (const [token, address] of await options.erasedTokens([...new Set(lower)]))
      tokenOf.set(address, token);
    return { unsubscribes, tokens: lower.map((a) => tokenOf.get(a) ?? '') };
  }

  /** Every entry of the account as CSV (header row first). */
  async function exportCsv(accountId: string): Promise<string> {
    const lines = [CSV_COLUMNS.join(',')];
    let after: { address: string; scope: string } | undefined;
    for (;;) {
      const page = await store.listSuppressions({ accountId, limit: 1000, ...(after ? { after } : {}) });
      for (const s of page) {
        lines.push(
          [
            s.address,
            s.scope,
            s.reason,
            s.category,
            s.source,
            s.details,
            new Date(s.createdAt).toISOString(),
            s.expiresAt === null ? '' : new Date(s.expiresAt).toISOString(),
          ]
            .map(csvField)
            .join(','),
        );
      }
      const last = page[page.length - 1];
      if (page.length < 1000 || !last) break;
      after = { address: last.address, scope: last.scope };
    }
    return `${lines.join('\r\n')}\r\n`;
  }

  /**
   * Imports CSV: a header row naming at least `address` (others optional: scope, reason,
   * details, expires_at), or bare addresses one per line. All rows are checked first; a bad row
   * refuses the import with its line number, nothing stored.
   */
  async function importCsv(accountId: string, text: string, source = 'import'): Promise<number> {
    const rows = parseCsv(text);
    if (rows.length === 0) return 0;
    const header = rows[0]?.map((h) => h.trim().toLowerCase()) ?? [];
    const hasHeader = header.includes('address');
    const col = (name: string) => (hasHeader ? header.indexOf(name) : name === 'address' ? 0 : -1);
    const inputs: SuppressionInput[] = [];
    for (const [i, row] of rows.entries()) {
      if (hasHeader && i === 0) continue;
      const get = (name: string) => {
        const c = col(name);
        return c < 0 ? '' : (row[c] ?? '').trim();
      };
      const expires = get('expires_at');
      const input: SuppressionInput = {
        address: get('address'),
        ...(get('scope') ? { scope: get('scope') } : {}),
        ...(get('reason') ? { reason: get('reason') as SuppressionReason } : {}),
        ...(get('details') ? { details: get('details') } : {}),
        ...(expires ? { expiresAt: Date.parse(expires) } : {}),
      };
      try {
        entry(accountId, input, source);
      } catch (err) {
        if (err instanceof SuppressionError)
          throw new SuppressionError(`line ${i + 1}: ${err.message}`, err.field);
        throw err;
      }
      inputs.push(input);
    }
    for (let i = 0; i < inputs.length; i += 1000) await add(accountId, inputs.slice(i, i + 1000), source);
    return inputs.length;
  }

  return {
    add,
    suppress,
    check,
    storeCheck,
    remove: (accountId: string, address: string, scope = '') =>
      store.removeSuppression(accountId, address.trim().toLowerCase(), scope.trim().toLowerCase()),
    list: store.listSuppressions.bind(store),
    exportCsv,
    importCsv,
  };
}

export type Suppressions = ReturnType<typeof createSuppressions>;
