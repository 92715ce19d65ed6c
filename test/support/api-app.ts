/**
 * The HTTP API in-process over a real SQLite store (no delivery engine): requests go through
 * fastify's inject or a real listener, and tests read what was stored.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { createIdempotency } from '../../src/api/idempotency.ts';
import { createKeyGate } from '../../src/api/keys.ts';
import { RateLimiter } from '../../src/api/rate-limit.ts';
import { createHttpServer } from '../../src/api/server.ts';
import { type Audit, createAudit } from '../../src/audit/audit.ts';
import { createAccount, createCredential } from '../../src/auth/accounts.ts';
import { ApiKeyVerifier } from '../../src/auth/api-keys.ts';
import type { ApiScope } from '../../src/auth/scopes.ts';
import { createSuppressions } from '../../src/bounces/suppressions.ts';
import { loadConfig } from '../../src/config/load.ts';
import { type ContentConfig, createScreening } from '../../src/content/screen.ts';
import { createSessions, type Sessions } from '../../src/dashboard/sessions.ts';
import { loadAssets } from '../../src/dashboard/static.ts';
import type { Resolve } from '../../src/domains/checks/types.ts';
import { createDomains } from '../../src/domains/domains.ts';
import { createSenderGate } from '../../src/domains/sender-gate.ts';
import { createGuard, type Guard, thresholdsFromConfig } from '../../src/guard/guard.ts';
import { createIntake } from '../../src/intake/intake.ts';
import { createSender } from '../../src/intake/send.ts';
import { createSmtpTemplateRenderer } from '../../src/intake/smtp-template.ts';
import { createPrivacy, type Privacy } from '../../src/privacy/privacy.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import { createTemplates } from '../../src/templates/templates.ts';
import { createMachineDetector } from '../../src/tracking/bots.ts';
import { createEngagement } from '../../src/tracking/engagement.ts';
import { createTrackingHosts } from '../../src/tracking/hosts.ts';
import { trackingKey } from '../../src/tracking/token.ts';
import { webhookSettings } from '../../src/webhooks/settings.ts';
import { createWebhooks, type Webhooks } from '../../src/webhooks/webhooks.ts';
import { tempDir } from './temp-dir.ts';

export interface ApiApp {
  app: FastifyInstance;
  store: Store;
  /** The SQLite file (tests that read every table). */
  path: string;
  clock: { now: number };
  /** Keys of account "acme": all scopes, send only, read only; and one of account "other". */
  keys: { all: string; send: string; read: string; other: string };
  intake: ReturnType<typeof createIntake>;
  /** The reputation guard, audit trail and privacy controls behind /v1/accounts, /v1/audit, /v1/privacy. */
  guard: Guard;
  audit: Audit;
  privacy: Privacy;
  /** With `full`: the webhooks (hooks.acme.test allowed, resolving to loopback) and dashboard sessions. */
  webhooks?: Webhooks;
  sessions?: Sessions;
  close(): Promise<void>;
}

/** No DNS at all: every name is unknown (tests that check domains pass their own resolver). */
const noDns: Resolve = async (name) => {
  throw Object.assign(new Error(`no DNS in this test: ${name}`), { code: 'ENOTFOUND' });
};

export async function startApiApp(
  options: {
    rate?: number;
    burst?: number;
    maxMessageBytes?: number;
    maxBatch?: number;
    resolve?: Resolve;
    /** Content checks at intake (config `content`); absent = none. */
    content?: ContentConfig;
    /** Every optional part as postbote.ts wires it: webhooks, tracking, the dashboard (a tiny build). */
    full?: boolean;
    /** Configuration overrides (egress, routes…) for GET /v1/delivery, which is always on here. */
    config?: Record<string, unknown>;
  } = {},
): Promise<ApiApp> {
  const dir = tempDir('postbote-api-');
  const store = new SqliteStore(join(dir.path, 'postbote.db'));
  await store.migrate();
  const clock = { now: Date.parse('2026-11-28T10:00:00Z') };
  const now = () => clock.now;
  const acme = await createAccount(store, 'acme', now());
  const other = await createAccount(store, 'other', now());
  // The API tests send as any domain; the sender policy has its own tests.
  await store.setAccountSenderPolicy(acme.id, 'any');
  await store.setAccountSenderPolicy(other.id, 'any');
  const key = async (account: typeof acme, scopes: ApiScope[]) =>
    (await createCredential(store, account, { kind: 'api', scopes }, now())).secret ?? '';
  const keys = {
    all: await key(acme, ['send', 'read', 'admin']),
    send: await key(acme, ['send']),
    read: await key(acme, ['read']),
    other: await key(other, ['send', 'read', 'admin']),
  };
  const config = loadConfig({
    env: {},
    cwd: dir.path,
    overrides: { hostname: 'relay.test', domains: { public_ips: ['192.0.2.10'] }, ...options.config },
  });
  const templates = createTemplates({ store, clock: now });
  const audit = createAudit({ store, clock: now });
  const guard = createGuard({
    store,
    clock: now,
    thresholds: thresholdsFromConfig(loadConfig({ env: {}, cwd: dir.path }).guard),
    audit,
    cacheMs: 0,
  });
  const privacy = createPrivacy({ store, clock: now, audit });
  const suppressions = createSuppressions({
    store,
    clock: now,
    transactionalIgnoresUnsubscribes: true,
    erasedTokens: privacy.tokens,
  });
  const intake = createIntake({
    store,
    clock: now,
    hostname: 'relay.test',
    dsnOnFailure: true,
    smtpTemplates: createSmtpTemplateRenderer({ templates }),
    senderGate: createSenderGate({ store, clock: now, cacheMs: 0 }),
    suppressions,
    screening: createScreening({
      paused: guard.holdReason,
      ...(options.content ? { content: options.content } : {}),
    }),
  });
  const maxMessageBytes = options.maxMessageBytes ?? 10 * 1024 * 1024;
  const sender = createSender({
    intake,
    templates,
    clock: now,
    hostname: 'relay.test',
    limits: { maxMessageBytes, maxRecipients: 50, maxAttachments: 5 },
  });
  const full = options.full ? fullParts(store, now, dir.path, suppressions) : undefined;
  const app = await createHttpServer({
    ...(full ? { webhooks: full.webhooks, tracking: full.tracking, dashboard: full.dashboard } : {}),
    store,
    nodeId: 'test',
    startedAt: now(),
    logger: pino({ level: 'silent' }),
    clock: now,
    sender,
    templates,
    domains: createDomains({ store, clock: now, config }),
    delivery: config,
    resolve: options.resolve ?? noDns,
    suppressions,
    keys: createKeyGate({
      verifier: new ApiKeyVerifier({
        store,
        clock: now,
        maxFailures: 50,
        failureWindowMs: 60_000,
        lockoutMs: 60_000,
      }),
      limiter: new RateLimiter({ rate: options.rate ?? 1000, burst: options.burst ?? 1000, clock: now }),
    }),
    idempotency: createIdempotency({ store, clock: now, ttlMs: 24 * 3_600_000, staleMs: 60_000 }),
    guard,
    audit,
    privacy,
    limits: { maxRequestBytes: 3 * maxMessageBytes, maxBatch: options.maxBatch ?? 1000, maxMessageBytes },
  });
  await app.ready();
  return {
    ...(full ? { webhooks: full.webhooks, sessions: full.sessions } : {}),
    app,
    store,
    path: join(dir.path, 'postbote.db'),
    clock,
    keys,
    intake,
    guard,
    audit,
    privacy,
    close: async () => {
      await app.close();
      // A test may have closed the store already (store unavailable).
      await store.close().catch(() => undefined);
      dir.cleanup();
    },
  };
}

/** The optional parts of the HTTP server (webhooks, tracking, dashboard) for `full`. */
function fullParts(
  store: Store,
  now: () => number,
  dir: string,
  suppressions: ReturnType<typeof createSuppressions>,
) {
  const config = loadConfig({ env: {}, cwd: dir });
  const webhooks = createWebhooks({
    store,
    clock: now,
    settings: {
      ...webhookSettings(config),
      policy: { allowPrivate: false, allowHosts: ['hooks.acme.test', 'hooks.other.test'] },
    },
    lookupAll: async () => [{ address: '127.0.0.1', family: 4 }],
  });
  const sessions = createSessions({
    store,
    clock: now,
    idleMs: 3_600_000,
    maxMs: 86_400_000,
    maxFailures: 50,
    failureWindowMs: 60_000,
    lockoutMs: 60_000,
  });
  // A tiny "build" of the SPA: an index and one hashed asset.
  const web = join(dir, 'web');
  mkdirSync(join(web, 'assets'), { recursive: true });
  writeFileSync(join(web, 'index.html'), '<!doctype html><title>t</title>');
  writeFileSync(join(web, 'assets', 'index-abc123.js'), 'console.log(1)');
  const hosts = createTrackingHosts({ store, clock: now, scheme: 'http' });
  return {
    webhooks,
    sessions,
    dashboard: { store, sessions, assets: loadAssets(web), secureCookie: false },
    tracking: {
      engagement: createEngagement({
        store,
        clock: now,
        machine: createMachineDetector({ scannerWindowMs: 2_000, machineRanges: [] }),
        ipMode: 'full' as const,
        suppress: (input: Parameters<typeof suppressions.suppress>[0]) => suppressions.suppress(input),
      }),
      hosts,
      key: trackingKey(Buffer.alloc(32, 7)),
    },
  };
}

/** An inject with the key as Bearer token. */
export function call(
  api: ApiApp,
  key: string,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  return api.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${key}`, ...headers },
    ...(body === undefined ? {} : { payload: body as object }),
  });
}
