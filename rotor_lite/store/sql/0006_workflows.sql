-- Durable workflows: functions, runs and their steps, waiters for signals and events, events.
CREATE TABLE function (
    rowid          INTEGER PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspace(id) ON DELETE CASCADE,
    id             TEXT NOT NULL,
    serve_url      TEXT NOT NULL,
    trigger_type   TEXT NOT NULL,
    trigger_event  TEXT,
    cron           TEXT,
    timezone       TEXT,
    retries        INTEGER NOT NULL,
    concurrency    INTEGER,
    hooks          TEXT NOT NULL DEFAULT '[]',
    schedule_id    TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (workspace_id, id)
);
CREATE INDEX function_trigger ON function (workspace_id, trigger_event) WHERE trigger_event IS NOT NULL;

-- A cron-triggered function's ticks go through the schedules engine: such a schedule has no queue.
ALTER TABLE schedule ADD COLUMN function_id TEXT;
ALTER TABLE schedule_run ADD COLUMN run_id TEXT;

CREATE TABLE run (
    rowid             INTEGER PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    workspace_id      TEXT NOT NULL,
    function_id       TEXT NOT NULL,
    status            TEXT NOT NULL,
    event_id          TEXT NOT NULL,
    event_name        TEXT NOT NULL,
    event_data        BLOB NOT NULL,
    event_ts          INTEGER NOT NULL,
    attempt           INTEGER NOT NULL DEFAULT 0,
    output            BLOB,
    error             TEXT,
    parent_run_id     TEXT,
    parent_step_rowid INTEGER,
    idempotency_key   TEXT,
    replay_of         TEXT,
    schedule_id       TEXT,
    hook_errors       TEXT,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    ended_at          INTEGER,
    -- When the next call that runs the function body is due (NULL: none is); leased while in flight.
    due_at            INTEGER,
    lease_owner       TEXT,
    lease_expires_at  INTEGER
);
CREATE INDEX run_due ON run (due_at) WHERE due_at IS NOT NULL AND lease_owner IS NULL;
CREATE INDEX run_leased ON run (lease_expires_at) WHERE lease_owner IS NOT NULL;
CREATE INDEX run_workspace ON run (workspace_id, rowid);
CREATE INDEX run_function ON run (workspace_id, function_id, rowid);
CREATE INDEX run_parent ON run (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE UNIQUE INDEX run_idempotency ON run (workspace_id, function_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX run_finished ON run (ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE run_step (
    rowid             INTEGER PRIMARY KEY,
    run_rowid         INTEGER NOT NULL REFERENCES run(rowid) ON DELETE CASCADE,
    key               TEXT NOT NULL,
    name              TEXT NOT NULL,
    type              TEXT NOT NULL,
    status            TEXT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    output            BLOB,
    error             TEXT,
    child_run_id      TEXT,
    signal            TEXT,
    event_name        TEXT,
    started_at        INTEGER,
    ended_at          INTEGER,
    -- scheduled: when its call is due; sleeping: when it wakes; waiting: when it times out.
    due_at            INTEGER,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    UNIQUE (run_rowid, key)
);
CREATE INDEX run_step_due ON run_step (due_at) WHERE due_at IS NOT NULL AND lease_owner IS NULL;
CREATE INDEX run_step_leased ON run_step (lease_expires_at) WHERE lease_owner IS NOT NULL;

-- Active waits. A signal id is held by one active waiter per workspace; an event waiter is found
-- through the equality its `match` pins down (pin_path = pin_value), so one event among many
-- waiting runs reaches only its candidates.
CREATE TABLE run_waiter (
    rowid         INTEGER PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    step_rowid    INTEGER NOT NULL UNIQUE REFERENCES run_step(rowid) ON DELETE CASCADE,
    run_rowid     INTEGER NOT NULL,
    signal        TEXT,
    event_name    TEXT,
    match         TEXT,
    pin_path      TEXT,
    pin_value     TEXT,
    created_at    INTEGER NOT NULL
);
-- A run that ends drops its waiters, whatever it waited on.
CREATE INDEX run_waiter_run ON run_waiter (run_rowid);
CREATE UNIQUE INDEX run_waiter_signal ON run_waiter (workspace_id, signal) WHERE signal IS NOT NULL;
CREATE INDEX run_waiter_event ON run_waiter (workspace_id, event_name, pin_path, pin_value)
    WHERE event_name IS NOT NULL;

-- The last resolution of each signal id: a late or second completion is told it is gone (410).
CREATE TABLE signal_resolution (
    workspace_id  TEXT NOT NULL,
    signal        TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    resolved_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, signal)
);

-- Events whose `ts` lies in the future, sent when it comes (with the idempotency key they were sent with).
CREATE TABLE deferred_event (
    rowid            INTEGER PRIMARY KEY,
    id               TEXT NOT NULL,
    workspace_id     TEXT NOT NULL,
    name             TEXT NOT NULL,
    data             BLOB NOT NULL,
    ts               INTEGER NOT NULL,
    idempotency_key  TEXT
);
CREATE INDEX deferred_event_due ON deferred_event (ts);

-- The workspace's key that signs calls to serve URLs (encrypted); the previous one signs too until it expires.
CREATE TABLE signing_key (
    workspace_id      TEXT PRIMARY KEY REFERENCES workspace(id) ON DELETE CASCADE,
    current           BLOB NOT NULL,
    previous          BLOB,
    previous_expires  INTEGER,
    rotated_at        INTEGER NOT NULL
)
