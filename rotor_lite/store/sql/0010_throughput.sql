-- Delivery outcomes per queue and minute (epoch minutes), for the dashboard's charts of the last hour;
-- added up in memory and written a few seconds later (services/throughput.py), kept a day.
CREATE TABLE queue_minute (
    queue_id   INTEGER NOT NULL,
    minute     INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    errors     INTEGER NOT NULL,
    completed  INTEGER NOT NULL,
    failed     INTEGER NOT NULL,
    PRIMARY KEY (queue_id, minute)
) WITHOUT ROWID
