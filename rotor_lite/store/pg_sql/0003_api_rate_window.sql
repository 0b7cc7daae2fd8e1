-- Requests per workspace per one-minute window, counted by every node (the API's rate limit across
-- nodes). SQLite has no such table: one node counts in memory.
CREATE TABLE api_rate_window (
    workspace_id  TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    count         BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, window_start)
);
