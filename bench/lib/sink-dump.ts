/**
 * Reads what an `smtp-sink -D FILE` wrote (see smtp-sink(1), DUMP FILE FORMAT): one record per
 * message received, each starting with the headers smtp-sink adds (`X-Client-Addr`,
 * `X-Helo-Args`, `X-Rcpt-Args`, …) followed by the message as received. smtp-sink itself only
 * counts; this gives every message an identity so that duplicates and losses can be told
 * apart, and names the client that delivered it by its EHLO argument (each Postbote node is
 * given its own `delivery.ehlo_name`).
 *
 * The identity of a message is its `X-Load-Id` (test/support/load-generator.ts) together with
 * the recipient's local part (each load run has its own recipient), or else its `Message-Id`
 * (smtp-source writes `<pid.session.count@host>`, unique within a run).
 *
 * The file is read incrementally: `poll()` parses only what was appended since the last call,
 * so the kill demo can watch it while the run goes on.
 */
import { closeSync, existsSync, openSync, readSync } from 'node:fs';

export interface DumpTally {
  /** Records parsed (= messages smtp-sink accepted and dumped). */
  messages: number;
  /** Identity → copies received. */
  copies: Map<string, number>;
  /** EHLO name of the delivering client → messages it delivered. */
  byHelo: Map<string, number>;
  /** Records without an identity (neither header present). */
  anonymous: number;
  /** For every copy beyond the first: "EHLO of the first copy → EHLO of this one" → count. */
  duplicatePaths: Map<string, number>;
}

interface Current {
  helo: string;
  rcpt: string;
  messageId?: string;
  loadId?: string;
}

const CHUNK = 1 << 20;

export class SinkDump {
  readonly #path: string;
  readonly #tally: DumpTally = {
    messages: 0,
    copies: new Map(),
    byHelo: new Map(),
    anonymous: 0,
    duplicatePaths: new Map(),
  };
  /** Identity → EHLO name of its first copy. */
  readonly #firstHelo = new Map<string, string>();
  #offset = 0;
  #partial = '';
  /** The record whose headers are being read; undefined while in a body or before the first. */
  #current: Current | undefined;

  constructor(path: string) {
    this.#path = path;
  }

  get tally(): Readonly<DumpTally> {
    return this.#tally;
  }

  /** Parses what was appended since the last call; returns the running tally. */
  poll(): Readonly<DumpTally> {
    if (!existsSync(this.#path)) return this.#tally;
    const fd = openSync(this.#path, 'r');
    try {
      const buffer = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const n = readSync(fd, buffer, 0, CHUNK, this.#offset);
        if (n <= 0) break;
        this.#offset += n;
        const lines = (this.#partial + buffer.toString('latin1', 0, n)).split('\n');
        this.#partial = lines.pop() ?? '';
        for (const line of lines) this.#line(line.endsWith('\r') ? line.slice(0, -1) : line);
      }
    } finally {
      closeSync(fd);
    }
    return this.#tally;
  }

  /** Call once the sink has stopped: counts a last record whose header block never ended. */
  finish(): Readonly<DumpTally> {
    this.poll();
    if (this.#partial) this.#line(this.#partial);
    this.#partial = '';
    this.#commit();
    return this.#tally;
  }

  #line(line: string): void {
    if (line.startsWith('X-Client-Addr: ')) {
      this.#commit();
      this.#current = { helo: '', rcpt: '' };
      return;
    }
    const current = this.#current;
    if (!current) return; // body lines
    if (line === '') {
      this.#commit(); // end of the header block: the body follows
      return;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) return;
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'x-helo-args') current.helo = value;
    else if (name === 'x-rcpt-args') current.rcpt = /^<?([^@>\s]*)/.exec(value)?.[1] ?? value;
    else if (name === 'message-id') current.messageId ??= value;
    else if (name === 'x-load-id') current.loadId ??= value;
  }

  #commit(): void {
    const current = this.#current;
    if (!current) return;
    this.#current = undefined;
    const t = this.#tally;
    t.messages++;
    t.byHelo.set(current.helo, (t.byHelo.get(current.helo) ?? 0) + 1);
    const key = current.loadId !== undefined ? `${current.rcpt}:${current.loadId}` : current.messageId;
    if (key === undefined) {
      t.anonymous++;
      return;
    }
    t.copies.set(key, (t.copies.get(key) ?? 0) + 1);
    const first = this.#firstHelo.get(key);
    if (first === undefined) this.#firstHelo.set(key, current.helo);
    else {
      const path = `${first} → ${current.helo}`;
      t.duplicatePaths.set(path, (t.duplicatePaths.get(path) ?? 0) + 1);
    }
  }
}

/** Copies beyond the first, summed over every identity. */
export function duplicateCount(tally: Readonly<DumpTally>): number {
  let n = 0;
  for (const c of tally.copies.values()) if (c > 1) n += c - 1;
  return n;
}
