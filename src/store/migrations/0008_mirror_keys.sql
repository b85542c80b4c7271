-- Schema 8: mirror rows keyed by their workflow's log key.
--
-- Schema 1 found a workflow's mirror rows through an index on
-- (workflow_id, segment). Like the events of schema 6, that index is
-- appended at its right edge, where a full leaf rebalances three: nearly a
-- page per step on top of the row itself. As events are since schema 7, a
-- mirror row is now keyed by `log_key << 32 | n`, n counting its
-- workflow's rows from 0, so a workflow's rows are one range of the table
-- and the index goes. Cal.com's uid stays unique (the webhook's lookup).

CREATE TABLE booking_mirror_by_key (
    key           INTEGER NOT NULL PRIMARY KEY CHECK (key >> 32 > 0),
    calcom_uid    TEXT    NOT NULL UNIQUE,
    workflow_id   TEXT    NOT NULL REFERENCES workflows (id),
    segment       INTEGER NOT NULL CHECK (segment >= 0),
    event_type_id INTEGER NOT NULL,
    host          INTEGER NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    CHECK (start_ms < end_ms)
) STRICT;

INSERT INTO booking_mirror_by_key
    (key, calcom_uid, workflow_id, segment, event_type_id, host, start_ms, end_ms, status)
SELECT (w.log_key << 32) | (row_number() OVER (PARTITION BY m.workflow_id ORDER BY m.rowid) - 1),
       m.calcom_uid, m.workflow_id, m.segment, m.event_type_id, m.host, m.start_ms, m.end_ms, m.status
FROM booking_mirror m JOIN workflows w ON w.id = m.workflow_id
ORDER BY 1;

DROP TABLE booking_mirror;
ALTER TABLE booking_mirror_by_key RENAME TO booking_mirror;
