/**
 * The two SMTP listeners with their real policies, in-process, for the hostile-input tests:
 * submission (submissionHandlers: AUTH or an IP credential, intake into a real SQLite store)
 * and the inbound MX (inboundHandlers: only VERP and feedback addresses of ours). What reaches
 * the store or the report pipeline is recorded so a test can prove nothing got through.
 */
import { randomBytes } from 'node:crypto';
import { createAccount, createCredential } from '../../src/auth/accounts.ts';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { verpAddress } from '../../src/bounces/verp.ts';
import { createIntake } from '../../src/intake/intake.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { type InboundReport, inboundHandlers } from '../../src/smtp/inbound.ts';
import { createSmtpServer, type SmtpServer } from '../../src/smtp/server/index.ts';
import { submissionHandlers } from '../../src/smtp/submission.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

export const RETURN_PATH = 'bounce.test';
export const FEEDBACK = 'abuse@bounce.test';
/** The one address the IP credential relays for (other loopback addresses are strangers). */
export const TRUSTED_IP = '127.0.0.9';

export interface Listeners {
  store: SqliteStore;
  submission: { server: SmtpServer; port: number };
  mx: { server: SmtpServer; port: number };
  username: string;
  password: string;
  /** A genuine VERP address of ours (recipient id 1). */
  verp: string;
  reports: InboundReport[];
  /** Reports received, kept or only counted. */
  reportCount(): number;
  close(): Promise<void>;
}

export async function startListeners(
  options: { maxLineLength?: number; idleTimeoutMs?: number; keepReports?: boolean } = {},
): Promise<Listeners> {
  const store = new SqliteStore(':memory:');
  await store.migrate();
  const clock = () => Date.now();
  const account = await createAccount(store, 'shop', clock());
  const username = 'app';
  const issued = await createCredential(store, account, { kind: 'smtp', username }, clock());
  await createCredential(store, account, { kind: 'ip', cidrs: [`${TRUSTED_IP}/32`] }, clock());
  const authenticator = new Authenticator({
    store,
    clock,
    maxFailures: 1_000_000,
    failureWindowMs: 60_000,
    lockoutMs: 60_000,
  });
  const intake = createIntake({ store, clock, hostname: 'relay.test', dsnOnFailure: false });
  const common = {
    hostname: 'relay.test',
    sizeLimit: 200_000,
    maxRecipients: 20,
    idleTimeoutMs: options.idleTimeoutMs ?? 10_000,
    greetingDelayMs: 0,
    ...(options.maxLineLength ? { maxLineLength: options.maxLineLength } : {}),
  };
  const submission = createSmtpServer({
    ...common,
    authMethods: ['PLAIN', 'LOGIN'],
    allowPlaintextAuth: () => true,
    handlers: submissionHandlers({ authenticator, intake, logger: silentLogger() }),
  });
  const secret = randomBytes(32);
  const reports: InboundReport[] = [];
  let reportCount = 0;
  const mx = createSmtpServer({
    ...common,
    authMethods: [],
    handlers: inboundHandlers({
      isOurReturnPath: (domain) => domain === RETURN_PATH,
      feedbackAddresses: new Set([FEEDBACK]),
      secret,
      onReport: async (report) => {
        // Long runs (fuzzing) only count them: a growing list would look like a leak.
        if (options.keepReports === false) reportCount++;
        else reports.push(report);
      },
      logger: silentLogger(),
    }),
  });
  // Tests choose who they are by the local address they connect from (127.0.0.0/8).
  const submissionPort = (await submission.listen(0, '127.0.0.1')).port;
  const mxPort = (await mx.listen(0, '127.0.0.1')).port;
  return {
    store,
    submission: { server: submission, port: submissionPort },
    mx: { server: mx, port: mxPort },
    username,
    password: issued.secret ?? '',
    verp: verpAddress(1, RETURN_PATH, secret),
    reports,
    reportCount: () => reportCount + reports.length,
    async close() {
      await Promise.all([submission.close(), mx.close()]);
      await store.close();
    },
  };
}

/** A deterministic PRNG (mulberry32): the same seed gives the same fuzz run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
