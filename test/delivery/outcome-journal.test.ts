import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import type { Destination, DestinationResult } from '../../src/delivery/destination.ts';
import {
  OutcomeJournal,
  outcomeJournalPath,
  readOutcomeJournal,
  recoverOutcomeJournal,
} from '../../src/delivery/outcome-journal.ts';
import { createRetryPolicy } from '../../src/delivery/retry-policy.ts';
import { Scheduler } from '../../src/delivery/scheduler.ts';
import { createIntake } from '../../src/intake/intake.ts';
import { createLogger, silentLogger } from '../../src/observability/logger.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import type { Outcome } from '../../src/store/types.ts';
import { fakeClock } from '../support/fake-clock.ts';
import { sampleOutcome as outcome } from '../support/outcomes.ts';
import { waitFor } from '../support/postbote-process.ts';
import { tempDir } from '../support/temp-dir.ts';

/** A destination's answer: every recipient delivered. */
function allDelivered(recipients: string[]): DestinationResult {
  return {
    recipients: recipients.map((address) => ({
      address,
      outcome: 'delivered' as const,
      reply: { code: 250, enhanced: '2.0.0', text: 'queued as X' },
    })),
    connection: { mxHost: 'mx.one.test', ip: '192.0.2.1', port: 25, tls: null },
    site: 'mx.one.test',
    durationMs: 1,
  };
}

function testScheduler(
  store: Store,
  destination: Destination,
  clock: { now: () => number },
  owner: string,
  journal?: OutcomeJournal,
): Scheduler {
  return new Scheduler({
    store,
    destination,
    retryPolicy: createRetryPolicy({ firstRetrySeconds: 60, maxAgeSeconds: 600, jitter: 0 }, () => 0.5),
    clock: clock.now,
    logger: silentLogger(),
    owner,
    window: 100,
    batchSize: 50,
    leaseMs: 60_000,
    maxRecipientsPerTransaction: 100,
    pollMs: 20,
    ...(journal ? { journal } : {}),
  });
}

/** One message to `to`, accepted into `store`; its id. */
async function submit(store: Store, clock: { now: () => number }, to: string[]): Promise<string> {
  const intake = createIntake({ store, clock: clock.now, hostname: 'relay.test', dsnOnFailure: true });
  const { id } = await intake.submit({
    accountId: 'acct',
    credentialId: null,
    mailFrom: 'sender@example.com',
    recipients: to.map((address) => ({ address })),
    raw: Buffer.from('Subject: t\r\n\r\nhello\r\n'),
    source: 'smtp',
    clientIp: '127.0.0.1',
    dsn: {},
    trace: { heloName: 'client', protocol: 'ESMTP' },
  });
  return id;
}

describe('outcome journal', () => {
  it('appends delivered outcomes only, one line per call, and reads them back', () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, 'outcomes.journal');
      const journal = new OutcomeJournal(path, silentLogger());
      assert.equal(journal.append([outcome(1, 'deferred')]), false);
      assert.equal(journal.append([outcome(2), outcome(3, 'bounced'), outcome(4)]), true);
      assert.equal(readFileSync(path, 'utf8').split('\n').length, 2);
      assert.deepEqual(
        readOutcomeJournal(path).outcomes.map((o) => o.recipientId),
        [2, 4],
      );
      journal.recorded();
      journal.close();
      // Closed with nothing pending: emptied.
      assert.equal(statSync(path).size, 0);
    } finally {
      dir.cleanup();
    }
  });

  it('skips lines that do not parse or are not delivered outcomes; a missing file is empty', () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, 'outcomes.journal');
      assert.deepEqual(readOutcomeJournal(path), { outcomes: [], skipped: 0 });
      writeFileSync(
        path,
        [
          JSON.stringify([outcome(1)]),
          JSON.stringify([outcome(2, 'deferred')]),
          JSON.stringify({ not: 'a list' }),
          JSON.stringify([{ ...outcome(3), recipientId: '3; DROP TABLE' }]),
          JSON.stringify([outcome(4)]).slice(0, 40), // torn by a power loss
        ].join('\n'),
      );
      const read = readOutcomeJournal(path);
      assert.deepEqual(
        read.outcomes.map((o) => o.recipientId),
        [1],
      );
      assert.equal(read.skipped, 4);
    } finally {
      dir.cleanup();
    }
  });

  it('is emptied once nothing in it waits for the store and it has grown past 1 MiB', () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, 'outcomes.journal');
      const journal = new OutcomeJournal(path, silentLogger());
      const big = { ...outcome(1), event: { type: 'delivered' as const, data: { pad: 'x'.repeat(10_000) } } };
      for (let i = 0; i < 110; i++) journal.append([big]);
      // 109 recorded, one still waiting: the line it needs stays.
      for (let i = 0; i < 109; i++) journal.recorded();
      assert.ok(statSync(path).size > 1024 * 1024);
      journal.recorded();
      assert.equal(statSync(path).size, 0);
      // Appends go on at the new end.
      journal.append([outcome(5)]);
      assert.deepEqual(
        readOutcomeJournal(path).outcomes.map((o) => o.recipientId),
        [5],
      );
      journal.close();
      // Closed with a line pending: kept for the next start.
      assert.equal(readOutcomeJournal(path).outcomes.length, 1);
    } finally {
      dir.cleanup();
    }
  });

  it('a full disk (ENOSPC) is logged once and delivery goes on without the journal', () => {
    const lines: string[] = [];
    const logger = createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk, _encoding, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    });
    const journal = new OutcomeJournal('/dev/full', logger);
    assert.equal(journal.append([outcome(1)]), false);
    assert.equal(journal.append([outcome(2)]), false);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        assert.equal(lines.length, 1);
        assert.match(lines[0] ?? '', /ENOSPC.*could not write the outcome journal/);
        journal.close();
        resolve();
      }),
    );
  });

  it('lives in the data dir; on a shared database only under a configured node id', () => {
    const base = { dataDir: '/var/lib/postbote' };
    assert.equal(
      outcomeJournalPath({ ...base, sharedDatabase: false, nodeId: 'host:42', nodeIdConfigured: false }),
      '/var/lib/postbote/outcomes.journal',
    );
    assert.equal(
      outcomeJournalPath({ ...base, sharedDatabase: true, nodeId: 'host:42', nodeIdConfigured: false }),
      undefined,
    );
    assert.equal(
      outcomeJournalPath({ ...base, sharedDatabase: true, nodeId: 'eu-1/../a b', nodeIdConfigured: true }),
      '/var/lib/postbote/outcomes-eu-1_.._a_b.journal',
    );
  });

  it('a connection carries its next transaction once the store has its deliveries (journal or not); after a deferral at once', async () => {
    const dir = tempDir();
    const store = new SqliteStore(join(dir.path, 'postbote.db'));
    try {
      await store.migrate();
      await store.createAccount({ id: 'acct', name: 'acct', createdAt: 0 });
      const clock = fakeClock();
      // The store takes outcomes only when the test opens the gate.
      let openStore: () => void = () => {};
      let storeOpen = Promise.resolve();
      const closeStore = () => (storeOpen = new Promise<void>((r) => (openStore = r)));
      let writes = 0;
      const slowStore: Store = new Proxy(store, {
        get(target, prop, receiver) {
          if (prop === 'recordOutcomes') {
            return async (owner: string, outcomes: Outcome[]) => {
              writes++;
              await storeOpen;
              return target.recordOutcomes(owner, outcomes);
            };
          }
          const value = Reflect.get(target, prop, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      // Like the session pool: the destination settles the answer before it reuses the connection.
      // deferred@ is greylisted, everyone else delivered.
      const released: string[] = [];
      const destination: Destination = {
        async deliver(request) {
          const result = allDelivered(request.recipients);
          for (const r of result.recipients) {
            if (r.address.startsWith('deferred@')) {
              r.outcome = 'temporary';
              r.reply = { code: 451, enhanced: '4.7.1', text: 'greylisted' };
            }
          }
          await request.settle?.(result);
          released.push(...request.recipients);
          return result;
        },
      };
      const journal = new OutcomeJournal(join(dir.path, 'outcomes.journal'), silentLogger());
      const run = async (to: string) => {
        const scheduler = testScheduler(slowStore, destination, clock, 'node', journal);
        const id = await submit(store, clock, [to]);
        scheduler.start();
        scheduler.wake();
        return { scheduler, id };
      };

      // A delivery: journaled, and still the connection waits for the store.
      closeStore();
      const first = await run('delivered@one.test');
      await waitFor(() => writes === 1, { what: 'the store write' });
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(released.length, 0, 'no next transaction before the store has the delivery');
      openStore();
      await waitFor(() => released.includes('delivered@one.test'), { what: 'release after the store' });
      await first.scheduler.stop();
      // A deferral: the connection is free at once, its outcome still on its way to the store.
      closeStore();
      const second = await run('deferred@one.test');
      await waitFor(() => released.includes('deferred@one.test'), { what: 'release before the store' });
      openStore();
      await second.scheduler.stop();
      assert.deepEqual(
        (await store.getRecipients(first.id)).map((r) => r.state),
        ['delivered'],
      );
      assert.deepEqual(
        (await store.getRecipients(second.id)).map((r) => r.state),
        ['deferred'],
      );
      journal.close();
    } finally {
      await store.close();
      dir.cleanup();
    }
  });

  it('a delivery answered 250 but killed before its store commit is recorded at the next start, not sent again', async () => {
    const dir = tempDir();
    const store = new SqliteStore(join(dir.path, 'postbote.db'));
    try {
      await store.migrate();
      await store.createAccount({ id: 'acct', name: 'acct', createdAt: 0 });
      const clock = fakeClock();
      const path = join(dir.path, 'outcomes.journal');
      const sent: string[] = [];
      const destination: Destination = {
        async deliver(request) {
          sent.push(...request.recipients);
          return allDelivered(request.recipients);
        },
      };
      // The first run's outcomes never reach the store: the process is "killed" right after
      // the remote answer, and from then on that run reaches nothing.
      let reachedStore = false;
      const killedBeforeCommit: Store = new Proxy(store, {
        get(target, prop, receiver) {
          if (prop === 'recordOutcomes') {
            return () => {
              reachedStore = true;
              return new Promise(() => {});
            };
          }
          if (reachedStore) return () => new Promise(() => {});
          const value = Reflect.get(target, prop, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      const scheduler = (s: Store, owner: string, journal: OutcomeJournal) =>
        testScheduler(s, destination, clock, owner, journal);
      const id = await submit(store, clock, ['a@one.test', 'b@one.test']);

      const first = scheduler(killedBeforeCommit, 'run-1', new OutcomeJournal(path, silentLogger()));
      first.start();
      first.wake();
      await waitFor(() => reachedStore, { what: 'the first run reaching its store commit' });
      assert.deepEqual(sent.sort(), ['a@one.test', 'b@one.test']);
      assert.deepEqual(
        (await store.getRecipients(id)).map((r) => r.state),
        ['delivering', 'delivering'],
      );

      // Next start: replay, then release what is left, then deliver what is due.
      const journal = await recoverOutcomeJournal({ path, store, owner: 'run-2', logger: silentLogger() });
      assert.equal(statSync(path).size, 0);
      assert.equal(await store.releaseLeases(null, clock.now()), 0);
      const second = scheduler(store, 'run-2', journal);
      second.start();
      second.wake();
      await new Promise((r) => setTimeout(r, 100));
      await second.stop();
      assert.equal(sent.length, 2, 'nothing sent twice');
      const recipients = await store.getRecipients(id);
      assert.deepEqual(
        recipients.map((r) => [r.state, r.attempts, r.lastReply?.code]),
        [
          ['delivered', 1, 250],
          ['delivered', 1, 250],
        ],
      );
      const events = (await store.getEvents(id)).filter((e) => e.type === 'delivered');
      assert.equal(events.length, 2);
      assert.equal(events[0]?.data.mxHost, 'mx.one.test');

      // A journal whose lines were stored already (killed after the commit) changes nothing.
      writeFileSync(path, `${JSON.stringify([outcome(recipients[0]?.id ?? 0)])}\n`);
      await recoverOutcomeJournal({ path, store, owner: 'run-3', logger: silentLogger() });
      assert.equal((await store.getEvents(id)).filter((e) => e.type === 'delivered').length, 2);
    } finally {
      await store.close();
      dir.cleanup();
    }
  });
});
