-- Schema 3: admin requests (resume, compensate) queued by the admin CLI.
-- The CLI runs beside `calsaga serve` and must not write the event log (the
-- engine's writer owns its sequence numbers), so it only inserts a row here;
-- the engine validates it against the saga, appends the admin event and
-- settles the row as applied or refused (with the reason).
CREATE TABLE admin_requests (
    id              INTEGER NOT NULL PRIMARY KEY,
    workflow_id     TEXT    NOT NULL REFERENCES workflows (id),
    action          TEXT    NOT NULL CHECK (action IN ('resume', 'compensate')),
    reason          TEXT,
    requested_at_ms INTEGER NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'applied', 'refused')),
    outcome         TEXT,
    settled_at_ms   INTEGER,
    CHECK ((state = 'pending') = (settled_at_ms IS NULL))
) STRICT;
-- The engine's poll: pending requests in the order they were made.
CREATE INDEX admin_requests_pending ON admin_requests (id) WHERE state = 'pending';
CREATE INDEX admin_requests_by_workflow ON admin_requests (workflow_id, id);
