-- Jobs per queue and state, changed in the transaction of every job state change (store/counts.py),
-- so that counts, stats and /metrics never scan the jobs table. Existing databases are counted once here.
CREATE TABLE queue_count (
    queue_id  INTEGER NOT NULL,
    state     TEXT NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (queue_id, state)
) WITHOUT ROWID;
INSERT INTO queue_count (queue_id, state, n) SELECT queue_id, state, count(*) FROM job GROUP BY queue_id, state;

-- Retention is per workspace, and blocked jobs are finished jobs too.
DROP INDEX job_finished;
CREATE INDEX job_finished ON job (workspace_id, finished_at)
    WHERE state IN ('completed', 'failed', 'cancelled', 'guardrail.blocked');
DROP INDEX run_finished;
CREATE INDEX run_finished ON run (workspace_id, ended_at) WHERE ended_at IS NOT NULL;
DROP INDEX delivery_finished;
CREATE INDEX delivery_finished ON delivery (workspace_id, created_at) WHERE status != 'pending';

-- Audit events are kept 365 days: only older ones can be deleted, by the wall clock, whatever asks.
CREATE INDEX audit_age ON audit_event (occurred_at);
DROP TRIGGER audit_event_no_delete;
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    WHEN old.occurred_at >= (unixepoch() - 365 * 86400) * 1000
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: events are kept 365 days'); END
