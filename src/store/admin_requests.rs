//! The admin request queue: `calsaga workflows resume|compensate` insert a
//! row here, the engine settles it (applied, or refused with the reason) in
//! the same commit as the admin event it appends. The CLI runs beside
//! `calsaga serve`, which holds the one-process lock and owns the event log's
//! sequence numbers, so the CLI gets its own minimal write path
//! (`queue_admin_request`): one short IMMEDIATE transaction on a connection
//! of its own, waiting out the engine's writer with the busy timeout. This
//! module must never touch the event log and never decide whether a request
//! is legal (the saga does).

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};
use uuid::Uuid;

use super::codec::{self, Id, Ms, text_states};
use super::connection;
use super::log::require_workflow;
use super::schema;
use super::sql::{execute, row, rows};
use super::{Store, StoreConfig, StoreError};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRequestState {
    /// Waiting for the engine (running now, or the next `calsaga serve`).
    Pending,
    /// The engine appended the admin event.
    Applied,
    /// The saga did not accept it; `outcome` says why.
    Refused,
}

text_states!(AdminRequestState, "admin request state", {
    Pending => "pending",
    Applied => "applied",
    Refused => "refused",
});

/// A request as the CLI makes it. `action` is `resume` or `compensate`
/// (the schema refuses anything else); `reason` goes with `compensate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAdminRequest {
    pub workflow: Uuid,
    pub action: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// One stored request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRequestRow {
    pub id: i64,
    pub workflow: Uuid,
    pub action: String,
    pub reason: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub state: AdminRequestState,
    /// Why it was refused (or what was applied).
    pub outcome: Option<String>,
    pub settled_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, workflow_id, action, reason, requested_at_ms, state, outcome, settled_at_ms";

fn request_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AdminRequestRow> {
    Ok(AdminRequestRow {
        id: row.get(0)?,
        workflow: codec::id(row, 1)?,
        action: row.get(2)?,
        reason: row.get(3)?,
        requested_at: codec::time(row, 4)?,
        state: row.get(5)?,
        outcome: row.get(6)?,
        settled_at: row.get::<_, Option<Ms>>(7)?.map(|m| m.0),
    })
}

/// Queue `request` in the database at `path` without the one-process lock,
/// so it works while `calsaga serve` runs (and offline). Refuses a missing
/// file, a schema other than this build's and an unknown workflow; returns
/// the request's id once it is committed.
pub fn queue_admin_request(
    path: &Path,
    request: &NewAdminRequest,
    busy_timeout_ms: u64,
) -> Result<i64, StoreError> {
    let config = StoreConfig {
        busy_timeout_ms,
        ..StoreConfig::default()
    };
    let mut conn = connection::open_existing_writer(path, &config)?;
    let failed = |detail: String| StoreError::AdminQueue {
        path: path.display().to_string(),
        detail,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| failed(e.to_string()))?;
    schema::require_current(&tx, &path.display().to_string())?;
    let id = insert(&tx, request)?;
    tx.commit().map_err(|e| failed(e.to_string()))?;
    Ok(id)
}

fn insert(conn: &Connection, request: &NewAdminRequest) -> Result<i64, StoreError> {
    require_workflow(conn, request.workflow)?;
    execute(
        conn,
        "INSERT INTO admin_requests (workflow_id, action, reason, requested_at_ms)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            Id(request.workflow),
            request.action,
            request.reason,
            Ms(request.at)
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// `WriteOp::SettleAdminRequest`: a pending request becomes applied or refused.
pub(super) fn settle(
    conn: &Connection,
    id: i64,
    state: AdminRequestState,
    outcome: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if state == AdminRequestState::Pending {
        return Err(StoreError::Invalid {
            detail: format!("admin request {id} can only be settled as applied or refused"),
        });
    }
    let updated = execute(
        conn,
        "UPDATE admin_requests SET state = ?2, outcome = ?3, settled_at_ms = ?4
         WHERE id = ?1 AND state = 'pending'",
        params![id, state.as_str(), outcome, Ms(at)],
    )?;
    if updated == 0 {
        return Err(StoreError::AdminRequestNotPending { id });
    }
    Ok(())
}

impl Store {
    /// Pending requests, oldest first, at most `limit`.
    pub fn pending_admin_requests(&self, limit: usize) -> Result<Vec<AdminRequestRow>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM admin_requests WHERE state = 'pending' ORDER BY id LIMIT ?1"
                ),
                [limit],
                request_row,
            )
        })
    }

    /// One request, if it exists.
    pub fn admin_request(&self, id: i64) -> Result<Option<AdminRequestRow>, StoreError> {
        self.read(|conn| {
            row(
                conn,
                &format!("SELECT {COLUMNS} FROM admin_requests WHERE id = ?1"),
                [id],
                request_row,
            )
        })
    }

    /// Every request made for one workflow, oldest first.
    pub fn admin_requests_of(&self, workflow: Uuid) -> Result<Vec<AdminRequestRow>, StoreError> {
        self.read(|conn| {
            rows(
                conn,
                &format!("SELECT {COLUMNS} FROM admin_requests WHERE workflow_id = ?1 ORDER BY id"),
                [Id(workflow)],
                request_row,
            )
        })
    }
}
