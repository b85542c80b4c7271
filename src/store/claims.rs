//! Slot claims: our own hold on a host's time `[start, end)`, which is what
//! stops two calsaga sagas from racing for one slot (Cal.com reservations do
//! not). Because all writes go through the one writer, the overlap check and
//! the insert cannot interleave with another saga's. Released claims stay as
//! a record (`live = false`); this module never deletes a claim.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::codec::{self, Id, Ms};
use super::error::write_error;
use super::sql::{execute, rows};
use super::{Store, StoreError};

/// No claim is longer than this (one segment of a service of at most 24 h),
/// so a claim overlapping `[start, end)` starts after `start - CLAIM_SPAN_MAX`.
pub const CLAIM_SPAN_MAX: chrono::Duration = chrono::Duration::hours(24);

/// A hold to take for one segment of a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub segment: u16,
    pub host: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A stored claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRow {
    pub workflow: Uuid,
    pub segment: u16,
    pub host: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub live: bool,
}

const CLAIM_COLUMNS: &str = "workflow_id, segment, host, start_ms, end_ms, live";

fn claim_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimRow> {
    Ok(ClaimRow {
        workflow: codec::id(row, 0)?,
        segment: row.get(1)?,
        host: row.get(2)?,
        start: codec::time(row, 3)?,
        end: codec::time(row, 4)?,
        live: row.get(5)?,
    })
}

/// Live claims on `host` overlapping `[start, end)`; shared by the write-side
/// check and the read API so both mean the same thing by "overlap".
fn overlapping(
    conn: &Connection,
    host: u64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> rusqlite::Result<Vec<ClaimRow>> {
    rows(
        conn,
        &format!(
            "SELECT {CLAIM_COLUMNS} FROM slot_claims
             WHERE host = ?1 AND live = 1 AND start_ms < ?3 AND start_ms > ?4 AND end_ms > ?2
             ORDER BY start_ms, id"
        ),
        // The lower bound keeps the index range to one claim's length
        // before `start`: without it every earlier claim of the host is read,
        // and a long-lived database slows each booking down.
        params![host, Ms(start), Ms(end), Ms(start - CLAIM_SPAN_MAX)],
        claim_row,
    )
}

/// `fresh`: the workflow holds no claims yet (its batch created it), so
/// none needs releasing before a segment's first claim.
pub(super) fn claim(
    conn: &Connection,
    workflow: Uuid,
    claims: &[Claim],
    replacing: Option<Uuid>,
    fresh: bool,
) -> Result<(), StoreError> {
    let mut inserted: Vec<u16> = Vec::with_capacity(claims.len());
    for claim in claims {
        if claim.start >= claim.end || claim.end - claim.start > CLAIM_SPAN_MAX {
            return Err(StoreError::Invalid {
                detail: format!(
                    "claim for segment {} of workflow {workflow} from {} to {} is empty or longer than 24 h",
                    claim.segment, claim.start, claim.end
                ),
            });
        }
        let taken = overlapping(conn, claim.host, claim.start, claim.end).map_err(write_error)?;
        if let Some(other) = taken
            .into_iter()
            .find(|c| c.workflow != workflow && Some(c.workflow) != replacing)
        {
            return Err(StoreError::SlotClaimed {
                host: other.host,
                start: other.start,
                end: other.end,
                holder: other.workflow,
            });
        }
        if !fresh || inserted.contains(&claim.segment) {
            release(conn, workflow, Some(claim.segment))?;
        }
        inserted.push(claim.segment);
        execute(
            conn,
            "INSERT INTO slot_claims (workflow_id, segment, host, start_ms, end_ms, live)
             VALUES (?1, ?2, ?3, ?4, ?5, 1)",
            params![
                Id(workflow),
                claim.segment,
                claim.host,
                Ms(claim.start),
                Ms(claim.end)
            ],
        )?;
    }
    Ok(())
}

pub(super) fn release(
    conn: &Connection,
    workflow: Uuid,
    segment: Option<u16>,
) -> Result<(), StoreError> {
    execute(
        conn,
        "UPDATE slot_claims SET live = 0 WHERE workflow_id = ?1 AND live = 1 AND (?2 IS NULL OR segment = ?2)",
        params![Id(workflow), segment],
    )?;
    Ok(())
}

impl Store {
    /// Every claim the workflow ever took, live or released, oldest first.
    pub fn claims(&self, workflow: Uuid) -> Result<Vec<ClaimRow>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                &format!(
                    "SELECT {CLAIM_COLUMNS} FROM slot_claims WHERE workflow_id = ?1 ORDER BY id"
                ),
                [Id(workflow)],
                claim_row,
            )
        })
    }

    /// Live claims of any workflow on `host` overlapping `[start, end)`.
    pub fn live_claims_overlapping(
        &self,
        host: u64,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<ClaimRow>, StoreError> {
        self.read(|conn| overlapping(conn, host, start, end))
    }
}
