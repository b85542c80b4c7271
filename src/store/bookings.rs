//! Booking-shaped reads for the API: bookings listed by appointment time
//! (the first segment's claimed start) with a cursor, and the reschedule and
//! cancel sagas that changed a booking. Read-only. The one thing it knows
//! of a projection is the documented path of a change saga's original
//! (`original.workflow`), which schema 2 indexes.

use chrono::{DateTime, Utc};
use rusqlite::params;
use uuid::Uuid;

use super::codec::{self, Id, Ms};
use super::log::{WORKFLOW_COLUMNS, workflow_row};
use super::sql::rows;
use super::{BookingFlag, LIST_ROWS_MAX, MirrorEntry, Store, StoreError, WorkflowRow};

/// Kinds of workflow that are bookings (a cancel saga is not one).
const BOOKING_KINDS: &str = "'book', 'reschedule', 'hold'";

/// Which bookings to list, by appointment start, earliest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingQuery {
    /// Only bookings starting at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only bookings starting before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Continue after this position (from `BookingListRow::cursor`).
    pub after: Option<BookingCursor>,
    /// At most this many rows (capped at `LIST_ROWS_MAX`).
    pub limit: usize,
}

/// Position in the bookings list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingCursor {
    pub start: DateTime<Utc>,
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingListRow {
    pub workflow: WorkflowRow,
    /// When its first segment starts.
    pub start: DateTime<Utc>,
}

impl BookingListRow {
    pub fn cursor(&self) -> BookingCursor {
        BookingCursor {
            start: self.start,
            id: self.workflow.id,
        }
    }
}

impl Store {
    /// A page of bookings by first-segment start.
    pub fn list_bookings(&self, q: &BookingQuery) -> Result<Vec<BookingListRow>, StoreError> {
        let columns = WORKFLOW_COLUMNS
            .split(", ")
            .map(|c| format!("w.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.read(|conn| {
            rows(
                conn,
                &format!(
                    "SELECT {columns}, c.start_ms FROM slot_claims c JOIN workflows w ON w.id = c.workflow_id
                     WHERE c.segment = 0 AND w.kind IN ({BOOKING_KINDS})
                       AND c.id = (SELECT min(id) FROM slot_claims f WHERE f.workflow_id = c.workflow_id AND f.segment = 0)
                       AND (?1 IS NULL OR c.start_ms >= ?1) AND (?2 IS NULL OR c.start_ms < ?2)
                       AND (?3 IS NULL OR c.start_ms > ?3 OR (c.start_ms = ?3 AND c.workflow_id > ?4))
                     ORDER BY c.start_ms, c.workflow_id LIMIT ?5"
                ),
                params![
                    q.from.map(Ms),
                    q.to.map(Ms),
                    q.after.map(|c| Ms(c.start)),
                    q.after.map(|c| Id(c.id)),
                    q.limit.min(LIST_ROWS_MAX),
                ],
                |row| {
                    Ok(BookingListRow {
                        workflow: workflow_row(row)?,
                        start: codec::time(row, 8)?,
                    })
                },
            )
        })
    }

    /// The reschedule and cancel sagas started for booking `original`,
    /// oldest first.
    pub fn changes_of(&self, original: Uuid) -> Result<Vec<WorkflowRow>, StoreError> {
        self.read(|conn| rows(conn, &changes_of_sql(), [Id(original)], workflow_row))
    }

    /// What is known around one booking, read in one snapshot: a webhook
    /// recorded meanwhile shows in all three parts or in none, so a
    /// booking is never shown flagged with its Cal.com status of before.
    pub fn around(&self, workflow: Uuid, with_changes: bool) -> Result<AroundRows, StoreError> {
        self.read(|conn| {
            let snapshot = conn.unchecked_transaction()?;
            let around = AroundRows {
                changes: if with_changes {
                    rows(&snapshot, &changes_of_sql(), [Id(workflow)], workflow_row)?
                } else {
                    Vec::new()
                },
                mirror: super::mirror::of_workflow(&snapshot, workflow)?,
                flags: super::flags::of_workflow(&snapshot, workflow)?,
            };
            snapshot.finish()?;
            Ok(around)
        })
    }
}

/// `Store::around`: the mirror, the flags and the change sagas of a booking.
#[derive(Debug, Clone, PartialEq)]
pub struct AroundRows {
    pub mirror: Vec<MirrorEntry>,
    pub flags: Vec<BookingFlag>,
    pub changes: Vec<WorkflowRow>,
}

/// The query of `changes_of`; its WHERE matches the partial expression
/// index `workflows_by_original` (migration 0002) word for word, or SQLite
/// would not use it.
pub(super) fn changes_of_sql() -> String {
    format!(
        "SELECT {WORKFLOW_COLUMNS} FROM workflows
         WHERE kind IN ('reschedule', 'cancel')
           AND json_extract(projection, '$.original.workflow') = ?1
         ORDER BY created_at_ms, id"
    )
}
