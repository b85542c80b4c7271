//! `calsaga workflows export --format jsonl`: workflows as JSON lines for
//! support and audits. Per workflow: one `workflow` record (the stored row
//! with its projection), its `event` records in order, then its
//! `admin_request` records. The format is append-only like the log itself
//! (records and fields are only ever added), because exported files are kept
//! and replayed by later versions (`replay --file`, `fixtures/logs/`).
//! Reads only.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{AdminError, each_workflow, open_checked, workflow};
use crate::store::{AdminRequestRow, EventRow, WorkflowFilter, WorkflowRow};

/// Exported files are read whole; a support bundle is far below this.
const EXPORT_FILE_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Record {
    Workflow {
        id: Uuid,
        kind: String,
        service: String,
        state: String,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
        next_seq: u64,
        projection: Value,
    },
    Event {
        workflow: Uuid,
        seq: u64,
        at: DateTime<Utc>,
        kind: String,
        data: Value,
    },
    AdminRequest {
        workflow: Uuid,
        id: i64,
        action: String,
        #[serde(default)]
        reason: Option<String>,
        requested_at: DateTime<Utc>,
        state: String,
        #[serde(default)]
        outcome: Option<String>,
        #[serde(default)]
        settled_at: Option<DateTime<Utc>>,
    },
}

/// Writes one workflow (`Some(id)`) or every workflow of the database at
/// `db` to `out`, oldest-created last (the listing order).
pub fn export(db: &Path, id: Option<Uuid>, out: &mut dyn Write) -> Result<(), AdminError> {
    let store = open_checked(db)?;
    let mut one = |row: WorkflowRow| -> Result<(), AdminError> {
        let events = store.events(row.id)?;
        let requests = store.admin_requests_of(row.id)?;
        for record in records(row, &events, &requests) {
            writeln!(
                out,
                "{}",
                serde_json::to_string(&record).map_err(json_error)?
            )?;
        }
        Ok(())
    };
    match id {
        Some(id) => one(workflow(&store, id)?.0),
        None => each_workflow(&store, &WorkflowFilter::default(), one),
    }
}

fn json_error(e: serde_json::Error) -> AdminError {
    AdminError::Output(std::io::Error::other(e))
}

/// Text columns that hold JSON, as JSON (the schema checks them with json_valid).
fn json_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn records(row: WorkflowRow, events: &[EventRow], requests: &[AdminRequestRow]) -> Vec<Record> {
    let id = row.id;
    let mut out = vec![Record::Workflow {
        id,
        kind: row.kind,
        service: row.service,
        state: row.state,
        created_at: row.created_at,
        updated_at: row.updated_at,
        next_seq: row.next_seq,
        projection: json_text(&row.projection),
    }];
    out.extend(events.iter().map(|e| Record::Event {
        workflow: id,
        seq: e.seq,
        at: e.at,
        kind: e.kind.clone(),
        data: json_text(&e.payload),
    }));
    out.extend(requests.iter().map(|q| Record::AdminRequest {
        workflow: id,
        id: q.id,
        action: q.action.clone(),
        reason: q.reason.clone(),
        requested_at: q.requested_at,
        state: q.state.as_str().to_string(),
        outcome: q.outcome.clone(),
        settled_at: q.settled_at,
    }));
    out
}

/// The workflows of an export, each with its events, in file order.
/// Admin requests are not part of the fold and are skipped.
pub(super) fn records_to_logs(
    records: Vec<Record>,
) -> Result<Vec<(WorkflowRow, Vec<EventRow>)>, String> {
    let mut logs: Vec<(WorkflowRow, Vec<EventRow>)> = Vec::new();
    for record in records {
        match record {
            Record::Workflow {
                id,
                kind,
                service,
                state,
                created_at,
                updated_at,
                next_seq,
                projection,
            } => logs.push((
                WorkflowRow {
                    id,
                    kind,
                    service,
                    state,
                    created_at,
                    updated_at,
                    projection: projection.to_string(),
                    next_seq,
                },
                Vec::new(),
            )),
            Record::Event {
                workflow,
                seq,
                at,
                kind,
                data,
            } => match logs.last_mut() {
                Some((row, events)) if row.id == workflow => events.push(EventRow {
                    seq,
                    at,
                    kind,
                    payload: data.to_string(),
                }),
                _ => {
                    return Err(format!(
                        "event {seq} of workflow {workflow} does not follow its workflow record"
                    ));
                }
            },
            Record::AdminRequest { .. } => {}
        }
    }
    Ok(logs)
}

/// Reads and parses an export file.
pub(super) fn read_file(path: &Path) -> Result<Vec<(WorkflowRow, Vec<EventRow>)>, AdminError> {
    let bad = |line: usize, detail: String| AdminError::BadExport {
        path: path.to_path_buf(),
        line,
        detail,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| bad(0, e.to_string()))?
        .len();
    if size > EXPORT_FILE_BYTES_MAX {
        return Err(bad(
            0,
            format!(
                "the file has {size} bytes, more than {EXPORT_FILE_BYTES_MAX}; export fewer workflows"
            ),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(0, e.to_string()))?;
    let records = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str::<Record>(l).map_err(|e| bad(i + 1, e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    records_to_logs(records).map_err(|detail| bad(0, detail))
}
