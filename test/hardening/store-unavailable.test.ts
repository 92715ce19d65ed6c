/**
 * Store unavailable, end to end on a real process (issue 11): while the store cannot take
 * writes, submissions are refused "try again later" (SMTP `451 4.3.0`, HTTP `503 unavailable`),
 * nothing is half-written, mail accepted before keeps its promise, and Postbote recovers by
 * itself when the store comes back: no restart, no operator.
 *
 * - SQLite, disk full: the data dir is a small tmpfs (needs `mount`, i.e. root; skipped with the
 *   reason otherwise) filled to the last byte by a filler file; the filler is deleted to recover.
 *   Afterwards the database is checked: no message without recipients, no recipient without its
 *   message, no idempotency answer without its mail, `PRAGMA integrity_check` ok.
 * - PostgreSQL, database unreachable: Postbote talks to the database through a TCP proxy in
 *   this test, which is stopped (every connection cut, new ones refused) and started again.
 *   The same checks on the schema afterwards. Skipped where no PostgreSQL is reachable.
 *
 * Deliveries are in flight when the outage begins (the sink answers slowly), so recording
 * their outcomes fails too: the scheduler keeps retrying (delivery/scheduler.ts #record) and
 * nothing acknowledged is lost.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it, type TestContext } from 'node:test';
import { queueLeft } from '../support/e2e-harness.ts';
import { postLoadMessage } from '../support/load-generator.ts';
import { createLoadAccount, type LoadTarget, startLoadTarget } from '../support/load-target.ts';
import {
  freePort,
  type PostboteProcess,
  startPostboteProcess,
  waitFor,
} from '../support/postbote-process.ts';
import { connectAdmin, freshSchemaName, testDatabaseUrl } from '../support/postgres.ts';
import { SmtpTestClient } from '../support/smtp-client.ts';
import { tempDir } from '../support/temp-dir.ts';

/** Bodies this big make every write need new pages (a full disk cannot hide behind WAL reuse). */
const BIG = 64 * 1024;
const MAX_TRIES_UNTIL_REFUSED = 200;
/** How long the sink sits on a message's final dot at first: its outcome is due during the outage. */
const IN_FLIGHT_MS = 3_000;

interface Outage {
  begin(): Promise<void>;
  end(): Promise<void>;
  /** After the run: counts of half-written rows (all must be 0) and anything else to report. */
  integrity(): Promise<Record<string, number | string>>;
}

/** One message over SMTP; the reply to the final dot (or the first refusal before it). */
async function smtpSend(
  port: number,
  id: string,
  bodyBytes: number,
): Promise<{ code: number; text: string }> {
  let client: SmtpTestClient | undefined;
  try {
    client = await SmtpTestClient.connect(port);
    const greeting = await client.read(5_000);
    if (greeting.code !== 220) return { code: greeting.code, text: greeting.text };
    await client.command('EHLO client.test', 10_000);
    for (const line of ['MAIL FROM:<load@sender.test>', 'RCPT TO:<user@sink.test>', 'DATA']) {
      const reply = await client.command(line, 10_000);
      if (reply.code >= 400) return { code: reply.code, text: `${reply.enhanced ?? ''} ${reply.text}` };
    }
    const body = 'x'
      .repeat(76)
      .concat('\r\n')
      .repeat(Math.ceil(bodyBytes / 78));
    client.write(
      `From: load@sender.test\r\nTo: user@sink.test\r\nSubject: ${id}\r\nX-Load-Id: ${id}\r\n\r\n${body}.\r\n`,
    );
    const reply = await client.read(15_000);
    client.send('QUIT');
    return { code: reply.code, text: `${reply.enhanced ?? ''} ${reply.text}` };
  } catch (err) {
    return { code: 0, text: (err as Error).message };
  } finally {
    client?.close();
  }
}

async function apiSend(
  port: number,
  key: string,
  id: string,
  bodyBytes: number,
): Promise<{ code: number; error: string }> {
  const { status, error } = await postLoadMessage(port, key, id, {
    idempotent: true,
    bodyBytes,
    timeoutMs: 15_000,
  });
  return { code: status, error };
}

async function outageRun(
  t: TestContext,
  setup: { dataDir: string; env: Record<string, string>; outage: Outage },
): Promise<void> {
  let target: LoadTarget | undefined;
  let postbote: PostboteProcess | undefined;
  let slow = true;
  try {
    // Slow at first: deliveries are in flight when the outage begins.
    target = await startLoadTarget(() => (slow ? { delayMs: IN_FLIGHT_MS } : undefined));
    const arrivals = target.arrivals;
    const env: Record<string, string> = { ...target.env(setup.dataDir), ...setup.env };
    const key = await createLoadAccount(env);
    postbote = await startPostboteProcess({ dataDir: setup.dataDir, env, timeoutMs: 30_000 });
    const { submissionPort, httpPort } = postbote;
    const acknowledged = new Set<string>();

    // Before: small messages go through, and their deliveries are slow.
    for (let i = 0; i < 6; i++) {
      const s = await smtpSend(submissionPort, `before-smtp-${i}`, 1024);
      assert.equal(s.code, 250, `before the outage, SMTP: ${s.text}`);
      acknowledged.add(`before-smtp-${i}`);
      const a = await apiSend(httpPort, key, `before-api-${i}`, 1024);
      assert.equal(a.code, 202, `before the outage, API: ${a.error}`);
      acknowledged.add(`before-api-${i}`);
    }
    // One more, and the outage begins while the sink holds its final dot: the remote side
    // answers during the outage, so recording that outcome fails until the store is back.
    assert.equal((await smtpSend(submissionPort, 'in-flight', 1024)).code, 250);
    acknowledged.add('in-flight');
    await waitFor(() => arrivals.has('in-flight'), { what: 'a delivery in flight', timeoutMs: 20_000 });

    await setup.outage.begin();
    const began = Date.now();
    // During: every submission is accepted (the store found room) or refused with exactly
    // 451 4.3.0 / 503 unavailable, and refusals come, for both front ends.
    const refusedSmtp: string[] = [];
    const refusedApi: string[] = [];
    const other: string[] = [];
    for (let i = 0; i < MAX_TRIES_UNTIL_REFUSED; i++) {
      if (refusedSmtp.length >= 5 && refusedApi.length >= 5) break;
      const sid = `during-smtp-${i}`;
      const s = await smtpSend(submissionPort, sid, BIG);
      if (s.code === 250) acknowledged.add(sid);
      else if (s.code === 451 && s.text.startsWith('4.3.0')) refusedSmtp.push(sid);
      else other.push(`SMTP ${sid}: ${s.code} ${s.text}`);
      const aid = `during-api-${i}`;
      const a = await apiSend(httpPort, key, aid, BIG);
      if (a.code === 202) acknowledged.add(aid);
      else if (a.code === 503 && a.error === 'unavailable') refusedApi.push(aid);
      else other.push(`API ${aid}: ${a.code} ${a.error}`);
    }
    t.diagnostic(
      `during the outage: ${refusedSmtp.length} SMTP 451, ${refusedApi.length} API 503, ` +
        `${[...acknowledged].filter((id) => id.startsWith('during')).length} still accepted, ${other.length} other`,
    );
    assert.deepEqual(other, [], 'only 250/451 4.3.0 and 202/503 during the outage');
    assert.ok(refusedSmtp.length >= 5, 'SMTP submissions were refused with 451 4.3.0');
    assert.ok(refusedApi.length >= 5, 'API submissions were refused with 503');
    assert.equal(postbote.child.exitCode, null, 'Postbote is still running');
    assert.equal(
      (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status,
      200,
      'alive during the outage',
    );
    // Readiness is reported, not asserted: SQLite still answers reads on a full disk.
    t.diagnostic(`/readyz during the outage: ${(await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status}`);

    // The outage lasts past the held delivery's answer.
    await new Promise((r) => setTimeout(r, Math.max(0, IN_FLIGHT_MS + 1_500 - (Date.now() - began))));

    // After: the store is back; no restart. New mail and the refused retries go through.
    slow = false;
    await setup.outage.end();
    const running = postbote;
    await waitFor(
      async () => {
        const s = await smtpSend(running.submissionPort, 'after-smtp-0', 1024);
        return s.code === 250 || undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'SMTP accepting again' },
    );
    acknowledged.add('after-smtp-0');
    let inUse = 0;
    for (const id of refusedApi) {
      // A client retries a 503 with the same Idempotency-Key: it must get its mail stored now.
      const answer = await waitFor(
        async () => {
          const a = await apiSend(running.httpPort, key, id, BIG);
          if (a.error === 'idempotency_key_in_use') inUse++;
          return a.code === 202 ? a : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 500, what: `the API retry of ${id}` },
      );
      assert.equal(answer.code, 202);
      acknowledged.add(id);
    }
    for (const id of refusedSmtp) {
      const s = await smtpSend(running.submissionPort, id, BIG);
      assert.equal(s.code, 250, `SMTP retry of ${id}: ${s.text}`);
      acknowledged.add(id);
    }
    t.diagnostic(`after: ${inUse} API retries answered idempotency_key_in_use before 202`);

    // Nothing acknowledged is lost; what was in flight at the outage is delivered once.
    await waitFor(() => [...acknowledged].every((id) => arrivals.has(id)) || undefined, {
      timeoutMs: 120_000,
      intervalMs: 250,
      what: 'every acknowledged message at the sink',
    }).catch(() => undefined);
    const lost = [...acknowledged].filter((id) => !arrivals.has(id));
    const duplicates = [...arrivals.values()].reduce((n, c) => n + c - 1, 0);
    const recordRetries = running.logs.filter((l) => l.includes('could not record delivery outcomes')).length;
    t.diagnostic(
      `${acknowledged.size} acknowledged, lost ${lost.length}, duplicated ${duplicates}, ` +
        `${recordRetries} outcome-recording retries logged`,
    );
    assert.deepEqual(lost, [], 'nothing acknowledged is lost');
    assert.ok(recordRetries > 0, 'an outcome fell into the outage (the scenario was exercised)');
    const left = await waitFor(
      async () => {
        const q = await queueLeft(running.cli);
        return q.queued + q.deferred + q.delivering === 0 ? 0 : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'an empty queue' },
    ).catch(() => -1);
    assert.equal(left, 0, 'the queue drained');
    assert.equal(await running.stop(), 0, 'a clean exit');
    const counts = await setup.outage.integrity();
    t.diagnostic(`integrity: ${JSON.stringify(counts)}`);
    for (const [what, n] of Object.entries(counts)) {
      if (typeof n === 'number') assert.equal(n, 0, what);
      else assert.equal(n, 'ok', what);
    }
  } finally {
    await postbote?.kill().catch(() => undefined);
    await target?.close();
  }
}

/** The half-written shapes, as SQL over the store's tables (same on both adapters). */
const HALF_WRITTEN: Record<string, string> = {
  'messages without recipients':
    'SELECT count(*) AS n FROM messages m WHERE NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id)',
  'recipients without their message':
    'SELECT count(*) AS n FROM recipients r WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = r.message_id)',
  'unanswered idempotency claims': "SELECT count(*) AS n FROM idempotency_keys WHERE response = ''",
};

/** Message ids the idempotency answers point to, for "no answer without its mail". */
const ANSWERED = "SELECT response FROM idempotency_keys WHERE response <> ''";

function answeredIds(rows: { response: string }[]): string[] {
  return rows.map((r) => String((JSON.parse(r.response) as { body?: { id?: unknown } }).body?.id ?? '?'));
}

describe('store unavailable: 451/503 while it is down, nothing half-written, recovery on its own', () => {
  it('SQLite: the disk fills up and frees again', { timeout: 300_000 }, async (t) => {
    const dir = tempDir('postbote-full-');
    const data = join(dir.path, 'data');
    mkdirSync(data);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', data], { stdio: 'pipe' });
    } catch (err) {
      dir.cleanup();
      t.skip(`cannot mount a tmpfs for the data dir (needs root): ${(err as Error).message.split('\n')[0]}`);
      return;
    }
    const filler = join(data, 'filler');
    try {
      await outageRun(t, {
        dataDir: data,
        env: {},
        outage: {
          async begin() {
            const fd = openSync(filler, 'w');
            try {
              for (const chunk of [1 << 20, 4096, 512]) {
                const block = Buffer.alloc(chunk, 0x55);
                try {
                  for (;;) writeSync(fd, block);
                } catch (err) {
                  if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
                }
              }
            } finally {
              closeSync(fd);
            }
          },
          async end() {
            rmSync(filler);
          },
          async integrity() {
            const db = new DatabaseSync(join(data, 'postbote.db'), { readOnly: true });
            try {
              const counts: Record<string, number | string> = {};
              for (const [what, sql] of Object.entries(HALF_WRITTEN))
                counts[what] = Number((db.prepare(sql).get() as { n: number }).n);
              const ids = answeredIds(db.prepare(ANSWERED).all() as { response: string }[]);
              const has = db.prepare('SELECT 1 FROM messages WHERE id = ?');
              counts['idempotency answers without their mail'] = ids.filter((id) => !has.get(id)).length;
              counts.integrity_check = String(
                (db.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check,
              );
              return counts;
            } finally {
              db.close();
            }
          },
        },
      });
    } finally {
      try {
        execFileSync('umount', ['-l', data], { stdio: 'pipe' });
      } catch {
        // already gone
      }
      dir.cleanup();
    }
  });

  const schema = freshSchemaName('postbote_down');
  let dropSchema: (() => Promise<void>) | undefined;
  after(async () => {
    await dropSchema?.();
  });

  it('PostgreSQL: the database goes away and comes back', { timeout: 300_000 }, async (t) => {
    const connected = await connectAdmin();
    if ('reason' in connected) {
      if (process.env.CI) assert.fail(connected.reason);
      t.skip(connected.reason);
      return;
    }
    const { admin } = connected;
    dropSchema = async () => {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await admin.end();
    };
    const target = new URL(testDatabaseUrl);
    const proxy = await startProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(testDatabaseUrl);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const dir = tempDir('postbote-down-');
    try {
      await outageRun(t, {
        dataDir: dir.path,
        env: {
          POSTBOTE_DATABASE__URL: viaProxy.toString(),
          POSTBOTE_DATABASE__SCHEMA: schema,
          POSTBOTE_NODE_ID: 'down-node',
        },
        outage: {
          begin: () => proxy.stop(),
          end: () => proxy.start(),
          async integrity() {
            const counts: Record<string, number | string> = {};
            for (const [what, sql] of Object.entries(HALF_WRITTEN)) {
              const res = await admin.query(
                sql.replace(/\b(messages|recipients|idempotency_keys)\b/g, `${schema}.$1`),
              );
              counts[what] = Number(res.rows[0]?.n ?? -1);
            }
            const answered = await admin.query(
              ANSWERED.replace('idempotency_keys', `${schema}.idempotency_keys`),
            );
            const ids = answeredIds(answered.rows as { response: string }[]);
            const found = await admin.query(`SELECT id FROM ${schema}.messages WHERE id = ANY($1)`, [ids]);
            counts['idempotency answers without their mail'] = ids.length - found.rowCount!;
            return counts;
          },
        },
      });
    } finally {
      await proxy.close();
      dir.cleanup();
    }
  });
});

/** A TCP proxy to PostgreSQL that can be taken down (every connection cut, new ones refused). */
async function startProxy(host: string, port: number) {
  const sockets = new Set<net.Socket>();
  const listenPort = await freePort();
  let server: net.Server | undefined;
  const start = () =>
    new Promise<void>((resolve, reject) => {
      server = net.createServer((client) => {
        const upstream = net.connect(port, host);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream);
        upstream.pipe(client);
      });
      server.once('error', reject);
      server.listen(listenPort, '127.0.0.1', () => resolve());
    });
  const stop = async () => {
    const closing = server;
    server = undefined;
    const closed = new Promise<void>((resolve) => (closing ? closing.close(() => resolve()) : resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  await start();
  return { port: listenPort, start, stop, close: stop };
}
