-- Schedules (cron rules on a queue) and their runs, one per tick or manual fire.
CREATE TABLE schedule (
    rowid          INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    workspace_id   TEXT NOT NULL,
    queue_id       INTEGER NOT NULL,
    name           TEXT NOT NULL,
    cron           TEXT NOT NULL,
    timezone       TEXT NOT NULL,
    payload        BLOB NOT NULL,
    enabled        INTEGER NOT NULL DEFAULT 1,
    next_fire_at   INTEGER,
    last_fired_at  INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
);
-- Only enabled schedules have a next fire time, so the scheduler's "what is due" scan is this index.
CREATE INDEX schedule_due ON schedule (next_fire_at) WHERE next_fire_at IS NOT NULL;
CREATE INDEX schedule_queue ON schedule (queue_id);

-- Runs outlive their schedule (history is kept after a delete), so no foreign key.
CREATE TABLE schedule_run (
    rowid            INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    schedule_id      TEXT NOT NULL,
    workspace_id     TEXT NOT NULL,
    scheduled_for    INTEGER NOT NULL,
    fired_at         INTEGER,
    job_id           TEXT,
    job_rowid        INTEGER,
    manual           INTEGER NOT NULL DEFAULT 0,
    callback_status  TEXT,
    error            TEXT
);
-- One run per cron tick: a tick written twice (crash, restart, race) is refused by the database.
CREATE UNIQUE INDEX schedule_run_tick ON schedule_run (schedule_id, scheduled_for) WHERE manual = 0;
CREATE INDEX schedule_run_history ON schedule_run (schedule_id, rowid);
CREATE INDEX schedule_run_job ON schedule_run (job_rowid) WHERE job_rowid IS NOT NULL;
CREATE INDEX schedule_run_age ON schedule_run (scheduled_for)
