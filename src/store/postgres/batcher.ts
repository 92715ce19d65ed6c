/**
 * Group commit for PostgreSQL writes: a call made while an earlier flush of the same kind is
 * running waits for it and is then written together with every other call that arrived
 * meanwhile, in one statement and so one commit (one WAL flush). An idle batcher flushes the
 * first call at once, so a lone write pays no extra latency. Measured with bench/relay.ts
 * (--store postgres): concurrent single-message commits queued on the WAL lock.
 *
 * If a merged flush fails, each call is retried alone, so one bad call (a duplicate id, a value
 * the database refuses) fails only itself.
 */
export class Batcher<I, R> {
  readonly #flush: (items: I[]) => Promise<R>;
  readonly #maxItems: number;
  #queue: { items: I[]; resolve: (result: R) => void; reject: (err: unknown) => void }[] = [];
  #running = false;

  constructor(flush: (items: I[]) => Promise<R>, maxItems: number) {
    this.#flush = flush;
    this.#maxItems = maxItems;
  }

  /** Writes `items` (with whatever else is waiting); resolves with the result of that flush. */
  add(items: I[]): Promise<R> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ items, resolve, reject });
      if (!this.#running) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const calls = [];
        let count = 0;
        // Always at least one call, however large; then as many as fit.
        while (
          this.#queue.length > 0 &&
          (calls.length === 0 || count + this.#queue[0]!.items.length <= this.#maxItems)
        ) {
          const call = this.#queue.shift()!;
          count += call.items.length;
          calls.push(call);
        }
        try {
          const result = await this.#flush(calls.flatMap((c) => c.items));
          for (const call of calls) call.resolve(result);
        } catch (err) {
          if (calls.length === 1) {
            calls[0]!.reject(err);
            continue;
          }
          for (const call of calls) {
            try {
              call.resolve(await this.#flush(call.items));
            } catch (own) {
              call.reject(own);
            }
          }
        }
      }
    } finally {
      this.#running = false;
    }
  }
}
