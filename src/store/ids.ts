import { randomBytes } from 'node:crypto';

// Crockford base32: sortable, case-insensitive, no ambiguous letters.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/**
 * A 20-character id that sorts by creation time (10 chars of milliseconds) followed by
 * 50 random bits, so listings can page by id and ids never collide across nodes.
 */
export function newId(now: number = Date.now()): string {
  let time = '';
  let t = Math.floor(now);
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const bytes = randomBytes(7);
  let rand = '';
  let acc = 0n;
  for (const b of bytes) acc = (acc << 8n) | BigInt(b);
  for (let i = 0; i < 10; i++) {
    rand += ALPHABET[Number(acc & 31n)];
    acc >>= 5n;
  }
  return time + rand;
}
