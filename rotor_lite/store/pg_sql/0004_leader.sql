-- Leader-only work (cron ticks): the node holding the advisory lock writes its lease here, so any
-- node (and an operator) can see who leads; the lock, not this row, decides who leads.
CREATE TABLE leader (
    name        TEXT PRIMARY KEY,
    node        TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
