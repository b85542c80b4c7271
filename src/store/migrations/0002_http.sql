-- Schema 2: what the HTTP API keeps beside the sagas.

-- Bearer tokens of the API. Only the SHA-256 of a token is stored; the
-- token itself is shown once when it is created.
CREATE TABLE api_tokens (
    id            TEXT    NOT NULL PRIMARY KEY CHECK (length(id) = 36),
    name          TEXT    NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    scope         TEXT    NOT NULL CHECK (scope IN ('booking', 'admin')),
    token_sha256  TEXT    NOT NULL UNIQUE CHECK (length(token_sha256) = 64),
    created_at_ms INTEGER NOT NULL
) STRICT;

-- Composite bookings broken from Cal.com's side (a segment cancelled or
-- moved there), one row per Cal.com booking, with what the policy did.
CREATE TABLE booking_flags (
    workflow_id        TEXT    NOT NULL REFERENCES workflows (id),
    calcom_uid         TEXT    NOT NULL,
    trigger            TEXT    NOT NULL,
    policy             TEXT    NOT NULL,
    detail             TEXT    NOT NULL,
    change_workflow_id TEXT,
    at_ms              INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, calcom_uid)
) STRICT, WITHOUT ROWID;

-- The reschedule and cancel sagas of a booking, found by the original's id
-- in their projection (`original.workflow`, written by the runtime).
CREATE INDEX workflows_by_original
    ON workflows (json_extract(projection, '$.original.workflow'))
    WHERE kind IN ('reschedule', 'cancel');

-- The bookings list orders by the first segment's start.
CREATE INDEX slot_claims_first_segment ON slot_claims (start_ms, workflow_id) WHERE segment = 0;
