/**
 * The one configuration schema: every key, its type and its default. Loading (file, environment,
 * validation) lives in load.ts; this file is the reference operators read.
 */

import { parseCidr } from '../auth/cidr.ts';
import {
  checkPoolName,
  egressRelation,
  parseAccountPoolsKey,
  parsePoolsKey,
  parseRoutesKey,
  parseSourcesKey,
} from '../delivery/routing/config.ts';
import {
  parseJitterKey,
  parseProvidersKey,
  parseRulesKey,
  parseSitesKey,
  shapingProblems,
} from '../delivery/shaping/config.ts';
import { formatDuration } from './duration.ts';

const dnsLabel = (v: string): string | undefined =>
  /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(v)
    ? undefined
    : 'must be one DNS label (letters, digits, hyphens)';

export type LeafType =
  | 'string'
  | 'int'
  | 'bool'
  | 'list'
  | 'duration'
  | 'size'
  | 'listen'
  | 'hostports'
  | 'data';

/** What a structured (`data`) key's parser returns: the typed value, or one line per problem. */
export type DataResult<T> = { value: T } | { problems: string[] };

export interface Leaf {
  readonly type: LeafType;
  readonly default: unknown;
  /** Extra check on the parsed value; returns a problem description or undefined. */
  readonly check?: (value: never) => string | undefined;
  readonly doc: string;
  /**
   * `data` keys only: turns the raw YAML value (or the environment variable's text, parsed as
   * YAML, e.g. a flow list `[{...}]`) into the typed value. Each problem starts with the place
   * below the key (`[0].host: …`, `.google.max_connections: …`, or `: …` for the whole value).
   */
  readonly parse?: (raw: unknown) => DataResult<unknown>;
}

/** A structured key (lists of objects, maps): egress sources, routes, shaping overrides. */
export interface DataLeaf<T> extends Leaf {
  readonly type: 'data';
  readonly parse: (raw: unknown) => DataResult<T>;
}

export const dataLeaf = <T>(
  def: unknown,
  doc: string,
  parse: (raw: unknown) => DataResult<T>,
): DataLeaf<T> => ({
  type: 'data',
  default: def,
  doc,
  parse,
});

export interface Section {
  readonly [key: string]: Leaf | Section;
}

const leaf = <T extends LeafType>(
  type: T,
  def: unknown,
  doc: string,
  check?: (value: never) => string | undefined,
): Leaf & { readonly type: T } => ({
  type,
  default: def,
  doc,
  ...(check ? { check } : {}),
});

const positive = (value: number): string | undefined => (value > 0 ? undefined : 'must be greater than 0');
/** A rate as written in the config: `5%`, `0.1%`. */
const percent = (value: string): string | undefined =>
  /^\d{1,3}(\.\d{1,4})?%$/.test(value.trim()) && Number.parseFloat(value) <= 100
    ? undefined
    : 'must be a percentage such as 5% or 0.1%';
/** An rspamd score threshold, or empty for none. */
const score = (value: string): string | undefined =>
  value.trim() === '' || /^-?\d{1,4}(\.\d{1,3})?$/.test(value.trim())
    ? undefined
    : 'must be a number or empty';
const oneOf =
  (...allowed: string[]) =>
  (value: string): string | undefined =>
    allowed.includes(value) ? undefined : `must be one of ${allowed.join(', ')}`;

export const schema = {
  data_dir: leaf(
    'string',
    './data',
    'Directory for the SQLite store, generated TLS certificate and pid file.',
  ),
  hostname: leaf(
    'string',
    '',
    'Name used in greetings, EHLO and Received headers; empty = the machine host name.',
  ),
  node_id: leaf(
    'string',
    '',
    'This node’s id in leases and logs; empty = hostname:pid. On PostgreSQL keep it across restarts: a restarted node takes its leases back and replays its outcome journal.',
  ),
  database: {
    url: leaf(
      'string',
      '',
      'Empty = embedded SQLite in data_dir; postgres://user@host:port/db = PostgreSQL.',
      (v: string) =>
        v === '' || /^postgres(ql)?:\/\//.test(v) ? undefined : 'must be empty (SQLite) or a postgres:// URL',
    ),
    schema: leaf('string', 'postbote', 'PostgreSQL schema holding the tables.', (v: string) =>
      /^[a-z_][a-z0-9_]{0,62}$/.test(v) ? undefined : 'must be a lower-case SQL identifier',
    ),
    prepared_statements: leaf(
      'bool',
      true,
      'PostgreSQL: the statements every message goes through are prepared once per connection. false behind a connection pooler that cannot keep prepared statements (PgBouncer before 1.21, or without max_prepared_statements, in transaction mode).',
    ),
  },
  log: {
    level: leaf(
      'string',
      'info',
      'pino level: fatal, error, warn, info, debug, trace, silent.',
      (v: string) => oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent')(v),
    ),
    hash_recipients: leaf(
      'bool',
      false,
      'Log recipient addresses as a keyed hash (`h:` + 16 hex digits, the same for the same address) instead of the address.',
    ),
  },
  smtp: {
    submission: {
      listen: leaf('listen', '127.0.0.1:2525', 'Submission listener (STARTTLS offered); host:port.'),
      tls_listen: leaf(
        'listen',
        '',
        'Optional implicit-TLS submission listener (port 465 style); empty = off.',
      ),
      max_message_size: leaf(
        'size',
        '25MB',
        'Largest message accepted (SIZE); larger gets 552 5.3.4.',
        positive,
      ),
      max_recipients: leaf('int', 1000, 'Recipients per message.', positive),
      max_connections: leaf('int', 2000, 'Concurrent connections in total.', positive),
      max_connections_per_ip: leaf('int', 100, 'Concurrent connections from one client IP.', positive),
      max_line_length: leaf('int', 4096, 'Longest SMTP command line.', positive),
      idle_timeout: leaf(
        'duration',
        '5m',
        'Idle time after which a client is disconnected with 421.',
        positive,
      ),
    },
    // The inbound MX for bounces and feedback loops (src/smtp/inbound.ts): only return-path and
    // feedback addresses of our own domains are accepted, nothing is ever relayed.
    mx: {
      listen: leaf(
        'listen',
        '',
        'Inbound MX listener for bounces and complaints (port 25 in production); empty = off.',
      ),
      max_message_size: leaf('size', '10MB', 'Largest bounce or report accepted.', positive),
    },
    tls: {
      cert: leaf('string', '', 'PEM certificate chain file; empty = a self-signed certificate in data_dir.'),
      key: leaf('string', '', 'PEM private key file.'),
    },
    auth: {
      max_failures: leaf(
        'int',
        5,
        'Failed AUTH attempts per client IP or username before a lockout.',
        positive,
      ),
      failure_window: leaf('duration', '10m', 'Window in which failures are counted.', positive),
      lockout: leaf('duration', '15m', 'How long a client or username stays locked out.', positive),
    },
  },
  http: {
    metrics_token: leaf(
      'string',
      '',
      'Bearer token GET /metrics wants (Authorization: Bearer <token>); empty = /metrics is open to whoever reaches the listener.',
    ),
    listen: leaf('listen', '127.0.0.1:8025', 'HTTP listener: the send API, its docs (/docs) and health.'),
    public_url: leaf(
      'string',
      '',
      'Base URL of tracked links, the open pixel and unsubscribe pages where a sending domain has no verified tracking host (http(s)://host[:port][/path]); empty = http://<the listener address>.',
      (v: string) =>
        v === '' || /^https?:\/\/[a-z0-9.-]+(:\d{1,5})?(\/[a-z0-9._~/-]*)?$/i.test(v)
          ? undefined
          : 'must be empty or an http(s) URL without query, e.g. https://mail.example.com',
    ),
  },
  // The web dashboard (src/dashboard/, web/): served at / on the HTTP listener; users are
  // created with `postbote users create`.
  dashboard: {
    enabled: leaf('bool', true, 'Serve the dashboard at / and its login under /auth; false = API only.'),
    session_idle: leaf('duration', '30m', 'A dashboard session unused this long ends.', positive),
    session_max: leaf(
      'duration',
      '12h',
      'A dashboard session ends this long after login, however busy.',
      positive,
    ),
    secure_cookie: leaf(
      'bool',
      false,
      'Mark the session cookie Secure even on plain HTTP (set it behind a TLS proxy); requests that arrive over TLS get it anyway.',
    ),
    max_failures: leaf(
      'int',
      5,
      'Failed logins per e-mail address and per client IP before that address or IP is locked out.',
      positive,
    ),
    failure_window: leaf('duration', '15m', 'Window in which failed logins are counted.', positive),
    lockout: leaf('duration', '15m', 'How long a locked-out address or IP must wait.', positive),
  },
  // The HTTP send API (src/api/). Message size and recipients per message are the submission
  // limits (smtp.submission.max_message_size, max_recipients), the same for SMTP and HTTP.
  api: {
    max_request_size: leaf(
      'size',
      '60MB',
      'Largest HTTP request body (a batch or a message with attachments, base64 included); larger gets 413.',
      positive,
    ),
    max_batch: leaf('int', 1000, 'Messages per batch call (/v1/messages/batch).', positive),
    max_attachments: leaf('int', 100, 'Attachments per message.', positive),
    rate_limit: leaf('int', 100, 'Requests per second per API key (sustained); more gets 429.', positive),
    rate_burst: leaf('int', 200, 'Requests an API key may make at once above its rate.', positive),
    idempotency_ttl: leaf(
      'duration',
      '24h',
      'How long an Idempotency-Key answers with its first response.',
      positive,
    ),
    idempotency_stale: leaf(
      'duration',
      '1m',
      'How long an unanswered Idempotency-Key claim (its request still running, or its process killed before the commit) answers 409 idempotency_key_in_use before a retry may take it over. On the embedded store a restart frees such claims at once.',
      positive,
    ),
  },
  dns: {
    servers: leaf('hostports', [], 'DNS servers as host:port; empty = the system resolver.'),
    timeout: leaf('duration', '5s', 'Per-query timeout.', positive),
  },
  delivery: {
    port: leaf('int', 25, 'TCP port of remote MX hosts.', (v: number) =>
      v > 0 && v < 65536 ? undefined : 'must be a port number (1-65535)',
    ),
    allow_private_mx: leaf(
      'bool',
      false,
      'Allow MX hosts that resolve to loopback, private or link-local addresses (tests only).',
    ),
    ehlo_name: leaf('string', '', 'EHLO name for outbound connections; empty = hostname.'),
    window: leaf('int', 2000, 'Most recipients leased into memory at once.', positive),
    batch_size: leaf('int', 500, 'Recipients leased per store round trip.', positive),
    lease: leaf('duration', '60s', 'How long a lease protects a recipient being delivered.', positive),
    max_connections_per_host: leaf(
      'int',
      20,
      'Concurrent connections to one MX address (Postfix: 20 per destination).',
      positive,
    ),
    max_messages_per_connection: leaf(
      'int',
      100,
      'Transactions on one connection before it is closed.',
      positive,
    ),
    max_recipients_per_transaction: leaf('int', 100, 'RCPTs in one SMTP transaction.', positive),
    connect_timeout: leaf('duration', '30s', 'TCP connect timeout.', positive),
    greeting_timeout: leaf('duration', '30s', 'Time to wait for the 220 greeting.', positive),
    socket_timeout: leaf('duration', '5m', 'Idle time within a session before giving up.', positive),
    shutdown_grace: leaf(
      'duration',
      '10s',
      "On SIGTERM: how long transactions already talking to a remote server get to finish; the rest are cut and their recipients released for the next start (0 = cut at once). Keep it below your supervisor's kill timeout.",
      (v: number) => (v <= 3_600_000 ? undefined : 'must be at most 1h'),
    ),
    starttls: leaf('string', 'opportunistic', 'opportunistic | required | none', (v: string) =>
      oneOf('opportunistic', 'required', 'none')(v),
    ),
    dsn: leaf('bool', true, 'Send a delivery status notification to the sender on bounce or expiry.'),
    // MTA-STS (RFC 8461, src/delivery/mta-sts.ts): recipient domains that publish a policy in
    // enforce mode get mail only at the MX hosts they list, over TLS with a verified certificate.
    mta_sts: {
      enabled: leaf(
        'bool',
        true,
        'Honour MTA-STS policies of recipient domains (enforce: verified TLS to the listed MX hosts or defer; testing: log only).',
      ),
      fetch_timeout: leaf('duration', '10s', 'Time limit for fetching one policy over HTTPS.', positive),
      ca_file: leaf(
        'string',
        '',
        'PEM file of extra CA certificates trusted beside the system CAs for policy fetches and MX certificates under a policy (a private CA, tests).',
      ),
      port: leaf('int', 443, 'HTTPS port of mta-sts.<domain> (443; another only for tests).', (v: number) =>
        v > 0 && v < 65536 ? undefined : 'must be a port number (1-65535)',
      ),
    },
    retry: {
      first: leaf('duration', '5m', 'First retry after a temporary failure.', positive),
      multiplier: leaf('int', 2, 'Backoff multiplier between retries.', positive),
      max_interval: leaf('duration', '4h', 'Longest interval between retries.', positive),
      max_age: leaf('duration', '5d', 'Give up (expired) after this time in the queue.', positive),
    },
  },
  // Data protection: what is kept of a message once every recipient is final (delivered,
  // bounced, expired, cancelled, suppressed). Nothing waiting for delivery is ever deleted.
  retention: {
    bodies: leaf(
      'duration',
      '7d',
      'Delete the bodies of finished messages received longer ago than this (metadata stays).',
      positive,
    ),
    metadata: leaf(
      'duration',
      '90d',
      'Delete finished messages received longer ago than this entirely, with recipients and events.',
      positive,
    ),
    interval: leaf(
      'duration',
      '1h',
      'How often the elected node applies the retention policy (also at its election).',
      positive,
    ),
  },
  // The reputation guard (src/guard/): per account and stream, bounce and complaint rates over a
  // rolling window; over a warn threshold an `account_warned` event, over a pause threshold the
  // stream is paused: new mail is accepted and held until an operator resumes it.
  guard: {
    enabled: leaf('bool', true, 'Watch bounce and complaint rates and pause streams over the thresholds.'),
    interval: leaf('duration', '1m', 'How often the elected node computes the rates.', positive),
    window: leaf('duration', '24h', 'The rolling window the rates are computed over.', positive),
    min_volume: leaf(
      'int',
      100,
      'Sends (delivered + bounced) a stream needs in the window before its rates count.',
      positive,
    ),
    bounce_warn: leaf('string', '5%', 'Bounce rate that warns (an account_warned event).', percent),
    bounce_pause: leaf('string', '10%', 'Bounce rate that pauses the stream.', percent),
    complaint_warn: leaf('string', '0.1%', 'Complaint rate that warns.', percent),
    complaint_pause: leaf('string', '0.3%', 'Complaint rate that pauses the stream.', percent),
  },
  // Content checks at intake (src/content/): built-in checks and an optional rspamd scan.
  content: {
    action: leaf(
      'string',
      'warn',
      'What a built-in finding does: warn (a content_warning event), hold (the message is held for an operator), reject, or off (no built-in checks).',
      (v: string) => oneOf('warn', 'hold', 'reject', 'off')(v),
    ),
    max_image_size: leaf(
      'size',
      '1MB',
      'An embedded or attached image larger than this is a finding.',
      positive,
    ),
    rspamd: {
      url: leaf(
        'string',
        '',
        'rspamd controller or worker URL (http://127.0.0.1:11333); empty = no scan. Messages are POSTed to <url>/checkv2.',
        (v: string) =>
          v === '' || /^https?:\/\//.test(v) ? undefined : 'must be empty or an http(s):// URL',
      ),
      timeout: leaf('duration', '5s', 'How long intake waits for rspamd.', positive),
      hold_score: leaf('string', '10', 'Hold messages scoring at least this (empty = never).', score),
      reject_score: leaf('string', '20', 'Reject messages scoring at least this (empty = never).', score),
      fail_open: leaf(
        'bool',
        true,
        'When rspamd cannot be reached or fails: true = accept the message (logged), false = answer a temporary error.',
      ),
    },
  },
  privacy: {
    export_limit: leaf('int', 1000, 'Most messages one privacy export returns.', positive),
  },
  // Statistics rollups (src/stats/): the elected node turns new events into counters per
  // account, hour, stream, tag, sending domain and mailbox provider (/v1/stats, postbote stats).
  stats: {
    interval: leaf(
      'duration',
      '10s',
      'How often the elected node rolls new events up into the statistics (how old /v1/stats may be).',
      positive,
    ),
    batch_size: leaf('int', 1000, 'Events read and applied per rollup transaction.', (v: number) =>
      v >= 1 && v <= 10_000 ? undefined : 'must be from 1 to 10000',
    ),
  },
  // Webhooks (src/webhooks/): the elected node reads the event feed and POSTs signed batches.
  webhooks: {
    batch_size: leaf('int', 100, 'At most this many events per webhook request.', (v: number) =>
      v >= 1 && v <= 1000 ? undefined : 'must be from 1 to 1000',
    ),
    batch_wait: leaf(
      'duration',
      '1s',
      'How long the dispatcher gathers events before it sends a batch (the feed is read this often).',
      positive,
    ),
    timeout: leaf('duration', '10s', 'One request may take this long before it counts as failed.', positive),
    retry_first: leaf(
      'duration',
      '30s',
      'The first retry after a failed request; each later one waits twice as long (at most 1h), ±20 % jitter.',
      positive,
    ),
    retry_for: leaf(
      'duration',
      '25h',
      'A batch is retried (exponential backoff, first retry within a minute) for this long, then dropped.',
      positive,
    ),
    disable_after: leaf(
      'duration',
      '24h',
      'An endpoint whose every attempt failed for this long is disabled (with a webhook_disabled event).',
      positive,
    ),
    concurrency: leaf('int', 8, 'Requests in flight at once, all endpoints together.', (v: number) =>
      v >= 1 && v <= 100 ? undefined : 'must be from 1 to 100',
    ),
    allow_private: leaf(
      'bool',
      false,
      'Allow endpoints on loopback, private and link-local addresses (SSRF guard off: tests, intranets).',
    ),
    allow_hosts: leaf('list', [], 'Host names allowed whatever they resolve to (internal receivers).'),
  },
  // Traffic shaping per (egress source, site); shipped provider data and rules in
  // src/delivery/shaping/providers.yaml, the written forms in src/delivery/shaping/config.ts.
  shaping: {
    providers: dataLeaf(
      {},
      'Providers added or overriding the shipped ones: name → { mx: [suffixes], limits… }.',
      parseProvidersKey,
    ),
    sites: dataLeaf(
      {},
      'Limits per site: MX host suffix, exact MX host set "a,b" or host:name:port → limits.',
      parseSitesKey,
    ),
    rules: dataLeaf(
      [],
      'Adaptive rules added to the shipped ones (same name replaces; enabled: false switches off).',
      parseRulesKey,
    ),
    circuit: {
      failures: leaf(
        'int',
        5,
        'Consecutive connection failures to a site before it is left alone.',
        (v: number) => (v >= 1 && v <= 1000 ? undefined : 'must be between 1 and 1000'),
      ),
      backoff: leaf(
        'duration',
        '5m',
        'How long a site is left alone before one trial connection.',
        (v: number) => (v > 0 && v <= 86_400_000 ? undefined : 'must be greater than 0 and at most 1d'),
      ),
      jitter: dataLeaf('20%', 'Random spread of the backoff: 20% or 0.2 = ±20 %.', parseJitterKey),
    },
  },
  // Secrets at rest (src/domains/key-encryption.ts): with a key set, DKIM private keys are stored
  // AES-256-GCM encrypted (`enc:v1:`); `postbote domains encrypt-keys` seals older plaintext ones.
  secrets: {
    key: leaf(
      'string',
      '',
      'Base64 of 32 random bytes (openssl rand -base64 32) encrypting DKIM private keys in the database; set it through POSTBOTE_SECRETS__KEY rather than the file. Empty = stored as plaintext PEM.',
    ),
    key_file: leaf(
      'string',
      '',
      'A file holding the secrets key (base64 text), instead of secrets.key. Losing the key loses the encrypted DKIM keys.',
    ),
  },
  // Bounces and complaints (src/bounces/).
  bounces: {
    secret: leaf(
      'string',
      '',
      'Base64 key signing VERP return paths; empty = generated once into data_dir (a cluster must share one: set it).',
    ),
    feedback_addresses: leaf('list', [], 'Addresses that receive feedback-loop (ARF) complaint reports.'),
    rules_file: leaf(
      'string',
      '',
      'Bounce classification rules (YAML, like src/bounces/rules.yaml) replacing the shipped ones; reloaded when changed.',
    ),
  },
  suppressions: {
    soft_bounce_limit: leaf(
      'int',
      5,
      'Soft bounces of an address within soft_bounce_window that suppress it.',
      positive,
    ),
    soft_bounce_window: leaf('duration', '7d', 'Window in which soft bounces are counted.', positive),
    transactional_ignores_unsubscribes: leaf(
      'bool',
      true,
      'Transactional streams still send to unsubscribed addresses (never to bounced or complaining ones).',
    ),
  },
  // Open and click tracking, one-click unsubscribe (src/tracking/). What a stream tracks is a
  // stream setting (postbote streams update); tokens are signed with the bounces.secret.
  tracking: {
    https: leaf(
      'bool',
      true,
      'Links on verified tracking hosts (pb-track.<domain>) use https:// (a TLS proxy in front of the HTTP listener holds their certificates); false = http://.',
    ),
    ip: leaf(
      'string',
      'truncated',
      'Client IP kept on open/click/unsubscribe events: full, truncated (IPv4 /24, IPv6 /48) or none.',
      (v: string) => oneOf('full', 'truncated', 'none')(v),
    ),
    scanner_window: leaf(
      'duration',
      '10s',
      'Clicks this soon after delivery are flagged as a link scanner (machine: true); 0 = off.',
      (v: number) => (v >= 0 ? undefined : 'must not be negative'),
    ),
    machine_ranges: leaf(
      'list',
      [],
      "Client addresses (CIDR) whose opens and clicks are machines' (scanners, proxies), besides Apple's 17.0.0.0/8.",
      (v: string[]) =>
        v.map((c) => (typeof parseCidr(c) === 'string' ? `"${c}" is not a CIDR` : undefined)).find(Boolean),
    ),
  },
  // Sending domains (src/domains/): the DNS names Postbote asks each domain to publish.
  domains: {
    return_path_label: leaf(
      'string',
      'pb-bounces',
      'Label of the return-path (envelope sender) subdomain of each sending domain: <label>.<domain>.',
      dnsLabel,
    ),
    tracking_label: leaf(
      'string',
      'pb-track',
      'Label of the tracking subdomain of each sending domain: <label>.<domain> (CNAME to tracking_target).',
      dnsLabel,
    ),
    mx_host: leaf('string', '', 'Our inbound MX host for return-path domains; empty = hostname.'),
    tracking_target: leaf('string', '', 'Where tracking subdomains point (CNAME); empty = hostname.'),
    public_ips: leaf(
      'list',
      [],
      'The public addresses mail leaves from when egress sources let the OS choose (for SPF and PTR checks).',
    ),
    spf_include: leaf(
      'string',
      '',
      'An SPF include: domain covering every address we send from (instead of listing ip4:/ip6:).',
    ),
    dkim_algorithms: leaf(
      'list',
      ['rsa'],
      'DKIM keys for new domains: rsa (2048 bits), ed25519, or both.',
      (v: string[]) =>
        v.length > 0 && v.every((a) => a === 'rsa' || a === 'ed25519')
          ? undefined
          : 'must be rsa, ed25519 or both',
    ),
    check_interval: leaf(
      'duration',
      '6h',
      'How often the elected node re-checks every domain’s DNS.',
      positive,
    ),
  },
  // Egress sources, pools and routes; written forms and examples in src/delivery/routing/config.ts.
  egress: {
    sources: dataLeaf(
      [{ name: 'default', address: '' }],
      "Local addresses mail leaves from: [{ name, address ('' = OS chooses), ehlo ('' = global), warmup? }].",
      parseSourcesKey,
    ),
    pools: dataLeaf(
      { default: ['default'] },
      'Pool name → sources with weights: [ip-1, ip-2] or [{ source: ip-1, weight: 3 }].',
      parsePoolsKey,
    ),
    transactional_pool: leaf(
      'string',
      'default',
      'Pool of transactional streams that name none.',
      checkPoolName,
    ),
    broadcast_pool: leaf('string', 'default', 'Pool of broadcast streams that name none.', checkPoolName),
    account_pools: dataLeaf(
      {},
      'Account name → pool, for the account’s streams that name none.',
      parseAccountPoolsKey,
    ),
  },
  routes: dataLeaf(
    [],
    'Ordered routing rules (first match wins; none = MX): { name, match, via: mx|smarthost|hold, smarthost?, fallback? }.',
    parseRoutesKey,
  ),
} as const satisfies Section;

type LeafValue<L extends Leaf> =
  L extends DataLeaf<infer T>
    ? T
    : L['type'] extends 'int' | 'duration' | 'size'
      ? number
      : L['type'] extends 'bool'
        ? boolean
        : L['type'] extends 'list' | 'hostports'
          ? readonly string[]
          : string;

type ConfigOf<S> = { readonly [K in keyof S]: S[K] extends Leaf ? LeafValue<S[K]> : ConfigOf<S[K]> };

/** The validated, frozen configuration. Durations are milliseconds, sizes bytes. */
export type Config = ConfigOf<typeof schema>;

/**
 * Rules between keys, checked once every key is valid on its own. Each returns a problem line
 * (starting with the key to change) or undefined.
 */
export const relations: readonly ((config: Config) => string | undefined)[] = [
  ({ retention }) =>
    retention.bodies <= retention.metadata
      ? undefined
      : `retention.bodies: must not be longer than retention.metadata (${formatDuration(retention.bodies)} > ${formatDuration(retention.metadata)}); a body is deleted with its message at the latest`,
  ({ shaping }) => shapingProblems(shaping).join('; ') || undefined,
  egressRelation,
];

/** node_id when none is configured: new with every run, so no restart recognises its leases. */
export function defaultNodeId(hostname: string): string {
  return `${hostname}:${process.pid}`;
}
