/**
 * Message bodies shared by the recipients in the delivery window: loaded once per message,
 * kept while under a byte budget, least recently used evicted first.
 */
export class BodyCache {
  readonly #load: (messageId: string) => Promise<Buffer | undefined>;
  readonly #maxBytes: number;
  readonly #entries = new Map<string, Promise<Buffer | undefined>>();
  readonly #sizes = new Map<string, number>();
  #bytes = 0;

  constructor(load: (messageId: string) => Promise<Buffer | undefined>, maxBytes: number) {
    this.#load = load;
    this.#maxBytes = maxBytes;
  }

  get(messageId: string): Promise<Buffer | undefined> {
    const hit = this.#entries.get(messageId);
    if (hit) {
      this.#entries.delete(messageId);
      this.#entries.set(messageId, hit);
      return hit;
    }
    const loading = this.#load(messageId);
    this.#entries.set(messageId, loading);
    loading.then(
      (body) => {
        if (this.#entries.get(messageId) !== loading) return;
        const size = body?.length ?? 0;
        this.#sizes.set(messageId, size);
        this.#bytes += size;
        this.#evict();
      },
      () => this.#entries.delete(messageId),
    );
    return loading;
  }

  /** A body known already (handed over by intake): no load for it while it stays. */
  put(messageId: string, body: Buffer): void {
    if (this.#entries.has(messageId)) return;
    this.#entries.set(messageId, Promise.resolve(body));
    this.#sizes.set(messageId, body.length);
    this.#bytes += body.length;
    this.#evict();
  }

  #evict(): void {
    for (const key of this.#entries.keys()) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#drop(key);
    }
  }

  #drop(key: string): void {
    this.#entries.delete(key);
    this.#bytes -= this.#sizes.get(key) ?? 0;
    this.#sizes.delete(key);
  }
}
