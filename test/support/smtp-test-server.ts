/**
 * Start `createSmtpServer` on a free loopback port with recording handlers, and a cached
 * self-signed certificate for TLS tests (made with the system `openssl`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { Authenticator } from '../../src/auth/authenticator.ts';
import type { Intake } from '../../src/intake/intake.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { replies } from '../../src/smtp/replies.ts';
import { createSmtpServer, type SmtpServer, type SmtpServerOptions } from '../../src/smtp/server/index.ts';
import type { SmtpEnvelope, SmtpHandlers, SmtpSession } from '../../src/smtp/server/types.ts';
import { submissionHandlers } from '../../src/smtp/submission.ts';
import type { Store } from '../../src/store/store.ts';

export interface ReceivedMessage {
  envelope: SmtpEnvelope;
  message: Buffer;
  size: number;
  session: SmtpSession;
}

export interface TestServer {
  server: SmtpServer;
  port: number;
  received: ReceivedMessage[];
  close(): Promise<void>;
}

export async function startTestServer(
  overrides: Partial<Omit<SmtpServerOptions, 'handlers'>> & { handlers?: Partial<SmtpHandlers> } = {},
): Promise<TestServer> {
  const received: ReceivedMessage[] = [];
  let n = 0;
  const { handlers, ...rest } = overrides;
  const server = createSmtpServer({
    hostname: 'mx.test',
    sizeLimit: 10_000,
    maxRecipients: 5,
    idleTimeoutMs: 5_000,
    ...rest,
    handlers: {
      onData(session, message, info) {
        received.push({ envelope: session.envelope, message, size: info.size, session });
        return replies.queued(`Q${++n}`);
      },
      ...handlers,
    },
  });
  const address = await server.listen(0, '127.0.0.1');
  return { server, port: address.port, received, close: () => server.close() };
}

let cached: { key: Buffer; cert: Buffer } | undefined;

/** A throwaway certificate for CN=localhost / 127.0.0.1, generated once per test process. */
export function selfSignedCertificate(): { key: Buffer; cert: Buffer } {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'postbote-cert-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore', timeout: 10_000 },
    );
    cached = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function testSecureContext(): tls.SecureContext {
  const { key, cert } = selfSignedCertificate();
  return tls.createSecureContext({ key, cert, minVersion: 'TLSv1.2' });
}

/**
 * Postbote's submission policy (smtp/submission.ts) on a test server: AUTH PLAIN over plaintext
 * allowed, logins checked against `store`, messages handed to `intake`.
 */
export async function startSubmissionServer(
  store: Store,
  intake: Intake,
  overrides: Partial<Omit<SmtpServerOptions, 'handlers'>> = {},
): Promise<TestServer> {
  const authenticator = new Authenticator({
    store,
    clock: () => Date.now(),
    maxFailures: 5,
    failureWindowMs: 60_000,
    lockoutMs: 60_000,
  });
  return startTestServer({
    authMethods: ['PLAIN'],
    allowPlaintextAuth: () => true,
    sizeLimit: 100_000,
    ...overrides,
    handlers: submissionHandlers({ authenticator, intake, logger: silentLogger() }),
  });
}
