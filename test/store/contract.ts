import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newId } from '../../src/store/ids.ts';
import type { Store } from '../../src/store/store.ts';
import {
  CANCEL_REASON,
  type DkimKey,
  type LeaseRequest,
  type NewMessage,
  type NewRecipient,
  type NewShapingEvent,
  type Outcome,
  type Reply,
  type SenderPolicy,
  type SendingDomain,
  SHAPING_REPLY_MAX,
  type StreamKind,
  type Suppression,
} from '../../src/store/types.ts';
import { withStoreOf } from './adapters.ts';

export const T0 = Date.parse('2026-11-28T12:00:00Z');

/** A small message for store tests; `overrides` replace any field. */
export function sampleMessage(
  accountId: string,
  recipients: string[],
  overrides: Partial<NewMessage> = {},
): NewMessage {
  return {
    id: newId(T0),
    accountId,
    credentialId: null,
    mailFrom: 'sender@example.com',
    recipients: recipients.map((address) => ({ address, domain: address.split('@')[1] ?? '' })),
    body: Buffer.from('Subject: hi\r\n\r\nhello\r\n'),
    messageIdHeader: '<m@example.com>',
    subject: 'hi',
    source: 'smtp',
    clientIp: '127.0.0.1',
    dsn: {},
    dsnOnFailure: true,
    receivedAt: T0,
    ...overrides,
  };
}

/**
 * The Store contract: every adapter runs these. `open` returns a fresh, migrated store and a
 * cleanup function.
 */
export function storeContract(
  name: string,
  open: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
): void {
  const withStore = withStoreOf(open);

  async function seedAccount(store: Store, name = 'acme'): Promise<string> {
    const id = newId(T0);
    await store.createAccount({ id, name, createdAt: T0 });
    return id;
  }

  function outcome(
    r: { id: number; messageId: string; accountId: string; address: string },
    o: Partial<Outcome>,
  ): Outcome {
    return {
      at: T0 + 1000,
      recipientId: r.id,
      messageId: r.messageId,
      accountId: r.accountId,
      recipient: r.address,
      state: 'delivered',
      attempted: true,
      reply: { code: 250, enhanced: '2.0.0', text: 'ok' },
      event: { type: 'delivered', data: { mxHost: 'mx.example.com' } },
      ...o,
    };
  }

  describe(`Store contract: ${name}`, () => {
    it('creates and finds accounts; names are unique', async () => {
      await withStore(async (store) => {
        const id = await seedAccount(store);
        assert.equal((await store.getAccountByName('acme'))?.id, id);
        assert.equal((await store.getAccount(id))?.name, 'acme');
        await assert.rejects(store.createAccount({ id: newId(), name: 'acme', createdAt: T0 }));
        assert.deepEqual(
          (await store.listAccounts()).map((a) => a.name),
          ['acme'],
        );
      });
    });

    it('stores credentials, finds active ones by kind and name, revokes', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const base = {
          accountId,
          createdAt: T0,
          revokedAt: null,
          cidrs: [] as string[],
          defaultStream: '',
          scopes: ['send', 'read'],
        };
        await store.createCredential({ ...base, id: 'c1', kind: 'smtp', name: 'app', secretHash: 'h1' });
        await store.createCredential({
          ...base,
          id: 'c2',
          kind: 'ip',
          name: 'lan',
          secretHash: '',
          cidrs: ['10.0.0.0/8'],
        });
        assert.equal((await store.findCredential('smtp', 'app'))?.id, 'c1');
        assert.equal((await store.getCredential('c1'))?.defaultStream, '');
        assert.equal(await store.findCredential('api', 'app'), undefined);
        assert.deepEqual((await store.listCredentials({ kind: 'ip' }))[0]?.cidrs, ['10.0.0.0/8']);
        assert.equal(await store.revokeCredential('c1', T0 + 1), true);
        assert.equal(await store.revokeCredential('c1', T0 + 2), false);
        assert.equal(await store.findCredential('smtp', 'app'), undefined);
        assert.equal((await store.listCredentials({ includeRevoked: true })).length, 2);
        // The name is free again once revoked.
        await store.createCredential({
          ...base,
          id: 'c3',
          kind: 'smtp',
          name: 'app',
          secretHash: 'h3',
          defaultStream: 'news',
        });
        assert.equal((await store.findCredential('smtp', 'app'))?.id, 'c3');
        assert.equal((await store.findCredential('smtp', 'app'))?.defaultStream, 'news');
      });
    });

    it('keeps the scopes of an API key as given, none included', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const key = (id: string, scopes: string[]) => ({
          id,
          accountId,
          kind: 'api' as const,
          name: id,
          secretHash: `h-${id}`,
          cidrs: [],
          createdAt: T0,
          revokedAt: null,
          defaultStream: '',
          scopes,
        });
        await store.createCredential(key('full', ['send', 'read', 'templates']));
        await store.createCredential(key('send-only', ['send']));
        await store.createCredential(key('none', []));
        assert.deepEqual((await store.getCredential('full'))?.scopes, ['send', 'read', 'templates']);
        assert.deepEqual((await store.findCredential('api', 'send-only'))?.scopes, ['send']);
        assert.deepEqual((await store.getCredential('none'))?.scopes, []);
        assert.deepEqual(
          (await store.listCredentials({ kind: 'api' })).map((c) => [c.id, c.scopes]),
          [
            ['full', ['send', 'read', 'templates']],
            ['none', []],
            ['send-only', ['send']],
          ],
        );
      });
    });

    it('inserts messages with one row per recipient and an accepted event each', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const m = sampleMessage(accountId, ['a@one.test', 'b@two.test']);
        await store.insertMessages([m]);
        const recipients = await store.getRecipients(m.id);
        assert.deepEqual(
          recipients.map((r) => [r.address, r.domain, r.state]),
          [
            ['a@one.test', 'one.test', 'queued'],
            ['b@two.test', 'two.test', 'queued'],
          ],
        );
        assert.deepEqual(
          (await store.getEvents(m.id)).map((e) => [e.type, e.recipient]),
          [
            ['accepted', 'a@one.test'],
            ['accepted', 'b@two.test'],
          ],
        );
        assert.deepEqual(await store.getBody(m.id), m.body);
        assert.equal((await store.getMessage(m.id))?.size, m.body.length);
      });
    });

    it('records a message’s content warnings as one content_warning event after its recipients’ events, in the insert', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const warned = sampleMessage(accountId, ['a@one.test', 'b@two.test'], {
          contentWarnings: [
            'the message had no Date (Postbote added one)',
            'an HTML body without a text/plain alternative',
          ],
        });
        const clean = sampleMessage(accountId, ['c@three.test'], { contentWarnings: [] });
        const other = sampleMessage(accountId, ['d@four.test'], { contentWarnings: ['no unsubscribe'] });
        // One insert of three messages: each warning lands with its own message.
        await store.insertMessages([warned, clean, other]);
        const events = async (id: string) =>
          (await store.getEvents(id)).map((e) => [e.type, e.recipient ?? null, e.data.warnings ?? null]);
        assert.deepEqual(await events(warned.id), [
          ['accepted', 'a@one.test', null],
          ['accepted', 'b@two.test', null],
          [
            'content_warning',
            null,
            ['the message had no Date (Postbote added one)', 'an HTML body without a text/plain alternative'],
          ],
        ]);
        assert.deepEqual(await events(clean.id), [['accepted', 'c@three.test', null]]);
        assert.deepEqual(await events(other.id), [
          ['accepted', 'd@four.test', null],
          ['content_warning', null, ['no unsubscribe']],
        ]);
        const all = await store.getEvents(warned.id);
        assert.ok(
          all.every((e, i) => i === 0 || e.id > (all[i - 1]?.id ?? 0)),
          'ids in order',
        );
      });
    });

    it('finds messages by their Message-ID header, newest first', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        await store.insertMessages([
          sampleMessage(accountId, ['a@example.org'], { id: 'm-1', messageIdHeader: '<same@example.com>' }),
          sampleMessage(accountId, ['b@example.org'], { id: 'm-2', messageIdHeader: '<same@example.com>' }),
          sampleMessage(accountId, ['c@example.org'], { id: 'm-3', messageIdHeader: '<other@example.com>' }),
        ]);
        assert.deepEqual(
          (await store.findMessagesByHeader('<same@example.com>')).map((m) => m.id),
          ['m-2', 'm-1'],
        );
        assert.deepEqual(await store.findMessagesByHeader('<none@example.com>'), []);
      });
    });

    it('delivers with the envelope sender intake chose; the message keeps the submitter’s', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const signed = sampleMessage(accountId, ['a@example.org'], {
          id: 'm-signed',
          envelopeFrom: 'pb-m-signed@pb-bounces.example.com',
        });
        const plain = sampleMessage(accountId, ['b@example.org'], { id: 'm-plain' });
        await store.insertMessages([signed, plain]);
        const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 10, leaseUntil: T0 + 60_000 });
        assert.deepEqual(leased.map((r) => [r.messageId, r.mailFrom]).sort(), [
          ['m-plain', 'sender@example.com'],
          ['m-signed', 'pb-m-signed@pb-bounces.example.com'],
        ]);
        assert.equal((await store.getMessage('m-signed'))?.mailFrom, 'sender@example.com');
      });
    });

    it('concurrent inserts all commit (group commit) and a failing one fails alone', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const good = Array.from({ length: 50 }, () => sampleMessage(accountId, ['x@one.test']));
        const dup = good[0] as NewMessage;
        const results = await Promise.allSettled([
          ...good.map((m) => store.insertMessages([m])),
          store.insertMessages([{ ...dup, recipients: [{ address: 'y@one.test', domain: 'one.test' }] }]),
        ]);
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 50);
        assert.equal(results.at(-1)?.status, 'rejected');
        assert.equal((await store.countByState()).queued, 50);
      });
    });

    it('leases due recipients once, honours next attempt time, and expired leases return', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const now = T0;
        await store.insertMessages([sampleMessage(accountId, ['a@one.test', 'b@one.test'])]);
        await store.insertMessages([
          sampleMessage(accountId, ['later@one.test'], { notBefore: now + 60_000 }),
        ]);
        const first = await store.leaseDue({ owner: 'n1', now, limit: 10, leaseUntil: now + 30_000 });
        assert.deepEqual(first.map((r) => r.address).sort(), ['a@one.test', 'b@one.test']);
        assert.equal(first[0]?.mailFrom, 'sender@example.com');
        assert.equal(
          (await store.leaseDue({ owner: 'n2', now, limit: 10, leaseUntil: now + 30_000 })).length,
          0,
        );
        assert.equal(await store.nextDueAt(), now + 30_000);
        // Lease expired (the node died): another node takes the work; the delayed one is due too.
        const later = await store.leaseDue({
          owner: 'n2',
          now: now + 60_001,
          limit: 10,
          leaseUntil: now + 90_000,
        });
        assert.deepEqual(later.map((r) => r.address).sort(), ['a@one.test', 'b@one.test', 'later@one.test']);
      });
    });

    it('renewed leases are not taken by others; released leases return to the queue', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        await store.insertMessages([sampleMessage(accountId, ['a@one.test'])]);
        const [r] = await store.leaseDue({ owner: 'n1', now: T0, limit: 1, leaseUntil: T0 + 1000 });
        assert.ok(r);
        await store.renewLeases({ owner: 'n1', ids: [r.id], leaseUntil: T0 + 10_000 });
        assert.equal(
          (await store.leaseDue({ owner: 'n2', now: T0 + 5000, limit: 1, leaseUntil: T0 + 6000 })).length,
          0,
        );
        assert.equal(await store.releaseLeases('n1', T0 + 5000), 1);
        const again = await store.leaseDue({ owner: 'n2', now: T0 + 5000, limit: 1, leaseUntil: T0 + 6000 });
        assert.equal(again[0]?.id, r.id);
      });
    });

    it('records outcomes: state, attempts, last reply, events; limits the batch to the lease', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const m = sampleMessage(accountId, ['ok@one.test', 'later@one.test', 'bad@one.test']);
        await store.insertMessages([m]);
        const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 10, leaseUntil: T0 + 1000 });
        const by = (a: string) => leased.find((r) => r.address === a)!;
        await store.recordOutcomes('n1', [
          outcome(by('ok@one.test'), {}),
          outcome(by('later@one.test'), {
            state: 'deferred',
            nextAttemptAt: T0 + 300_000,
            reply: { code: 451, enhanced: '4.7.1', text: 'greylisted' },
            event: { type: 'deferred', data: { nextAttemptAt: T0 + 300_000 } },
          }),
          outcome(by('bad@one.test'), {
            state: 'bounced',
            reply: { code: 550, enhanced: '5.1.1', text: 'no such user' },
            event: { type: 'bounced', data: {} },
          }),
        ]);
        const rows = await store.getRecipients(m.id);
        const row = (a: string) => rows.find((r) => r.address === a)!;
        assert.equal(row('ok@one.test').state, 'delivered');
        assert.equal(row('later@one.test').state, 'deferred');
        assert.equal(row('later@one.test').nextAttemptAt, T0 + 300_000);
        assert.deepEqual(row('later@one.test').lastReply, {
          code: 451,
          enhanced: '4.7.1',
          text: 'greylisted',
        });
        assert.equal(row('bad@one.test').attempts, 1);
        assert.equal(row('bad@one.test').leaseOwner, null);
        const types = (await store.getEvents(m.id)).map((e) => e.type);
        assert.deepEqual(types.filter((t) => t !== 'accepted').sort(), ['bounced', 'deferred', 'delivered']);
        assert.equal(await store.nextDueAt(), T0 + 300_000);
        assert.deepEqual(await store.countByState(), { bounced: 1, deferred: 1, delivered: 1 });
      });
    });

    it('an outcome does not undo a cancel or touch a lease it does not hold; delivered always counts', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const m = sampleMessage(accountId, ['a@one.test', 'b@one.test', 'c@one.test']);
        await store.insertMessages([m]);
        const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 10, leaseUntil: T0 + 1000 });
        const by = (a: string) => leased.find((r) => r.address === a)!;
        await store.cancel({ messageId: m.id }, T0 + 10);
        const deferred = {
          state: 'deferred' as const,
          nextAttemptAt: T0 + 60_000,
          event: { type: 'deferred' as const, data: {} },
        };
        const applied = await store.recordOutcomes('n1', [
          outcome(by('a@one.test'), deferred),
          outcome(by('b@one.test'), {}),
        ]);
        assert.deepEqual(applied, [by('b@one.test').id]);
        const rows = await store.getRecipients(m.id);
        assert.deepEqual(
          rows.map((r) => [r.address, r.state]),
          [
            ['a@one.test', 'cancelled'],
            ['b@one.test', 'delivered'],
            ['c@one.test', 'cancelled'],
          ],
        );
        // Another owner's outcome for a recipient leased by n2 is not applied.
        const m2 = sampleMessage(accountId, ['d@one.test']);
        await store.insertMessages([m2]);
        const [d] = await store.leaseDue({ owner: 'n2', now: T0, limit: 10, leaseUntil: T0 + 1000 });
        assert.ok(d);
        assert.deepEqual(await store.recordOutcomes('n1', [outcome(d, deferred)]), []);
        assert.equal((await store.getRecipients(m2.id))[0]?.state, 'delivering');
        // releaseLeases(null) frees every lease (single-node start-up after a crash).
        assert.equal(await store.releaseLeases(null, T0 + 20), 1);
        assert.equal((await store.getRecipients(m2.id))[0]?.state, 'queued');
      });
    });

    it('a recovered delivery (outcome journal) is recorded once: not over one already stored', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const m = sampleMessage(accountId, ['a@one.test', 'b@one.test', 'c@one.test']);
        await store.insertMessages([m]);
        const leased = await store.leaseDue({ owner: 'old-run', now: T0, limit: 10, leaseUntil: T0 + 1000 });
        const by = (a: string) => leased.find((r) => r.address === a)!;
        // a was recorded before the crash, b and c were not; c was already released by start-up.
        await store.recordOutcomes('old-run', [outcome(by('a@one.test'), {})]);
        await store.releaseLeases('old-run', T0 + 5);
        await store.leaseDue({ owner: 'old-run', now: T0 + 6, limit: 1, leaseUntil: T0 + 1000 });
        const applied = await store.recordOutcomes(
          'new-run',
          ['a@one.test', 'b@one.test', 'c@one.test'].map((a) => outcome(by(a), { recovered: true })),
        );
        assert.deepEqual(applied.sort(), [by('b@one.test').id, by('c@one.test').id].sort());
        const rows = await store.getRecipients(m.id);
        assert.deepEqual(
          rows.map((r) => [r.address, r.state, r.attempts]),
          [
            ['a@one.test', 'delivered', 1],
            ['b@one.test', 'delivered', 1],
            ['c@one.test', 'delivered', 1],
          ],
        );
        const delivered = (await store.getEvents(m.id)).filter((e) => e.type === 'delivered');
        assert.deepEqual(delivered.map((e) => e.recipient).sort(), [
          'a@one.test',
          'b@one.test',
          'c@one.test',
        ]);
      });
    });
    it('keeps node heartbeats and reports the leases each node holds', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        await store.insertMessages([sampleMessage(accountId, ['a@one.test', 'b@one.test', 'c@one.test'])]);
        await store.leaseDue({ owner: 'node-a', now: T0, limit: 2, leaseUntil: T0 + 60_000 });
        await store.heartbeat({ id: 'node-a', startedAt: T0, info: { delivered: 1 } }, T0 + 10);
        await store.heartbeat({ id: 'node-b', startedAt: T0, info: {} }, T0 + 10);
        await store.heartbeat({ id: 'node-a', startedAt: T0, info: { delivered: 5, inflight: 2 } }, T0 + 20);
        assert.deepEqual(await store.clusterStatus(), [
          {
            id: 'node-a',
            startedAt: T0,
            heartbeatAt: T0 + 20,
            info: { delivered: 5, inflight: 2 },
            leases: 2,
          },
          { id: 'node-b', startedAt: T0, heartbeatAt: T0 + 10, info: {}, leases: 0 },
        ]);
        // Nodes not heard of since `before` are forgotten (their leases are long expired).
        assert.equal(await store.forgetNodes(T0 + 10), 0);
        assert.equal(await store.forgetNodes(T0 + 11), 1);
        assert.deepEqual(
          (await store.clusterStatus()).map((n) => n.id),
          ['node-a'],
        );
      });
    });

    it('a held recipient stays out of leases until an operator retries it', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const m = sampleMessage(accountId, ['kept@hold.test']);
        await store.insertMessages([m]);
        const [r] = await store.leaseDue({ owner: 'n1', now: T0, limit: 10, leaseUntil: T0 + 1000 });
        assert.ok(r);
        await store.recordOutcomes('n1', [
          outcome(r, {
            state: 'held',
            attempted: false,
            reply: { code: 450, enhanced: '4.7.0', text: 'held by route quarantine' },
            event: { type: 'held', data: {} },
          }),
        ]);
        assert.equal((await store.getRecipients(m.id))[0]?.state, 'held');
        assert.deepEqual(
          await store.leaseDue({ owner: 'n1', now: T0 + 5000, limit: 10, leaseUntil: T0 + 6000 }),
          [],
        );
        assert.equal(await store.retryNow({ messageId: m.id }, T0 + 5000), 1);
        const [again] = await store.getRecipients(m.id);
        assert.deepEqual([again?.state, again?.attempts], ['queued', 0]);
        const leased = await store.leaseDue({
          owner: 'n1',
          now: T0 + 5000,
          limit: 10,
          leaseUntil: T0 + 6000,
        });
        assert.deepEqual(
          leased.map((x) => x.address),
          ['kept@hold.test'],
        );
      });
    });

    it('lists messages by recipient and status; queue summary, retry and cancel', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const m1 = sampleMessage(accountId, ['a@slow.test']);
        const m2 = sampleMessage(accountId, ['b@slow.test', 'c@fast.test']);
        await store.insertMessages([m1, m2]);
        const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 10, leaseUntil: T0 + 1000 });
        await store.recordOutcomes(
          'n1',
          leased
            .filter((r) => r.domain === 'slow.test')
            .map((r) =>
              outcome(r, {
                state: 'deferred',
                nextAttemptAt: T0 + 600_000,
                reply: { code: 421, enhanced: '4.7.0', text: 'try again later' },
                event: { type: 'deferred', data: {} },
              }),
            ),
        );
        await store.releaseLeases('n1', T0);
        assert.deepEqual(
          (await store.listMessages({ recipient: 'c@fast.test' })).map((m) => m.id),
          [m2.id],
        );
        assert.equal((await store.listMessages({ status: 'deferred' })).length, 2);
        const summary = await store.queueSummary(T0 + 1000);
        const slow = summary.find((s) => s.domain === 'slow.test');
        assert.equal(slow?.deferred, 2);
        assert.deepEqual(slow?.reasons, [{ text: '421 4.7.0 try again later', count: 2 }]);
        assert.equal(slow?.ages.underHour, 2);
        assert.equal(await store.retryNow({ domain: 'slow.test' }, T0 + 2000), 2);
        assert.equal(await store.nextDueAt(), T0);
        assert.equal(await store.cancel({ messageId: m1.id }, T0 + 3000), 1);
        assert.equal((await store.getRecipients(m1.id))[0]?.state, 'cancelled');
        assert.ok((await store.getEvents(m1.id)).some((e) => e.type === 'cancelled'));
      });
    });

    it('keeps tags, metadata and the template of a message; lists them', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const tagged = sampleMessage(accountId, ['a@one.test'], {
          tags: ['welcome', 'onboarding'],
          metadata: { userId: '42', plan: 'pro' },
          template: 'tpl-1@3',
        });
        const plain = sampleMessage(accountId, ['b@one.test']);
        await store.insertMessages([tagged, plain]);
        const got = await store.getMessage(tagged.id);
        assert.deepEqual(
          [got?.tags, got?.metadata, got?.template],
          [['welcome', 'onboarding'], { userId: '42', plan: 'pro' }, 'tpl-1@3'],
        );
        const none = await store.getMessage(plain.id);
        assert.deepEqual([none?.tags, none?.metadata, none?.template], [[], {}, '']);
        const listed = await store.listMessages({});
        const row = (id: string) => listed.find((m) => m.id === id);
        assert.deepEqual(
          [row(tagged.id)?.tags, row(tagged.id)?.metadata, row(tagged.id)?.template],
          [['welcome', 'onboarding'], { userId: '42', plan: 'pro' }, 'tpl-1@3'],
        );
        assert.deepEqual(
          [row(plain.id)?.tags, row(plain.id)?.metadata, row(plain.id)?.template],
          [[], {}, ''],
        );
      });
    });

    it('lists messages carrying a tag, received at or after a time, of an account', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const other = await seedAccount(store, 'other');
        const at = (receivedAt: number, tags: string[], account = accountId) =>
          sampleMessage(account, ['a@one.test'], { receivedAt, tags });
        const early = at(T0 - 2000, ['news', 'eu']);
        const middle = at(T0 - 1000, ['news']);
        const late = at(T0, ['alerts']);
        // A tag that only contains "news", and another account's message with the tag.
        const similar = at(T0, ['newsletter']);
        const theirs = at(T0, ['news'], other);
        await store.insertMessages([early, middle, late, similar, theirs]);
        const ids = async (filter: Parameters<Store['listMessages']>[0]) =>
          (await store.listMessages(filter)).map((m) => m.id).sort();
        assert.deepEqual(await ids({ tag: 'news' }), [early.id, middle.id, theirs.id].sort());
        assert.deepEqual(await ids({ tag: 'news', accountId }), [early.id, middle.id].sort());
        assert.deepEqual(await ids({ tag: 'eu' }), [early.id]);
        assert.deepEqual(await ids({ tag: 'missing' }), []);
        assert.deepEqual(await ids({ after: T0 - 1000, accountId }), [middle.id, late.id, similar.id].sort());
        assert.deepEqual(await ids({ after: T0 + 1 }), []);
        assert.deepEqual(await ids({ tag: 'news', after: T0 - 1000, accountId }), [middle.id]);
      });
    });

    it('lists messages whose subject contains a text, ASCII case ignored, percent and underscore literal', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const titled = (subject: string) => sampleMessage(accountId, ['a@one.test'], { subject });
        const order = titled('Your ORDER #1042 has shipped');
        const invoice = titled('Invoice 100% paid');
        const plain = titled('Welcome');
        await store.insertMessages([order, invoice, plain]);
        const ids = async (subject: string) =>
          (await store.listMessages({ accountId, subject })).map((m) => m.id).sort();
        assert.deepEqual(await ids('order #10'), [order.id]);
        assert.deepEqual(await ids('100%'), [invoice.id]);
        assert.deepEqual(await ids('%'), [invoice.id], 'a % is a character, not a wildcard');
        assert.deepEqual(await ids('_'), []);
        assert.deepEqual(await ids('e'), [invoice.id, order.id, plain.id].sort());
      });
    });

    it('personalised copies: each recipient gets its own body, size and accepted event size', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const copies = [
          Buffer.from('Subject: for a\r\n\r\nHi Ann\r\n'),
          Buffer.from('Subject: for b\r\n\r\nHello there, Bob\r\n'),
        ];
        const m = sampleMessage(accountId, [], {
          body: Buffer.from('Subject: all\r\n\r\nx\r\n'),
          variants: copies,
          recipients: [
            { address: 'ann@one.test', domain: 'one.test', variant: 1 },
            { address: 'bob@one.test', domain: 'one.test', variant: 2 },
            { address: 'cc@one.test', domain: 'one.test' },
          ],
        });
        // Only copies, no message body of its own.
        const onlyCopies = sampleMessage(accountId, [], {
          body: Buffer.alloc(0),
          variants: [Buffer.from('Subject: solo\r\n\r\nsolo\r\n')],
          recipients: [{ address: 'solo@two.test', domain: 'two.test', variant: 1 }],
        });
        const plain = sampleMessage(accountId, ['plain@two.test']);
        await store.insertMessages([m, onlyCopies, plain]);

        // Asked for together, as the delivery engine does: each (message, copy) gets its own body.
        const bodies = await Promise.all([
          store.getBody(m.id),
          store.getBody(m.id, 1),
          store.getBody(m.id, 2),
          store.getBody(onlyCopies.id, 1),
          store.getBody(plain.id),
          store.getBody(onlyCopies.id),
          store.getBody(m.id, 3),
          store.getBody(plain.id, 1),
        ]);
        assert.deepEqual(bodies, [
          m.body,
          copies[0],
          copies[1],
          onlyCopies.variants?.[0],
          plain.body,
          Buffer.alloc(0),
          undefined,
          undefined,
        ]);

        assert.deepEqual(
          (await store.getRecipients(m.id)).map((r) => [r.address, r.variant]),
          [
            ['ann@one.test', 1],
            ['bob@one.test', 2],
            ['cc@one.test', 0],
          ],
        );
        // The message's size is its largest copy; each accepted event gives the recipient's own.
        assert.equal((await store.getMessage(m.id))?.size, copies[1]?.length);
        assert.equal((await store.getMessage(onlyCopies.id))?.size, onlyCopies.variants?.[0]?.length);
        assert.deepEqual(
          (await store.getEvents(m.id)).map((e) => [e.recipient, e.data.size]),
          [
            ['ann@one.test', copies[0]?.length],
            ['bob@one.test', copies[1]?.length],
            ['cc@one.test', m.body.length],
          ],
        );

        const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 10, leaseUntil: T0 + 1000 });
        assert.deepEqual(leased.map((r) => [r.address, r.variant]).sort(), [
          ['ann@one.test', 1],
          ['bob@one.test', 2],
          ['cc@one.test', 0],
          ['plain@two.test', 0],
          ['solo@two.test', 1],
        ]);
      });
    });

    it('insertMessages answers an idempotency key in the same transaction as the messages', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const claim = (key: string) =>
          store.claimIdempotencyKey({
            accountId,
            key,
            requestHash: `hash-${key}`,
            now: T0,
            staleBefore: T0 - 60_000,
            expiredBefore: T0 - 86_400_000,
          });
        for (const key of ['k1', 'k2', 'k3', 'k4']) assert.equal(await claim(key), undefined);
        const first = sampleMessage(accountId, ['a@one.test']);
        await store.insertMessages([first], { idempotency: { accountId, key: 'k1', response: '{"id":1}' } });
        assert.deepEqual(await claim('k1'), { requestHash: 'hash-k1', response: '{"id":1}', createdAt: T0 });
        assert.equal((await store.getMessage(first.id))?.id, first.id);

        // Concurrent calls share commits; the one that fails (a duplicate id) leaves its key
        // unanswered, so a retry may run, and the others' keys are answered with their messages.
        const second = sampleMessage(accountId, ['b@one.test']);
        const results = await Promise.allSettled([
          store.insertMessages([second], { idempotency: { accountId, key: 'k2', response: 'two' } }),
          store.insertMessages([{ ...first, recipients: [{ address: 'x@one.test', domain: 'one.test' }] }], {
            idempotency: { accountId, key: 'k3', response: 'three' },
          }),
          store.insertMessages([sampleMessage(accountId, ['c@one.test'])]),
          // No messages: the key is still answered.
          store.insertMessages([], { idempotency: { accountId, key: 'k4', response: 'four' } }),
        ]);
        assert.deepEqual(
          results.map((r) => r.status),
          ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
        );
        assert.equal((await claim('k2'))?.response, 'two');
        assert.equal((await store.getMessage(second.id))?.id, second.id);
        assert.deepEqual(await claim('k3'), { requestHash: 'hash-k3', createdAt: T0 });
        assert.equal((await claim('k4'))?.response, 'four');
        assert.equal((await store.countByState()).queued, 3);
      });
    });

    it('insertMessages with a lease leases the recipients due now to its owner and returns them', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const lease = { owner: 'node-a', until: T0 + 60_000, now: T0 };
        const now = sampleMessage(accountId, ['a@one.test', 'b@two.test', 'gone@one.test'], {
          envelopeFrom: 'bounce+x@example.com',
          stream: 'broadcast',
          kind: 'broadcast',
        });
        const gone = now.recipients[2];
        if (gone) gone.suppressed = { reason: 'hard_bounce', scope: 'account' };
        const b = now.recipients[1];
        if (b) b.dsn = { notify: ['FAILURE'] };
        const held = sampleMessage(accountId, ['h@one.test']);
        const heldRecipient = held.recipients[0];
        if (heldRecipient) heldRecipient.held = { reason: 'paused', details: 'stream paused' };
        const later = sampleMessage(accountId, ['l@one.test'], { notBefore: T0 + 3_600_000 });
        // Two concurrent calls share a commit: each gets its own recipients back.
        const [leased, other] = await Promise.all([
          store.insertMessages([now, held, later], { lease }),
          store.insertMessages([sampleMessage(accountId, ['q@one.test'])]),
        ]);
        assert.deepEqual(other, [], 'nothing is leased without lease terms');
        const rows = await store.getRecipients(now.id);
        assert.deepEqual(
          leased.map((r) => ({ ...r })),
          rows
            .filter((r) => r.address !== 'gone@one.test')
            .map((r) => ({
              id: r.id,
              messageId: now.id,
              accountId,
              address: r.address,
              domain: r.domain,
              attempts: 0,
              mailFrom: 'bounce+x@example.com',
              createdAt: T0,
              dsn: r.address === 'b@two.test' ? { notify: ['FAILURE'] } : {},
              stream: 'broadcast',
              kind: 'broadcast',
              variant: 0,
            })),
        );
        for (const r of rows.filter((r) => r.address !== 'gone@one.test')) {
          assert.equal(r.state, 'delivering');
          assert.equal(r.leaseOwner, 'node-a');
          assert.equal(r.leaseUntil, T0 + 60_000);
        }
        assert.equal(rows.find((r) => r.address === 'gone@one.test')?.state, 'suppressed');
        assert.equal((await store.getRecipients(held.id))[0]?.state, 'held');
        assert.equal((await store.getRecipients(later.id))[0]?.state, 'queued');
        // Another node does not take them while the lease runs; their owner records outcomes.
        const request: LeaseRequest = { owner: 'node-b', now: T0 + 1000, limit: 10, leaseUntil: T0 + 61_000 };
        assert.deepEqual(
          (await store.leaseDue(request)).map((r) => r.address),
          ['q@one.test'],
        );
        const first = leased[0];
        assert.ok(first);
        assert.deepEqual(await store.recordOutcomes('node-a', [outcome(first, {})]), [first.id]);
        // After the lease's expiry another node takes what is left.
        const expired = await store.leaseDue({ ...request, now: T0 + 61_000, leaseUntil: T0 + 120_000 });
        assert.deepEqual(
          expired.map((r) => r.address),
          ['b@two.test'],
        );
      });
    });

    it('retry and cancel can be limited to an account; cancel records its reason', async () => {
      await withStore(async (store) => {
        const ours = await seedAccount(store);
        const theirs = await seedAccount(store, 'other');
        const mine = sampleMessage(ours, ['a@slow.test'], { notBefore: T0 + 60_000 });
        const other = sampleMessage(theirs, ['b@slow.test'], { notBefore: T0 + 60_000 });
        await store.insertMessages([mine, other]);
        const state = async (m: NewMessage) => (await store.getRecipients(m.id))[0];

        assert.equal(await store.retryNow({ domain: 'slow.test', accountId: ours }, T0 + 10), 1);
        assert.equal((await state(mine))?.nextAttemptAt, T0 + 10);
        assert.equal((await state(other))?.nextAttemptAt, T0 + 60_000);

        // Another account's message by its id: nothing happens.
        assert.equal(await store.cancel({ messageId: other.id, accountId: ours }, T0 + 20, 'by the API'), 0);
        assert.equal((await state(other))?.state, 'queued');
        assert.equal(await store.cancel({ domain: 'slow.test', accountId: ours }, T0 + 20, 'by the API'), 1);
        assert.equal((await state(mine))?.state, 'cancelled');
        assert.equal((await state(other))?.state, 'queued');
        const cancelled = (await store.getEvents(mine.id)).filter((e) => e.type === 'cancelled');
        assert.deepEqual(
          cancelled.map((e) => e.data.reason),
          ['by the API'],
        );
        // Without a reason, the operator's.
        assert.equal(await store.cancel({ messageId: other.id }, T0 + 30), 1);
        assert.deepEqual(
          (await store.getEvents(other.id)).filter((e) => e.type === 'cancelled').map((e) => e.data.reason),
          [CANCEL_REASON],
        );
      });
    });

    it('remembers the site of each attempt; the queue by site: ready, scheduled, delivering, reasons', async () => {
      await withStore(async (store) => {
        const accountId = await seedAccount(store);
        const google = 'provider:google';
        const mxSet = 'mx1.b.test,mx2.b.test';
        const m = sampleMessage(accountId, [
          'a1@gmail.test',
          'a2@gmail.test',
          'a3@workspace.test',
          'b@b.test',
          'c@nodns.test',
          'd@gmail.test',
        ]);
        await store.insertMessages([m]);
        const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 10, leaseUntil: T0 + 60_000 });
        const by = (a: string) => leased.find((r) => r.address === a)!;
        const tryLater: Reply = { code: 421, enhanced: '4.7.0', text: 'Try again later' };
        const deferred = (
          nextAttemptAt: number,
          site?: string,
          reply = tryLater,
          source?: string,
        ): Partial<Outcome> => ({
          state: 'deferred',
          nextAttemptAt,
          reply,
          event: { type: 'deferred', data: {} },
          ...(site === undefined ? {} : { site }),
          ...(source === undefined ? {} : { source }),
        });
        await store.recordOutcomes('n1', [
          outcome(by('a1@gmail.test'), deferred(T0 + 600_000, google, tryLater, 'ip-1')),
          outcome(by('a2@gmail.test'), deferred(T0 + 500, google, tryLater, 'ip-1')),
          outcome(by('a3@workspace.test'), deferred(T0 + 600_000, google, tryLater, 'ip-2')),
          outcome(by('b@b.test'), deferred(T0 + 600_000, mxSet, { code: 451, text: 'greylisted' }, 'ip-1')),
          // The domain did not resolve: no site.
          outcome(
            by('c@nodns.test'),
            deferred(T0 + 600_000, undefined, { code: 451, enhanced: '4.4.3', text: 'DNS timeout' }),
          ),
        ]);
        // d@gmail.test stays leased (delivering) and has no site yet; a newcomer is queued.
        const later = sampleMessage(accountId, ['e@new.test'], { receivedAt: T0 + 100 });
        await store.insertMessages([later]);
        const site = async (address: string) =>
          (await store.getRecipients(address === 'e@new.test' ? later.id : m.id)).find(
            (r) => r.address === address,
          )?.lastSite;
        assert.equal(await site('a1@gmail.test'), google);
        assert.equal(await site('b@b.test'), mxSet);
        assert.equal(await site('c@nodns.test'), '');
        assert.equal(await site('e@new.test'), '');

        // Most recipients first, then by site ('' before the others).
        assert.deepEqual(await store.queueSiteSummary(T0 + 1000), [
          {
            site: '',
            ready: 1,
            scheduled: 1,
            delivering: 1,
            oldestAt: T0,
            domains: 3,
            reasons: [{ text: '451 4.4.3 DNS timeout', count: 1 }],
            sources: [{ source: '', ready: 1, scheduled: 1, delivering: 1 }],
          },
          {
            site: google,
            ready: 1,
            scheduled: 2,
            delivering: 0,
            oldestAt: T0,
            domains: 2,
            reasons: [{ text: '421 4.7.0 Try again later', count: 3 }],
            sources: [
              { source: 'ip-1', ready: 1, scheduled: 1, delivering: 0 },
              { source: 'ip-2', ready: 0, scheduled: 1, delivering: 0 },
            ],
          },
          {
            site: mxSet,
            ready: 0,
            scheduled: 1,
            delivering: 0,
            oldestAt: T0,
            domains: 1,
            reasons: [{ text: '451 greylisted', count: 1 }],
            sources: [{ source: 'ip-1', ready: 0, scheduled: 1, delivering: 0 }],
          },
        ]);

        // A later outcome without a site (a lease handed back, DNS failing) keeps the site it had;
        // one with a site replaces it.
        const again = await store.leaseDue({
          owner: 'n1',
          now: T0 + 1000,
          limit: 10,
          leaseUntil: T0 + 60_000,
        });
        const a2 = again.find((r) => r.address === 'a2@gmail.test')!;
        const e = again.find((r) => r.address === 'e@new.test')!;
        await store.recordOutcomes('n1', [
          outcome(a2, deferred(T0 + 900_000, undefined)),
          outcome(e, deferred(T0 + 900_000, 'mx.new.test')),
        ]);
        assert.equal(await site('a2@gmail.test'), google);
        assert.equal(await site('e@new.test'), 'mx.new.test');
        // Delivered recipients leave the summary.
        await store.recordOutcomes('n1', [outcome(by('d@gmail.test'), { site: google })]);
        assert.deepEqual(
          (await store.queueSiteSummary(T0 + 2000)).map((x) => [
            x.site,
            x.ready + x.scheduled + x.delivering,
          ]),
          [
            [google, 3],
            ['', 1],
            ['mx.new.test', 1],
            [mxSet, 1],
          ],
        );
      });
    });

    describe('traffic shaping events', () => {
      const HOUR = 3_600_000;
      const event = (e: Partial<NewShapingEvent>): NewShapingEvent => ({
        at: T0,
        nodeId: 'n1',
        type: 'triggered',
        rule: 'generic-421-try-again-later',
        kind: 'throttle',
        scopeKey: 'site:*|provider:google',
        rate: '60/min',
        until: T0 + HOUR,
        reply: '421 4.7.0 Try again later',
        ...e,
      });

      it('what is in force: the latest event of each (node, rule, scope), unless it ended', async () => {
        await withStore(async (store) => {
          await store.recordShapingEvents([]);
          await store.recordShapingEvents([
            // Extended: the latest event, with the later until, is what is in force.
            event({}),
            event({ type: 'extended', at: T0 + 60_000, until: T0 + HOUR + 60_000, reply: '421 4.7.0 again' }),
            // The same rule and scope on another node is that node's own.
            event({ nodeId: 'n2', until: T0 + 2 * HOUR }),
            // Lifted by an operator: its until is still ahead, but it ended.
            event({
              rule: 'yahoo-ts03',
              kind: 'suspend_site',
              scopeKey: 'site:*|provider:yahoo',
              rate: '',
              until: T0 + 4 * HOUR,
            }),
            event({
              type: 'lifted',
              at: T0 + 10,
              rule: 'yahoo-ts03',
              kind: 'suspend_site',
              scopeKey: 'site:*|provider:yahoo',
              rate: '',
              until: T0 + 4 * HOUR,
            }),
            // Ran out without an `expired` event (its node was gone by then).
            event({
              rule: 'short',
              scopeKey: 'account:a1',
              kind: 'suspend_account',
              rate: '',
              until: T0 + 500,
            }),
          ]);
          await store.recordShapingEvents([
            // A circuit that opened and is half-open now; another that opened and closed again.
            event({
              type: 'opened',
              rule: 'circuit',
              kind: 'circuit',
              scopeKey: 'site:*|mx.down.test',
              rate: '',
              until: T0 + 300_000,
              reply: '5 consecutive connection failures',
            }),
            event({
              type: 'half_open',
              at: T0 + 300_000,
              rule: 'circuit',
              kind: 'circuit',
              scopeKey: 'site:*|mx.down.test',
              rate: '',
              until: T0 + 420_000,
              reply: '5 consecutive connection failures',
            }),
            event({
              type: 'opened',
              rule: 'circuit',
              kind: 'circuit',
              scopeKey: 'site:*|mx.back.test',
              rate: '',
              until: T0 + 300_000,
            }),
            event({
              type: 'closed',
              at: T0 + 1000,
              rule: 'circuit',
              kind: 'circuit',
              scopeKey: 'site:*|mx.back.test',
              rate: '',
              until: T0 + 1000,
            }),
          ]);
          const active = await store.activeShaping(T0 + 300_500);
          assert.deepEqual(
            active.map((a) => [a.nodeId, a.type, a.rule, a.kind, a.scopeKey, a.rate, a.until - T0, a.reply]),
            [
              [
                'n1',
                'half_open',
                'circuit',
                'circuit',
                'site:*|mx.down.test',
                '',
                420_000,
                '5 consecutive connection failures',
              ],
              [
                'n1',
                'extended',
                'generic-421-try-again-later',
                'throttle',
                'site:*|provider:google',
                '60/min',
                HOUR + 60_000,
                '421 4.7.0 again',
              ],
              [
                'n2',
                'triggered',
                'generic-421-try-again-later',
                'throttle',
                'site:*|provider:google',
                '60/min',
                2 * HOUR,
                '421 4.7.0 Try again later',
              ],
            ],
          );
          assert.ok(active.every((a) => Number.isInteger(a.id) && a.id > 0));
          assert.equal(active[1]?.at, T0 + 60_000);
          // Nothing is in force once every until has passed.
          assert.deepEqual(await store.activeShaping(T0 + 2 * HOUR), []);
          // An action triggered again after it ended is in force again.
          await store.recordShapingEvents([
            event({ type: 'expired', at: T0 + 2 * HOUR, nodeId: 'n2', until: T0 + 2 * HOUR }),
            event({ at: T0 + 3 * HOUR, nodeId: 'n2', until: T0 + 4 * HOUR }),
          ]);
          assert.deepEqual(
            (await store.activeShaping(T0 + 3 * HOUR)).map((a) => [a.nodeId, a.until - T0]),
            [['n2', 4 * HOUR]],
          );
        });
      });

      it('stores a reply as one line without control characters, at most SHAPING_REPLY_MAX long', async () => {
        await withStore(async (store) => {
          await store.recordShapingEvents([
            event({ reply: '421-4.7.0 first\r\n421 4.7.0 sec\0ond\tline\x1b[31m' }),
            event({ scopeKey: 'site:*|long', reply: `421 ${'x'.repeat(2000)}` }),
            event({ scopeKey: 'site:*|none', reply: undefined, rate: undefined }),
          ]);
          const active = await store.activeShaping(T0);
          const reply = (scope: string) => active.find((a) => a.scopeKey === scope);
          assert.equal(reply('site:*|provider:google')?.reply, '421-4.7.0 first 421 4.7.0 sec ond line [31m');
          assert.equal(reply('site:*|long')?.reply.length, SHAPING_REPLY_MAX);
          assert.match(reply('site:*|long')?.reply ?? '', /^421 x+…$/);
          assert.equal(reply('site:*|none')?.reply, '');
          assert.equal(reply('site:*|none')?.rate, '');
        });
      });

      it('purgeShapingEvents deletes events that happened and ended before the cutoff, in batches', async () => {
        await withStore(async (store) => {
          const DAY = 24 * HOUR;
          await store.recordShapingEvents([
            event({ at: T0 - 100 * DAY, until: T0 - 100 * DAY + HOUR }),
            event({ type: 'expired', at: T0 - 100 * DAY + HOUR, until: T0 - 100 * DAY + HOUR }),
            event({ scopeKey: 'site:*|b', at: T0 - 95 * DAY, until: T0 - 95 * DAY + HOUR }),
            // Old, but still in force at the cutoff (a long suspension): kept.
            event({ scopeKey: 'site:*|c', kind: 'suspend_site', at: T0 - 91 * DAY, until: T0 + DAY }),
            event({ scopeKey: 'site:*|d', at: T0 - DAY }),
          ]);
          const cutoff = T0 - 90 * DAY;
          assert.equal(await store.purgeShapingEvents({ before: cutoff, limit: 2 }), 2);
          assert.equal(await store.purgeShapingEvents({ before: cutoff, limit: 2 }), 1);
          assert.equal(await store.purgeShapingEvents({ before: cutoff, limit: 2 }), 0);
          assert.deepEqual(
            (await store.activeShaping(T0 - DAY)).map((a) => a.scopeKey),
            ['site:*|d', 'site:*|c'],
          );
        });
      });
    });

    describe('streams and lanes', () => {
      /** Leases one batch and counts it by account name and kind, e.g. { 'a/broadcast': 10 }. */
      async function leaseCounts(
        store: Store,
        names: Map<string, string>,
        request: Partial<LeaseRequest> & { limit: number },
      ): Promise<Record<string, number>> {
        const leased = await store.leaseDue({ owner: 'n1', now: T0, leaseUntil: T0 + 60_000, ...request });
        const counts: Record<string, number> = {};
        for (const r of leased) {
          const key = `${names.get(r.accountId)}/${r.kind}`;
          counts[key] = (counts[key] ?? 0) + 1;
        }
        return counts;
      }

      /** Accounts by name, with due recipients per kind: { a: { broadcast: 1000 } }. */
      async function seedLanes(
        store: Store,
        backlog: Record<string, Partial<Record<StreamKind, number>>>,
      ): Promise<Map<string, string>> {
        const names = new Map<string, string>();
        for (const [name, kinds] of Object.entries(backlog)) {
          const accountId = await seedAccount(store, name);
          names.set(accountId, name);
          for (const [kind, n] of Object.entries(kinds)) {
            const addresses = Array.from({ length: n ?? 0 }, (_, i) => `${name}-${kind}-${i}@one.test`);
            const stream = kind === 'broadcast' ? 'broadcast' : 'outbound';
            await store.insertMessages([
              sampleMessage(accountId, addresses, { stream, kind: kind as StreamKind }),
            ]);
          }
        }
        return names;
      }

      it('every account has the default streams without rows; created ones are listed with them', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          assert.deepEqual(await store.listStreams(accountId), [
            { accountId, name: 'broadcast', kind: 'broadcast', pool: '', createdAt: T0, isDefault: true },
            { accountId, name: 'outbound', kind: 'transactional', pool: '', createdAt: T0, isDefault: true },
          ]);
          const news = {
            accountId,
            name: 'news',
            kind: 'broadcast' as const,
            pool: 'bulk',
            createdAt: T0 + 5,
          };
          assert.deepEqual(await store.createStream(news), { ...news, isDefault: false });
          await store.createStream({ ...news, name: 'alerts', kind: 'transactional', pool: '' });
          await assert.rejects(store.createStream(news), 'a stream name is unique within its account');
          assert.deepEqual(
            (await store.listStreams(accountId)).map((s) => [s.name, s.kind, s.pool, s.isDefault]),
            [
              ['alerts', 'transactional', '', false],
              ['broadcast', 'broadcast', '', true],
              ['news', 'broadcast', 'bulk', false],
              ['outbound', 'transactional', '', true],
            ],
          );
          assert.deepEqual(await store.getStream(accountId, 'news'), { ...news, isDefault: false });
          assert.equal((await store.getStream(accountId, 'outbound'))?.kind, 'transactional');
          assert.equal(await store.getStream(accountId, 'nope'), undefined);
          // Another account has the defaults only; an unknown account has nothing.
          const other = await seedAccount(store, 'other');
          assert.equal(await store.getStream(other, 'news'), undefined);
          assert.equal((await store.listStreams(other)).length, 2);
          assert.deepEqual(await store.listStreams('no-such-account'), []);
          assert.equal(await store.getStream('no-such-account', 'outbound'), undefined);
        });
      });

      it('accounts weigh 1 until set otherwise', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          assert.equal((await store.getAccount(accountId))?.weight, 1);
          assert.equal(await store.setAccountWeight(accountId, 5), true);
          assert.equal((await store.getAccountByName('acme'))?.weight, 5);
          assert.equal((await store.listAccounts())[0]?.weight, 5);
          assert.equal(await store.setAccountWeight('no-such-account', 5), false);
        });
      });

      it('stores the stream on the message and the stream and kind on its recipients', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const news = sampleMessage(accountId, ['a@one.test'], { stream: 'news', kind: 'broadcast' });
          const plain = sampleMessage(accountId, ['b@one.test']);
          await store.insertMessages([news, plain]);
          assert.equal((await store.getMessage(news.id))?.stream, 'news');
          assert.equal((await store.getMessage(plain.id))?.stream, 'outbound', 'the default stream');
          assert.deepEqual(
            (await store.getRecipients(news.id)).map((r) => [r.stream, r.kind]),
            [['news', 'broadcast']],
          );
          assert.deepEqual(
            (await store.getRecipients(plain.id)).map((r) => [r.stream, r.kind]),
            [['outbound', 'transactional']],
          );
          const listed = await store.listMessages({});
          assert.deepEqual(
            listed.map((m) => [m.id, m.stream]).sort(),
            [
              [news.id, 'news'],
              [plain.id, 'outbound'],
            ].sort(),
          );
          const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 10, leaseUntil: T0 + 1000 });
          assert.deepEqual(leased.map((r) => [r.address, r.stream, r.kind]).sort(), [
            ['a@one.test', 'news', 'broadcast'],
            ['b@one.test', 'outbound', 'transactional'],
          ]);
        });
      });

      it('transactional recipients are leased before broadcast ones, however old the broadcast ones are', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const older = Array.from({ length: 5 }, (_, i) => `old${i}@one.test`);
          await store.insertMessages([
            sampleMessage(accountId, older, {
              stream: 'broadcast',
              kind: 'broadcast',
              receivedAt: T0 - 60_000,
            }),
            sampleMessage(accountId, ['t1@one.test', 't2@one.test', 't3@one.test']),
          ]);
          const first = await store.leaseDue({ owner: 'n1', now: T0, limit: 4, leaseUntil: T0 + 1000 });
          assert.deepEqual(first.map((r) => r.kind).sort(), [
            'broadcast',
            'transactional',
            'transactional',
            'transactional',
          ]);
          const rest = await store.leaseDue({ owner: 'n1', now: T0, limit: 10, leaseUntil: T0 + 1000 });
          assert.equal(rest.length, 4);
          assert.ok(rest.every((r) => r.kind === 'broadcast'));
        });
      });

      it('within a lane, one account’s backlog does not starve another: shares follow the weights', async () => {
        await withStore(async (store) => {
          const names = await seedLanes(store, { a: { broadcast: 1000 }, b: { broadcast: 10 } });
          assert.deepEqual(await leaseCounts(store, names, { limit: 20 }), {
            'a/broadcast': 10,
            'b/broadcast': 10,
          });
          // b has nothing left: a gets the whole next batch.
          assert.deepEqual(await leaseCounts(store, names, { limit: 20 }), { 'a/broadcast': 20 });
        });
        await withStore(async (store) => {
          const names = await seedLanes(store, { a: { broadcast: 1000 }, b: { broadcast: 1000 } });
          const a = [...names].find(([, n]) => n === 'a')?.[0] ?? '';
          await store.setAccountWeight(a, 3);
          assert.deepEqual(await leaseCounts(store, names, { limit: 20 }), {
            'a/broadcast': 15,
            'b/broadcast': 5,
          });
        });
      });

      it('what an account cannot use of its share goes to the others, in either lane', async () => {
        await withStore(async (store) => {
          const names = await seedLanes(store, {
            a: { transactional: 100, broadcast: 1000 },
            b: { transactional: 3, broadcast: 2 },
            c: { broadcast: 1000 },
          });
          // b has 3 transactional of its 15: a gets the other 27, and nothing is left for broadcast.
          assert.deepEqual(await leaseCounts(store, names, { limit: 30 }), {
            'a/transactional': 27,
            'b/transactional': 3,
          });
          const next = await leaseCounts(store, names, { limit: 30 });
          // a has 73 transactional left: the lane still comes first.
          assert.deepEqual(next, { 'a/transactional': 30 });
          await leaseCounts(store, names, { limit: 43 });
          // Transactional is done: 24 broadcast are 8 each, b has 2, a and c share its other 6.
          const broadcast = await leaseCounts(store, names, { limit: 24 });
          assert.deepEqual(broadcast, { 'a/broadcast': 11, 'b/broadcast': 2, 'c/broadcast': 11 });
        });
      });

      it('lane limits cap each kind within the batch; the other lane gets the rest', async () => {
        await withStore(async (store) => {
          const names = await seedLanes(store, { a: { transactional: 50, broadcast: 50 } });
          assert.deepEqual(await leaseCounts(store, names, { limit: 10, lanes: { transactional: 3 } }), {
            'a/transactional': 3,
            'a/broadcast': 7,
          });
          assert.deepEqual(await leaseCounts(store, names, { limit: 10, lanes: { broadcast: 0 } }), {
            'a/transactional': 10,
          });
          assert.deepEqual(
            await leaseCounts(store, names, { limit: 10, lanes: { transactional: 0, broadcast: 4 } }),
            {
              'a/broadcast': 4,
            },
          );
          assert.deepEqual(await leaseCounts(store, names, { limit: 0 }), {});
        });
      });

      it('expired leases come first and count against their lane', async () => {
        await withStore(async (store) => {
          const names = await seedLanes(store, { a: { broadcast: 2 } });
          await store.leaseDue({ owner: 'dead', now: T0, limit: 10, leaseUntil: T0 - 1 });
          const b = await seedAccount(store, 'b');
          names.set(b, 'b');
          await store.insertMessages([sampleMessage(b, ['t1@one.test', 't2@one.test', 't3@one.test'])]);
          // The dead node's broadcast work goes before b's due transactional mail.
          assert.deepEqual(await leaseCounts(store, names, { limit: 3 }), {
            'a/broadcast': 2,
            'b/transactional': 1,
          });
        });
        await withStore(async (store) => {
          const names = await seedLanes(store, { a: { broadcast: 2, transactional: 3 } });
          await store.leaseDue({
            owner: 'dead',
            now: T0,
            limit: 10,
            lanes: { transactional: 0 },
            leaseUntil: T0 - 1,
          });
          assert.deepEqual(await leaseCounts(store, names, { limit: 10, lanes: { broadcast: 1 } }), {
            'a/broadcast': 1,
            'a/transactional': 3,
          });
        });
      });

      it('within an account, the oldest due recipients go first', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          await store.insertMessages([
            sampleMessage(accountId, ['new@one.test'], { receivedAt: T0 }),
            sampleMessage(accountId, ['old@one.test'], { receivedAt: T0 - 5000 }),
            sampleMessage(accountId, ['later@one.test'], { receivedAt: T0, notBefore: T0 + 5000 }),
          ]);
          const [first] = await store.leaseDue({ owner: 'n1', now: T0, limit: 1, leaseUntil: T0 + 1000 });
          assert.equal(first?.address, 'old@one.test');
        });
      });
    });

    describe('templates', () => {
      const content = (n: number) => ({ subject: `Subject ${n}`, html: `<p>v${n}</p>`, text: `v${n}` });
      const create = (store: Store, accountId: string, id: string, alias: string, at = T0) =>
        store.createTemplate({
          id,
          accountId,
          name: `name-${id}`,
          alias,
          createdAt: at,
          updatedAt: at,
          content: content(1),
        });
      const addVersion = (store: Store, accountId: string, id: string, alias: string, n: number) =>
        store.addTemplateVersion({
          accountId,
          id,
          name: `name-${id}-v${n}`,
          alias,
          content: content(n),
          now: T0 + n,
        });

      it('creates a template with version 1 and finds it by id or alias, in its account only', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          const welcome = {
            id: 't1',
            accountId,
            name: 'name-t1',
            alias: 'welcome',
            createdAt: T0,
            updatedAt: T0,
            latestVersion: 1,
          };
          assert.deepEqual(await create(store, accountId, 't1', 'welcome'), welcome);
          assert.deepEqual(await store.getTemplate(accountId, 't1'), welcome);
          assert.deepEqual(await store.getTemplate(accountId, 'welcome'), welcome);
          assert.deepEqual(await store.getTemplateVersion('t1'), {
            templateId: 't1',
            version: 1,
            createdAt: T0,
            ...content(1),
          });
          assert.equal(await store.getTemplate(other, 't1'), undefined, 'not by id from another account');
          assert.equal(await store.getTemplate(other, 'welcome'), undefined, 'nor by alias');
          // Aliases are unique among the account's live templates; other accounts have their own.
          assert.equal(await create(store, accountId, 't2', 'welcome'), undefined);
          assert.equal(await store.getTemplate(accountId, 't2'), undefined);
          assert.equal((await create(store, other, 't3', 'welcome'))?.alias, 'welcome');
          assert.equal((await store.getTemplate(other, 'welcome'))?.id, 't3');
          // Without an alias, any number; '' finds none of them.
          assert.equal((await create(store, accountId, 't4', ''))?.alias, '');
          assert.equal((await create(store, accountId, 't5', ''))?.alias, '');
          assert.equal(await store.getTemplate(accountId, ''), undefined);
          // By id first: another template's alias equal to an id does not hide it.
          assert.ok(await create(store, accountId, 't6', 't4'));
          assert.equal((await store.getTemplate(accountId, 't4'))?.id, 't4');
          assert.deepEqual(
            (await store.listTemplates(accountId)).map((t) => [t.id, t.alias]),
            [
              ['t1', 'welcome'],
              ['t4', ''],
              ['t5', ''],
              ['t6', 't4'],
            ],
          );
          assert.deepEqual(
            (await store.listTemplates(other)).map((t) => t.id),
            ['t3'],
          );
        });
      });

      it('a new version changes name and alias and keeps the old versions; a taken alias is refused', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          await create(store, accountId, 't1', 'welcome');
          await create(store, accountId, 't2', 'receipt');
          assert.deepEqual(await addVersion(store, accountId, 't1', 'hello', 2), {
            id: 't1',
            accountId,
            name: 'name-t1-v2',
            alias: 'hello',
            createdAt: T0,
            updatedAt: T0 + 2,
            latestVersion: 2,
          });
          assert.equal((await addVersion(store, accountId, 't1', 'hello', 3))?.latestVersion, 3);
          assert.deepEqual(await store.getTemplateVersion('t1'), {
            templateId: 't1',
            version: 3,
            createdAt: T0 + 3,
            ...content(3),
          });
          assert.equal((await store.getTemplateVersion('t1', 1))?.subject, 'Subject 1');
          assert.equal((await store.getTemplateVersion('t1', 2))?.html, '<p>v2</p>');
          assert.equal(await store.getTemplateVersion('t1', 4), undefined);
          assert.equal(await store.getTemplateVersion('nope'), undefined);
          // The old alias is free, the new one found.
          assert.equal(await store.getTemplate(accountId, 'welcome'), undefined);
          assert.equal((await store.getTemplate(accountId, 'hello'))?.id, 't1');
          // The alias of another live template: refused, and nothing changes.
          assert.equal(await addVersion(store, accountId, 't2', 'hello', 4), undefined);
          assert.deepEqual(
            [
              (await store.getTemplate(accountId, 't2'))?.alias,
              (await store.getTemplate(accountId, 't2'))?.latestVersion,
            ],
            ['receipt', 1],
          );
          assert.equal((await store.getTemplateVersion('t2'))?.version, 1);
          // Another account's template, or none: undefined.
          assert.equal(await addVersion(store, other, 't1', 'mine', 4), undefined);
          assert.equal(await addVersion(store, accountId, 'nope', 'x', 4), undefined);
          assert.equal((await store.getTemplate(accountId, 't1'))?.latestVersion, 3);
        });
      });

      it('a deleted template is gone for its account and frees its alias; its versions stay', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          await create(store, accountId, 't1', 'welcome');
          await addVersion(store, accountId, 't1', 'welcome', 2);
          assert.equal(await store.deleteTemplate(other, 't1', T0 + 10), false, 'not another account’s');
          assert.equal(await store.deleteTemplate(accountId, 't1', T0 + 10), true);
          assert.equal(await store.deleteTemplate(accountId, 't1', T0 + 11), false, 'deleted once');
          assert.equal(await store.getTemplate(accountId, 't1'), undefined);
          assert.equal(await store.getTemplate(accountId, 'welcome'), undefined);
          assert.deepEqual(await store.listTemplates(accountId), []);
          assert.equal(await addVersion(store, accountId, 't1', 'welcome', 3), undefined);
          // Messages rendered from it still name its versions.
          assert.equal((await store.getTemplateVersion('t1', 1))?.subject, 'Subject 1');
          assert.equal((await store.getTemplateVersion('t1'))?.version, 2);
          // The alias can be given again, on create and on a new version.
          assert.equal((await create(store, accountId, 't2', 'welcome'))?.alias, 'welcome');
          assert.equal((await store.getTemplate(accountId, 'welcome'))?.id, 't2');
          await store.deleteTemplate(accountId, 't2', T0 + 20);
          await create(store, accountId, 't3', 'other');
          assert.equal((await addVersion(store, accountId, 't3', 'welcome', 2))?.alias, 'welcome');
          assert.deepEqual(
            (await store.listTemplates(accountId)).map((t) => t.id),
            ['t3'],
          );
        });
      });
    });

    describe('sending domains', () => {
      const domainOf = (accountId: string, id: string, domain: string): SendingDomain => ({
        id,
        accountId,
        domain,
        returnPath: `pb-bounces.${domain}`,
        trackingHost: `pb-track.${domain}`,
        verifiedAt: null,
        verifiedBy: null,
        lastCheck: null,
        checkedAt: null,
        createdAt: T0,
      });
      const keyOf = (domainId: string, selector: string, overrides: Partial<DkimKey> = {}): DkimKey => ({
        domainId,
        selector,
        algorithm: 'rsa',
        privateKeyPem: `-----BEGIN PRIVATE KEY-----\n${selector}\n-----END PRIVATE KEY-----\n`,
        publicKey: `MIIB${selector}`,
        state: 'active',
        createdAt: T0,
        changedAt: T0,
        ...overrides,
      });

      it('an account sends as its verified domains by default; the policy can be set', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const policies = async () => [
            (await store.getAccount(accountId))?.senderPolicy,
            (await store.getAccountByName('acme'))?.senderPolicy,
            (await store.listAccounts())[0]?.senderPolicy,
          ];
          assert.equal(
            (await store.createAccount({ id: 'a2', name: 'b', createdAt: T0 })).senderPolicy,
            'verified',
          );
          assert.deepEqual(await policies(), ['verified', 'verified', 'verified']);
          assert.equal(await store.setAccountSenderPolicy(accountId, 'any'), true);
          assert.deepEqual(await policies(), ['any', 'any', 'any']);
          assert.equal((await store.getAccount('a2'))?.senderPolicy, 'verified', 'only that account');
          assert.equal(await store.setAccountSenderPolicy(accountId, 'verified'), true);
          assert.equal((await store.getAccount(accountId))?.senderPolicy, 'verified');
          assert.equal(await store.setAccountSenderPolicy('nope', 'any'), false);
          await assert.rejects(store.setAccountSenderPolicy(accountId, 'all' as SenderPolicy));
          assert.equal((await store.getAccount(accountId))?.senderPolicy, 'verified');
        });
      });

      it('creates a domain with its keys and finds it by name; a name any account has is refused', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          const example = domainOf(accountId, 'd1', 'example.com');
          // Given newest first: listed oldest first.
          const keys = [
            keyOf('d1', 'pb20261128-ed25519-b', {
              algorithm: 'ed25519',
              createdAt: T0 + 1,
              changedAt: T0 + 1,
            }),
            keyOf('d1', 'pb20261128-rsa-a'),
          ];
          assert.deepEqual(await store.createDomain({ ...example, keys }), example);
          assert.deepEqual(await store.getDomain('example.com'), example);
          assert.deepEqual(await store.getDomain('Example.COM'), example, 'names are lower-case');
          assert.deepEqual(await store.listDkimKeys('d1'), [keys[1], keys[0]]);
          assert.ok(await store.createDomain({ ...domainOf(other, 'd2', 'a.example.org'), keys: [] }));
          assert.ok(await store.createDomain({ ...domainOf(accountId, 'd3', 'mail.example.net'), keys: [] }));
          assert.deepEqual(
            (await store.listDomains()).map((d) => d.domain),
            ['a.example.org', 'example.com', 'mail.example.net'],
          );
          assert.deepEqual(
            (await store.listDomains(accountId)).map((d) => d.id),
            ['d1', 'd3'],
          );
          assert.deepEqual(await store.listDomains('nope'), []);
          assert.equal(await store.getDomain('example.org'), undefined);
          // Taken, by this account or another, in any case: refused, and nothing of it stored.
          for (const [owner, id, name] of [
            [accountId, 'd4', 'example.com'],
            [other, 'd5', 'example.com'],
            [other, 'd6', 'EXAMPLE.com'],
          ] as const) {
            assert.equal(
              await store.createDomain({ ...domainOf(owner, id, name), keys: [keyOf(id, 'pb-x')] }),
              undefined,
            );
            assert.deepEqual(await store.listDkimKeys(id), []);
          }
          assert.deepEqual(await store.getDomain('example.com'), example);
          assert.equal((await store.listDomains()).length, 3);
        });
      });

      it('a domain whose keys cannot be stored is not stored either', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const twice = [keyOf('d1', 'pb-same'), keyOf('d1', 'pb-same')];
          await assert.rejects(
            store.createDomain({ ...domainOf(accountId, 'd1', 'example.com'), keys: twice }),
          );
          assert.equal(await store.getDomain('example.com'), undefined);
          assert.deepEqual(await store.listDkimKeys('d1'), []);
        });
      });

      it('a domain is marked verified and not; the last DNS check is kept with its time', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          await store.createDomain({ ...domainOf(accountId, 'd1', 'example.com'), keys: [] });
          const state = async () => {
            const d = await store.getDomain('example.com');
            return [d?.verifiedAt, d?.verifiedBy, d?.lastCheck, d?.checkedAt];
          };
          assert.equal(await store.setDomainVerified('d1', T0 + 10, 'dns'), true);
          assert.deepEqual(await state(), [T0 + 10, 'dns', null, null]);
          assert.equal(await store.setDomainVerified('d1', null, null), true);
          assert.deepEqual(await state(), [null, null, null, null]);
          assert.equal(await store.setDomainVerified('d1', T0 + 20, 'admin'), true);
          assert.deepEqual(await state(), [T0 + 20, 'admin', null, null]);
          assert.equal(await store.setDomainVerified('nope', T0, 'admin'), false);

          const result = {
            spf: { ok: true, record: 'v=spf1 include:_spf.example.com ~all' },
            dkim: [{ selector: 'pb-a', ok: false, error: 'no TXT record' }],
            returnPath: null,
          };
          await store.recordDomainCheck('d1', { checkedAt: T0 + 30, result });
          assert.deepEqual(await state(), [T0 + 20, 'admin', result, T0 + 30]);
          await store.recordDomainCheck('d1', { checkedAt: T0 + 40, result: { spf: { ok: false } } });
          assert.deepEqual(await state(), [T0 + 20, 'admin', { spf: { ok: false } }, T0 + 40]);
          await store.recordDomainCheck('nope', { checkedAt: T0 + 50, result });
          assert.deepEqual(await state(), [T0 + 20, 'admin', { spf: { ok: false } }, T0 + 40]);
        });
      });

      it('keys are added and change state; a selector is unique per domain', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          await store.createDomain({
            ...domainOf(accountId, 'd1', 'example.com'),
            keys: [keyOf('d1', 'pb-old')],
          });
          await store.createDomain({ ...domainOf(accountId, 'd2', 'example.org'), keys: [] });
          const rotated = keyOf('d1', 'pb-new', { state: 'pending', createdAt: T0 + 5, changedAt: T0 + 5 });
          await store.addDkimKey(rotated);
          await assert.rejects(store.addDkimKey(keyOf('d1', 'pb-old')), 'a selector the domain has');
          await store.addDkimKey(keyOf('d2', 'pb-old'));
          assert.deepEqual(
            (await store.listDkimKeys('d1')).map((k) => [k.selector, k.state, k.changedAt]),
            [
              ['pb-old', 'active', T0],
              ['pb-new', 'pending', T0 + 5],
            ],
          );
          assert.deepEqual(await store.listDkimKeys('d1').then((k) => k[1]), rotated);

          assert.equal(await store.setDkimKeyState('d1', 'pb-new', 'active', T0 + 10), true);
          assert.equal(await store.setDkimKeyState('d1', 'pb-old', 'retired', T0 + 10), true);
          assert.deepEqual(
            (await store.listDkimKeys('d1')).map((k) => [k.selector, k.state, k.changedAt]),
            [
              ['pb-old', 'retired', T0 + 10],
              ['pb-new', 'active', T0 + 10],
            ],
          );
          assert.deepEqual(
            (await store.listDkimKeys('d2')).map((k) => k.state),
            ['active'],
            'the other domain’s key of the same selector is untouched',
          );
          assert.equal(await store.setDkimKeyState('d1', 'pb-none', 'retired', T0 + 20), false);
          // Encrypting a key in place: only while it still holds what the caller read.
          const stored = (await store.listDkimKeys('d1'))[0]!.privateKeyPem;
          assert.equal(await store.setDkimPrivateKey('d1', 'pb-old', 'something else', 'enc:v1:x'), false);
          assert.equal(await store.setDkimPrivateKey('d1', 'pb-old', stored, 'enc:v1:x'), true);
          assert.equal((await store.listDkimKeys('d1'))[0]!.privateKeyPem, 'enc:v1:x');
          assert.equal(
            (await store.listDkimKeys('d2'))[0]!.privateKeyPem,
            stored,
            'the other domain untouched',
          );
          assert.equal(await store.setDkimPrivateKey('d1', 'pb-none', stored, 'enc:v1:y'), false);
          assert.equal(await store.setDkimKeyState('nope', 'pb-old', 'retired', T0 + 20), false);
          assert.deepEqual(await store.listDkimKeys('nope'), []);
        });
      });

      it('signingDomains: every domain, verified or not, with its active and pending keys oldest first', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          const verified = {
            ...domainOf(accountId, 'd1', 'example.com'),
            verifiedAt: T0,
            verifiedBy: 'dns' as const,
          };
          const pending = keyOf('d1', 'pb-pending', {
            state: 'pending',
            createdAt: T0 + 2,
            changedAt: T0 + 2,
          });
          const active = keyOf('d1', 'pb-active', { createdAt: T0 + 1, changedAt: T0 + 1 });
          const retired = keyOf('d1', 'pb-retired', { state: 'retired' });
          await store.createDomain({ ...verified, keys: [pending, retired, active] });
          const unverified = domainOf(other, 'd2', 'a.example.org');
          const ed = keyOf('d2', 'pb-ed', { algorithm: 'ed25519' });
          await store.createDomain({ ...unverified, keys: [ed] });
          const bare = domainOf(other, 'd3', 'z.example.net');
          await store.createDomain({ ...bare, keys: [keyOf('d3', 'pb-gone', { state: 'retired' })] });
          assert.deepEqual(await store.signingDomains(), [
            { ...unverified, keys: [ed] },
            { ...verified, keys: [active, pending] },
            { ...bare, keys: [] },
          ]);
        });
      });

      it('a deleted domain takes its keys with it, and its name is free again', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          await store.createDomain({
            ...domainOf(accountId, 'd1', 'example.com'),
            keys: [keyOf('d1', 'pb-a'), keyOf('d1', 'pb-b', { state: 'retired' })],
          });
          await store.createDomain({
            ...domainOf(accountId, 'd2', 'example.org'),
            keys: [keyOf('d2', 'pb-a')],
          });
          assert.equal(await store.deleteDomain('d1'), true);
          assert.equal(await store.getDomain('example.com'), undefined);
          assert.deepEqual(await store.listDkimKeys('d1'), []);
          assert.equal(await store.deleteDomain('d1'), false);
          assert.equal(await store.deleteDomain('nope'), false);
          assert.deepEqual(
            (await store.signingDomains()).map((d) => [d.domain, d.keys.map((k) => k.selector)]),
            [['example.org', ['pb-a']]],
          );
          assert.ok(await store.createDomain({ ...domainOf(other, 'd3', 'example.com'), keys: [] }));
          assert.equal((await store.getDomain('example.com'))?.accountId, other);
        });
      });
    });

    describe('suppressions and bounces', () => {
      const DAY = 86_400_000;
      const entry = (
        accountId: string,
        address: string,
        overrides: Partial<Suppression> = {},
      ): Suppression => ({
        accountId,
        address,
        scope: '',
        reason: 'hard_bounce',
        category: 'bad_mailbox',
        source: 'm-1',
        details: '550 5.1.1 user unknown',
        createdAt: T0,
        expiresAt: null,
        ...overrides,
      });
      const keys = (list: Suppression[]) => list.map((s) => `${s.address}|${s.scope}`);

      it('upserts entries by (account, address, scope), lower-cased; the last one wins; removes them', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          await store.upsertSuppressions([
            entry(accountId, 'Gone@Example.COM'),
            entry(accountId, 'gone@example.com', { scope: 'news', reason: 'unsubscribe', category: '' }),
            entry(other, 'gone@example.com', { reason: 'manual' }),
          ]);
          assert.deepEqual(await store.listSuppressions({ accountId }), [
            entry(accountId, 'gone@example.com'),
            entry(accountId, 'gone@example.com', { scope: 'news', reason: 'unsubscribe', category: '' }),
          ]);
          // The same key again replaces every field; of two in one call, the last one given.
          const complaint = entry(accountId, 'gone@example.com', {
            reason: 'complaint',
            category: 'abuse',
            source: 'fbl',
            details: 'abuse report',
            createdAt: T0 + 10,
            expiresAt: T0 + DAY,
          });
          await store.upsertSuppressions([
            entry(accountId, 'GONE@example.com', { reason: 'manual' }),
            complaint,
          ]);
          assert.deepEqual(await store.listSuppressions({ accountId, scope: '' }), [complaint]);
          assert.equal((await store.listSuppressions({ accountId })).length, 2);
          await store.upsertSuppressions([]);
          await assert.rejects(
            store.upsertSuppressions([entry(accountId, 'x@example.com', { reason: 'bored' as never })]),
          );
          assert.deepEqual(await store.listSuppressions({ accountId, address: 'x@example.com' }), []);

          assert.equal(await store.removeSuppression(accountId, 'Gone@example.com', ''), true);
          assert.equal(await store.removeSuppression(accountId, 'gone@example.com', ''), false);
          assert.equal(await store.removeSuppression(accountId, 'gone@example.com', 'other-stream'), false);
          assert.deepEqual(keys(await store.listSuppressions({ accountId })), ['gone@example.com|news']);
          assert.equal(
            (await store.listSuppressions({ accountId: other })).length,
            1,
            'the other account’s stays',
          );
        });
      });

      it('lists by (address, scope) with filters, a limit and a cursor', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          await store.upsertSuppressions([
            entry(accountId, 'c@example.com'),
            entry(accountId, 'a@example.com', { scope: 'news', reason: 'unsubscribe' }),
            entry(accountId, 'b@example.com', { reason: 'complaint' }),
            entry(accountId, 'a@example.com'),
            entry(accountId, 'd@example.com', { scope: 'news', reason: 'unsubscribe' }),
            entry(other, 'a@example.com'),
          ]);
          const all = [
            'a@example.com|',
            'a@example.com|news',
            'b@example.com|',
            'c@example.com|',
            'd@example.com|news',
          ];
          assert.deepEqual(keys(await store.listSuppressions({ accountId })), all);
          const first = await store.listSuppressions({ accountId, limit: 2 });
          assert.deepEqual(keys(first), all.slice(0, 2));
          const last = first.at(-1)!;
          const second = await store.listSuppressions({
            accountId,
            limit: 2,
            after: { address: last.address, scope: last.scope },
          });
          assert.deepEqual(keys(second), all.slice(2, 4));
          assert.deepEqual(
            keys(
              await store.listSuppressions({ accountId, after: { address: 'd@example.com', scope: 'news' } }),
            ),
            [],
          );
          assert.deepEqual(keys(await store.listSuppressions({ accountId, reason: 'unsubscribe' })), [
            'a@example.com|news',
            'd@example.com|news',
          ]);
          assert.deepEqual(keys(await store.listSuppressions({ accountId, scope: 'news', limit: 1 })), [
            'a@example.com|news',
          ]);
          assert.deepEqual(keys(await store.listSuppressions({ accountId, address: 'A@example.com' })), [
            'a@example.com|',
            'a@example.com|news',
          ]);
          assert.deepEqual(await store.listSuppressions({ accountId: 'nope' }), []);
        });
      });

      it('finds the entries that apply to a stream: the account’s and the stream’s, not expired', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          await store.upsertSuppressions([
            entry(accountId, 'both@example.com'),
            entry(accountId, 'both@example.com', { scope: 'news', reason: 'unsubscribe' }),
            entry(accountId, 'news-only@example.com', { scope: 'news', reason: 'unsubscribe' }),
            entry(accountId, 'promo-only@example.com', { scope: 'promo', reason: 'unsubscribe' }),
            entry(accountId, 'until-now@example.com', { reason: 'soft_bounces', expiresAt: T0 }),
            entry(accountId, 'until-later@example.com', { reason: 'soft_bounces', expiresAt: T0 + 1 }),
            entry(other, 'elsewhere@example.com'),
          ]);
          const find = (stream: string | null, addresses: string[], now = T0) =>
            store.findSuppressions({ accountId, stream, addresses, now }).then(keys);
          const everyone = [
            'both@example.com',
            'news-only@example.com',
            'promo-only@example.com',
            'until-now@example.com',
            'until-later@example.com',
            'elsewhere@example.com',
            'clean@example.com',
          ];
          assert.deepEqual(await find('news', everyone), [
            'both@example.com|',
            'both@example.com|news',
            'news-only@example.com|news',
            'until-later@example.com|',
          ]);
          assert.deepEqual(await find('outbound', everyone), [
            'both@example.com|',
            'until-later@example.com|',
          ]);
          assert.deepEqual(await find('outbound', ['BOTH@Example.com', 'Until-Later@example.com']), [
            'both@example.com|',
            'until-later@example.com|',
          ]);
          assert.deepEqual(await find('outbound', everyone, T0 - 1), [
            'both@example.com|',
            'until-later@example.com|',
            'until-now@example.com|',
          ]);
          assert.deepEqual(await find('outbound', everyone, T0 + 1), ['both@example.com|']);
          // No stream (SMTP looks up before the content names one): every scope, still not expired.
          assert.deepEqual(await find(null, everyone), [
            'both@example.com|',
            'both@example.com|news',
            'news-only@example.com|news',
            'promo-only@example.com|promo',
            'until-later@example.com|',
          ]);
          assert.deepEqual(await find('news', []), []);
          assert.deepEqual(await find('news', ['clean@example.com']), []);
        });
      });

      it('concurrent lookups (merged into one statement on PostgreSQL) each get their own entries', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          await store.upsertSuppressions([
            entry(accountId, 'a@example.com'),
            entry(accountId, 'b@example.com', { scope: 'news', reason: 'unsubscribe' }),
            entry(other, 'a@example.com'),
            entry(other, 'c@example.com', { expiresAt: T0 }),
          ]);
          const calls = [
            { accountId, stream: 'news', addresses: ['a@example.com', 'b@example.com', 'A@example.com'] },
            { accountId, stream: 'outbound', addresses: ['a@example.com', 'b@example.com'] },
            {
              accountId: other,
              stream: 'news',
              addresses: ['a@example.com', 'b@example.com', 'c@example.com'],
            },
            { accountId: other, stream: 'news', addresses: ['c@example.com'], now: T0 - 1 },
            { accountId, stream: 'news', addresses: [] },
            { accountId, stream: null, addresses: ['a@example.com', 'b@example.com'] },
          ];
          // Many at once, in mixed order: every answer is its own call's.
          const answers = await Promise.all(
            Array.from({ length: 40 }, (_, i) => {
              const call = calls[i % calls.length]!;
              return store.findSuppressions({ ...call, now: call.now ?? T0 }).then(keys);
            }),
          );
          const expected = [
            ['a@example.com|', 'b@example.com|news'],
            ['a@example.com|'],
            ['a@example.com|'],
            ['c@example.com|'],
            [],
            ['a@example.com|', 'b@example.com|news'],
          ];
          assert.deepEqual(
            answers,
            answers.map((_, i) => expected[i % calls.length]),
          );
        });
      });

      it('purges entries that expired before the cutoff, at most `limit` a call; permanent ones stay', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          await store.upsertSuppressions([
            entry(accountId, 'a@example.com', { expiresAt: T0 - 3 * DAY }),
            entry(accountId, 'b@example.com', { expiresAt: T0 - DAY }),
            entry(accountId, 'c@example.com', { expiresAt: T0 - 2 * DAY }),
            entry(accountId, 'd@example.com', { expiresAt: T0 }),
            entry(accountId, 'e@example.com'),
          ]);
          const left = async () =>
            keys(await store.listSuppressions({ accountId }))
              .map((k) => k[0])
              .join('');
          assert.equal(await store.purgeExpiredSuppressions({ before: T0, limit: 2 }), 2);
          assert.equal(await left(), 'bde', 'the longest expired first');
          assert.equal(await store.purgeExpiredSuppressions({ before: T0, limit: 2 }), 1);
          assert.equal(await store.purgeExpiredSuppressions({ before: T0, limit: 2 }), 0);
          assert.equal(await left(), 'de', 'expiring exactly at the cutoff: kept');
          assert.equal(await store.purgeExpiredSuppressions({ before: T0 + 100 * DAY, limit: 10 }), 1);
          assert.equal(await left(), 'e');
        });
      });

      it('a suppressed recipient is stored final with its reason and never leased; the others are sent', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const rcpt = (address: string, suppressed?: NewRecipient['suppressed']): NewRecipient => ({
            address,
            domain: 'one.test',
            ...(suppressed ? { suppressed } : {}),
          });
          // Suppressed and sent recipients interleaved over two messages of one batch: each event
          // must belong to its own recipient.
          const m1 = sampleMessage(accountId, [], {
            recipients: [
              rcpt('bounced@one.test', { reason: 'hard_bounce', scope: '' }),
              rcpt('ok@one.test'),
              rcpt('unsub@one.test', { reason: 'unsubscribe', scope: 'outbound' }),
            ],
          });
          const m2 = sampleMessage(accountId, [], {
            recipients: [
              rcpt('ok2@one.test'),
              rcpt('complained@one.test', { reason: 'complaint', scope: '' }),
            ],
          });
          await store.insertMessages([m1, m2]);
          const rows = [...(await store.getRecipients(m1.id)), ...(await store.getRecipients(m2.id))];
          assert.deepEqual(
            rows.map((r) => [r.address, r.state]),
            [
              ['bounced@one.test', 'suppressed'],
              ['ok@one.test', 'queued'],
              ['unsub@one.test', 'suppressed'],
              ['ok2@one.test', 'queued'],
              ['complained@one.test', 'suppressed'],
            ],
          );
          const events = [...(await store.getEvents(m1.id)), ...(await store.getEvents(m2.id))];
          assert.deepEqual(
            events.map((e) => [
              rows.find((r) => r.id === e.recipientId)?.address,
              e.recipient,
              e.type,
              e.data,
            ]),
            [
              ['bounced@one.test', 'bounced@one.test', 'suppressed', { reason: 'hard_bounce', scope: '' }],
              [
                'ok@one.test',
                'ok@one.test',
                'accepted',
                { size: m1.body.length, source: 'smtp', clientIp: '127.0.0.1' },
              ],
              [
                'unsub@one.test',
                'unsub@one.test',
                'suppressed',
                { reason: 'unsubscribe', scope: 'outbound' },
              ],
              [
                'ok2@one.test',
                'ok2@one.test',
                'accepted',
                { size: m2.body.length, source: 'smtp', clientIp: '127.0.0.1' },
              ],
              [
                'complained@one.test',
                'complained@one.test',
                'suppressed',
                { reason: 'complaint', scope: '' },
              ],
            ],
          );
          assert.deepEqual(await store.countByState(), { queued: 2, suppressed: 3 });
          const leased = await store.leaseDue({
            owner: 'n1',
            now: T0 + DAY,
            limit: 100,
            leaseUntil: T0 + DAY + 1,
          });
          assert.deepEqual(leased.map((r) => r.address).sort(), ['ok2@one.test', 'ok@one.test']);
          assert.equal(await store.nextDueAt(), T0 + DAY + 1, 'only the leases are waited for');
          // Expired leases come back; the suppressed never do.
          const again = await store.leaseDue({
            owner: 'n2',
            now: T0 + 2 * DAY,
            limit: 100,
            leaseUntil: T0 + 3 * DAY,
          });
          assert.deepEqual(again.map((r) => r.address).sort(), ['ok2@one.test', 'ok@one.test']);
          // A message whose every recipient is suppressed is finished at once (retention).
          const none = sampleMessage(accountId, [], {
            recipients: [rcpt('bounced@one.test', { reason: 'hard_bounce', scope: '' })],
          });
          await store.insertMessages([none]);
          assert.equal(await store.purgeMessages({ before: T0 + 1, limit: 10 }), 1);
          assert.equal(await store.getMessage(none.id), undefined);
        });
      });

      it('a suppression check in the insert stores listed recipients suppressed, by precedence', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          await store.upsertSuppressions([
            entry(accountId, 'hard@one.test'),
            // A hard reason wins over an unsubscribe, even a stream's over the account's.
            entry(accountId, 'both@one.test', { reason: 'unsubscribe', category: '' }),
            entry(accountId, 'both@one.test', { scope: 'outbound', reason: 'manual', category: '' }),
            // Of two hard reasons, the account-wide entry is the one recorded.
            entry(accountId, 'wide@one.test', { scope: 'outbound', reason: 'manual', category: '' }),
            entry(accountId, 'wide@one.test', { reason: 'complaint', category: '' }),
            entry(accountId, 'news@one.test', { scope: 'news', reason: 'manual', category: '' }),
            entry(accountId, 'unsub@one.test', { reason: 'unsubscribe', category: '' }),
            entry(accountId, 'expired@one.test', { expiresAt: T0 }),
            entry(accountId, 'later@one.test', { expiresAt: T0 + DAY }),
            entry(accountId, 'mixed@one.test'),
            // An erased address is listed under its token.
            entry(accountId, 'tok-erased', { reason: 'complaint', category: '' }),
            entry(other, 'elsewhere@one.test'),
            entry(accountId, 'given@one.test'),
          ]);
          const addresses = [
            'hard@one.test',
            'both@one.test',
            'wide@one.test',
            'news@one.test',
            'unsub@one.test',
            'expired@one.test',
            'later@one.test',
            'Mixed@One.TEST',
            'erased@one.test',
            'elsewhere@one.test',
            'given@one.test',
            'fine@one.test',
          ];
          const tokens = addresses.map((a) => (a === 'erased@one.test' ? 'tok-erased' : `tok-${a}`));
          const build = (unsubscribes: boolean) => {
            const m = sampleMessage(accountId, addresses, { suppressionCheck: { unsubscribes, tokens } });
            const given = m.recipients.find((r) => r.address === 'given@one.test');
            if (given) given.suppressed = { reason: 'manual', scope: 'outbound' };
            return m;
          };
          const broadcast = build(true);
          const transactional = build(false);
          const leased = await store.insertMessages([broadcast, transactional], {
            lease: { owner: 'n1', until: T0 + DAY, now: T0 },
          });
          const suppressedAs = async (m: NewMessage) => {
            const rows = await store.getRecipients(m.id);
            const events = await store.getEvents(m.id);
            return Object.fromEntries(
              rows.map((r) => {
                const event = events.find((e) => e.recipientId === r.id);
                return [r.address, r.state === 'suppressed' ? event?.data : r.state];
              }),
            );
          };
          const expected = {
            'hard@one.test': { reason: 'hard_bounce', scope: '' },
            'both@one.test': { reason: 'manual', scope: 'outbound' },
            'wide@one.test': { reason: 'complaint', scope: '' },
            'news@one.test': 'delivering',
            'unsub@one.test': { reason: 'unsubscribe', scope: '' },
            'expired@one.test': 'delivering',
            'later@one.test': { reason: 'hard_bounce', scope: '' },
            'Mixed@One.TEST': { reason: 'hard_bounce', scope: '' },
            'erased@one.test': { reason: 'complaint', scope: '' },
            'elsewhere@one.test': 'delivering',
            'given@one.test': { reason: 'manual', scope: 'outbound' },
            'fine@one.test': 'delivering',
          };
          assert.deepEqual(await suppressedAs(broadcast), expected);
          // Where unsubscribes do not apply (transactional mail), that entry is passed over.
          assert.deepEqual(await suppressedAs(transactional), {
            ...expected,
            'unsub@one.test': 'delivering',
          });
          // Only what is sent is leased: the commit's answer leaves the listed out.
          assert.deepEqual(
            leased.map((r) => `${r.messageId === broadcast.id ? 'b' : 't'} ${r.address}`).sort(),
            [
              'b elsewhere@one.test',
              'b expired@one.test',
              'b fine@one.test',
              'b news@one.test',
              't elsewhere@one.test',
              't expired@one.test',
              't fine@one.test',
              't news@one.test',
              't unsub@one.test',
            ],
          );
          assert.deepEqual(await store.countByState(), { delivering: 9, suppressed: 15 });
        });
      });

      it('getRecipient: one recipient by its id', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const m = sampleMessage(accountId, ['a@one.test', 'b@one.test']);
          await store.insertMessages([m]);
          const rows = await store.getRecipients(m.id);
          for (const row of rows) assert.deepEqual(await store.getRecipient(row.id), row);
          assert.equal(await store.getRecipient(Math.max(...rows.map((r) => r.id)) + 1000), undefined);
        });
      });

      it('late reports: a bounce after delivery bounces the recipient, a complaint only adds its event', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const m = sampleMessage(accountId, ['late@one.test', 'annoyed@one.test', 'leased@one.test']);
          await store.insertMessages([m]);
          const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 10, leaseUntil: T0 + 60_000 });
          const by = (a: string) => leased.find((r) => r.address === a)!;
          await store.recordOutcomes('n1', [
            outcome(by('late@one.test'), {}),
            outcome(by('annoyed@one.test'), {}),
          ]);
          const bounce = {
            status: '5.1.1',
            diagnostic: 'smtp; 550 5.1.1 <late@one.test>: user unknown',
            category: 'bad_mailbox',
            permanent: true,
          };
          const complaint = { feedbackType: 'abuse', userAgent: 'fbl/1.0' };
          const unknown = Math.max(...leased.map((r) => r.id)) + 1000;
          const found = await store.recordAsyncReports([
            { recipientId: by('late@one.test').id, at: T0 + 5000, type: 'bounced', data: bounce },
            { recipientId: unknown, at: T0 + 5000, type: 'bounced', data: bounce },
            { recipientId: by('annoyed@one.test').id, at: T0 + 6000, type: 'complained', data: complaint },
            // Still leased: the bounce ends the lease, and the attempt's outcome no longer applies.
            {
              recipientId: by('leased@one.test').id,
              at: T0 + 7000,
              type: 'bounced',
              data: { category: 'other' },
            },
          ]);
          assert.deepEqual(found, [
            by('late@one.test').id,
            by('annoyed@one.test').id,
            by('leased@one.test').id,
          ]);

          const row = async (a: string) => (await store.getRecipient(by(a).id))!;
          const late = await row('late@one.test');
          assert.deepEqual(
            [
              late.state,
              late.updatedAt,
              late.lastReply?.code,
              late.lastReply?.enhanced,
              late.lastReply?.text,
              late.attempts,
            ],
            ['bounced', T0 + 5000, 550, '5.1.1', bounce.diagnostic, 1],
          );
          const annoyed = await row('annoyed@one.test');
          assert.deepEqual([annoyed.state, annoyed.lastReply?.text], ['delivered', 'ok']);
          const wasLeased = await row('leased@one.test');
          assert.deepEqual(
            [wasLeased.state, wasLeased.leaseOwner, wasLeased.leaseUntil],
            ['bounced', null, null],
          );
          assert.deepEqual(
            wasLeased.lastReply,
            { code: 550, text: '' },
            'a bounce without status or diagnostic still shows a permanent failure, not the reply it had',
          );
          assert.deepEqual(
            await store.recordOutcomes('n1', [
              outcome(by('leased@one.test'), {
                state: 'deferred',
                nextAttemptAt: T0 + 600_000,
                event: { type: 'deferred', data: {} },
              }),
            ]),
            [],
          );
          assert.equal((await row('leased@one.test')).state, 'bounced');

          const lateEvents = (await store.getEvents(m.id)).filter((e) => e.at > T0 + 1000);
          assert.deepEqual(
            lateEvents.map((e) => [
              e.type,
              e.at,
              e.recipientId,
              e.recipient,
              e.accountId,
              e.messageId,
              e.data,
            ]),
            [
              ['bounced', T0 + 5000, by('late@one.test').id, 'late@one.test', accountId, m.id, bounce],
              [
                'complained',
                T0 + 6000,
                by('annoyed@one.test').id,
                'annoyed@one.test',
                accountId,
                m.id,
                complaint,
              ],
              [
                'bounced',
                T0 + 7000,
                by('leased@one.test').id,
                'leased@one.test',
                accountId,
                m.id,
                { category: 'other' },
              ],
            ],
          );
          assert.deepEqual(await store.countByState(), { bounced: 2, delivered: 1 });
          assert.deepEqual(await store.recordAsyncReports([]), []);
          assert.deepEqual(
            await store.recordAsyncReports([{ recipientId: unknown, at: T0, type: 'complained', data: {} }]),
            [],
          );
        });
      });

      it('counts an address’s soft bounces since a time, per account', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          for (const at of [T0 - 2 * DAY, T0 - DAY, T0, T0 + 5]) {
            await store.recordSoftBounce({ accountId, address: 'Full@example.com', at });
          }
          await store.recordSoftBounce({ accountId, address: 'else@example.com', at: T0 });
          await store.recordSoftBounce({ accountId: other, address: 'full@example.com', at: T0 });
          const count = (since: number, address = 'full@example.com') =>
            store.countSoftBounces({ accountId, address, since });
          assert.equal(await count(T0 - 3 * DAY), 4);
          assert.equal(await count(T0 - DAY), 3, 'one at `since` counts');
          assert.equal(await count(T0, 'FULL@example.com'), 2);
          assert.equal(await count(T0 + 6), 0);
          assert.equal(await count(T0 - 3 * DAY, 'nobody@example.com'), 0);
          assert.equal(
            await store.countSoftBounces({ accountId: other, address: 'full@example.com', since: 0 }),
            1,
          );
          // Pruning: the two older than a day go, in batches of at most `limit`.
          assert.equal(await store.purgeSoftBounces({ before: T0 - DAY / 2, limit: 1 }), 1);
          assert.equal(await store.purgeSoftBounces({ before: T0 - DAY / 2, limit: 10 }), 1);
          assert.equal(await store.purgeSoftBounces({ before: T0 - DAY / 2, limit: 10 }), 0);
          assert.equal(await count(T0 - 3 * DAY), 2);
        });
      });
    });

    describe('idempotency keys', () => {
      const MINUTE = 60_000;
      const DAY = 86_400_000;

      /** Claims `key` at `now` with a stale time of 1 minute and an expiry of 1 day. */
      const claimer =
        (store: Store, accountId: string) =>
        (key: string, now = T0, requestHash = 'h1') =>
          store.claimIdempotencyKey({
            accountId,
            key,
            requestHash,
            now,
            staleBefore: now - MINUTE,
            expiredBefore: now - DAY,
          });

      it('the first claim wins; later ones see the claim, then its answer', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const other = await seedAccount(store, 'other');
          const claim = claimer(store, accountId);
          assert.equal(await claim('k1'), undefined);
          assert.deepEqual(await claim('k1', T0 + 10, 'h2'), { requestHash: 'h1', createdAt: T0 });
          // Keys are per account.
          assert.equal(await claimer(store, other)('k1'), undefined);
          await store.completeIdempotencyKey({ accountId, key: 'k1', response: '{"ok":true}' });
          assert.deepEqual(await claim('k1', T0 + 20), {
            requestHash: 'h1',
            response: '{"ok":true}',
            createdAt: T0,
          });
          // Answered once: a second answer does not replace it.
          await store.completeIdempotencyKey({ accountId, key: 'k1', response: 'again' });
          assert.equal((await claim('k1', T0 + 30))?.response, '{"ok":true}');
          // The other account's claim is still unanswered.
          assert.deepEqual(await claimer(store, other)('k1', T0 + 30), { requestHash: 'h1', createdAt: T0 });
          // Completing a key nobody claimed stores nothing.
          await store.completeIdempotencyKey({ accountId, key: 'never', response: 'x' });
          assert.equal(await claim('never', T0 + 40), undefined);
        });
      });

      it('a stale unanswered claim is taken over; an answered one only once expired', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const claim = claimer(store, accountId);
          assert.equal(await claim('died'), undefined);
          assert.equal(await claim('done'), undefined);
          await store.completeIdempotencyKey({ accountId, key: 'done', response: 'R' });
          // Exactly a minute old is not stale yet.
          assert.deepEqual(await claim('died', T0 + MINUTE, 'h2'), { requestHash: 'h1', createdAt: T0 });
          // Older: the request died before its work was committed; this one takes the key.
          assert.equal(await claim('died', T0 + MINUTE + 1, 'h2'), undefined);
          assert.deepEqual(await claim('died', T0 + MINUTE + 2, 'h3'), {
            requestHash: 'h2',
            createdAt: T0 + MINUTE + 1,
          });
          // An answer is kept for a day, however old.
          assert.deepEqual(await claim('done', T0 + DAY, 'h2'), {
            requestHash: 'h1',
            response: 'R',
            createdAt: T0,
          });
          assert.equal(await claim('done', T0 + DAY + 1, 'h2'), undefined);
          assert.deepEqual(await claim('done', T0 + DAY + 2, 'h3'), {
            requestHash: 'h2',
            createdAt: T0 + DAY + 1,
          });
        });
      });

      it('a release forgets an unanswered claim only', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const claim = claimer(store, accountId);
          await claim('failed');
          await claim('done');
          await store.completeIdempotencyKey({ accountId, key: 'done', response: 'R' });
          await store.releaseIdempotencyKey(accountId, 'failed');
          await store.releaseIdempotencyKey(accountId, 'done');
          assert.equal(await claim('failed', T0 + 10, 'h2'), undefined, 'a retry may run at once');
          assert.equal((await claim('done', T0 + 10))?.response, 'R');
        });
      });

      it('purgeIdempotencyKeys deletes keys created before the cutoff, oldest first, in batches', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const claim = claimer(store, accountId);
          for (const [key, at] of [
            ['a', T0 - 3 * DAY],
            ['b', T0 - 5 * DAY],
            ['c', T0 - 2 * DAY],
            ['d', T0 - DAY],
            ['e', T0],
          ] as const) {
            await claim(key, at);
          }
          await store.completeIdempotencyKey({ accountId, key: 'a', response: 'R' });
          const kept = async () => {
            const out: string[] = [];
            for (const key of ['a', 'b', 'c', 'd', 'e']) {
              // A claim that finds a record (not stale at T0 - DAY + 1): the key is still there.
              const r = await store.claimIdempotencyKey({
                accountId,
                key,
                requestHash: 'probe',
                now: T0,
                staleBefore: T0 - 10 * DAY,
                expiredBefore: T0 - 10 * DAY,
              });
              if (r) out.push(key);
              else await store.releaseIdempotencyKey(accountId, key);
            }
            return out.join('');
          };
          assert.equal(await store.purgeIdempotencyKeys({ before: T0 - DAY, limit: 2 }), 2);
          assert.equal(await kept(), 'cde');
          assert.equal(await store.purgeIdempotencyKeys({ before: T0 - DAY, limit: 2 }), 1);
          assert.equal(await store.purgeIdempotencyKeys({ before: T0 - DAY, limit: 2 }), 0);
          assert.equal(await kept(), 'de');
        });
      });
    });

    describe('retention', () => {
      const DAY = 86_400_000;
      const cutoff = T0 - 7 * DAY;

      /**
       * Messages around the cutoff, received `daysAgo` before T0 (or at an exact time), and
       * delivery outcomes that leave them finished or not:
       *   delivered, mixed (delivered + bounced), cancelled: finished, older than the cutoff
       *   atCutoff (received exactly at it) and fresh (1 day old): finished, not older
       *   waiting (queued), halfway (delivered + deferred): not finished, older
       */
      async function seedAroundCutoff(store: Store) {
        const accountId = await seedAccount(store);
        const at = (receivedAt: number, recipients: string[]) =>
          sampleMessage(accountId, recipients, {
            receivedAt,
            body: Buffer.from(`Subject: ${recipients[0]}\r\n\r\nbody\r\n`),
          });
        const m = {
          delivered: at(cutoff - 3 * DAY, ['ok@one.test']),
          mixed: at(cutoff - 2 * DAY, ['ok2@one.test', 'gone@one.test']),
          cancelled: at(cutoff - 1, ['drop@one.test']),
          atCutoff: at(cutoff, ['edge@one.test']),
          fresh: at(T0 - DAY, ['new@one.test']),
          waiting: at(cutoff - 4 * DAY, ['wait@one.test']),
          halfway: at(cutoff - 5 * DAY, ['half-ok@one.test', 'half-later@one.test']),
        };
        await store.insertMessages(Object.values(m));
        const leased = await store.leaseDue({ owner: 'n1', now: T0, limit: 100, leaseUntil: T0 + 60_000 });
        const by = (a: string) => leased.find((r) => r.address === a)!;
        const bounced = {
          state: 'bounced' as const,
          reply: { code: 550, enhanced: '5.1.1', text: 'no such user' },
          event: { type: 'bounced' as const, data: {} },
        };
        await store.recordOutcomes('n1', [
          outcome(by('ok@one.test'), {}),
          outcome(by('ok2@one.test'), {}),
          outcome(by('gone@one.test'), bounced),
          outcome(by('edge@one.test'), {}),
          outcome(by('new@one.test'), {}),
          outcome(by('half-ok@one.test'), {}),
          outcome(by('half-later@one.test'), {
            state: 'deferred',
            nextAttemptAt: T0 + 600_000,
            event: { type: 'deferred', data: {} },
          }),
        ]);
        await store.releaseLeases('n1', T0);
        await store.cancel({ messageId: m.cancelled.id }, T0);
        return m;
      }

      it('purgeBodies deletes the bodies of finished messages received before the cutoff, nothing else', async () => {
        await withStore(async (store) => {
          const m = await seedAroundCutoff(store);
          const eventsBefore = await store.getEvents(m.mixed.id);
          assert.equal(await store.purgeBodies({ before: cutoff, limit: 100 }), 3);
          for (const gone of [m.delivered, m.mixed, m.cancelled]) {
            assert.equal(await store.getBody(gone.id), undefined, 'body deleted');
            const row = await store.getMessage(gone.id);
            assert.equal(row?.bodyPurged, true);
            assert.equal(row?.size, gone.body.length, 'the size it had');
            assert.equal(row?.subject, 'hi');
          }
          for (const kept of [m.atCutoff, m.fresh, m.waiting, m.halfway]) {
            assert.deepEqual(await store.getBody(kept.id), kept.body, 'body kept');
            assert.equal((await store.getMessage(kept.id))?.bodyPurged, false);
          }
          // Recipients and events stay with the metadata.
          assert.deepEqual(
            (await store.getRecipients(m.mixed.id)).map((r) => [r.address, r.state]),
            [
              ['ok2@one.test', 'delivered'],
              ['gone@one.test', 'bounced'],
            ],
          );
          assert.deepEqual(await store.getEvents(m.mixed.id), eventsBefore);
          const listed = await store.listMessages({ limit: 100 });
          assert.equal(listed.find((x) => x.id === m.delivered.id)?.bodyPurged, true);
          assert.equal(listed.find((x) => x.id === m.fresh.id)?.bodyPurged, false);
          // Nothing left to do: a second run changes nothing.
          assert.equal(await store.purgeBodies({ before: cutoff, limit: 100 }), 0);
          // One millisecond later, the message received exactly at the old cutoff goes too.
          assert.equal(await store.purgeBodies({ before: cutoff + 1, limit: 100 }), 1);
          assert.equal(await store.getBody(m.atCutoff.id), undefined);
        });
      });

      it('purgeMessages deletes finished messages before the cutoff with their recipients and events', async () => {
        await withStore(async (store) => {
          const m = await seedAroundCutoff(store);
          assert.equal(await store.purgeMessages({ before: cutoff, limit: 100 }), 3);
          for (const gone of [m.delivered, m.mixed, m.cancelled]) {
            assert.equal(await store.getMessage(gone.id), undefined);
            assert.equal(await store.getBody(gone.id), undefined);
            assert.deepEqual(await store.getRecipients(gone.id), []);
            assert.deepEqual(await store.getEvents(gone.id), []);
          }
          for (const kept of [m.atCutoff, m.fresh, m.waiting, m.halfway]) {
            assert.equal((await store.getMessage(kept.id))?.id, kept.id);
            assert.deepEqual(await store.getBody(kept.id), kept.body);
            assert.equal((await store.getRecipients(kept.id)).length, kept.recipients.length);
            assert.ok((await store.getEvents(kept.id)).length >= kept.recipients.length);
          }
          assert.deepEqual(
            (await store.listMessages({ limit: 100 })).map((x) => x.id).sort(),
            [m.atCutoff.id, m.fresh.id, m.waiting.id, m.halfway.id].sort(),
          );
          assert.deepEqual(await store.countByState(), { delivered: 3, deferred: 1, queued: 1 });
          assert.equal(await store.purgeMessages({ before: cutoff, limit: 100 }), 0);
          // The unfinished ones stay however old they are; the finished ones go once old enough.
          assert.equal(await store.purgeMessages({ before: T0 + DAY, limit: 100 }), 2);
          assert.deepEqual(
            (await store.listMessages({ limit: 100 })).map((x) => x.id).sort(),
            [m.waiting.id, m.halfway.id].sort(),
          );
        });
      });

      it('purges in batches of at most `limit` messages, oldest first', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const messages = [5, 3, 4, 1, 2].map((daysAgo) =>
            sampleMessage(accountId, [`r${daysAgo}@one.test`], { receivedAt: cutoff - daysAgo * DAY }),
          );
          await store.insertMessages(messages);
          for (const x of messages) await store.cancel({ messageId: x.id }, T0);
          const byAge = [...messages].sort((a, b) => a.receivedAt - b.receivedAt);
          const withBody = async () =>
            (await Promise.all(byAge.map(async (x) => ((await store.getBody(x.id)) ? 1 : 0)))).join('');
          const stored = async () =>
            (await Promise.all(byAge.map(async (x) => ((await store.getMessage(x.id)) ? 1 : 0)))).join('');

          assert.equal(await store.purgeBodies({ before: cutoff, limit: 2 }), 2);
          assert.equal(await withBody(), '00111');
          assert.equal(await store.purgeBodies({ before: cutoff, limit: 2 }), 2);
          assert.equal(await withBody(), '00001');
          assert.equal(await store.purgeBodies({ before: cutoff, limit: 2 }), 1);
          assert.equal(await store.purgeBodies({ before: cutoff, limit: 2 }), 0);

          assert.equal(await store.purgeMessages({ before: cutoff, limit: 3 }), 3);
          assert.equal(await stored(), '00011');
          assert.equal(await store.purgeMessages({ before: cutoff, limit: 3 }), 2);
          assert.equal(await stored(), '00000');
          assert.equal(await store.purgeMessages({ before: cutoff, limit: 3 }), 0);
          assert.deepEqual(await store.countByState(), {});
        });
      });
      it('purgeBodies and purgeMessages delete the personalised copies too', async () => {
        await withStore(async (store) => {
          const accountId = await seedAccount(store);
          const withCopies = (receivedAt: number) =>
            sampleMessage(accountId, [], {
              receivedAt,
              variants: [Buffer.from('copy one'), Buffer.from('copy two')],
              recipients: [
                { address: 'a@one.test', domain: 'one.test', variant: 1 },
                { address: 'b@one.test', domain: 'one.test', variant: 2 },
              ],
            });
          const old = withCopies(cutoff - 2 * DAY);
          const older = withCopies(cutoff - 3 * DAY);
          const waiting = withCopies(cutoff - 4 * DAY);
          await store.insertMessages([old, older, waiting]);
          await store.cancel({ messageId: old.id }, T0);
          await store.cancel({ messageId: older.id }, T0);
          const copies = async (id: string) =>
            (await Promise.all([store.getBody(id, 1), store.getBody(id, 2)])).map(
              (b) => b?.toString() ?? null,
            );

          assert.equal(await store.purgeBodies({ before: cutoff, limit: 100 }), 2);
          assert.deepEqual(await copies(old.id), [null, null]);
          assert.deepEqual(await copies(older.id), [null, null]);
          assert.deepEqual(await copies(waiting.id), ['copy one', 'copy two'], 'unfinished: kept');

          assert.equal(await store.purgeMessages({ before: cutoff, limit: 100 }), 2);
          assert.equal(await store.getMessage(old.id), undefined);
          assert.deepEqual(await copies(waiting.id), ['copy one', 'copy two']);
          // A message whose copies were never purged goes with them.
          await store.cancel({ messageId: waiting.id }, T0);
          assert.equal(await store.purgeMessages({ before: cutoff, limit: 100 }), 1);
          assert.equal(await store.getMessage(waiting.id), undefined);
          assert.deepEqual(await copies(waiting.id), [null, null]);
        });
      });
    });
  });
}
