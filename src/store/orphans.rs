//! Orphaned Cal.com bookings: bookings carrying calsaga's metadata that no
//! saga in the log holds, and what the runtime did about each (cancelling,
//! cancelled, failed). One row per Cal.com uid; writing the same uid again
//! updates it, so a repeated scan leaves one row. The workflow the metadata
//! names is kept as text because the log may not know it. This module
//! stores what `runtime::orphans` decided and never decides anything itself.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::codec::{self, Ms, text_states};
use super::sql::{execute, rows};
use super::{Store, StoreError};

/// Where the repair of one orphan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanState {
    /// Recorded before the cancel is sent (I6); a crash leaves it here and
    /// the next scan sends the cancel again (cancelling twice is harmless).
    Cancelling,
    Cancelled,
    /// Cal.com refused the cancel; `detail` says why.
    Failed,
}

text_states!(OrphanState, "orphan state", {
    Cancelling => "cancelling",
    Cancelled => "cancelled",
    Failed => "failed",
});

/// One booking no saga holds, as Cal.com showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanBooking {
    pub calcom_uid: String,
    /// The `calsaga_workflow` metadata value, as Cal.com holds it.
    pub workflow_ref: String,
    /// The `calsaga_segment` metadata value, as Cal.com holds it.
    pub segment_ref: String,
    pub event_type_id: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Why it is an orphan, for an admin.
    pub why: String,
}

/// One orphaned booking as recorded, with what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanRow {
    pub booking: OrphanBooking,
    pub state: OrphanState,
    /// Cal.com's answer when the cancel failed.
    pub detail: Option<String>,
    /// When a scan first found it; kept on updates.
    pub found_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(super) fn put(conn: &Connection, row: &OrphanRow) -> Result<(), StoreError> {
    let o = &row.booking;
    execute(
        conn,
        "INSERT INTO orphan_bookings (calcom_uid, workflow_ref, segment_ref, event_type_id, start_ms,
             end_ms, why, state, detail, found_at_ms, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (calcom_uid) DO UPDATE SET why = excluded.why, state = excluded.state,
             detail = excluded.detail, updated_at_ms = excluded.updated_at_ms",
        params![
            o.calcom_uid,
            o.workflow_ref,
            o.segment_ref,
            o.event_type_id,
            Ms(o.start),
            Ms(o.end),
            o.why,
            row.state.as_str(),
            row.detail,
            Ms(row.found_at),
            Ms(row.updated_at)
        ],
    )?;
    Ok(())
}

impl Store {
    /// The most recently found orphans, newest first, at most `limit`.
    pub fn orphans(&self, limit: usize) -> Result<Vec<OrphanRow>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            rows(
                conn,
                "SELECT calcom_uid, workflow_ref, segment_ref, event_type_id, start_ms, end_ms, why,
                     state, detail, found_at_ms, updated_at_ms
                 FROM orphan_bookings ORDER BY found_at_ms DESC, calcom_uid LIMIT ?1",
                [limit],
                |row| {
                    Ok(OrphanRow {
                        booking: OrphanBooking {
                            calcom_uid: row.get(0)?,
                            workflow_ref: row.get(1)?,
                            segment_ref: row.get(2)?,
                            event_type_id: row.get(3)?,
                            start: codec::time(row, 4)?,
                            end: codec::time(row, 5)?,
                            why: row.get(6)?,
                        },
                        state: row.get(7)?,
                        detail: row.get(8)?,
                        found_at: codec::time(row, 9)?,
                        updated_at: codec::time(row, 10)?,
                    })
                },
            )
        })
    }
}
