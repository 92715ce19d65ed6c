/**
 * SQLite schema, one entry per version. Additive changes only once released: a new version
 * appends statements, never edits an old one.
 */
export const migrations: readonly string[][] = [
  [
    `CREATE TABLE accounts (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      created_at INTEGER NOT NULL,
      paused INTEGER NOT NULL DEFAULT 0
    )`,
    `CREATE TABLE credentials (
      id TEXT PRIMARY KEY,
      account_id TEXT NOT NULL REFERENCES accounts(id),
      kind TEXT NOT NULL,
      name TEXT NOT NULL,
      secret_hash TEXT NOT NULL,
      cidrs TEXT NOT NULL DEFAULT '[]',
      created_at INTEGER NOT NULL,
      revoked_at INTEGER
    )`,
    `CREATE UNIQUE INDEX credentials_active_name ON credentials(kind, name) WHERE revoked_at IS NULL`,
    `CREATE TABLE messages (
      id TEXT PRIMARY KEY,
      account_id TEXT NOT NULL REFERENCES accounts(id),
      credential_id TEXT,
      mail_from TEXT NOT NULL,
      message_id_header TEXT NOT NULL,
      subject TEXT NOT NULL,
      size INTEGER NOT NULL,
      source TEXT NOT NULL,
      client_ip TEXT NOT NULL,
      dsn TEXT NOT NULL,
      dsn_on_failure INTEGER NOT NULL,
      received_at INTEGER NOT NULL,
      body BLOB
    )`,
    `CREATE INDEX messages_account ON messages(account_id, id)`,
    `CREATE TABLE recipients (
      id INTEGER PRIMARY KEY,
      message_id TEXT NOT NULL REFERENCES messages(id),
      account_id TEXT NOT NULL,
      address TEXT NOT NULL,
      domain TEXT NOT NULL,
      state TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_at INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      last_code INTEGER,
      last_enhanced TEXT,
      last_text TEXT,
      dsn TEXT NOT NULL,
      lease_owner TEXT,
      lease_until INTEGER
    )`,
    `CREATE INDEX recipients_due ON recipients(next_attempt_at) WHERE state IN ('queued', 'deferred')`,
    `CREATE INDEX recipients_leased ON recipients(lease_until) WHERE state = 'delivering'`,
    `CREATE INDEX recipients_message ON recipients(message_id)`,
    `CREATE INDEX recipients_address ON recipients(address)`,
    `CREATE INDEX recipients_domain_state ON recipients(domain, state)`,
    `CREATE TABLE events (
      id INTEGER PRIMARY KEY,
      at INTEGER NOT NULL,
      type TEXT NOT NULL,
      message_id TEXT NOT NULL,
      recipient_id INTEGER,
      account_id TEXT NOT NULL,
      recipient TEXT,
      data TEXT NOT NULL
    )`,
    `CREATE INDEX events_message ON events(message_id, id)`,
  ],
  // v2: node heartbeats (postbote cluster status)
  [
    `CREATE TABLE nodes (
      id TEXT PRIMARY KEY,
      started_at INTEGER NOT NULL,
      heartbeat_at INTEGER NOT NULL,
      info TEXT NOT NULL DEFAULT '{}'
    )`,
  ],
  // v3: retention (maintenance/retention.ts) finds the oldest messages without scanning the table;
  // the partial index skips bodies already deleted, which otherwise sit first in every batch.
  [
    `CREATE INDEX messages_received ON messages(received_at)`,
    `CREATE INDEX messages_received_with_body ON messages(received_at) WHERE body IS NOT NULL`,
  ],
  // v4: streams and lanes. Every column has a default, so a node of v3 keeps working beside this
  // one (its messages go to `outbound`, transactional). The lease query reads recipients_lane:
  // per lane and account, the due ones in order (docs/architecture.md, "Streams and lanes").
  [
    `CREATE TABLE streams (
      account_id TEXT NOT NULL REFERENCES accounts(id),
      name TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('transactional', 'broadcast')),
      pool TEXT NOT NULL DEFAULT '',
      created_at INTEGER NOT NULL,
      PRIMARY KEY (account_id, name)
    )`,
    `ALTER TABLE accounts ADD COLUMN weight INTEGER NOT NULL DEFAULT 1`,
    `ALTER TABLE credentials ADD COLUMN default_stream TEXT NOT NULL DEFAULT ''`,
    `ALTER TABLE messages ADD COLUMN stream TEXT NOT NULL DEFAULT 'outbound'`,
    `ALTER TABLE recipients ADD COLUMN stream TEXT NOT NULL DEFAULT 'outbound'`,
    `ALTER TABLE recipients ADD COLUMN kind TEXT NOT NULL DEFAULT 'transactional'`,
    `CREATE INDEX recipients_lane ON recipients(kind, account_id, next_attempt_at)
      WHERE state IN ('queued', 'deferred')`,
  ],
  // v5: traffic shaping visible outside the delivery engine. shaping_events: append-only changes
  // of each node's adaptive actions and circuits (`queue summary` shows what is in force; retention
  // deletes old ones); recipients.last_site: the site of the last attempt, for the per-site queue.
  [
    `CREATE TABLE shaping_events (
      id INTEGER PRIMARY KEY,
      at INTEGER NOT NULL,
      node_id TEXT NOT NULL,
      type TEXT NOT NULL,
      rule TEXT NOT NULL,
      kind TEXT NOT NULL,
      scope_key TEXT NOT NULL,
      rate TEXT NOT NULL DEFAULT '',
      until INTEGER NOT NULL,
      reply TEXT NOT NULL DEFAULT ''
    )`,
    `CREATE INDEX shaping_events_until ON shaping_events(until)`,
    `CREATE INDEX shaping_events_scope ON shaping_events(scope_key, rule, node_id, id)`,
    `CREATE INDEX shaping_events_at ON shaping_events(at)`,
    `ALTER TABLE recipients ADD COLUMN last_site TEXT NOT NULL DEFAULT ''`,
  ],
  // v6: recipients.last_source: the egress source of the last attempt, for the queue by source.
  [`ALTER TABLE recipients ADD COLUMN last_source TEXT NOT NULL DEFAULT ''`],
  // v7: the HTTP send API. messages: tags, metadata (JSON) and the template they were rendered
  // from; message_variants: personalised copies (recipients.variant names theirs, 0 = the
  // message's own body); credentials.scopes: what an API key may do; templates with versions;
  // idempotency keys of API requests (api/idempotency.ts).
  [
    `ALTER TABLE messages ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'`,
    `ALTER TABLE messages ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}'`,
    `ALTER TABLE messages ADD COLUMN template TEXT NOT NULL DEFAULT ''`,
    `CREATE TABLE message_variants (
      message_id TEXT NOT NULL REFERENCES messages(id),
      variant INTEGER NOT NULL,
      body BLOB,
      PRIMARY KEY (message_id, variant)
    )`,
    `ALTER TABLE recipients ADD COLUMN variant INTEGER NOT NULL DEFAULT 0`,
    `ALTER TABLE credentials ADD COLUMN scopes TEXT NOT NULL DEFAULT 'send,read'`,
    `CREATE TABLE templates (
      id TEXT PRIMARY KEY,
      account_id TEXT NOT NULL REFERENCES accounts(id),
      name TEXT NOT NULL,
      alias TEXT NOT NULL DEFAULT '',
      latest_version INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      deleted_at INTEGER
    )`,
    `CREATE INDEX templates_account ON templates(account_id, id)`,
    `CREATE UNIQUE INDEX templates_alias ON templates(account_id, alias) WHERE alias <> '' AND deleted_at IS NULL`,
    `CREATE TABLE template_versions (
      template_id TEXT NOT NULL REFERENCES templates(id),
      version INTEGER NOT NULL,
      subject TEXT NOT NULL,
      html TEXT NOT NULL,
      text TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      PRIMARY KEY (template_id, version)
    )`,
    `CREATE TABLE idempotency_keys (
      account_id TEXT NOT NULL,
      key TEXT NOT NULL,
      request_hash TEXT NOT NULL,
      status INTEGER NOT NULL DEFAULT 0,
      response TEXT NOT NULL DEFAULT '',
      created_at INTEGER NOT NULL,
      PRIMARY KEY (account_id, key)
    )`,
    `CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at)`,
  ],
  // v8: sending domains (domains/). accounts.sender_policy: which From domains an account may
  // send as (intake enforces it; accounts created before this version get `any`, so an upgrade
  // refuses nothing that was sent before, and new accounts start `verified`); domains with their DNS names,
  // verification and last DNS check (JSON); their DKIM keys, retired ones kept.
  [
    `ALTER TABLE accounts ADD COLUMN sender_policy TEXT NOT NULL DEFAULT 'verified'
      CHECK (sender_policy IN ('verified', 'any'))`,
    // Accounts from before sender policies keep sending as they did; new ones start verified.
    `UPDATE accounts SET sender_policy = 'any'`,
    // The envelope sender delivery uses when it is not mail_from (the signing domain's return path).
    `ALTER TABLE messages ADD COLUMN envelope_from TEXT NOT NULL DEFAULT ''`,
    `CREATE TABLE domains (
      id TEXT PRIMARY KEY,
      account_id TEXT NOT NULL REFERENCES accounts(id),
      domain TEXT NOT NULL UNIQUE,
      return_path TEXT NOT NULL,
      tracking_host TEXT NOT NULL,
      verified_at INTEGER,
      verified_by TEXT,
      last_check TEXT,
      checked_at INTEGER,
      created_at INTEGER NOT NULL
    )`,
    `CREATE INDEX domains_account ON domains(account_id, domain)`,
    `CREATE TABLE dkim_keys (
      domain_id TEXT NOT NULL REFERENCES domains(id),
      selector TEXT NOT NULL,
      algorithm TEXT NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
      private_key TEXT NOT NULL,
      public_key TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('active', 'pending', 'retired')),
      created_at INTEGER NOT NULL,
      changed_at INTEGER NOT NULL,
      PRIMARY KEY (domain_id, selector)
    )`,
  ],
  // v9: suppressions and bounces (bounces/). suppressions: each account's list, one entry per
  // (address, scope), scope '' for the whole account or a stream's name, expires_at NULL for
  // never (the partial index finds the expired ones for retention); soft_bounces: when each
  // address soft-bounced, counted over a window to suppress after N of them (the leader prunes
  // old ones). Recipients on the list are stored in state `suppressed`, which needs no schema.
  [
    `CREATE TABLE suppressions (
      account_id TEXT NOT NULL REFERENCES accounts(id),
      address TEXT NOT NULL,
      scope TEXT NOT NULL DEFAULT '',
      reason TEXT NOT NULL
        CHECK (reason IN ('hard_bounce', 'soft_bounces', 'complaint', 'unsubscribe', 'manual')),
      category TEXT NOT NULL DEFAULT '',
      source TEXT NOT NULL DEFAULT '',
      details TEXT NOT NULL DEFAULT '',
      created_at INTEGER NOT NULL,
      expires_at INTEGER,
      PRIMARY KEY (account_id, address, scope)
    )`,
    `CREATE INDEX suppressions_expires ON suppressions(expires_at) WHERE expires_at IS NOT NULL`,
    `CREATE TABLE soft_bounces (
      account_id TEXT NOT NULL,
      address TEXT NOT NULL,
      at INTEGER NOT NULL
    )`,
    `CREATE INDEX soft_bounces_address ON soft_bounces(account_id, address, at)`,
    `CREATE INDEX soft_bounces_at ON soft_bounces(at)`,
    // A complaint report without our VERP token names its message by Message-ID.
    `CREATE INDEX messages_message_id_header ON messages(message_id_header)`,
  ],
  // v10: tracking (tracking/). streams.settings: a stream's tracking switches as JSON ('{}' = its
  // kind's defaults). The first open/click/unsubscribe of a recipient is found through a
  // partial index holding engagement events only, so delivery events pay nothing for it.
  [
    `ALTER TABLE streams ADD COLUMN settings TEXT NOT NULL DEFAULT '{}'`,
    `CREATE INDEX events_engagement ON events(recipient_id, type)
       WHERE type IN ('opened', 'clicked', 'unsubscribed')`,
  ],
  // v11: the event log's filters and feed, webhooks (docs/architecture.md "Events and webhooks").
  [
    // The stream is copied onto each event (SqliteStore #insertEvent) so a stream filter is
    // one index range; older events get theirs here.
    `ALTER TABLE events ADD COLUMN stream TEXT NOT NULL DEFAULT ''`,
    `UPDATE events SET stream = COALESCE((SELECT m.stream FROM messages m WHERE m.id = events.message_id), '')`,
    // A message's tags, per event: a tag filter is one range of this index, whatever the tag.
    `CREATE TABLE event_tags (
      account_id TEXT NOT NULL,
      tag TEXT NOT NULL,
      event_id INTEGER NOT NULL,
      PRIMARY KEY (account_id, tag, event_id)
    ) WITHOUT ROWID`,
    `INSERT OR IGNORE INTO event_tags (account_id, tag, event_id)
       SELECT e.account_id, t.value, e.id FROM events e JOIN messages m ON m.id = e.message_id, json_each(m.tags) t`,
    `CREATE TRIGGER events_tags AFTER INSERT ON events BEGIN
       INSERT OR IGNORE INTO event_tags (account_id, tag, event_id)
         SELECT NEW.account_id, t.value, NEW.id FROM messages m, json_each(m.tags) t WHERE m.id = NEW.message_id;
     END`,
    `CREATE INDEX events_account ON events(account_id, id)`,
    `CREATE INDEX events_account_type ON events(account_id, type, id)`,
    `CREATE INDEX events_account_recipient ON events(account_id, recipient, id)`,
    `CREATE INDEX events_account_stream ON events(account_id, stream, id)`,
    // Time bounds become id bounds through this (events are written within moments of their time).
    `CREATE INDEX events_at ON events(at)`,
    // Where each consumer of the event feed (events/feed.ts) has got to.
    `CREATE TABLE event_cursors (
      name TEXT PRIMARY KEY,
      position INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    )`,
    `CREATE TABLE webhooks (
      id TEXT PRIMARY KEY,
      account_id TEXT NOT NULL REFERENCES accounts(id),
      url TEXT NOT NULL,
      secret TEXT NOT NULL,
      event_types TEXT NOT NULL DEFAULT '[]',
      enabled INTEGER NOT NULL DEFAULT 1,
      disabled_reason TEXT NOT NULL DEFAULT '',
      disabled_at INTEGER,
      failing_since INTEGER,
      created_at INTEGER NOT NULL,
      deleted_at INTEGER
    )`,
    `CREATE INDEX webhooks_account ON webhooks(account_id, id)`,
    // One signed POST: its body is fixed when it is made, so a retry resends the same bytes.
    `CREATE TABLE webhook_batches (
      id TEXT PRIMARY KEY,
      webhook_id TEXT NOT NULL,
      account_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      first_event_id INTEGER NOT NULL,
      last_event_id INTEGER NOT NULL,
      count INTEGER NOT NULL,
      body TEXT NOT NULL,
      state TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_at INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      last_error TEXT NOT NULL DEFAULT ''
    )`,
    `CREATE INDEX webhook_batches_due ON webhook_batches(next_attempt_at) WHERE state = 'pending'`,
    `CREATE INDEX webhook_batches_webhook ON webhook_batches(webhook_id, created_at)`,
    `CREATE TABLE webhook_attempts (
      id INTEGER PRIMARY KEY,
      batch_id TEXT NOT NULL,
      webhook_id TEXT NOT NULL,
      at INTEGER NOT NULL,
      status INTEGER NOT NULL,
      error TEXT NOT NULL,
      duration_ms INTEGER NOT NULL
    )`,
    `CREATE INDEX webhook_attempts_webhook ON webhook_attempts(webhook_id, id)`,
    `CREATE INDEX webhook_attempts_at ON webhook_attempts(at)`,
  ],

  // v12: statistics rollups (src/stats/). stats_rollups: one counter per account, UTC hour,
  // stream, tag ('' = every message whatever its tags), sending domain, mailbox provider and
  // counter name, only ever incremented (days are summed from hours when read); stats_cursors:
  // the last event id each rollup consumer applied, moved in the same transaction as the
  // counters so a re-delivered event is never counted twice.
  [
    `CREATE TABLE stats_rollups (
      account_id TEXT NOT NULL,
      bucket INTEGER NOT NULL,
      stream TEXT NOT NULL,
      tag TEXT NOT NULL,
      domain TEXT NOT NULL,
      provider TEXT NOT NULL,
      counter TEXT NOT NULL,
      n INTEGER NOT NULL,
      PRIMARY KEY (account_id, bucket, stream, tag, domain, provider, counter)
    ) WITHOUT ROWID`,
    `CREATE TABLE stats_cursors (
      name TEXT PRIMARY KEY,
      last_id INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    )`,
  ],
  // v13: the reputation guard, the audit trail, per-account retention and privacy (guard/,
  // audit/, privacy/). guard_state: per account (stream '') or stream, paused or not, when last
  // warned and resumed; recipients.hold_reason: why a `held` recipient waits (`paused`: released
  // by a resume; `content`: by an operator), found through recipients_held; events_guard: the
  // guard's window counts (delivered, bounced, complained events since a time) without a scan;
  // audit_log: who changed what; account_retention: an account's own retention; privacy_secrets:
  // the salt of erased addresses' suppression hashes (the same for every node).
  [
    `CREATE TABLE guard_state (
      account_id TEXT NOT NULL REFERENCES accounts(id),
      stream TEXT NOT NULL DEFAULT '',
      paused_at INTEGER,
      paused_by TEXT NOT NULL DEFAULT '',
      reason TEXT NOT NULL DEFAULT '',
      resumed_at INTEGER,
      warned_at INTEGER,
      PRIMARY KEY (account_id, stream)
    )`,
    `ALTER TABLE recipients ADD COLUMN hold_reason TEXT NOT NULL DEFAULT ''`,
    `CREATE INDEX recipients_held ON recipients(account_id, stream) WHERE state = 'held'`,
    `CREATE INDEX events_guard ON events(type, at) WHERE type IN ('delivered', 'bounced', 'complained')`,
    `CREATE TABLE audit_log (
      id INTEGER PRIMARY KEY,
      at INTEGER NOT NULL,
      actor TEXT NOT NULL,
      account_id TEXT NOT NULL DEFAULT '',
      action TEXT NOT NULL,
      target TEXT NOT NULL DEFAULT '',
      details TEXT NOT NULL DEFAULT '{}'
    )`,
    `CREATE INDEX audit_log_account ON audit_log(account_id, id)`,
    `CREATE TABLE account_retention (
      account_id TEXT PRIMARY KEY REFERENCES accounts(id),
      bodies_ms INTEGER,
      metadata_ms INTEGER
    )`,
    `CREATE TABLE privacy_secrets (
      name TEXT PRIMARY KEY,
      value TEXT NOT NULL
    )`,
  ],
  // v14: the web dashboard (dashboard/). dashboard_users: people who log in, one account each,
  // the e-mail (lower case) unique across accounts since it is the login name; dashboard_sessions:
  // logged-in sessions by the SHA-256 of the cookie's token (a copy of the table logs no one
  // in), with the CSRF token and the times the idle and absolute timeouts count from.
  [
    `CREATE TABLE dashboard_users (
      id TEXT PRIMARY KEY,
      account_id TEXT NOT NULL REFERENCES accounts(id),
      email TEXT NOT NULL UNIQUE,
      role TEXT NOT NULL,
      password_hash TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      password_changed_at INTEGER NOT NULL
    )`,
    `CREATE INDEX dashboard_users_account ON dashboard_users(account_id, email)`,
    `CREATE TABLE dashboard_sessions (
      id TEXT PRIMARY KEY,
      user_id TEXT NOT NULL,
      csrf_token TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      last_seen_at INTEGER NOT NULL
    )`,
    `CREATE INDEX dashboard_sessions_user ON dashboard_sessions(user_id)`,
    `CREATE INDEX dashboard_sessions_seen ON dashboard_sessions(last_seen_at)`,
  ],
  // v15: fewer event index pages on the relay path (bench/store-writes.ts: 107 -> ~85 KB written
  // per message). Every message writes at least two events, and an index keyed by a random value
  // (the recipient address) dirties a page of its own per event. A recipient filter now goes
  // through the recipient rows (recipients_address) to their events (events_recipient, keyed by
  // the recipient id, which grows with the queue); events naming an address but no recipient row
  // have a small partial index. A time bound becomes an id bound by a binary search over ids
  // (SqliteStore #eventIdAtTime) instead of an index on `at`.
  [
    `DROP INDEX events_account_recipient`,
    `DROP INDEX events_engagement`,
    `DROP INDEX events_at`,
    `CREATE INDEX events_recipient ON events(recipient_id, type)`,
    `CREATE INDEX events_loose_recipient ON events(account_id, recipient, id) WHERE recipient_id IS NULL`,
  ],
];
