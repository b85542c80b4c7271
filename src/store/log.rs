//! Workflows and their event log: create, append with the optimistic
//! sequence check and the projection the events fold to; read one, its
//! events, pages of them, and the unfinished ones for recovery. Events are append-only (the
//! schema's triggers refuse UPDATE and DELETE); nothing here may change or
//! remove an event, and nothing here knows what an event means.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::codec::{self, Id, Ms};
use super::error::write_error;
use super::sql::{execute, row, rows};
use super::{Store, StoreError};

/// One event to append. `payload` is JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub payload: String,
}

/// What a workflow's events fold to: its state and projection (JSON), as
/// of `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    pub state: String,
    pub json: String,
    pub at: DateTime<Utc>,
}

/// One stored event; `seq` counts from 0 per workflow without gaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub payload: String,
}

/// One workflow. `next_seq` is the number of events stored, i.e. the
/// `expected_seq` of the next append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRow {
    pub id: Uuid,
    pub kind: String,
    pub service: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub projection: String,
    pub next_seq: u64,
}

impl WorkflowRow {
    /// Where the next page of a listing that ended with this row starts.
    pub fn cursor(&self) -> WorkflowCursor {
        WorkflowCursor {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

/// Position in a listing (newest first, ties by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// Most rows one listing returns, whatever the filter asks.
pub const LIST_ROWS_MAX: usize = 1000;

/// Which workflows to list, newest first. `None` fields do not filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowFilter {
    pub state: Option<String>,
    pub kind: Option<String>,
    pub service: Option<String>,
    /// Only workflows created at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// At most this many rows (capped at `LIST_ROWS_MAX`).
    pub limit: usize,
    /// Continue after this row (from `WorkflowRow::cursor`).
    pub after: Option<WorkflowCursor>,
}

impl Default for WorkflowFilter {
    fn default() -> Self {
        WorkflowFilter {
            state: None,
            kind: None,
            service: None,
            since: None,
            limit: 100,
            after: None,
        }
    }
}

/// The events of the workflow with log key ?1, in order: the range of keys
/// it begins, so one seek and a scan of its own events (schema 7).
pub(super) const EVENTS_OF_LOG_KEY: &str = "SELECT seq, at_ms, kind, payload FROM events
     WHERE key >= (?1 << 32) AND key < ((?1 + 1) << 32) ORDER BY key";

/// The log key of workflow `id`, if it exists.
fn log_key(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<i64>> {
    row(
        conn,
        "SELECT log_key FROM workflows WHERE id = ?1",
        [Id(id)],
        |r| r.get(0),
    )
}

/// The events of the workflow with `log_key`, in order.
fn events_of(conn: &Connection, log_key: i64) -> rusqlite::Result<Vec<EventRow>> {
    rows(conn, EVENTS_OF_LOG_KEY, [log_key], |row| {
        Ok(EventRow {
            seq: row.get(0)?,
            at: codec::time(row, 1)?,
            kind: row.get(2)?,
            payload: row.get(3)?,
        })
    })
}

pub(super) const WORKFLOW_COLUMNS: &str =
    "id, kind, service, state, created_at_ms, updated_at_ms, projection, next_seq";

pub(super) fn workflow_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WorkflowRow> {
    Ok(WorkflowRow {
        id: codec::id(row, 0)?,
        kind: row.get(1)?,
        service: row.get(2)?,
        state: row.get(3)?,
        created_at: codec::time(row, 4)?,
        updated_at: codec::time(row, 5)?,
        projection: row.get(6)?,
        next_seq: row.get(7)?,
    })
}

/// The workflow's `next_seq`, or `UnknownWorkflow`. Every op that refers to
/// a workflow checks this first, so a wrong id gets a clear error instead
/// of a foreign-key failure.
pub(super) fn require_workflow(conn: &Connection, workflow: Uuid) -> Result<u64, StoreError> {
    row(
        conn,
        "SELECT next_seq FROM workflows WHERE id = ?1",
        [Id(workflow)],
        |r| r.get(0),
    )
    .map_err(write_error)?
    .ok_or(StoreError::UnknownWorkflow { workflow })
}

pub(super) fn create(
    conn: &Connection,
    id: Uuid,
    kind: &str,
    service: &str,
    state: &str,
    at: DateTime<Utc>,
    projection: &str,
) -> Result<(), StoreError> {
    // The next log key in creation order (schema 7): from the key's index,
    // so one lookup at its right edge.
    let inserted = execute(
        conn,
        "INSERT INTO workflows (id, kind, service, state, created_at_ms, updated_at_ms, projection, next_seq, log_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, 0, (SELECT coalesce(max(log_key), 0) + 1 FROM workflows))
         ON CONFLICT (id) DO NOTHING",
        params![Id(id), kind, service, state, Ms(at), projection],
    )?;
    if inserted == 0 {
        return Err(StoreError::WorkflowExists { workflow: id });
    }
    Ok(())
}

pub(super) fn append(
    conn: &Connection,
    workflow: Uuid,
    expected_seq: u64,
    events: &[NewEvent],
    projection: Option<&Projection>,
) -> Result<(), StoreError> {
    let next_seq = expected_seq + events.len() as u64;
    // The sequence check and the move of `next_seq` (with the projection,
    // if any) are one update; the row is read only to say what went wrong.
    let moved = match projection {
        Some(p) => set_row(conn, workflow, expected_seq, next_seq, p)?,
        None => execute(
            conn,
            "UPDATE workflows SET next_seq = ?3,
                 updated_at_ms = max(updated_at_ms, coalesce(?4, updated_at_ms))
             WHERE id = ?1 AND next_seq = ?2",
            params![
                Id(workflow),
                expected_seq,
                next_seq,
                events.iter().map(|e| e.at).max().map(Ms)
            ],
        )?,
    };
    if moved == 0 {
        return Err(StoreError::SequenceConflict {
            workflow,
            expected: expected_seq,
            actual: require_workflow(conn, workflow)?,
        });
    }
    // Read apart from the update: `RETURNING` would cost the update more
    // than this lookup of a row the update has just brought into the cache.
    let log_key = log_key(conn, workflow)
        .map_err(write_error)?
        .ok_or(StoreError::UnknownWorkflow { workflow })?;
    for (seq, event) in (expected_seq..).zip(events) {
        execute(
            conn,
            "INSERT INTO events (key, workflow_id, seq, at_ms, kind, payload)
             VALUES ((?1 << 32) | ?3, ?2, ?3, ?4, ?5, ?6)",
            params![
                log_key,
                Id(workflow),
                seq,
                Ms(event.at),
                event.kind,
                event.payload
            ],
        )?;
    }
    Ok(())
}

/// Moves the row from `expected_seq` to `next_seq` and to `projection`;
/// the rows changed (0 when the sequence does not match).
fn set_row(
    conn: &Connection,
    workflow: Uuid,
    expected_seq: u64,
    next_seq: u64,
    projection: &Projection,
) -> Result<usize, StoreError> {
    let values = params![
        Id(workflow),
        expected_seq,
        next_seq,
        projection.state,
        projection.json,
        Ms(projection.at)
    ];
    // Most steps keep the state: leaving `state` out of the SET then spares
    // the state index a delete and re-insert of the same entry (a page per
    // step). Only a change of state pays for the second statement.
    let kept = execute(
        conn,
        "UPDATE workflows SET next_seq = ?3, projection = ?5, updated_at_ms = ?6
         WHERE id = ?1 AND next_seq = ?2 AND state = ?4",
        values,
    )?;
    if kept > 0 {
        return Ok(kept);
    }
    execute(
        conn,
        "UPDATE workflows SET next_seq = ?3, state = ?4, projection = ?5, updated_at_ms = ?6
         WHERE id = ?1 AND next_seq = ?2",
        values,
    )
}

impl Store {
    /// One workflow, if it exists.
    pub fn workflow(&self, id: Uuid) -> Result<Option<WorkflowRow>, StoreError> {
        self.read(|conn| {
            row(
                conn,
                &format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?1"),
                [Id(id)],
                workflow_row,
            )
        })
    }

    /// The workflow's whole event log in order (empty if it does not exist).
    pub fn events(&self, id: Uuid) -> Result<Vec<EventRow>, StoreError> {
        self.read(|conn| {
            let snapshot = conn.unchecked_transaction()?;
            let events = match log_key(&snapshot, id)? {
                Some(log_key) => events_of(&snapshot, log_key)?,
                None => Vec::new(),
            };
            snapshot.finish()?;
            Ok(events)
        })
    }

    /// One workflow and its whole event log in order, read in one snapshot
    /// (what loading a saga needs): one lookup of the row, whose log key
    /// then finds the events.
    pub fn workflow_and_events(
        &self,
        id: Uuid,
    ) -> Result<Option<(WorkflowRow, Vec<EventRow>)>, StoreError> {
        self.read(|conn| {
            let snapshot = conn.unchecked_transaction()?;
            let found = row(
                &snapshot,
                &format!("SELECT {WORKFLOW_COLUMNS}, log_key FROM workflows WHERE id = ?1"),
                [Id(id)],
                |r| Ok((workflow_row(r)?, r.get::<_, i64>(8)?)),
            )?;
            let Some((workflow, log_key)) = found else {
                return Ok(None);
            };
            let events = events_of(&snapshot, log_key)?;
            snapshot.finish()?;
            Ok(Some((workflow, events)))
        })
    }

    /// A page of workflows, newest first.
    pub fn list_workflows(&self, filter: &WorkflowFilter) -> Result<Vec<WorkflowRow>, StoreError> {
        let limit = filter.limit.min(LIST_ROWS_MAX);
        self.read(|conn| {
            rows(
                conn,
                &format!(
                    "SELECT {WORKFLOW_COLUMNS} FROM workflows
                     WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR kind = ?2)
                       AND (?3 IS NULL OR service = ?3) AND (?4 IS NULL OR created_at_ms >= ?4)
                       AND (?5 IS NULL OR created_at_ms < ?5 OR (created_at_ms = ?5 AND id < ?6))
                     ORDER BY created_at_ms DESC, id DESC LIMIT ?7"
                ),
                params![
                    filter.state,
                    filter.kind,
                    filter.service,
                    filter.since.map(Ms),
                    filter.after.map(|c| Ms(c.created_at)),
                    filter.after.map(|c| Id(c.id)),
                    limit,
                ],
                workflow_row,
            )
        })
    }

    /// Every workflow whose state is not one of `terminal_states`, oldest
    /// first: what recovery must resume after a restart. One scan of the
    /// workflows table (no event is read).
    pub fn unfinished_workflows(
        &self,
        terminal_states: &[&str],
    ) -> Result<Vec<WorkflowRow>, StoreError> {
        let placeholders = vec!["?"; terminal_states.len()].join(", ");
        self.read(|conn| {
            rows(
                conn,
                &format!(
                    "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE state NOT IN ({placeholders})
                     ORDER BY created_at_ms, id"
                ),
                rusqlite::params_from_iter(terminal_states),
                workflow_row,
            )
        })
    }
}
