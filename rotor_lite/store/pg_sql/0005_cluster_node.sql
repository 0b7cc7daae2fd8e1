-- The nodes serving this database, each seen when it last claimed: a node claims no more than its share
-- of a queue's concurrency (the concurrency over the nodes seen lately). SQLite: one node, no table.
CREATE TABLE cluster_node (
    node     TEXT PRIMARY KEY,
    seen_at  BIGINT NOT NULL
);
