//! The admin CLI's library: `calsaga workflows list|show|replay|resume|
//! compensate|export` on the database file, while `calsaga serve` runs or
//! offline. Everything here reads through `Store::open_read_only` (no lock,
//! no writer, no migration, SQLite's read-only mode), so even `replay` on a
//! copy of a production database changes nothing. The one write is
//! `resume`/`compensate` queueing a request (`request.rs`) for the engine to
//! apply; this module never appends to the event log and never calls
//! Cal.com. Files: `mod.rs` opening and errors, `list.rs` the table,
//! `timeline.rs` one workflow's events, `replay.rs` fold and compare (I7),
//! `export.rs` JSON lines, `request.rs` resume and compensate.

mod export;
mod list;
mod replay;
mod request;
mod timeline;

use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::saga::{Event, Saga, fold};
use crate::store::{EventRow, LIST_ROWS_MAX, Store, StoreError, WorkflowFilter, WorkflowRow};

pub use export::{Record, export};
pub use list::{ListQuery, list, parse_since};
pub use replay::{ReplayReport, replay, replay_file, replay_log};
pub use request::{RequestOptions, RequestOutcome, request};
pub use timeline::{TimelineRow, show};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "there is no database at {path}; pass --db (or set CALSAGA_DB) to the file `calsaga serve` uses"
    )]
    NoDatabase { path: PathBuf },

    #[error(
        "{path} is not a readable calsaga database (SQLite: {detail}); check the path; if it is calsaga's file it is damaged: stop calsaga and restore a backup. Nothing was changed"
    )]
    NotADatabase { path: PathBuf, detail: String },

    #[error(
        "{path} fails SQLite's integrity check ({problems}); nothing was changed; stop calsaga and restore a backup"
    )]
    Integrity { path: PathBuf, problems: String },

    #[error(
        "workflow {id} does not exist in {path}; list the workflows with `calsaga workflows list`"
    )]
    UnknownWorkflow { id: Uuid, path: PathBuf },

    #[error(
        "workflow {id}'s log cannot be read by this calsaga: {detail}; run `calsaga workflows replay {id}` and report it with `calsaga workflows export {id}`"
    )]
    UnreadableLog { id: Uuid, detail: String },

    #[error("{reason}; nothing was queued")]
    Refused { reason: String },

    #[error("the engine refused request {request}: {reason}")]
    RefusedByEngine { request: i64, reason: String },

    #[error(
        "replay found differences in {workflows} workflow(s) (listed above): their stored state does not match their log; keep the file and report it with `calsaga workflows export`"
    )]
    ReplayDiffers { workflows: usize },

    #[error("{path}: line {line}: {detail}; give a file written by `calsaga workflows export`")]
    BadExport {
        path: PathBuf,
        line: usize,
        detail: String,
    },

    #[error("writing the output failed: {0}")]
    Output(#[from] std::io::Error),

    #[error(transparent)]
    Store(#[from] StoreError),

    #[error(transparent)]
    Status(#[from] crate::status::StatusError),
}

/// The database at `path`, read-only. A missing file, a file that is not a
/// calsaga database and one from a newer calsaga are refused with a message
/// that says so; nothing is created or changed.
pub fn open(path: &Path) -> Result<Store, AdminError> {
    if !path.is_file() {
        return Err(AdminError::NoDatabase {
            path: path.to_path_buf(),
        });
    }
    Store::open_read_only(path).map_err(|e| match e {
        StoreError::Open { detail, .. } => AdminError::NotADatabase {
            path: path.to_path_buf(),
            detail,
        },
        other => AdminError::Store(other),
    })
}

/// `open`, then SQLite's full integrity check: for commands whose answer
/// must be trusted (replay, export) or that queue a write.
pub fn open_checked(path: &Path) -> Result<Store, AdminError> {
    let store = open(path)?;
    let report = store
        .integrity_check()
        .map_err(|e| AdminError::NotADatabase {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if report != "ok" {
        let problems: Vec<&str> = report.lines().take(3).collect();
        return Err(AdminError::Integrity {
            path: path.to_path_buf(),
            problems: problems.join("; "),
        });
    }
    Ok(store)
}

/// One workflow's row and its stored events.
pub(crate) fn workflow(
    store: &Store,
    id: Uuid,
) -> Result<(WorkflowRow, Vec<EventRow>), AdminError> {
    let row = store
        .workflow(id)?
        .ok_or_else(|| AdminError::UnknownWorkflow {
            id,
            path: store.path().to_path_buf(),
        })?;
    let events = store.events(id)?;
    Ok((row, events))
}

/// The events of a log, parsed.
pub(crate) fn parse_events(events: &[EventRow]) -> Result<Vec<Event>, String> {
    events
        .iter()
        .map(|e| {
            serde_json::from_str::<Event>(&e.payload)
                .map_err(|err| format!("event {} ({}) does not parse: {err}", e.seq, e.kind))
        })
        .collect()
}

/// The saga folded from its log with today's code.
pub(crate) fn fold_log(id: Uuid, events: &[EventRow]) -> Result<Saga, AdminError> {
    let unreadable = |detail: String| AdminError::UnreadableLog { id, detail };
    let parsed = parse_events(events).map_err(unreadable)?;
    fold(&parsed).map_err(|e| unreadable(e.to_string()))
}

/// Every workflow matching `filter`, newest first, page by page (each page
/// bounded by `LIST_ROWS_MAX`), handed to `each` one at a time.
pub(crate) fn each_workflow(
    store: &Store,
    filter: &WorkflowFilter,
    mut each: impl FnMut(WorkflowRow) -> Result<(), AdminError>,
) -> Result<(), AdminError> {
    let mut page = WorkflowFilter {
        limit: LIST_ROWS_MAX,
        ..filter.clone()
    };
    loop {
        let rows = store.list_workflows(&page)?;
        let full = rows.len() == LIST_ROWS_MAX;
        page.after = rows.last().map(WorkflowRow::cursor);
        rows.into_iter().try_for_each(&mut each)?;
        if !full {
            return Ok(());
        }
    }
}
