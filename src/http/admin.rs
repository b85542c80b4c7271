//! Read routes: the service catalogue (any token) and, for admin tokens,
//! workflows by state and one workflow's event timeline. Read-only; admin
//! actions that change a saga (resume, compensate) are CLI commands.

use chrono::DateTime;
use serde_json::{Value, json};
use uuid::Uuid;

use super::App;
use super::call::Call;
use super::input::{self, Query};
use super::reply::{ApiError, Reply};
use super::view;
use crate::runtime::{EngineError, WorkflowView};
use crate::saga::{KINDS, STATES};
use crate::status::{self, Status};
use crate::store::{WorkflowCursor, WorkflowFilter};

const PAGE_DEFAULT: usize = 50;
const PAGE_MAX: usize = 500;

pub fn services(app: &App, _call: &Call<'_>) -> Result<Reply, ApiError> {
    let catalog = app.engine.catalog();
    let services: Vec<Value> = catalog
        .services()
        .map(|s| {
            let segments: Vec<Value> = s
                .segments
                .iter()
                .enumerate()
                .map(|(i, seg)| {
                    let hosts: Vec<Value> = seg
                        .staff
                        .iter()
                        .map(|o| {
                            json!({"host": o.host, "hostName": catalog.hosts().name(o.host),
                                   "eventTypeId": o.event_type_id})
                        })
                        .collect();
                    json!({
                        "index": i,
                        "name": seg.name,
                        "durationMin": seg.duration_min,
                        "offsetMin": s.offset_min(i),
                        "pauseAfterMin": seg.pause_after_min,
                        // `staff` is the older name of `hosts`, kept for
                        // front ends written against it.
                        "staff": hosts,
                        "hosts": hosts,
                    })
                })
                .collect();
            json!({"id": s.id, "name": s.name, "totalMin": s.total_min(), "segments": segments})
        })
        .collect();
    Ok(Reply::json(200, &json!({ "services": services })))
}

pub fn workflows(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let q = Query::parse(call.query, &["state", "kind", "limit", "cursor"])?;
    let limit = q.limit("limit", PAGE_DEFAULT, PAGE_MAX)?;
    let filter = WorkflowFilter {
        state: q.one_of("state", &STATES)?.map(str::to_string),
        kind: q.one_of("kind", &KINDS)?.map(str::to_string),
        limit,
        after: q.get("cursor").map(|c| cursor(&q, c)).transpose()?,
        ..WorkflowFilter::default()
    };
    let rows = app
        .engine
        .store()
        .list_workflows(&filter)
        .map_err(EngineError::from)?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.cursor()))
        .flatten()
        .map(|c| format!("{}.{}", c.created_at.timestamp_millis(), c.id));
    let items: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let (status, _) = status::read(app.engine.store(), &row)?;
            Ok(summary(&WorkflowView::of(row)?, status))
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Reply::json(
        200,
        &json!({ "workflows": items, "nextCursor": next }),
    ))
}

pub fn workflow(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let id = input::workflow_id(call.param(0), "workflow")?;
    let workflow = app.engine.get(id)?;
    let booking = view::booking(app, id)?;
    let events: Vec<Value> = app
        .engine
        .events(id)?
        .into_iter()
        .map(|e| {
            let data: Value = serde_json::from_str(&e.payload).unwrap_or(Value::String(e.payload));
            json!({"seq": e.seq, "at": e.at, "kind": e.kind, "data": data})
        })
        .collect();
    Ok(Reply::json(
        200,
        &json!({
            "workflow": summary(&workflow, booking.status),
            "booking": booking,
            "events": events,
        }),
    ))
}

/// `status` is what became of the booking, `state` the saga's own.
fn summary(w: &WorkflowView, status: Status) -> Value {
    json!({
        "id": w.id,
        "kind": w.kind,
        "service": w.service,
        "status": status,
        "state": w.state,
        "terminal": w.terminal,
        "reason": w.reason,
        "createdAt": w.created_at,
        "updatedAt": w.updated_at,
    })
}

fn cursor(q: &Query, raw: &str) -> Result<WorkflowCursor, ApiError> {
    raw.split_once('.')
        .and_then(|(ms, id)| {
            Some(WorkflowCursor {
                created_at: DateTime::from_timestamp_millis(ms.parse().ok()?)?,
                id: Uuid::parse_str(id).ok()?,
            })
        })
        .ok_or_else(|| {
            q.invalid(
                "cursor",
                "is not a cursor from a previous page; start without one",
            )
        })
}
