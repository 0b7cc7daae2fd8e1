-- The outbox (events written in the transaction of the state change that caused them),
-- webhook endpoints and their deliveries, failure-alert settings, the secrets vault, the audit log.
CREATE TABLE outbox (
    rowid         INTEGER PRIMARY KEY,
    id            TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    data          BLOB NOT NULL,
    target        TEXT,
    created_at    INTEGER NOT NULL
);

CREATE TABLE webhook (
    id                        TEXT PRIMARY KEY,
    workspace_id              TEXT NOT NULL,
    url                       TEXT NOT NULL,
    event_types               TEXT NOT NULL,
    secret                    BLOB NOT NULL,
    previous_secret           BLOB,
    previous_expires_at       INTEGER,
    enabled                   INTEGER NOT NULL DEFAULT 1,
    disabled_at               INTEGER,
    failing_since             INTEGER,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);
CREATE INDEX webhook_workspace ON webhook (workspace_id);

-- One row per message to one destination: a webhook endpoint, or a failure alert (slack, email).
CREATE TABLE delivery (
    rowid            INTEGER PRIMARY KEY,
    id               TEXT NOT NULL,
    workspace_id     TEXT NOT NULL,
    channel          TEXT NOT NULL,
    webhook_id       TEXT,
    event_type       TEXT NOT NULL,
    body             BLOB NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_attempt_at  INTEGER,
    response_status  INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL
);
CREATE INDEX delivery_due ON delivery (next_attempt_at) WHERE status = 'pending';
CREATE INDEX delivery_webhook ON delivery (webhook_id, rowid);
CREATE INDEX delivery_finished ON delivery (created_at) WHERE status != 'pending';

CREATE TABLE alert_config (
    workspace_id   TEXT PRIMARY KEY,
    email          TEXT,
    slack_url      BLOB,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE secret (
    workspace_id  TEXT NOT NULL,
    name          TEXT NOT NULL,
    value         BLOB NOT NULL,
    hint          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, name)
) WITHOUT ROWID;

CREATE TABLE audit_event (
    rowid          INTEGER PRIMARY KEY,
    id             TEXT NOT NULL,
    workspace_id   TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    actor_id       TEXT NOT NULL,
    resource_type  TEXT,
    resource_id    TEXT,
    metadata       TEXT NOT NULL DEFAULT '{}',
    occurred_at    INTEGER NOT NULL,
    ip_address     TEXT
);
CREATE INDEX audit_workspace ON audit_event (workspace_id, rowid);
CREATE INDEX audit_type ON audit_event (workspace_id, event_type, rowid);
CREATE INDEX audit_resource ON audit_event (workspace_id, resource_type, rowid);
-- Append-only: the log cannot be edited or trimmed through SQL.
CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END;
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END
