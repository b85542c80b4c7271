//! `calsaga workflows list`: workflows newest first, filtered by state,
//! service and creation time, as a fixed-width table or JSON lines. Reads
//! the stored rows only (no fold): `replay` is the command that checks them.
//! STATUS is what became of the booking (`crate::status`), STATE the saga's own.

use std::io::Write;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use super::AdminError;
use crate::status::{self, Status};
use crate::store::{Store, WorkflowFilter, WorkflowRow};

/// What to list. `limit` bounds the rows printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub state: Option<String>,
    pub service: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: usize,
    pub json: bool,
}

/// `--since`: an RFC 3339 instant (`2030-03-05T10:00:00Z`) or a UTC date
/// (`2030-03-05`, from its midnight).
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{text:?} is not a time; write 2030-03-05 or 2030-03-05T10:00:00Z"))
}

/// Prints the workflows `query` selects to `out`.
pub fn list(store: &Store, query: &ListQuery, out: &mut dyn Write) -> Result<(), AdminError> {
    let filter = WorkflowFilter {
        state: query.state.clone(),
        service: query.service.clone(),
        since: query.since,
        limit: query.limit,
        ..WorkflowFilter::default()
    };
    let rows = store.list_workflows(&filter)?;
    let statuses = rows
        .iter()
        .map(|row| Ok(status::read(store, row)?.0))
        .collect::<Result<Vec<Status>, AdminError>>()?;
    if query.json {
        for (row, status) in rows.iter().zip(&statuses) {
            writeln!(out, "{}", summary(row, *status))?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<36}  {:<10}  {:<24}  {:<12}  {:<12}  {:<24}  {:>6}",
        "ID", "KIND", "SERVICE", "STATUS", "STATE", "CREATED", "EVENTS"
    )?;
    for (row, status) in rows.iter().zip(&statuses) {
        writeln!(
            out,
            "{:<36}  {:<10}  {:<24}  {:<12}  {:<12}  {:<24}  {:>6}",
            row.id,
            row.kind,
            row.service,
            status.as_str(),
            row.state,
            super::timeline::time(row.created_at),
            row.next_seq
        )?;
    }
    writeln!(out, "{} workflow(s)", rows.len())?;
    Ok(())
}

fn summary(row: &WorkflowRow, status: Status) -> serde_json::Value {
    json!({
        "id": row.id,
        "kind": row.kind,
        "service": row.service,
        "status": status,
        "state": row.state,
        "createdAt": row.created_at,
        "updatedAt": row.updated_at,
        "events": row.next_seq,
    })
}
