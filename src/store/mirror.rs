//! The booking mirror: what we believe each Cal.com booking calsaga made
//! looks like (uid, host, times, status), keyed by Cal.com's uid. The saga's
//! event log stays the source of truth; the mirror is the quick index that
//! webhooks and reconciliation look bookings up in. A uid belongs to one
//! workflow for good; this module refuses to move it.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::codec::{self, Id, Ms};
use super::error::write_error;
use super::sql::{execute, row, rows};
use super::{Store, StoreError};

/// One Cal.com booking as we know it; `status` is Cal.com's word for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorEntry {
    pub workflow: Uuid,
    pub segment: u16,
    pub calcom_uid: String,
    pub event_type_id: u64,
    pub host: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: String,
}

pub(super) const MIRROR_COLUMNS: &str =
    "workflow_id, segment, calcom_uid, event_type_id, host, start_ms, end_ms, status";

pub(super) fn mirror_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<MirrorEntry> {
    Ok(MirrorEntry {
        workflow: codec::id(row, 0)?,
        segment: row.get(1)?,
        calcom_uid: row.get(2)?,
        event_type_id: row.get(3)?,
        host: row.get(4)?,
        start: codec::time(row, 5)?,
        end: codec::time(row, 6)?,
        status: row.get(7)?,
    })
}

fn by_uid(conn: &Connection, uid: &str) -> rusqlite::Result<Option<MirrorEntry>> {
    row(
        conn,
        &format!("SELECT {MIRROR_COLUMNS} FROM booking_mirror WHERE calcom_uid = ?1"),
        [uid],
        mirror_entry,
    )
}

pub(super) fn upsert(conn: &Connection, entry: &MirrorEntry) -> Result<(), StoreError> {
    // The update applies only to the uid's own workflow, so the common case
    // is one statement; the owner is read only to name it in the refusal. A
    // new row takes the next key of its workflow's range (schema 8).
    let stored = execute(
        conn,
        &format!(
            "INSERT INTO booking_mirror (key, {MIRROR_COLUMNS})
             VALUES ((SELECT coalesce((SELECT max(m.key) + 1 FROM booking_mirror m
                                       WHERE m.key >= (w.log_key << 32) AND m.key < ((w.log_key + 1) << 32)),
                                      w.log_key << 32)
                      FROM workflows w WHERE w.id = ?1),
                     ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (calcom_uid) DO UPDATE SET segment = excluded.segment,
                 event_type_id = excluded.event_type_id, host = excluded.host, start_ms = excluded.start_ms,
                 end_ms = excluded.end_ms, status = excluded.status
             WHERE booking_mirror.workflow_id = excluded.workflow_id"
        ),
        params![
            Id(entry.workflow),
            entry.segment,
            entry.calcom_uid,
            entry.event_type_id,
            entry.host,
            Ms(entry.start),
            Ms(entry.end),
            entry.status
        ],
    )?;
    if stored > 0 {
        return Ok(());
    }
    let holder = by_uid(conn, &entry.calcom_uid)
        .map_err(write_error)?
        .map_or(entry.workflow, |known| known.workflow);
    Err(StoreError::MirrorOwnedByOther {
        calcom_uid: entry.calcom_uid.clone(),
        workflow: entry.workflow,
        holder,
    })
}

/// A workflow's mirror rows, by segment then start: the range of keys its
/// log key begins (schema 8). No column of `workflows` shares a name with
/// the mirror's.
pub(super) fn of_workflow_sql() -> String {
    format!(
        "SELECT {MIRROR_COLUMNS} FROM workflows w JOIN booking_mirror m
           ON m.key >= (w.log_key << 32) AND m.key < ((w.log_key + 1) << 32)
         WHERE w.id = ?1 ORDER BY segment, start_ms"
    )
}

pub(super) fn of_workflow(conn: &Connection, workflow: Uuid) -> rusqlite::Result<Vec<MirrorEntry>> {
    rows(conn, &of_workflow_sql(), [Id(workflow)], mirror_entry)
}

impl Store {
    /// Every mirrored booking of the workflow, by segment then start.
    pub fn mirror(&self, workflow: Uuid) -> Result<Vec<MirrorEntry>, StoreError> {
        self.read(|conn| of_workflow(conn, workflow))
    }

    /// The mirrored booking with Cal.com uid `uid`.
    pub fn mirror_by_uid(&self, uid: &str) -> Result<Option<MirrorEntry>, StoreError> {
        self.read(|conn| by_uid(conn, uid))
    }
}
