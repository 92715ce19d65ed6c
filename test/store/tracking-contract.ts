import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newId } from '../../src/store/ids.ts';
import type { Store } from '../../src/store/store.ts';
import { withStoreOf } from './adapters.ts';
import { sampleMessage, T0 } from './contract.ts';

/**
 * The store's part of tracking (stream settings, recipients by position, engagement events with
 * `first`), run on every adapter like the main contract.
 */
export function trackingContract(
  name: string,
  open: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
): void {
  const withStore = withStoreOf(open);

  async function seedAccount(store: Store): Promise<string> {
    const id = newId(T0);
    await store.createAccount({ id, name: 'acme', createdAt: T0 });
    return id;
  }

  describe(`Store contract, tracking: ${name}`, () => {
    it('stream settings: a created stream keeps them; a default stream gets a row with its kind', async () => {
      await withStore(async (store) => {
        const account = await seedAccount(store);
        await store.createStream({
          accountId: account,
          name: 'news',
          kind: 'broadcast',
          pool: '',
          createdAt: T0,
        });
        assert.equal((await store.getStream(account, 'news'))?.settings, undefined, 'none until set');
        await store.setStreamSettings({
          accountId: account,
          name: 'news',
          kind: 'transactional', // ignored: the row exists
          createdAt: T0 + 5,
          settings: { tracking: { opens: false, textLinks: true } },
        });
        const news = await store.getStream(account, 'news');
        assert.deepEqual(
          [news?.kind, news?.createdAt, news?.settings],
          ['broadcast', T0, { tracking: { opens: false, textLinks: true } }],
        );

        await store.setStreamSettings({
          accountId: account,
          name: 'outbound',
          kind: 'transactional',
          createdAt: T0,
          settings: { tracking: { opens: true } },
        });
        const outbound = await store.getStream(account, 'outbound');
        assert.deepEqual(
          [outbound?.kind, outbound?.isDefault, outbound?.pool, outbound?.settings],
          ['transactional', true, '', { tracking: { opens: true } }],
        );
        const listed = (await store.listStreams(account)).map((s) => [s.name, s.settings?.tracking ?? {}]);
        assert.deepEqual(listed, [
          ['broadcast', {}],
          ['news', { opens: false, textLinks: true }],
          ['outbound', { opens: true }],
        ]);
      });
    });

    it('finds a recipient by its position in the message; none past the end or below zero', async () => {
      await withStore(async (store) => {
        const account = await seedAccount(store);
        const message = sampleMessage(account, ['a@example.com', 'b@example.com', 'c@example.com']);
        await store.insertMessages([message]);
        assert.equal((await store.getRecipientAt(message.id, 0))?.address, 'a@example.com');
        assert.equal((await store.getRecipientAt(message.id, 2))?.address, 'c@example.com');
        assert.equal(await store.getRecipientAt(message.id, 3), undefined);
        assert.equal(await store.getRecipientAt(message.id, -1), undefined);
        assert.equal(await store.getRecipientAt('nosuchmessage', 0), undefined);
      });
    });

    it('records opens, clicks and unsubscribes with `first` per recipient and type', async () => {
      await withStore(async (store) => {
        const account = await seedAccount(store);
        const message = sampleMessage(account, ['a@example.com', 'b@example.com']);
        await store.insertMessages([message]);
        const [a, b] = await store.getRecipients(message.id);
        assert.ok(a && b);
        const record = (recipientId: number, type: 'opened' | 'clicked' | 'unsubscribed', at: number) =>
          store.recordEngagement({
            recipientId,
            at,
            type,
            data: { userAgent: 'ua', url: 'https://x.test/' },
          });
        assert.deepEqual(await record(a.id, 'opened', T0 + 1), { first: true });
        assert.deepEqual(await record(a.id, 'opened', T0 + 2), { first: false });
        assert.deepEqual(await record(b.id, 'opened', T0 + 3), { first: true }, 'another recipient');
        assert.deepEqual(await record(a.id, 'clicked', T0 + 4), { first: true }, 'another type');
        assert.deepEqual(await record(a.id, 'unsubscribed', T0 + 5), { first: true });
        assert.equal(await record(999_999, 'opened', T0), undefined, 'no such recipient: nothing recorded');

        const events = (await store.getEvents(message.id)).filter((e) =>
          ['opened', 'clicked', 'unsubscribed'].includes(e.type),
        );
        assert.deepEqual(
          events.map((e) => [e.type, e.recipient, e.at, e.data.first, e.data.userAgent, e.accountId]),
          [
            ['opened', 'a@example.com', T0 + 1, true, 'ua', account],
            ['opened', 'a@example.com', T0 + 2, false, 'ua', account],
            ['opened', 'b@example.com', T0 + 3, true, 'ua', account],
            ['clicked', 'a@example.com', T0 + 4, true, 'ua', account],
            ['unsubscribed', 'a@example.com', T0 + 5, true, 'ua', account],
          ],
        );
      });
    });
  });
}
