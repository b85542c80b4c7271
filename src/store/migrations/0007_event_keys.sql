-- Schema 7: events keyed by an integer.
--
-- Schema 1 keyed events by (workflow_id, seq) in a WITHOUT ROWID b-tree. A
-- saga's events are appended at its right edge, and there a full leaf makes
-- SQLite rebalance the last three leaves and their parent: four pages
-- written every few steps. A rowid table appended at its right edge only
-- starts a new leaf. So each workflow gets a small integer of its own,
-- `log_key`, given in creation order, and an event's key is
-- `log_key << 32 | seq`: one workflow's events are still contiguous and in
-- order, and a new saga's land at the right edge.
--
-- Events are copied once, in key order; the copy keeps every column and
-- check, and the append-only triggers are created again on the new table.

ALTER TABLE workflows ADD COLUMN log_key INTEGER NOT NULL DEFAULT 0 CHECK (log_key >= 0);
UPDATE workflows SET log_key = rowid;
CREATE UNIQUE INDEX workflows_by_log_key ON workflows (log_key);

CREATE TABLE events_by_key (
    key         INTEGER NOT NULL PRIMARY KEY,
    workflow_id TEXT    NOT NULL REFERENCES workflows (id),
    seq         INTEGER NOT NULL CHECK (seq >= 0 AND seq < 4294967296),
    at_ms       INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    payload     TEXT    NOT NULL CHECK (json_valid(payload)),
    CHECK (key >> 32 > 0 AND (key & 4294967295) = seq)
) STRICT;

INSERT INTO events_by_key (key, workflow_id, seq, at_ms, kind, payload)
SELECT (w.log_key << 32) | e.seq, e.workflow_id, e.seq, e.at_ms, e.kind, e.payload
FROM events e JOIN workflows w ON w.id = e.workflow_id
ORDER BY 1;

DROP TABLE events;
ALTER TABLE events_by_key RENAME TO events;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: UPDATE is not allowed');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: DELETE is not allowed');
END;
