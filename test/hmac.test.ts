import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { it } from 'node:test';
import { hmacSha256 } from '../src/hmac.ts';

it('hmacSha256 gives the bytes createHmac gives, for short, block-sized and long keys', () => {
  for (const size of [0, 1, 32, 64, 65, 200]) {
    const key = randomBytes(size);
    for (const data of ['', 'a', 'postbote-verp-v1\n42\nbounce.example', 'ü'.repeat(100), randomBytes(300)]) {
      assert.deepEqual(hmacSha256(key, data), createHmac('sha256', key).update(data).digest(), `key ${size}`);
    }
  }
});
