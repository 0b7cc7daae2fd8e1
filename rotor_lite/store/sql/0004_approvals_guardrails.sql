-- Approval records, the workspace guardrail config, DNC lists, blocked-job counts.
-- An approval keeps a copy of the payload it was asked about, so it outlives job retention.
CREATE TABLE approval (
    rowid         INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    workspace_id  TEXT NOT NULL,
    queue_id      INTEGER NOT NULL,
    queue_name    TEXT NOT NULL,
    job_id        TEXT NOT NULL,
    payload       BLOB NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending',
    created_at    INTEGER NOT NULL,
    decided_at    INTEGER,
    decided_by    TEXT,
    reason        TEXT
);
CREATE INDEX approval_workspace ON approval (workspace_id, status, rowid);
CREATE INDEX approval_queue ON approval (queue_id, status, rowid);
CREATE INDEX approval_job ON approval (queue_id, job_id);
CREATE TRIGGER approval_queue_deleted AFTER DELETE ON queue BEGIN DELETE FROM approval WHERE queue_id = old.rowid; END;

CREATE TABLE guardrail_config (
    workspace_id          TEXT PRIMARY KEY,
    id                    TEXT NOT NULL,
    competitor_domains    TEXT NOT NULL DEFAULT '[]',
    pii_enabled           INTEGER NOT NULL DEFAULT 0,
    pii_mode              TEXT NOT NULL DEFAULT 'redact',
    pii_types             TEXT NOT NULL DEFAULT '["email","phone","ssn","card"]',
    brand_tone_enabled    INTEGER NOT NULL DEFAULT 0,
    brand_tone_rubric     TEXT NOT NULL DEFAULT '',
    brand_tone_threshold  REAL NOT NULL,
    updated_at            INTEGER NOT NULL
);

-- Do-not-contact lists: one row per entry, so a million of them cost a B-tree lookup, not a scan.
CREATE TABLE dnc_email (
    workspace_id  TEXT NOT NULL,
    email         TEXT NOT NULL,
    PRIMARY KEY (workspace_id, email)
) WITHOUT ROWID;

CREATE TABLE dnc_domain (
    workspace_id  TEXT NOT NULL,
    domain        TEXT NOT NULL,
    PRIMARY KEY (workspace_id, domain)
) WITHOUT ROWID;

CREATE TABLE guardrail_block (
    workspace_id  TEXT NOT NULL,
    day           TEXT NOT NULL,
    stage         TEXT NOT NULL,
    blocked       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day, stage)
) WITHOUT ROWID;

-- Jobs awaiting their brand-tone verdict live outside the claim index (job_waiting) under this state.
CREATE INDEX job_screening ON job (queue_id) WHERE state = 'screening';
