//! Booking flags: a composite booking broken from Cal.com's side (one of
//! its segments cancelled or moved there), with what the policy did about
//! it. One row per (workflow, Cal.com booking); writing the same pair again
//! updates it, so a retried webhook leaves one row. It stores what the
//! webhook processor decided and never decides anything itself.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::codec::{self, Id, Ms};
use super::sql::{execute, rows};
use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingFlag {
    pub workflow: Uuid,
    pub calcom_uid: String,
    /// Cal.com's trigger, e.g. `BOOKING_CANCELLED`.
    pub trigger: String,
    /// The policy applied: `cancel-rest` or `flag`.
    pub policy: String,
    /// What happened, for an admin.
    pub detail: String,
    /// The saga the policy started, if any.
    pub change_workflow: Option<Uuid>,
    pub at: DateTime<Utc>,
}

pub(super) fn put(conn: &Connection, flag: &BookingFlag) -> Result<(), StoreError> {
    execute(
        conn,
        "INSERT INTO booking_flags (workflow_id, calcom_uid, trigger, policy, detail, change_workflow_id, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (workflow_id, calcom_uid) DO UPDATE SET trigger = excluded.trigger,
             policy = excluded.policy, detail = excluded.detail,
             change_workflow_id = excluded.change_workflow_id, at_ms = excluded.at_ms",
        params![
            Id(flag.workflow),
            flag.calcom_uid,
            flag.trigger,
            flag.policy,
            flag.detail,
            flag.change_workflow.map(Id),
            Ms(flag.at)
        ],
    )?;
    Ok(())
}

pub(super) fn of_workflow(conn: &Connection, workflow: Uuid) -> rusqlite::Result<Vec<BookingFlag>> {
    rows(
        conn,
        "SELECT workflow_id, calcom_uid, trigger, policy, detail, change_workflow_id, at_ms
         FROM booking_flags WHERE workflow_id = ?1 ORDER BY at_ms, calcom_uid",
        [Id(workflow)],
        |row| {
            Ok(BookingFlag {
                workflow: codec::id(row, 0)?,
                calcom_uid: row.get(1)?,
                trigger: row.get(2)?,
                policy: row.get(3)?,
                detail: row.get(4)?,
                change_workflow: row.get::<_, Option<Id>>(5)?.map(|i| i.0),
                at: codec::time(row, 6)?,
            })
        },
    )
}

impl Store {
    /// The flags of one workflow, oldest first.
    pub fn booking_flags(&self, workflow: Uuid) -> Result<Vec<BookingFlag>, StoreError> {
        self.read(|conn| of_workflow(conn, workflow))
    }
}
