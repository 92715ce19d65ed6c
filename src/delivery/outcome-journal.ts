import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Store } from '../store/store.ts';
import type { Outcome } from '../store/types.ts';

/** Past this size the journal is emptied as soon as nothing in it is waiting for the store. */
const TRUNCATE_AT_BYTES = 1024 * 1024;

/**
 * Delivered outcomes on their way to the store. A remote server's 250 is appended here the
 * moment the delivery thread has it, with one plain write (no fsync: the page cache survives a
 * kill -9 of the process), and then goes to the store. A process killed between the two would
 * otherwise find the recipient still `delivering` at the next start and send it again: the next
 * start replays the journal first (`readOutcomeJournal` + Store.recordOutcomes with `recovered`).
 *
 * Only `delivered` is journaled: a refusal or a deferral resent after a crash gives the same
 * answer again and reaches nobody twice. A power loss can still lose the newest lines (like the
 * store's own lazy commits): at-least-once remains the promise, this narrows the window in
 * which a kill causes a duplicate from a store commit to a few microseconds.
 *
 * One line per settled transaction part: JSON of its delivered outcomes. One writer (the
 * delivery thread of the one process owning the file).
 */
export class OutcomeJournal {
  readonly #fd: number;
  readonly #logger: Logger;
  /** Appended, not yet recorded by the store. */
  #pending = 0;
  #size: number;
  /** The last write failed (disk full): logged once, tried again with the next append. */
  #failing = false;

  constructor(path: string, logger: Logger) {
    this.#fd = openSync(path, 'a', 0o600);
    this.#size = fstatSync(this.#fd).size;
    this.#logger = logger;
  }

  /**
   * Appends the delivered outcomes among `outcomes`; returns whether something was appended
   * (then the caller calls `recorded()` once the store has them, whatever it applied).
   */
  append(outcomes: readonly Outcome[]): boolean {
    const delivered = outcomes.filter((o) => o.state === 'delivered');
    if (delivered.length === 0) return false;
    const line = Buffer.from(`${JSON.stringify(delivered)}\n`);
    let written: number;
    try {
      written = writeSync(this.#fd, line);
    } catch (err) {
      return this.#failed(err);
    }
    if (written !== line.length) {
      // Out of space mid-line: cut the torn line off, or the next line would be glued to it.
      try {
        ftruncateSync(this.#fd, this.#size);
      } catch {
        // the reader skips a line it cannot parse
      }
      return this.#failed(new Error(`short write (${written} of ${line.length} bytes)`));
    }
    if (this.#failing) {
      this.#failing = false;
      this.#logger.info('the outcome journal is written again');
    }
    this.#size += line.length;
    this.#pending++;
    return true;
  }

  /**
   * A full disk must not stop delivery: the store still records the outcome, only the crash
   * window of this delivery is back to its store commit's.
   */
  #failed(err: unknown): false {
    if (!this.#failing) {
      this.#failing = true;
      this.#logger.error(
        { err },
        'could not write the outcome journal; delivering without it until a write succeeds',
      );
    }
    return false;
  }

  /** The store has what one successful `append` wrote. */
  recorded(): void {
    this.#pending--;
    if (this.#pending === 0 && this.#size >= TRUNCATE_AT_BYTES) this.#empty();
  }

  /** Empties the journal (after its lines were replayed). */
  clear(): void {
    if (this.#pending === 0) this.#empty();
  }

  close(): void {
    if (this.#pending === 0) this.#empty();
    closeSync(this.#fd);
  }

  #empty(): void {
    try {
      ftruncateSync(this.#fd, 0);
      this.#size = 0;
    } catch (err) {
      this.#logger.warn({ err }, 'could not empty the outcome journal');
    }
  }
}

/**
 * The delivered outcomes a journal holds (start-up, before the journal is opened for writing).
 * Lines that do not parse (a torn last line after a power loss, a foreign file) are skipped and
 * counted; nothing in here is trusted beyond its shape.
 */
export function readOutcomeJournal(path: string): { outcomes: Outcome[]; skipped: number } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { outcomes: [], skipped: 0 };
    throw err;
  }
  const outcomes: Outcome[] = [];
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      skipped++;
      continue;
    }
    if (!Array.isArray(parsed) || !parsed.every(isDeliveredOutcome)) {
      skipped++;
      continue;
    }
    outcomes.push(...parsed);
  }
  return { outcomes, skipped };
}

function isDeliveredOutcome(value: unknown): value is Outcome {
  if (typeof value !== 'object' || value === null) return false;
  const o = value as Record<string, unknown>;
  return (
    o.state === 'delivered' &&
    Number.isSafeInteger(o.recipientId) &&
    typeof o.at === 'number' &&
    typeof o.messageId === 'string' &&
    typeof o.accountId === 'string' &&
    typeof o.recipient === 'string' &&
    typeof o.attempted === 'boolean' &&
    (o.reply === null || typeof o.reply === 'object') &&
    (o.event === null ||
      (typeof o.event === 'object' && typeof (o.event as { type?: unknown }).type === 'string'))
  );
}

/**
 * Where this node keeps its journal, or undefined where no restart can find it again: the
 * embedded store's data dir belongs to one process (pid lock); on a shared database a node's
 * journal is named after its node_id, which must be configured (the default, hostname:pid,
 * changes every run; its leases expire and are delivered again instead).
 */
export function outcomeJournalPath(input: {
  dataDir: string;
  sharedDatabase: boolean;
  nodeId: string;
  nodeIdConfigured: boolean;
}): string | undefined {
  if (!input.sharedDatabase) return join(input.dataDir, 'outcomes.journal');
  if (!input.nodeIdConfigured) return undefined;
  return join(input.dataDir, `outcomes-${input.nodeId.replace(/[^\w.-]/g, '_')}.journal`);
}

/**
 * Start-up, before leases are released: records what the journal of an earlier run says was
 * delivered (where the store does not have it yet), then opens the journal empty for this run.
 */
export async function recoverOutcomeJournal(input: {
  path: string;
  store: Store;
  owner: string;
  logger: Logger;
}): Promise<OutcomeJournal> {
  const { path, store, owner, logger } = input;
  const { outcomes, skipped } = readOutcomeJournal(path);
  if (skipped > 0) logger.warn({ path, skipped }, 'outcome journal: lines that do not parse were skipped');
  // One outcome per recipient: the first answer is the delivery.
  const seen = new Set<number>();
  const unique = outcomes.filter((o) => !seen.has(o.recipientId) && seen.add(o.recipientId));
  if (unique.length > 0) {
    const applied = await store.recordOutcomes(
      owner,
      unique.map((o) => ({ ...o, recovered: true })),
    );
    logger.info(
      { journaled: unique.length, recorded: applied.length },
      'outcome journal: deliveries the previous run had not recorded are recorded now',
    );
  }
  const journal = new OutcomeJournal(path, logger);
  journal.clear();
  return journal;
}
