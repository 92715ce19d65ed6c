import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createStream, updateStreamTracking } from '../../src/auth/streams.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { defaultTracking, effectiveTracking } from '../../src/tracking/settings.ts';
import { tempDir } from '../support/temp-dir.ts';

describe('tracking settings', () => {
  it('kind defaults: broadcast tracks opens and clicks with List-Unsubscribe; transactional nothing', () => {
    assert.deepEqual(defaultTracking('broadcast'), {
      opens: true,
      clicks: true,
      textLinks: false,
      listUnsubscribe: true,
    });
    assert.deepEqual(defaultTracking('transactional'), {
      opens: false,
      clicks: false,
      textLinks: false,
      listUnsubscribe: false,
    });
  });

  it('the stream over the kind, the message over the stream', () => {
    assert.deepEqual(effectiveTracking('broadcast', { clicks: false, textLinks: true }, { opens: false }), {
      opens: false,
      clicks: false,
      textLinks: true,
      listUnsubscribe: true,
    });
    assert.deepEqual(effectiveTracking('transactional', undefined, { clicks: true }), {
      opens: false,
      clicks: true,
      textLinks: false,
      listUnsubscribe: false,
    });
  });

  it('updateStreamTracking (postbote streams update): changes given switches, null = back to default, default streams too', async () => {
    const dir = tempDir();
    const store = new SqliteStore(join(dir.path, 'p.db'));
    try {
      await store.migrate();
      const account = await store.createAccount({ id: 'a1', name: 'shop', createdAt: 1 });
      await createStream(store, { ...account }, { name: 'news', kind: 'broadcast' }, 2);
      await updateStreamTracking(store, account, 'news', { clicks: false, textLinks: true });
      let news = await store.getStream('a1', 'news');
      assert.deepEqual(news?.settings, { tracking: { clicks: false, textLinks: true } });
      await updateStreamTracking(store, account, 'NEWS', { clicks: null, opens: false });
      news = await store.getStream('a1', 'news');
      assert.deepEqual(news?.settings, { tracking: { textLinks: true, opens: false } });
      assert.deepEqual(effectiveTracking('broadcast', news?.settings?.tracking, undefined), {
        opens: false,
        clicks: true,
        textLinks: true,
        listUnsubscribe: true,
      });
      const outbound = await updateStreamTracking(store, account, 'outbound', { opens: true });
      assert.deepEqual([outbound.kind, outbound.isDefault], ['transactional', true]);
      assert.deepEqual((await store.getStream('a1', 'outbound'))?.settings, { tracking: { opens: true } });
      await assert.rejects(
        updateStreamTracking(store, account, 'nope', { opens: true }),
        /has no stream "nope"/,
      );
    } finally {
      await store.close();
      dir.cleanup();
    }
  });
});
