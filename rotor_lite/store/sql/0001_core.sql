-- Workspaces, API keys, queues, jobs and what hangs off a job.
CREATE TABLE workspace (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    plan        TEXT NOT NULL DEFAULT 'self-hosted',
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_key (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspace(id) ON DELETE CASCADE,
    key_hash      TEXT NOT NULL UNIQUE,
    key_prefix    TEXT NOT NULL,
    label         TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL DEFAULT 'admin',
    queue_name    TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);

CREATE TABLE queue (
    rowid               INTEGER PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspace(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    concurrency         INTEGER NOT NULL,
    max_attempts        INTEGER NOT NULL,
    backoff_type        TEXT NOT NULL,
    backoff_delay_ms    INTEGER NOT NULL,
    callback_url        TEXT,
    callback_headers    TEXT NOT NULL DEFAULT '{}',
    callback_secret     BLOB,
    approval_required   INTEGER NOT NULL DEFAULT 0,
    timeout_ms          INTEGER NOT NULL,
    state               TEXT NOT NULL DEFAULT 'active',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE job (
    rowid             INTEGER PRIMARY KEY,
    id                TEXT NOT NULL,
    queue_id          INTEGER NOT NULL,
    workspace_id      TEXT NOT NULL,
    state             TEXT NOT NULL,
    payload           BLOB NOT NULL,
    tags              TEXT,
    concurrency_key   TEXT,
    priority          INTEGER NOT NULL DEFAULT 0,
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    run_at            INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    fail_reason       TEXT,
    result            BLOB,
    blocked_by        TEXT,
    block_reason      TEXT,
    approval_id       TEXT,
    schedule_id       TEXT,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    stalled           INTEGER NOT NULL DEFAULT 0,
    UNIQUE (queue_id, id)
);
-- Only runnable rows live in these partial indexes, so finished jobs never slow a claim.
CREATE INDEX job_waiting ON job (queue_id, priority, run_at) WHERE state = 'waiting';
CREATE INDEX job_delayed ON job (run_at) WHERE state = 'delayed';
CREATE INDEX job_leased ON job (lease_expires_at) WHERE state = 'active';
CREATE INDEX job_queue_state ON job (queue_id, state);

CREATE TABLE job_tag (
    queue_id   INTEGER NOT NULL,
    tag        TEXT NOT NULL,
    job_rowid  INTEGER NOT NULL,
    PRIMARY KEY (queue_id, tag, job_rowid)
) WITHOUT ROWID;
CREATE INDEX job_tag_job ON job_tag (job_rowid);

-- One row per delivery; a manual retry starts the attempt numbers again, so no key on them.
CREATE TABLE job_attempt (
    job_rowid    INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    status       INTEGER,
    outcome      TEXT NOT NULL,
    error        TEXT
);
CREATE INDEX job_attempt_job ON job_attempt (job_rowid);

CREATE TABLE concurrency_lock (
    workspace_id  TEXT NOT NULL,
    key           TEXT NOT NULL,
    job_rowid     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, key)
) WITHOUT ROWID;

CREATE TABLE usage (
    workspace_id  TEXT NOT NULL,
    period        TEXT NOT NULL,
    queue_name    TEXT NOT NULL,
    accepted      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, period, queue_name)
) WITHOUT ROWID;

CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);
