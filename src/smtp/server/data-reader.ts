/**
 * The DATA phase state machine (RFC 5321 §4.1.1.4, §4.5.2): find the end-of-data marker
 * CRLF "." CRLF, undo dot-stuffing, count the size, and flag bare CR / bare LF.
 *
 * SMTP smuggling defence: the marker is recognised only after a real CRLF and only as
 * "." CRLF. `\n.\n`, `\r.\r\n`, `\n.\r\n`, `.\n` and friends do NOT end the message; they
 * mark it as containing a bare LF/CR, and the connection refuses it with 550 5.6.11 once the
 * real marker arrives, so the stream stays in sync with the client.
 *
 * Chunks from the socket are kept as slices and concatenated once at the end. Scanning uses
 * Buffer#indexOf (memchr) per line; the terminator may be split across any chunk boundary.
 */

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CR_BUFFER = Buffer.from([CR]);

/** Start of a line (previous bytes were a real CRLF, or the start of DATA). */
const LINE_START = 0;
/** Inside a line. */
const IN_LINE = 1;
/** Inside a line, the last byte (end of the previous chunk) was CR. */
const IN_LINE_CR = 2;
/** A line began with ".", which was dropped (dot-unstuffing or the marker). */
const DOT_START = 3;
/** "." CR at the start of a line: LF next is the end-of-data marker. */
const DOT_CR = 4;

export interface DataResult {
  /** The message with dot-stuffing undone; empty when `oversize` or `bareNewline`. */
  message: Buffer;
  /** Octets of message content after unstuffing (counted until the limit was passed). */
  size: number;
  oversize: boolean;
  bareNewline: boolean;
}

export class DataReader {
  private readonly limit: number;
  private state = LINE_START;
  private chunks: Buffer[] = [];
  private size = 0;
  private oversize = false;
  private bare = false;

  constructor(sizeLimit: number) {
    this.limit = sizeLimit;
  }

  /**
   * Feed bytes. Returns `undefined` while the marker has not been seen; once seen, returns the
   * bytes after it (pipelined commands, possibly empty) and `result()` is ready.
   */
  push(chunk: Buffer): Buffer | undefined {
    const len = chunk.length;
    let pos = 0;
    let segStart = 0;
    while (pos < len) {
      switch (this.state) {
        case LINE_START: {
          if (chunk[pos] === DOT) {
            // §4.5.2: drop the first dot of a line; it is either stuffing or the marker.
            this.keep(chunk, segStart, pos);
            segStart = pos + 1;
            this.state = DOT_START;
            pos++;
          } else {
            this.state = IN_LINE;
          }
          break;
        }
        case IN_LINE: {
          const lf = chunk.indexOf(LF, pos);
          if (lf === -1) {
            if (!this.bare) {
              const cr = chunk.indexOf(CR, pos);
              if (cr !== -1 && cr < len - 1) this.bare = true;
            }
            this.state = chunk[len - 1] === CR ? IN_LINE_CR : IN_LINE;
            pos = len;
            break;
          }
          const crlf = lf > pos && chunk[lf - 1] === CR;
          if (!this.bare) {
            if (!crlf) this.bare = true;
            else {
              const cr = chunk.indexOf(CR, pos);
              if (cr < lf - 1) this.bare = true;
            }
          }
          // Only a real CRLF starts a line where the marker can be recognised.
          this.state = crlf ? LINE_START : IN_LINE;
          pos = lf + 1;
          break;
        }
        case IN_LINE_CR: {
          if (chunk[pos] === LF) {
            this.state = LINE_START;
            pos++;
          } else {
            this.bare = true;
            this.state = IN_LINE;
          }
          break;
        }
        case DOT_START: {
          const b = chunk[pos];
          if (b === CR) {
            this.state = DOT_CR;
            pos++;
          } else if (b === LF) {
            this.bare = true; // ".\n" is not the marker
            this.state = IN_LINE;
            pos++;
          } else {
            this.state = IN_LINE;
          }
          break;
        }
        case DOT_CR: {
          if (chunk[pos] === LF) {
            // Everything up to the dropped dot is kept; the CR between dot and LF is not content.
            this.state = LINE_START;
            return chunk.subarray(pos + 1);
          }
          // ".\r" followed by anything but LF: a bare CR. A CR held back at the end of the
          // previous chunk is restored (only the size count still reads it: the message is refused).
          this.bare = true;
          if (pos === 0) this.keep(CR_BUFFER, 0, 1);
          this.state = IN_LINE;
          break;
        }
      }
    }
    // A CR at the end of the chunk in DOT_CR is held back until we know what follows it.
    this.keep(chunk, segStart, this.state === DOT_CR ? len - 1 : len);
    return undefined;
  }

  result(): DataResult {
    const failed = this.oversize || this.bare;
    return {
      message: failed ? Buffer.alloc(0) : Buffer.concat(this.chunks, this.size),
      size: this.size,
      oversize: this.oversize,
      bareNewline: this.bare,
    };
  }

  private keep(chunk: Buffer, start: number, end: number): void {
    if (end <= start) return;
    if (this.oversize || this.bare) {
      // The message will be refused: stop holding memory, only keep counting.
      if (this.chunks.length > 0) this.chunks = [];
      if (!this.oversize) this.size += end - start;
      return;
    }
    this.size += end - start;
    if (this.size > this.limit) {
      this.oversize = true;
      this.chunks = [];
      return;
    }
    this.chunks.push(start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end));
  }
}
