import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runRetention } from '../../src/maintenance/retention.ts';
import { newId } from '../../src/store/ids.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { sampleMessage, T0 } from '../store/contract.ts';
import { tempDir } from '../support/temp-dir.ts';

const DAY = 86_400_000;

describe('retention per account', () => {
  it('an account with its own retention keeps (or drops) its mail on its own terms; the rest follow the defaults', async () => {
    const dir = tempDir('postbote-retention-');
    const store = new SqliteStore(join(dir.path, 'postbote.db'));
    try {
      await store.migrate();
      const ids = { short: newId(T0), long: newId(T0), plain: newId(T0) };
      for (const [name, id] of Object.entries(ids)) await store.createAccount({ id, name, createdAt: T0 });
      // Each account: one finished message received 10 days ago.
      const at = T0 - 10 * DAY;
      const messages = Object.fromEntries(
        Object.entries(ids).map(([name, id]) => [
          name,
          sampleMessage(id, ['a@x.test'], { id: newId(at), receivedAt: at }),
        ]),
      );
      await store.insertMessages(Object.values(messages));
      await store.cancel({ domain: 'x.test' }, at + 1);
      // short: bodies 1 day, messages 5 days; long: bodies 30 days; plain: the defaults (7 d / 90 d).
      await store.setAccountRetention({ accountId: ids.short, bodiesMs: DAY, metadataMs: 5 * DAY });
      await store.setAccountRetention({ accountId: ids.long, bodiesMs: 30 * DAY, metadataMs: null });
      const result = await runRetention(store, { bodiesMs: 7 * DAY, metadataMs: 90 * DAY }, T0);
      assert.deepEqual([result.messages, result.bodies], [1, 1]);
      assert.equal(await store.getMessage(messages.short?.id ?? ''), undefined);
      assert.equal((await store.getMessage(messages.long?.id ?? ''))?.bodyPurged, false);
      assert.equal((await store.getMessage(messages.plain?.id ?? ''))?.bodyPurged, true);
    } finally {
      await store.close();
      dir.cleanup();
    }
  });
});
