/**
 * Where the load tests (crash, shutdown, store outage) send their mail: user@sink.test, whose MX
 * mx.sink.test is 127.0.0.2 in a test DNS server, a scripted sink there that counts what arrives
 * by X-Load-Id; the Postbote settings that deliver to it; and an account `load` that relays by
 * source address (127.0.0.0/8) with an API key for the HTTP half of the load.
 */
import assert from 'node:assert/strict';
import { startDnsServer, type TestDnsServer } from './dns-server.ts';
import { loadIdOf } from './load-generator.ts';
import { createIpAccount, runCli } from './postbote-process.ts';
import { type ScriptedSink, type SinkAction, startScriptedSink } from './scripted-sink.ts';

export interface LoadTarget {
  sink: ScriptedSink;
  dns: TestDnsServer;
  /** How many times each X-Load-Id reached the sink (a count above 1 is a duplicate). */
  arrivals: Map<string, number>;
  /** When (performance.now() of this process) the final dot of each copy arrived, per X-Load-Id. */
  arrivalTimes: Map<string, number[]>;
  /** POSTBOTE_* settings delivering to the sink (add the store's and the test's own). */
  env(dataDir: string): Record<string, string>;
  close(): Promise<void>;
}

/** `onArrival` may delay or script the sink's answer to a message's final dot. */
export async function startLoadTarget(
  onArrival: (id: string) => SinkAction | undefined = () => undefined,
): Promise<LoadTarget> {
  const arrivals = new Map<string, number>();
  const arrivalTimes = new Map<string, number[]>();
  const sink = await startScriptedSink({
    host: '127.0.0.2',
    hostname: 'mx.sink.test',
    respond: (cmd) => {
      if (cmd.verb !== 'DATA_END') return undefined;
      const id = cmd.transaction?.data ? loadIdOf(cmd.transaction.data) : '(none)';
      arrivals.set(id, (arrivals.get(id) ?? 0) + 1);
      const times = arrivalTimes.get(id);
      if (times) times.push(performance.now());
      else arrivalTimes.set(id, [performance.now()]);
      return onArrival(id);
    },
  });
  const dns = await startDnsServer({
    zones: {
      'sink.test': { MX: [{ preference: 10, exchange: 'mx.sink.test' }] },
      'mx.sink.test': { A: ['127.0.0.2'] },
    },
  });
  return {
    sink,
    dns,
    arrivals,
    arrivalTimes,
    env: (dataDir) => ({
      POSTBOTE_DATA_DIR: dataDir,
      POSTBOTE_DNS__SERVERS: dns.address,
      POSTBOTE_DELIVERY__PORT: String(sink.port),
      POSTBOTE_DELIVERY__ALLOW_PRIVATE_MX: 'true',
      POSTBOTE_DELIVERY__STARTTLS: 'none',
    }),
    async close() {
      await sink.close();
      await dns.close();
    },
  };
}

/** Account `load`: relays for 127.0.0.0/8 by address; returns an API key with the send scope. */
export async function createLoadAccount(env: Record<string, string>): Promise<string> {
  await createIpAccount(env, 'load', '127.0.0.0/8');
  const key = /(pb_[A-Za-z0-9_.-]+)/.exec(
    await runCli(['credentials', 'create', '--account', 'load', '--api', '--scopes', 'send'], env),
  )?.[1];
  assert.ok(key, 'an API key');
  return key;
}
