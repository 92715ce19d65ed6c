/**
 * PostgreSQL schema, one entry per version, each a list of statements run in one transaction.
 * Additive changes only once released (nodes of the previous version keep running during a
 * rolling upgrade): a new version appends statements, never edits an old one.
 *
 * Tables are created unqualified: the adapter sets `search_path` to its schema on every
 * connection. Times are epoch milliseconds in `bigint`, as in the model. Ids and domains
 * compare bytewise (`COLLATE "C"`) whatever the database's locale, so paging by id and sorting
 * match the SQLite adapter.
 */
export const migrations: readonly string[][] = [
  [
    `CREATE TABLE accounts (
      id text COLLATE "C" PRIMARY KEY,
      name text NOT NULL UNIQUE,
      created_at bigint NOT NULL,
      paused boolean NOT NULL DEFAULT false
    )`,
    `CREATE TABLE credentials (
      id text COLLATE "C" PRIMARY KEY,
      account_id text COLLATE "C" NOT NULL REFERENCES accounts(id),
      kind text NOT NULL,
      name text NOT NULL,
      secret_hash text NOT NULL,
      cidrs jsonb NOT NULL DEFAULT '[]',
      created_at bigint NOT NULL,
      revoked_at bigint
    )`,
    `CREATE UNIQUE INDEX credentials_active_name ON credentials(kind, name) WHERE revoked_at IS NULL`,
    `CREATE INDEX credentials_account ON credentials(account_id)`,
    `CREATE TABLE messages (
      id text COLLATE "C" PRIMARY KEY,
      account_id text COLLATE "C" NOT NULL REFERENCES accounts(id),
      credential_id text COLLATE "C",
      mail_from text NOT NULL,
      message_id_header text NOT NULL,
      subject text NOT NULL,
      size integer NOT NULL,
      source text NOT NULL,
      client_ip text NOT NULL,
      dsn jsonb NOT NULL,
      dsn_on_failure boolean NOT NULL,
      received_at bigint NOT NULL,
      body bytea
    )`,
    `CREATE INDEX messages_account ON messages(account_id, id)`,
    `CREATE TABLE recipients (
      id bigserial PRIMARY KEY,
      message_id text COLLATE "C" NOT NULL REFERENCES messages(id),
      account_id text COLLATE "C" NOT NULL,
      address text NOT NULL,
      domain text COLLATE "C" NOT NULL,
      state text NOT NULL,
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at bigint NOT NULL,
      created_at bigint NOT NULL,
      updated_at bigint NOT NULL,
      last_code integer,
      last_enhanced text,
      last_text text,
      dsn jsonb NOT NULL,
      lease_owner text,
      lease_until bigint
    )`,
    // The scheduler's two questions (what is due, which leases ran out) read only these partial
    // indexes, so their cost does not grow with the delivered history.
    `CREATE INDEX recipients_due ON recipients(next_attempt_at) WHERE state IN ('queued', 'deferred')`,
    `CREATE INDEX recipients_leased ON recipients(lease_until) WHERE state = 'delivering'`,
    `CREATE INDEX recipients_message ON recipients(message_id)`,
    `CREATE INDEX recipients_address ON recipients(address)`,
    `CREATE INDEX recipients_domain_state ON recipients(domain, state)`,
    `CREATE TABLE events (
      id bigserial PRIMARY KEY,
      at bigint NOT NULL,
      type text NOT NULL,
      message_id text COLLATE "C" NOT NULL,
      recipient_id bigint,
      account_id text COLLATE "C" NOT NULL,
      recipient text,
      data jsonb NOT NULL
    )`,
    `CREATE INDEX events_message ON events(message_id, id)`,
  ],
  // v2: node heartbeats (postbote cluster status)
  [
    `CREATE TABLE nodes (
      id text COLLATE "C" PRIMARY KEY,
      started_at bigint NOT NULL,
      heartbeat_at bigint NOT NULL,
      info jsonb NOT NULL DEFAULT '{}'
    )`,
  ],
  // v3: cluster-wide connection limits (delivery/connection-permits.ts)
  [
    `CREATE TABLE connection_slots (
      key text COLLATE "C" NOT NULL,
      slot integer NOT NULL,
      holder text COLLATE "C" NOT NULL DEFAULT '',
      expires_at bigint NOT NULL DEFAULT 0,
      PRIMARY KEY (key, slot)
    )`,
    `CREATE INDEX connection_slots_holder ON connection_slots(holder) WHERE holder <> ''`,
  ],
  // v4: retention (maintenance/retention.ts) finds the oldest messages without scanning the table;
  // the partial index skips bodies already deleted, which otherwise sit first in every batch.
  [
    `CREATE INDEX messages_received ON messages(received_at)`,
    `CREATE INDEX messages_received_with_body ON messages(received_at) WHERE body IS NOT NULL`,
  ],
  // v5: streams and lanes. Every column has a constant default (no table rewrite), so a node of v4
  // keeps working beside this one (its messages go to `outbound`, transactional). The lease query
  // reads recipients_lane: per lane and account, the due ones in order (docs/architecture.md,
  // "Streams and lanes").
  [
    `CREATE TABLE streams (
      account_id text COLLATE "C" NOT NULL REFERENCES accounts(id),
      name text COLLATE "C" NOT NULL,
      kind text NOT NULL CHECK (kind IN ('transactional', 'broadcast')),
      pool text NOT NULL DEFAULT '',
      created_at bigint NOT NULL,
      PRIMARY KEY (account_id, name)
    )`,
    `ALTER TABLE accounts ADD COLUMN weight integer NOT NULL DEFAULT 1`,
    `ALTER TABLE credentials ADD COLUMN default_stream text NOT NULL DEFAULT ''`,
    `ALTER TABLE messages ADD COLUMN stream text COLLATE "C" NOT NULL DEFAULT 'outbound'`,
    `ALTER TABLE recipients ADD COLUMN stream text COLLATE "C" NOT NULL DEFAULT 'outbound'`,
    `ALTER TABLE recipients ADD COLUMN kind text COLLATE "C" NOT NULL DEFAULT 'transactional'`,
    `CREATE INDEX recipients_lane ON recipients(kind, account_id, next_attempt_at)
      WHERE state IN ('queued', 'deferred')`,
  ],
  // v6: traffic shaping visible outside the delivery engine. shaping_events: append-only changes
  // of each node's adaptive actions and circuits (`queue summary` shows what is in force; retention
  // deletes old ones); recipients.last_site: the site of the last attempt, for the per-site queue
  // (a constant default: no table rewrite, and a node of v5 keeps working beside this one).
  [
    `CREATE TABLE shaping_events (
      id bigserial PRIMARY KEY,
      at bigint NOT NULL,
      node_id text COLLATE "C" NOT NULL,
      type text NOT NULL,
      rule text COLLATE "C" NOT NULL,
      kind text NOT NULL,
      scope_key text COLLATE "C" NOT NULL,
      rate text NOT NULL DEFAULT '',
      until bigint NOT NULL,
      reply text NOT NULL DEFAULT ''
    )`,
    `CREATE INDEX shaping_events_until ON shaping_events(until)`,
    `CREATE INDEX shaping_events_scope ON shaping_events(scope_key, rule, node_id, id)`,
    `CREATE INDEX shaping_events_at ON shaping_events(at)`,
    `ALTER TABLE recipients ADD COLUMN last_site text COLLATE "C" NOT NULL DEFAULT ''`,
  ],
  // v7: recipients.last_source: the egress source of the last attempt, for the queue by source.
  [`ALTER TABLE recipients ADD COLUMN last_source text COLLATE "C" NOT NULL DEFAULT ''`],
  // v8: the HTTP send API (see the SQLite v7 comment): message tags, metadata and template,
  // personalised copies (message_variants, recipients.variant), API key scopes, templates with
  // versions, idempotency keys.
  [
    `ALTER TABLE messages ADD COLUMN tags text NOT NULL DEFAULT '[]'`,
    `ALTER TABLE messages ADD COLUMN metadata text NOT NULL DEFAULT '{}'`,
    `ALTER TABLE messages ADD COLUMN template text NOT NULL DEFAULT ''`,
    `CREATE TABLE message_variants (
      message_id text COLLATE "C" NOT NULL REFERENCES messages(id),
      variant integer NOT NULL,
      body bytea,
      PRIMARY KEY (message_id, variant)
    )`,
    `ALTER TABLE recipients ADD COLUMN variant integer NOT NULL DEFAULT 0`,
    `ALTER TABLE credentials ADD COLUMN scopes text NOT NULL DEFAULT 'send,read'`,
    `CREATE TABLE templates (
      id text COLLATE "C" PRIMARY KEY,
      account_id text COLLATE "C" NOT NULL REFERENCES accounts(id),
      name text NOT NULL,
      alias text NOT NULL DEFAULT '',
      latest_version integer NOT NULL,
      created_at bigint NOT NULL,
      updated_at bigint NOT NULL,
      deleted_at bigint
    )`,
    `CREATE INDEX templates_account ON templates(account_id, id)`,
    `CREATE UNIQUE INDEX templates_alias ON templates(account_id, alias) WHERE alias <> '' AND deleted_at IS NULL`,
    `CREATE TABLE template_versions (
      template_id text COLLATE "C" NOT NULL REFERENCES templates(id),
      version integer NOT NULL,
      subject text NOT NULL,
      html text NOT NULL,
      text text NOT NULL,
      created_at bigint NOT NULL,
      PRIMARY KEY (template_id, version)
    )`,
    `CREATE TABLE idempotency_keys (
      account_id text COLLATE "C" NOT NULL,
      key text NOT NULL,
      request_hash text NOT NULL,
      status integer NOT NULL DEFAULT 0,
      response text NOT NULL DEFAULT '',
      created_at bigint NOT NULL,
      PRIMARY KEY (account_id, key)
    )`,
    `CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at)`,
  ],
  // v9: sending domains (see the SQLite v8 comment): accounts.sender_policy (a constant default:
  // no table rewrite, and a node of v8 keeps working beside this one), domains, DKIM keys.
  [
    `ALTER TABLE accounts ADD COLUMN sender_policy text NOT NULL DEFAULT 'verified'
      CHECK (sender_policy IN ('verified', 'any'))`,
    // Accounts from before sender policies keep sending as they did; new ones start verified.
    `UPDATE accounts SET sender_policy = 'any'`,
    // The envelope sender delivery uses when it is not mail_from (the signing domain's return path).
    `ALTER TABLE messages ADD COLUMN envelope_from text NOT NULL DEFAULT ''`,
    `CREATE TABLE domains (
      id text COLLATE "C" PRIMARY KEY,
      account_id text COLLATE "C" NOT NULL REFERENCES accounts(id),
      domain text COLLATE "C" NOT NULL UNIQUE,
      return_path text NOT NULL,
      tracking_host text NOT NULL,
      verified_at bigint,
      verified_by text,
      last_check text,
      checked_at bigint,
      created_at bigint NOT NULL
    )`,
    `CREATE INDEX domains_account ON domains(account_id, domain)`,
    `CREATE TABLE dkim_keys (
      domain_id text COLLATE "C" NOT NULL REFERENCES domains(id),
      selector text COLLATE "C" NOT NULL,
      algorithm text NOT NULL CHECK (algorithm IN ('rsa', 'ed25519')),
      private_key text NOT NULL,
      public_key text NOT NULL,
      state text NOT NULL CHECK (state IN ('active', 'pending', 'retired')),
      created_at bigint NOT NULL,
      changed_at bigint NOT NULL,
      PRIMARY KEY (domain_id, selector)
    )`,
  ],
  // v10: suppressions and bounces (see the SQLite v9 comment): each account's suppression list
  // and the soft bounces counted towards it. New tables only: a node of v9 keeps working beside
  // this one (it just does not consult the list).
  [
    `CREATE TABLE suppressions (
      account_id text COLLATE "C" NOT NULL REFERENCES accounts(id),
      address text COLLATE "C" NOT NULL,
      scope text COLLATE "C" NOT NULL DEFAULT '',
      reason text NOT NULL
        CHECK (reason IN ('hard_bounce', 'soft_bounces', 'complaint', 'unsubscribe', 'manual')),
      category text NOT NULL DEFAULT '',
      source text NOT NULL DEFAULT '',
      details text NOT NULL DEFAULT '',
      created_at bigint NOT NULL,
      expires_at bigint,
      PRIMARY KEY (account_id, address, scope)
    )`,
    `CREATE INDEX suppressions_expires ON suppressions(expires_at) WHERE expires_at IS NOT NULL`,
    `CREATE TABLE soft_bounces (
      account_id text COLLATE "C" NOT NULL,
      address text COLLATE "C" NOT NULL,
      at bigint NOT NULL
    )`,
    `CREATE INDEX soft_bounces_address ON soft_bounces(account_id, address, at)`,
    `CREATE INDEX soft_bounces_at ON soft_bounces(at)`,
    // A complaint report without our VERP token names its message by Message-ID.
    `CREATE INDEX messages_message_id_header ON messages(message_id_header)`,
  ],
  // v11: tracking (tracking/). streams.settings: a stream's tracking switches as JSON ('{}' = its
  // kind's defaults). The first open/click/unsubscribe of a recipient is found through a
  // partial index holding engagement events only, so delivery events pay nothing for it.
  [
    `ALTER TABLE streams ADD COLUMN settings text NOT NULL DEFAULT '{}'`,
    `CREATE INDEX events_engagement ON events(recipient_id, type)
       WHERE type IN ('opened', 'clicked', 'unsubscribed')`,
  ],
  // v12: the event log's filters and feed, webhooks (see the SQLite v11 comments).
  [
    `ALTER TABLE events ADD COLUMN stream text NOT NULL DEFAULT ''`,
    `UPDATE events e SET stream = m.stream FROM messages m WHERE m.id = e.message_id`,
    `CREATE TABLE event_tags (
      account_id text COLLATE "C" NOT NULL,
      tag text NOT NULL,
      event_id bigint NOT NULL,
      PRIMARY KEY (account_id, tag, event_id)
    )`,
    `INSERT INTO event_tags (account_id, tag, event_id)
       SELECT DISTINCT e.account_id, t.tag, e.id
       FROM events e JOIN messages m ON m.id = e.message_id, jsonb_array_elements_text(m.tags::jsonb) t(tag)`,
    // Every insert into events, wherever it is written, gets its message's stream and tags.
    `CREATE FUNCTION events_label() RETURNS trigger LANGUAGE plpgsql AS $$
     DECLARE
       msg_stream text;
       msg_tags text;
     BEGIN
       IF NEW.message_id <> '' THEN
         SELECT m.stream, m.tags INTO msg_stream, msg_tags FROM messages m WHERE m.id = NEW.message_id;
         NEW.stream := COALESCE(msg_stream, '');
         IF msg_tags IS NOT NULL AND msg_tags <> '[]' THEN
           INSERT INTO event_tags (account_id, tag, event_id)
             SELECT DISTINCT NEW.account_id, t.tag, NEW.id FROM jsonb_array_elements_text(msg_tags::jsonb) t(tag)
             ON CONFLICT DO NOTHING;
         END IF;
       END IF;
       RETURN NEW;
     END $$`,
    `CREATE TRIGGER events_label BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_label()`,
    `CREATE INDEX events_account ON events(account_id, id)`,
    `CREATE INDEX events_account_type ON events(account_id, type, id)`,
    `CREATE INDEX events_account_recipient ON events(account_id, recipient, id)`,
    `CREATE INDEX events_account_stream ON events(account_id, stream, id)`,
    `CREATE INDEX events_at ON events(at)`,
    `CREATE TABLE event_cursors (
      name text PRIMARY KEY,
      position bigint NOT NULL,
      updated_at bigint NOT NULL
    )`,
    `CREATE TABLE webhooks (
      id text COLLATE "C" PRIMARY KEY,
      account_id text COLLATE "C" NOT NULL REFERENCES accounts(id),
      url text NOT NULL,
      secret text NOT NULL,
      event_types text NOT NULL DEFAULT '[]',
      enabled boolean NOT NULL DEFAULT true,
      disabled_reason text NOT NULL DEFAULT '',
      disabled_at bigint,
      failing_since bigint,
      created_at bigint NOT NULL,
      deleted_at bigint
    )`,
    `CREATE INDEX webhooks_account ON webhooks(account_id, id)`,
    `CREATE TABLE webhook_batches (
      id text COLLATE "C" PRIMARY KEY,
      webhook_id text COLLATE "C" NOT NULL,
      account_id text COLLATE "C" NOT NULL,
      kind text NOT NULL,
      first_event_id bigint NOT NULL,
      last_event_id bigint NOT NULL,
      count integer NOT NULL,
      body text NOT NULL,
      state text NOT NULL,
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at bigint NOT NULL,
      created_at bigint NOT NULL,
      updated_at bigint NOT NULL,
      last_error text NOT NULL DEFAULT ''
    )`,
    `CREATE INDEX webhook_batches_due ON webhook_batches(next_attempt_at) WHERE state = 'pending'`,
    `CREATE INDEX webhook_batches_webhook ON webhook_batches(webhook_id, created_at)`,
    `CREATE TABLE webhook_attempts (
      id bigserial PRIMARY KEY,
      batch_id text COLLATE "C" NOT NULL,
      webhook_id text COLLATE "C" NOT NULL,
      at bigint NOT NULL,
      status integer NOT NULL,
      error text NOT NULL,
      duration_ms integer NOT NULL
    )`,
    `CREATE INDEX webhook_attempts_webhook ON webhook_attempts(webhook_id, id)`,
    `CREATE INDEX webhook_attempts_at ON webhook_attempts(at)`,
  ],

  // v13: statistics rollups (src/stats/), as SQLite v12: counters per account, UTC hour, stream,
  // tag ('' = all), sending domain, provider and counter, only incremented; stats_cursors: the
  // last event id each rollup consumer applied, moved in the counters' transaction.
  [
    `CREATE TABLE stats_rollups (
      account_id text COLLATE "C" NOT NULL,
      bucket bigint NOT NULL,
      stream text COLLATE "C" NOT NULL,
      tag text COLLATE "C" NOT NULL,
      domain text COLLATE "C" NOT NULL,
      provider text COLLATE "C" NOT NULL,
      counter text COLLATE "C" NOT NULL,
      n bigint NOT NULL,
      PRIMARY KEY (account_id, bucket, stream, tag, domain, provider, counter)
    )`,
    `CREATE TABLE stats_cursors (
      name text COLLATE "C" PRIMARY KEY,
      last_id bigint NOT NULL,
      updated_at bigint NOT NULL
    )`,
  ],
  // v14: the reputation guard, the audit trail, per-account retention and privacy (guard/,
  // audit/, privacy/); as SQLite v13.
  [
    `CREATE TABLE guard_state (
      account_id text COLLATE "C" NOT NULL REFERENCES accounts(id),
      stream text COLLATE "C" NOT NULL DEFAULT '',
      paused_at bigint,
      paused_by text NOT NULL DEFAULT '',
      reason text NOT NULL DEFAULT '',
      resumed_at bigint,
      warned_at bigint,
      PRIMARY KEY (account_id, stream)
    )`,
    `ALTER TABLE recipients ADD COLUMN hold_reason text NOT NULL DEFAULT ''`,
    `CREATE INDEX recipients_held ON recipients(account_id, stream) WHERE state = 'held'`,
    `CREATE INDEX events_guard ON events(type, at) WHERE type IN ('delivered', 'bounced', 'complained')`,
    `CREATE TABLE audit_log (
      id bigserial PRIMARY KEY,
      at bigint NOT NULL,
      actor text NOT NULL,
      account_id text COLLATE "C" NOT NULL DEFAULT '',
      action text NOT NULL,
      target text NOT NULL DEFAULT '',
      details jsonb NOT NULL DEFAULT '{}'
    )`,
    `CREATE INDEX audit_log_account ON audit_log(account_id, id)`,
    `CREATE TABLE account_retention (
      account_id text COLLATE "C" PRIMARY KEY REFERENCES accounts(id),
      bodies_ms bigint,
      metadata_ms bigint
    )`,
    `CREATE TABLE privacy_secrets (
      name text PRIMARY KEY,
      value text NOT NULL
    )`,
  ],
  // v15: the web dashboard (dashboard/), as SQLite v14: users (e-mail unique, the login name)
  // and sessions by the SHA-256 of the cookie's token.
  [
    `CREATE TABLE dashboard_users (
      id text COLLATE "C" PRIMARY KEY,
      account_id text COLLATE "C" NOT NULL REFERENCES accounts(id),
      email text COLLATE "C" NOT NULL UNIQUE,
      role text NOT NULL,
      password_hash text NOT NULL,
      created_at bigint NOT NULL,
      password_changed_at bigint NOT NULL
    )`,
    `CREATE INDEX dashboard_users_account ON dashboard_users(account_id, email)`,
    `CREATE TABLE dashboard_sessions (
      id text COLLATE "C" PRIMARY KEY,
      user_id text COLLATE "C" NOT NULL,
      csrf_token text NOT NULL,
      created_at bigint NOT NULL,
      last_seen_at bigint NOT NULL
    )`,
    `CREATE INDEX dashboard_sessions_user ON dashboard_sessions(user_id)`,
    `CREATE INDEX dashboard_sessions_seen ON dashboard_sessions(last_seen_at)`,
  ],
  // v16: fair shares of the cluster's connection slots (connection-slots.ts): the last node refused
  // a slot of a key while below its share, and when, kept on the key's slot 0.
  [
    `ALTER TABLE connection_slots ADD COLUMN wanted_by text NOT NULL DEFAULT ''`,
    `ALTER TABLE connection_slots ADD COLUMN wanted_at bigint NOT NULL DEFAULT 0`,
  ],
];
