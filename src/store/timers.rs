//! Timers: "wake this workflow at T for reason K". At most one pending timer
//! per (workflow, kind); setting it again moves it. Firing marks the row
//! (kept as a record) and must be committed with the event it caused, so a
//! crash cannot fire a timer twice or lose it. Never reads a clock: the
//! runner passes `now`.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::codec::{self, Id, Ms};
use super::sql::{execute, rows};
use super::{Store, StoreError};

/// A pending timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRow {
    pub id: i64,
    pub workflow: Uuid,
    pub kind: String,
    pub due_at: DateTime<Utc>,
}

pub(super) fn set(
    conn: &Connection,
    workflow: Uuid,
    kind: &str,
    due_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    clear(conn, workflow, Some(kind))?;
    execute(
        conn,
        "INSERT INTO timers (workflow_id, kind, due_at_ms, fired) VALUES (?1, ?2, ?3, 0)",
        params![Id(workflow), kind, Ms(due_at)],
    )?;
    Ok(())
}

pub(super) fn clear(
    conn: &Connection,
    workflow: Uuid,
    kind: Option<&str>,
) -> Result<(), StoreError> {
    execute(
        conn,
        "DELETE FROM timers WHERE workflow_id = ?1 AND fired = 0 AND (?2 IS NULL OR kind = ?2)",
        params![Id(workflow), kind],
    )?;
    Ok(())
}

pub(super) fn fire(conn: &Connection, id: i64) -> Result<(), StoreError> {
    if execute(
        conn,
        "UPDATE timers SET fired = 1 WHERE id = ?1 AND fired = 0",
        [id],
    )? == 0
    {
        return Err(StoreError::TimerNotPending { id });
    }
    Ok(())
}

impl Store {
    /// Pending timers due at or before `now`, earliest first, at most `limit`.
    pub fn due_timers(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<TimerRow>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                "SELECT id, workflow_id, kind, due_at_ms FROM timers
                 WHERE fired = 0 AND due_at_ms <= ?1 ORDER BY due_at_ms, id LIMIT ?2",
                params![Ms(now), limit],
                |row| {
                    Ok(TimerRow {
                        id: row.get(0)?,
                        workflow: codec::id(row, 1)?,
                        kind: row.get(2)?,
                        due_at: codec::time(row, 3)?,
                    })
                },
            )
        })
    }
}
