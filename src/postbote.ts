import type { AddressInfo } from 'node:net';
import { createIdempotency } from './api/idempotency.ts';
import { createKeyGate } from './api/keys.ts';
import { RateLimiter } from './api/rate-limit.ts';
import { createHttpServer } from './api/server.ts';
import { createAudit } from './audit/audit.ts';
import { ApiKeyVerifier } from './auth/api-keys.ts';
import { Authenticator } from './auth/authenticator.ts';
import { createBounceFeedback } from './bounces/feedback.ts';
import { parseReport } from './bounces/parse.ts';
import { createReportHandler } from './bounces/reports.ts';
import { useRulesFile } from './bounces/rules-file.ts';
import { createSuppressions } from './bounces/suppressions.ts';
import { loadBounceSecret } from './bounces/verp.ts';
import { parseHostPort } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { createScreening } from './content/screen.ts';
import { createDashboardDeps } from './dashboard/wiring.ts';
import { startDeliveryThread } from './delivery/thread.ts';
import { preloadChecks } from './domains/checks/index.ts';
import { createCheckResolver } from './domains/checks/resolver.ts';
import { createDomains } from './domains/domains.ts';
import { checkStoredKeys, createKeyBox, loadSecretsKey } from './domains/key-encryption.ts';
import { createSenderGate } from './domains/sender-gate.ts';
import { createGuard, thresholdsFromConfig } from './guard/guard.ts';
import { createIntake } from './intake/intake.ts';
import { createSender } from './intake/send.ts';
import { createSmtpTemplateRenderer } from './intake/smtp-template.ts';
import type { Logger } from './observability/logger.ts';
import { acquirePidLock } from './pid-lock.ts';
import { createPrivacy } from './privacy/privacy.ts';
import { inboundHandlers, reportReceiver, startInboundMx } from './smtp/inbound.ts';
import { createSmtpServer } from './smtp/server/index.ts';
import { isLoopback, submissionHandlers } from './smtp/submission.ts';
import { loadCertificate } from './smtp/tls-certificate.ts';
import { createMetricsRegistry, type MetricsRegistry } from './stats/prometheus.ts';
import { openServerStore } from './store/open.ts';
import type { Store } from './store/store.ts';
import { createTemplates } from './templates/templates.ts';
import { createMachineDetector } from './tracking/bots.ts';
import { createEngagement } from './tracking/engagement.ts';
import { createTrackingHosts } from './tracking/hosts.ts';
import type { IpMode } from './tracking/ip.ts';
import { createStreamTracking } from './tracking/settings.ts';
import { trackingKey as deriveTrackingKey } from './tracking/token.ts';
import { createTracker } from './tracking/tracker.ts';
import { webhookSettings } from './webhooks/settings.ts';
import { createWebhooks } from './webhooks/webhooks.ts';

export interface RunningPostbote {
  store: Store;
  /** Bound addresses, after listening (port 0 in tests becomes the real port). */
  addresses: { submission: AddressInfo; submissionTls?: AddressInfo; http: AddressInfo; mx?: AddressInfo };
  /**
   * /metrics of this node: parts of the main thread add gauges here (`setGauge`, e.g.
   * `postbote_webhook_backlog`) or collectors (`register`).
   */
  metrics: MetricsRegistry;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Intake's clock (the delivery thread uses the real one: functions do not cross threads). */
  clock?: () => number;
}

/** Starts every part of one Postbote node from a validated config. */
export async function startPostbote(
  config: Config,
  logger: Logger,
  options: StartOptions = {},
): Promise<RunningPostbote> {
  const clock = options.clock ?? Date.now;
  const releasePid = config.database.url === '' ? acquirePidLock(config.data_dir) : () => {};
  // From here on this process is the only one writing the embedded store (pid lock).
  const startedAt = clock();
  const cleanups: (() => Promise<void> | void)[] = [releasePid];
  const closeAll = async (): Promise<void> => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        logger.error({ err }, 'error during shutdown');
      }
    }
  };
  try {
    const store = await openServerStore(config);
    cleanups.push(() => store.close());
    // DKIM keys sealed with the secrets key: a wrong or missing key stops the start here, with a
    // clear message, instead of failing the first message that needs a signature.
    const dkimKeyBox = createKeyBox(loadSecretsKey(config.secrets));
    await checkStoredKeys(() => store.signingDomains(), dkimKeyBox);
    const metrics = createMetricsRegistry();
    // Readiness (/readyz): every listener is up; false again from the first step of shutdown.
    let listening = false;

    // Before any listener: loading the domain checks' library later would stall live sessions.
    await preloadChecks();
    const delivery = await startDeliveryThread({ config, store, logger });
    cleanups.push(() => delivery.stop());
    const templates = createTemplates({ store, clock });
    // The reputation guard's pauses, the audit trail and privacy controls (guard/, audit/, privacy/).
    const audit = createAudit({ store, clock });
    const guard = createGuard({
      store,
      clock,
      thresholds: thresholdsFromConfig(config.guard),
      audit,
      logger,
    });
    const privacy = createPrivacy({ store, clock, audit, exportLimit: config.privacy.export_limit });
    const suppressions = createSuppressions({
      store,
      clock,
      transactionalIgnoresUnsubscribes: config.suppressions.transactional_ignores_unsubscribes,
      erasedTokens: privacy.tokens,
    });
    // Tracking tokens are signed with a key derived from the bounce secret: the same on every
    // node and after a restart. Links use http.public_url until the listener's address is known.
    const bounceSecret = loadBounceSecret(config.data_dir, config.bounces.secret);
    const trackingKey = deriveTrackingKey(bounceSecret);
    const trackingHosts = createTrackingHosts({
      store,
      clock,
      scheme: config.tracking.https ? 'https' : 'http',
    });
    let publicUrl = config.http.public_url || `http://${config.http.listen}`;
    const tracker = createTracker({
      streams: createStreamTracking({ store, clock }),
      hosts: trackingHosts,
      key: trackingKey,
      publicUrl: () => publicUrl,
      // List-Unsubscribe's mailto: address is on the return path: only where the MX receives it.
      ...(config.smtp.mx.listen === '' ? {} : { mailtoDomain: trackingHosts.returnPathFor }),
    });
    const engagement = createEngagement({
      store,
      clock,
      machine: createMachineDetector({
        scannerWindowMs: config.tracking.scanner_window,
        machineRanges: config.tracking.machine_ranges,
      }),
      ipMode: config.tracking.ip as IpMode,
      suppress: (input) => suppressions.suppress(input),
    });
    const intake = createIntake({
      store,
      clock,
      hostname: config.hostname,
      dsnOnFailure: config.delivery.dsn,
      onAccepted: () => delivery.wake(),
      handoff: delivery.handoff,
      smtpTemplates: createSmtpTemplateRenderer({ templates }),
      senderGate: createSenderGate({ store, clock, keys: dkimKeyBox }),
      suppressions,
      screening: createScreening({ paused: guard.holdReason, content: config.content, logger }),
      tracking: tracker,
      onTrackingNotes: (messageId, notes) => logger.debug({ messageId, notes }, 'tracking left parts alone'),
    });
    const sub = config.smtp.submission;
    const sender = createSender({
      intake,
      templates,
      clock,
      hostname: config.hostname,
      limits: {
        maxMessageBytes: sub.max_message_size,
        maxRecipients: sub.max_recipients,
        maxAttachments: config.api.max_attachments,
      },
    });

    const certificate = await loadCertificate({
      certFile: config.smtp.tls.cert,
      keyFile: config.smtp.tls.key,
      dataDir: config.data_dir,
      hostname: config.hostname,
      logger,
    });
    cleanups.push(() => certificate.close());
    // SIGHUP re-reads the certificate at once (after a renewal), without waiting for the poll;
    // the listener also keeps node's default for SIGHUP (exit) from applying.
    const onHangup = (): void => {
      certificate.reload();
    };
    process.on('SIGHUP', onHangup);
    cleanups.push(() => {
      process.off('SIGHUP', onHangup);
    });
    const authenticator = new Authenticator({
      store,
      clock,
      maxFailures: config.smtp.auth.max_failures,
      failureWindowMs: config.smtp.auth.failure_window,
      lockoutMs: config.smtp.auth.lockout,
    });
    const serverOptions = {
      hostname: config.hostname,
      tls: () => certificate.context(),
      sizeLimit: sub.max_message_size,
      maxRecipients: sub.max_recipients,
      maxLineLength: sub.max_line_length,
      idleTimeoutMs: sub.idle_timeout,
      maxConnections: sub.max_connections,
      maxConnectionsPerIp: sub.max_connections_per_ip,
      greetingDelayMs: 0,
      authMethods: ['PLAIN', 'LOGIN'] as ('PLAIN' | 'LOGIN')[],
      allowPlaintextAuth: (session: { remoteAddress: string }) => isLoopback(session.remoteAddress),
      handlers: submissionHandlers({ authenticator, intake, logger }),
      logger,
    };
    const submission = createSmtpServer(serverOptions);
    const listen = parseHostPort(sub.listen);
    if (!listen) throw new Error(`smtp.submission.listen: invalid address ${sub.listen}`);
    const submissionAddress = await submission.listen(listen.port, listen.host);
    cleanups.push(() => submission.close());
    let submissionTls: AddressInfo | undefined;
    if (sub.tls_listen !== '') {
      const tlsListen = parseHostPort(sub.tls_listen);
      if (!tlsListen) throw new Error(`smtp.submission.tls_listen: invalid address ${sub.tls_listen}`);
      const implicit = createSmtpServer({ ...serverOptions, secure: true });
      submissionTls = await implicit.listen(tlsListen.port, tlsListen.host);
      cleanups.push(() => implicit.close());
    }

    const keys = createKeyGate({
      verifier: new ApiKeyVerifier({
        store,
        clock,
        maxFailures: config.smtp.auth.max_failures,
        failureWindowMs: config.smtp.auth.failure_window,
        lockoutMs: config.smtp.auth.lockout,
      }),
      limiter: new RateLimiter({ rate: config.api.rate_limit, burst: config.api.rate_burst, clock }),
    });
    const http = await createHttpServer({
      store,
      nodeId: config.node_id,
      startedAt: clock(),
      logger,
      clock,
      sender,
      templates,
      domains: createDomains({ store, clock, config }),
      suppressions,
      resolve: createCheckResolver({ servers: config.dns.servers, timeoutMs: config.dns.timeout }),
      keys,
      idempotency: createIdempotency({
        store,
        clock,
        ttlMs: config.api.idempotency_ttl,
        staleMs: config.api.idempotency_stale,
        ...(config.database.url === '' ? { soleProcessSince: startedAt } : {}),
      }),
      guard,
      audit,
      privacy,
      webhooks: createWebhooks({ store, clock, settings: webhookSettings(config) }),
      delivery: config,
      ...(config.dashboard.enabled
        ? { dashboard: createDashboardDeps({ store, clock, config, logger }) }
        : {}),
      operations: {
        registry: metrics,
        metricsToken: config.http.metrics_token,
        // The delivery thread's heartbeat comes every 10 s (delivery/engine.ts HEARTBEAT_MS; not
        // imported: that would load the engine's modules on this thread): three missed = not alive.
        readiness: { listeners: () => listening, heartbeatMaxAgeMs: 30_000 },
      },
      limits: {
        maxRequestBytes: config.api.max_request_size,
        maxBatch: config.api.max_batch,
        maxMessageBytes: sub.max_message_size,
      },
      tracking: {
        engagement,
        hosts: trackingHosts,
        key: trackingKey,
      },
    });
    /**
     * The inbound MX for bounces, complaints and unsubscribe mail: only VERP and unsubscribe
     * addresses on our return-path domains and the feedback addresses are accepted; what arrives
     * is parsed and recorded.
     */
    async function startMx(): Promise<AddressInfo> {
      const listenMx = parseHostPort(config.smtp.mx.listen);
      if (!listenMx) throw new Error(`smtp.mx.listen: invalid address ${config.smtp.mx.listen}`);
      const secret = bounceSecret;
      cleanups.push(useRulesFile(config.bounces.rules_file, logger));
      // Return-path domains change with `domains add` in another process: re-read every 5 s.
      let returnPaths = new Set<string>();
      const refresh = async () => {
        returnPaths = new Set((await store.listDomains()).map((d) => d.returnPath));
      };
      await refresh();
      const timer = setInterval(() => void refresh().catch(() => undefined), 5_000);
      timer.unref();
      cleanups.push(() => clearInterval(timer));
      const record = createReportHandler({
        store,
        clock,
        logger,
        feedback: createBounceFeedback({
          store,
          clock,
          logger,
          suppressions,
          softLimit: config.suppressions.soft_bounce_limit,
          softWindowMs: config.suppressions.soft_bounce_window,
        }),
      });
      const server = await startInboundMx({
        listen: listenMx,
        hostname: config.hostname,
        tls: () => certificate.context(),
        sizeLimit: config.smtp.mx.max_message_size,
        logger,
        handlers: inboundHandlers({
          isOurReturnPath: (domain) => returnPaths.has(domain),
          feedbackAddresses: new Set(config.bounces.feedback_addresses.map((a) => a.toLowerCase())),
          secret,
          onReport: reportReceiver({ parseReport, record, secret, logger }),
          // Mail to List-Unsubscribe's mailto: does what the one-click POST does.
          unsubscribe: {
            key: trackingKey,
            async onUnsubscribe({ token, clientIp }) {
              const address = await engagement.unsubscribe(
                { kind: 'unsubscribe', ...token },
                { method: 'SMTP', userAgent: '', ip: clientIp, via: 'mailto' },
              );
              logger.info(
                { messageId: token.messageId, recipient: token.recipient, gone: address === undefined },
                'unsubscribed by mail',
              );
            },
          },
          logger,
        }),
      });
      cleanups.push(() => server.close());
      return server.address;
    }
    const mx = config.smtp.mx.listen === '' ? undefined : await startMx();
    const httpListen = parseHostPort(config.http.listen);
    if (!httpListen) throw new Error(`http.listen: invalid address ${config.http.listen}`);
    await http.listen({ port: httpListen.port, host: httpListen.host });
    cleanups.push(() => http.close());
    listening = true;
    cleanups.push(() => {
      listening = false;
    });
    const httpAddress = http.server.address() as AddressInfo;
    // The default names the bound address (port 0 in tests is a real port now).
    if (config.http.public_url === '') {
      const host = httpAddress.family === 'IPv6' ? `[${httpAddress.address}]` : httpAddress.address;
      publicUrl = `http://${host}:${httpAddress.port}`;
    }

    logger.info(
      {
        submission: `${submissionAddress.address}:${submissionAddress.port}`,
        ...(submissionTls ? { submissionTls: `${submissionTls.address}:${submissionTls.port}` } : {}),
        http: `${httpAddress.address}:${httpAddress.port}`,
        ...(mx ? { mx: `${mx.address}:${mx.port}` } : {}),
        dataDir: config.data_dir,
      },
      'Postbote started',
    );
    return {
      store,
      addresses: {
        submission: submissionAddress,
        ...(submissionTls ? { submissionTls } : {}),
        http: httpAddress,
        ...(mx ? { mx } : {}),
      },
      metrics,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
