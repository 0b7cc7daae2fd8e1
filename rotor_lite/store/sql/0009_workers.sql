-- Fair queueing and per-key rate limits: a queue names the key its jobs are grouped by (`fairness_key`,
-- and/or the key of its `rate_limit_*`), each job keeps its group's value (`group_key`, set when it is
-- stored, NULL in queues without a key), and a claim walks the groups through `job_fair`: one seek per
-- group, so a hot group's backlog is never scanned to find another group's job.
ALTER TABLE queue ADD COLUMN fairness_key TEXT;
ALTER TABLE queue ADD COLUMN rate_limit_key TEXT;
ALTER TABLE queue ADD COLUMN rate_limit_max INTEGER;
ALTER TABLE queue ADD COLUMN rate_limit_per_ms INTEGER;
ALTER TABLE job ADD COLUMN group_key TEXT;
CREATE INDEX job_fair ON job (queue_id, group_key, priority, run_at) WHERE state = 'waiting' AND group_key IS NOT NULL;
-- A grouped job is claimed through job_fair only: job_waiting keeps the jobs of queues without a key,
-- so a claim or an enqueue of a fair queue maintains one claim index, as a plain queue's does.
DROP INDEX job_waiting;
CREATE INDEX job_waiting ON job (queue_id, priority, run_at) WHERE state = 'waiting' AND group_key IS NULL;
