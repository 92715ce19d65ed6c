import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { storeFromPort } from '../../src/store/sqlite/threaded-store.ts';
import type { Call, Reply } from '../../src/store/sqlite/worker.ts';
import type { NewMessage } from '../../src/store/types.ts';
import { sampleMessage } from './contract.ts';

describe('the store client of another thread', () => {
  it('sends message bodies in buffers of their own, not the pool slab they were cut from', async (t) => {
    const { port1, port2 } = new MessageChannel();
    t.after(() => port1.close());
    const store = storeFromPort(port1);
    const received = new Promise<Call[]>((resolve) => {
      port2.once('message', (calls: Call[]) => {
        resolve(calls);
        port2.postMessage(calls.map((c): Reply => ({ id: c.id, result: [] })));
      });
    });
    // What intake hands over: Buffer.concat of a small message is a slice of Node's 64 KB pool,
    // and a buffer crosses threads with everything under it.
    const body = Buffer.concat([Buffer.from('Subject: hi\r\n\r\n'), Buffer.alloc(2000, 'x')]);
    const variant = Buffer.concat([Buffer.from('Subject: hi\r\n\r\n'), Buffer.alloc(1000, 'y')]);
    assert.ok(body.buffer.byteLength > body.byteLength, 'the test body is a pool slice');
    const message = sampleMessage('acct', ['a@one.test'], { body, variants: [variant] });
    assert.deepEqual(await store.insertMessages([message]), []);
    const [call] = await received;
    assert.ok(call);
    const [sent] = call.args[0] as NewMessage[];
    assert.equal(sent?.body.buffer.byteLength, body.byteLength);
    assert.deepEqual(Buffer.from(sent?.body ?? []), body);
    assert.equal(sent?.variants?.[0]?.buffer.byteLength, variant.byteLength);
    assert.equal(message.body, body, "the caller's message is left as it was");
  });
});
