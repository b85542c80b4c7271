-- Schema 1: the first calsaga database.
-- Conventions: every instant is unix milliseconds UTC in an INTEGER column
-- named *_ms; workflow ids are lower-case hyphenated UUID text; JSON columns
-- are checked with json_valid so nothing unreadable gets in. Tables are
-- STRICT so a wrong type is refused instead of silently stored.

-- One row per saga: its current state and projection (the fold of its
-- events, I7) and the sequence number its next event must take.
CREATE TABLE workflows (
    id            TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    kind          TEXT    NOT NULL,
    service       TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    projection    TEXT    NOT NULL CHECK (json_valid(projection)),
    next_seq      INTEGER NOT NULL DEFAULT 0 CHECK (next_seq >= 0)
) STRICT;
-- Listing newest first (admin) and paging by (created_at_ms, id).
CREATE INDEX workflows_by_created ON workflows (created_at_ms, id);
-- Listing by state, and recovery's scan for unfinished sagas.
CREATE INDEX workflows_by_state ON workflows (state, created_at_ms);

-- The event log: append-only, numbered from 0 per workflow without gaps.
CREATE TABLE events (
    workflow_id TEXT    NOT NULL REFERENCES workflows (id),
    seq         INTEGER NOT NULL CHECK (seq >= 0),
    at_ms       INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    payload     TEXT    NOT NULL CHECK (json_valid(payload)),
    PRIMARY KEY (workflow_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: UPDATE is not allowed');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: DELETE is not allowed');
END;

-- Wake-ups. At most one pending timer per (workflow, kind); fired timers
-- stay as a record.
CREATE TABLE timers (
    id          INTEGER NOT NULL PRIMARY KEY,
    workflow_id TEXT    NOT NULL REFERENCES workflows (id),
    kind        TEXT    NOT NULL,
    due_at_ms   INTEGER NOT NULL,
    fired       INTEGER NOT NULL DEFAULT 0 CHECK (fired IN (0, 1))
) STRICT;
CREATE INDEX timers_due ON timers (due_at_ms) WHERE fired = 0;
CREATE UNIQUE INDEX timers_pending_kind ON timers (workflow_id, kind) WHERE fired = 0;

-- Idempotency-Key header values of the booking API.
CREATE TABLE idempotency_keys (
    key           TEXT    NOT NULL PRIMARY KEY,
    fingerprint   TEXT    NOT NULL,
    workflow_id   TEXT    NOT NULL REFERENCES workflows (id),
    response      TEXT    CHECK (response IS NULL OR json_valid(response)),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at_ms);

-- Cal.com webhooks, stored before they are acknowledged (I5); a redelivery
-- of the same body is recognised by its hash.
CREATE TABLE webhook_inbox (
    id                 INTEGER NOT NULL PRIMARY KEY,
    body_sha256        TEXT    NOT NULL UNIQUE,
    body               TEXT    NOT NULL,
    received_at_ms     INTEGER NOT NULL,
    state              TEXT    NOT NULL CHECK (state IN ('pending', 'processed', 'failed')),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at_ms INTEGER NOT NULL,
    last_error         TEXT
) STRICT;
CREATE INDEX webhook_inbox_due ON webhook_inbox (next_attempt_at_ms) WHERE state = 'pending';
CREATE INDEX webhook_inbox_by_received ON webhook_inbox (received_at_ms);

-- What we believe each Cal.com booking we made looks like.
CREATE TABLE booking_mirror (
    calcom_uid    TEXT    NOT NULL PRIMARY KEY,
    workflow_id   TEXT    NOT NULL REFERENCES workflows (id),
    segment       INTEGER NOT NULL CHECK (segment >= 0),
    event_type_id INTEGER NOT NULL,
    host          INTEGER NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    CHECK (start_ms < end_ms)
) STRICT;
CREATE INDEX booking_mirror_by_workflow ON booking_mirror (workflow_id, segment);

-- Our own hold on a host's time [start, end): what stops two sagas racing
-- for one slot. Released claims stay as a record with live = 0.
CREATE TABLE slot_claims (
    id          INTEGER NOT NULL PRIMARY KEY,
    workflow_id TEXT    NOT NULL REFERENCES workflows (id),
    segment     INTEGER NOT NULL CHECK (segment >= 0),
    host        INTEGER NOT NULL,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    live        INTEGER NOT NULL DEFAULT 1 CHECK (live IN (0, 1)),
    CHECK (start_ms < end_ms)
) STRICT;
CREATE INDEX slot_claims_live_by_host ON slot_claims (host, start_ms) WHERE live = 1;
CREATE UNIQUE INDEX slot_claims_live_segment ON slot_claims (workflow_id, segment) WHERE live = 1;
CREATE INDEX slot_claims_by_workflow ON slot_claims (workflow_id);

-- One row per Cal.com call, for health checks; pruned after a few days.
CREATE TABLE call_stats (
    id         INTEGER NOT NULL PRIMARY KEY,
    at_ms      INTEGER NOT NULL,
    route      TEXT    NOT NULL,
    status     INTEGER,
    class      TEXT    NOT NULL,
    latency_ms INTEGER NOT NULL CHECK (latency_ms >= 0)
) STRICT;
CREATE INDEX call_stats_by_at ON call_stats (at_ms);
