-- Retention finds old finished jobs through this index instead of scanning every finished job.
CREATE INDEX job_finished ON job (finished_at) WHERE state IN ('completed', 'failed', 'cancelled')
