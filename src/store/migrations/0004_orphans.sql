-- Schema 4: bookings found at Cal.com with calsaga's metadata that no saga
-- in the log holds (after a restore from an older backup, or a create that
-- landed after its saga gave it up), and what was done about each. The
-- workflow id is the one the booking's metadata names, which the log may
-- not know: no foreign key.
CREATE TABLE orphan_bookings (
    calcom_uid    TEXT    NOT NULL PRIMARY KEY,
    workflow_ref  TEXT    NOT NULL,
    segment_ref   TEXT    NOT NULL,
    event_type_id INTEGER NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    why           TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('cancelling', 'cancelled', 'failed')),
    detail        TEXT,
    found_at_ms   INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX orphan_bookings_by_found ON orphan_bookings (found_at_ms);
