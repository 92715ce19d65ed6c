import type { Outcome } from '../store/types.ts';

/** What the store applied of one write (ids), or undefined when it never took it. */
export type Applied = Set<number> | undefined;

interface Part {
  outcomes: Outcome[];
  resolve: (applied: Applied) => void;
}

/**
 * Outcomes of many transactions on their way to the store in one call. A store write costs
 * mostly per call, not per outcome: every SQLite commit rewrites the pages its rows touch (the
 * tail of `events` and of each of its indexes), every PostgreSQL statement is a round trip and
 * a commit. `node bench/store-writes.ts`: 93 µs of store CPU per delivered outcome written two
 * at a time, 31 µs written 32 at a time.
 *
 * A part waits at most `gatherMs` for company; an urgent one (a connection waits for it) goes at
 * once, with whatever is gathering, even while other writes are in flight: concurrent writes
 * are merged by the store (SQLite's commit queue, PostgreSQL's batcher), and making an urgent
 * part wait for the write before it held every waiting connection up for two store round trips
 * (delivery fell behind intake). A full batch (`max` outcomes) goes at once. Each part is
 * answered with the result of the write that carried it.
 */
export class OutcomeBatch {
  readonly #write: (outcomes: Outcome[]) => Promise<Applied>;
  readonly #gatherMs: number;
  readonly #max: number;
  #parts: Part[] = [];
  #count = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #writing = new Set<Promise<void>>();

  constructor(write: (outcomes: Outcome[]) => Promise<Applied>, options: { gatherMs: number; max: number }) {
    this.#write = write;
    this.#gatherMs = options.gatherMs;
    this.#max = options.max;
  }

  add(outcomes: Outcome[], urgent: boolean): Promise<Applied> {
    return new Promise((resolve) => {
      this.#parts.push({ outcomes, resolve });
      this.#count += outcomes.length;
      if (urgent || this.#gatherMs <= 0 || this.#count >= this.#max) this.#send();
      else this.#timer ??= setTimeout(() => this.#send(), this.#gatherMs);
    });
  }

  /** Writes whatever waits now, and resolves once nothing is pending or in flight. */
  async flush(): Promise<void> {
    while (this.#parts.length > 0 || this.#writing.size > 0) {
      this.#send();
      await Promise.all(this.#writing);
    }
  }

  #send(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const parts = this.#parts;
    if (parts.length === 0) return;
    this.#parts = [];
    this.#count = 0;
    const done = (applied: Applied): void => {
      this.#writing.delete(writing);
      for (const p of parts) p.resolve(applied);
    };
    const writing: Promise<void> = this.#write(parts.flatMap((p) => p.outcomes)).then(done, () =>
      done(undefined),
    );
    this.#writing.add(writing);
  }
}
