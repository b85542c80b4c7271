//! The booking routes: create (Idempotency-Key required), show, list by
//! appointment time, reschedule (Idempotency-Key required) and cancel.
//! A create or reschedule starts a saga through the engine, which stores
//! the key, the request's fingerprint and the saga in one transaction, then
//! waits for the saga up to the client's `Prefer: wait=N`. The final answer
//! is stored with the key, so a retry gets the same answer (IETF
//! idempotency-key draft); a retry while the saga runs gets 409, a
//! different request with the same key 422. Keys expire after 24 h.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::App;
use super::calls::{self, run};
use super::input::{self, Fields, Query, json_object};
use super::reply::{ApiError, Reply};
use super::router::Call;
use super::view::{self, BookingBody, STATUSES};
use crate::runtime::{BookRequest, EngineError, Idempotency};
use crate::saga::Attendee;
use crate::store::{BookingCursor, BookingQuery, WriteOp};

/// The fields of a booking request (holds add `holdMinutes`).
pub const BOOKING_FIELDS: &[&str] = &[
    "service", "start", "timeZone", "attendee", "host", "hosts", "notes",
];
const NOTES_CHARS_MAX: usize = 2_000;
const NAME_CHARS_MAX: usize = 200;
const REASON_CHARS_MAX: usize = 500;
const IDEMPOTENCY_KEY_CHARS_MAX: usize = 255;
/// Bookings per page unless `limit` says otherwise, and the most.
const PAGE_DEFAULT: usize = 20;
const PAGE_MAX: usize = 100;
/// Workflows looked at for one page when a status filter skips most.
const LIST_SCAN_MAX: usize = 1_000;

pub fn create(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let key = idempotency(call)?;
    let body = json_object(&call.body)?;
    let request = parse_booking(app, &Fields::new(&body, "", BOOKING_FIELDS)?)?;
    let started = run(app, app.engine.book(request, Some(key.clone())));
    start_answer(app, call, started, Some(&key))
}

/// Answers with an `ETag`. Long-polling with `Prefer: wait=N`: with
/// `If-None-Match` it answers once the booking differs from that tag (304
/// if it still does not after N seconds), without it once the booking has
/// settled (not pending, no change of it running).
pub fn show(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let id = input::workflow_id(call.param(0), "booking")?;
    let wait = call.header("prefer").map(|_| calls::wait(call));
    let seen = call
        .header("if-none-match")
        .map(|t| t.trim_start_matches("W/").trim_matches('"').to_string());
    let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
    // Subscribed before reading, so no change between the two is missed.
    let mut changes = app.engine.changes();
    loop {
        let body = view::booking(app, id)?;
        let reply = Reply::json(200, &body);
        let tag = etag(&reply.body);
        let unchanged = seen.as_deref() == Some(tag.as_str());
        let settled = body.status != "pending" && body.change_in_progress.is_none();
        let ready = match (&seen, wait) {
            (Some(_), _) => !unchanged,
            (None, Some(_)) => settled,
            (None, None) => true,
        };
        let timed_out = ready
            || run(app, async {
                tokio::time::timeout_at(deadline, changes.changed()).await
            })
            .map_or(true, |r| r.is_err());
        if ready || timed_out {
            let reply = if unchanged {
                Reply::raw_json(304, Vec::new())
            } else {
                reply
            };
            return Ok(reply.with_header("ETag", format!("\"{tag}\"")));
        }
    }
}

/// A strong tag of one answer body.
fn etag(body: &[u8]) -> String {
    hex::encode(&Sha256::digest(body)[..16])
}

pub fn list(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let q = Query::parse(call.query, &["status", "from", "to", "limit", "cursor"])?;
    let status = q
        .get("status")
        .map(|s| {
            STATUSES.iter().find(|known| **known == s).ok_or_else(|| {
                q.invalid(
                    "status",
                    format!("{s:?} is not a status; use one of {}", STATUSES.join(", ")),
                )
            })
        })
        .transpose()?;
    let limit = q.limit("limit", PAGE_DEFAULT, PAGE_MAX)?;
    let from = q.get("from").map(|v| bound(&q, "from", v)).transpose()?;
    let to = q.get("to").map(|v| bound(&q, "to", v)).transpose()?;
    let mut position = q.get("cursor").map(|c| cursor(&q, c)).transpose()?;
    let mut items: Vec<BookingBody> = Vec::new();
    let mut scanned = 0;
    let mut more = true;
    while more && items.len() < limit && scanned < LIST_SCAN_MAX {
        let page = BookingQuery {
            from,
            to,
            after: position,
            limit,
        };
        let rows = app
            .engine
            .store()
            .list_bookings(&page)
            .map_err(EngineError::from)?;
        more = rows.len() == limit;
        let count = rows.len();
        for (i, row) in rows.into_iter().enumerate() {
            scanned += 1;
            position = Some(row.cursor());
            let body = view::present(app, view::parse(row.workflow)?)?;
            if status.is_none_or(|s| *s == body.status) {
                items.push(body);
            }
            if items.len() == limit {
                more = more || i + 1 < count;
                break;
            }
        }
    }
    let next_cursor = position
        .filter(|_| more)
        .map(|c| format!("{}.{}", c.start.timestamp_millis(), c.id));
    Ok(Reply::json(
        200,
        &json!({ "bookings": items, "nextCursor": next_cursor }),
    ))
}

pub fn reschedule(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let of = input::workflow_id(call.param(0), "booking")?;
    let key = idempotency(call)?;
    let body = json_object(&call.body)?;
    let f = Fields::new(&body, "", &["start", "host"])?;
    let start = f.instant("start")?;
    let host = f.opt_u64("host")?;
    let started = run(
        app,
        app.engine.reschedule(of, start, host, Some(key.clone())),
    );
    start_answer(app, call, started, Some(&key))
}

pub fn cancel(app: &App, call: &Call<'_>) -> Result<Reply, ApiError> {
    let of = input::workflow_id(call.param(0), "booking")?;
    let reason = if call.body.is_empty() {
        None
    } else {
        let body = json_object(&call.body)?;
        let f = Fields::new(&body, "", &["reason"])?;
        f.bounded("reason", REASON_CHARS_MAX)?.map(str::to_string)
    };
    let before = view::booking(app, of)?;
    if before.status == "cancelled" {
        return Ok(Reply::json(200, &before));
    }
    let reason = reason.unwrap_or_else(|| "cancelled through the calsaga API".into());
    let change = run(app, app.engine.cancel(of, reason))?;
    app.bookings_changed();
    let done = run(app, app.engine.wait(change, calls::wait(call)))?;
    let body = view::booking(app, of)?;
    Ok(if done.terminal {
        Reply::json(200, &body)
    } else {
        Reply::json(202, &body).with_header("Location", location(of))
    })
}

/// The required `Idempotency-Key` with the fingerprint of this request.
pub fn idempotency(call: &Call<'_>) -> Result<Idempotency, ApiError> {
    optional_idempotency(call)?.ok_or_else(|| {
        ApiError::bad_request(
            "the Idempotency-Key header is missing; send a fresh unique value (e.g. a UUID) per booking and repeat it on retries",
        )
        .details(json!({ "field": "Idempotency-Key" }))
    })
}

/// The `Idempotency-Key`, if sent, with the fingerprint of this request.
pub fn optional_idempotency(call: &Call<'_>) -> Result<Option<Idempotency>, ApiError> {
    let Some(raw) = call.header("idempotency-key") else {
        return Ok(None);
    };
    let key = raw.trim().trim_matches('"');
    if key.is_empty()
        || key.len() > IDEMPOTENCY_KEY_CHARS_MAX
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::bad_request(format!(
            "the Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_CHARS_MAX} visible ASCII characters; send e.g. a UUID"
        ))
        .details(json!({ "field": "Idempotency-Key" })));
    }
    Ok(Some(Idempotency {
        key: key.to_string(),
        fingerprint: fingerprint(call),
    }))
}

/// SHA-256 of method, path and body: "the same request" for a key.
fn fingerprint(call: &Call<'_>) -> String {
    let mut h = Sha256::new();
    h.update(call.head.method.as_bytes());
    h.update(b"\n");
    h.update(call.path.as_bytes());
    h.update(b"\n");
    h.update(&call.body);
    hex::encode(h.finalize())
}

/// A booking request's fields, checked against the catalogue.
pub fn parse_booking(app: &App, f: &Fields<'_>) -> Result<BookRequest, ApiError> {
    let service = f.string("service")?;
    let catalog = app.engine.catalog();
    if catalog.get(service).is_none() {
        return Err(EngineError::UnknownService {
            id: service.to_string(),
            known: catalog.ids().join(", "),
        }
        .into());
    }
    let start = f.instant("start")?;
    let time_zone = f.time_zone("timeZone")?;
    let a = f.object("attendee", &["name", "email", "phone"])?;
    let name = a.string("name")?;
    if name.chars().count() > NAME_CHARS_MAX {
        return Err(a.invalid(
            "name",
            format!("is longer than {NAME_CHARS_MAX} characters"),
        ));
    }
    let email = a.string("email")?;
    input::email(email).map_err(|m| a.invalid("email", m))?;
    let phone = a.opt_string("phone")?;
    if let Some(p) = phone {
        input::phone(p).map_err(|m| a.invalid("phone", m))?;
    }
    Ok(BookRequest {
        service: service.to_string(),
        start,
        attendee: Attendee {
            name: name.trim().to_string(),
            email: Some(email.to_string()),
            phone: phone.map(str::to_string),
            time_zone: time_zone.name().to_string(),
        },
        host: f.opt_u64("host")?,
        segment_hosts: segment_hosts(f)?,
        notes: f.bounded("notes", NOTES_CHARS_MAX)?.map(str::to_string),
    })
}

/// `hosts`: `{"<segment index>": <host id>}`.
fn segment_hosts(f: &Fields<'_>) -> Result<BTreeMap<u16, u64>, ApiError> {
    let Some(value) = f.opt_value("hosts") else {
        return Ok(BTreeMap::new());
    };
    let expected = "an object of segment index to host id, e.g. {\"1\": 3}";
    let map = value
        .as_object()
        .ok_or_else(|| f.wrong("hosts", expected))?;
    map.iter()
        .map(|(k, v)| match (k.parse::<u16>(), v.as_u64()) {
            (Ok(segment), Some(host)) => Ok((segment, host)),
            _ => Err(f.wrong("hosts", expected)),
        })
        .collect()
}

/// The answer to a request that started (or, by its key, found) a saga.
pub fn start_answer(
    app: &App,
    call: &Call<'_>,
    started: Result<Uuid, EngineError>,
    key: Option<&Idempotency>,
) -> Result<Reply, ApiError> {
    let started = match (started, key) {
        (Err(e), Some(key)) if e.is_slot_taken() => key_holder(app, key)?.map_or(Err(e), Err),
        (started, _) => started,
    };
    match (started, key) {
        (Ok(id), _) => {
            app.bookings_changed();
            let reply = settle(app, id, calls::wait(call), 201)?;
            if let Some(key) = key {
                remember(app, &key.key, &reply);
            }
            Ok(reply)
        }
        (
            Err(EngineError::KeyUsed {
                workflow,
                same_request: true,
                ..
            }),
            Some(key),
        ) => replay(app, workflow, &key.key),
        (Err(e), _) => Err(e.into()),
    }
}

/// A concurrent request with the same key may have taken the slot between
/// the key check and the plan: then the key, not the slot, decides.
fn key_holder(app: &App, key: &Idempotency) -> Result<Option<EngineError>, ApiError> {
    let now = app.clock.now();
    Ok(app
        .engine
        .store()
        .idempotency_key(&key.key)
        .map_err(EngineError::from)?
        .filter(|row| !row.is_expired(now))
        .map(|row| EngineError::KeyUsed {
            same_request: row.fingerprint == key.fingerprint,
            key: row.key,
            workflow: row.workflow,
        }))
}

/// Waits up to `wait` for saga `id` and answers with what it is then:
/// `done` (201/200) once booked or held, 409 when compensated, 202 while
/// it runs.
pub fn settle(app: &App, id: Uuid, wait: Duration, done: u16) -> Result<Reply, ApiError> {
    run(app, app.engine.wait(id, wait))?;
    Ok(answer(view::booking(app, id)?, done))
}

fn answer(body: BookingBody, done: u16) -> Reply {
    let id = body.id;
    let failed = |status: u16, code: &'static str, message: String| -> Reply {
        ApiError::new(status, code, message)
            .details(json!({ "booking": body }))
            .into()
    };
    let reason = body.reason.clone().unwrap_or_default();
    match body.status {
        "compensated" => failed(
            409,
            "slot_unavailable",
            format!(
                "booking {id} could not be made and nothing of it is booked: {reason}; pick another time from GET /api/v2/availability"
            ),
        ),
        "failed" => failed(
            502,
            "booking_failed",
            format!(
                "booking {id} stopped and needs an admin: {reason}; see GET /api/v2/workflows/{id}"
            ),
        ),
        "expired" => failed(
            409,
            "hold_expired",
            format!("hold {id} expired before it was confirmed; place a new hold or booking"),
        ),
        "pending" => Reply::json(202, &body).with_header("Location", location(id)),
        _ => Reply::json(done, &body).with_header("Location", location(id)),
    }
}

pub fn location(id: Uuid) -> String {
    format!("/api/v2/bookings/{id}")
}

/// Stores a final answer with its key so retries replay it.
fn remember(app: &App, key: &str, reply: &Reply) {
    if reply.status == 202 {
        return;
    }
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let stored =
        json!({ "status": reply.status, "location": reply.header("location"), "body": body });
    let op = WriteOp::SetIdempotencyResponse {
        key: key.to_string(),
        response: stored.to_string(),
    };
    if let Err(e) = run(app, app.engine.store().commit(vec![op])) {
        tracing::warn!(error = %e, "the answer of an Idempotency-Key was not stored; a retry rebuilds it");
    }
}

/// A retry of a request whose key is known: the stored answer, or 409
/// while its saga still runs.
fn replay(app: &App, workflow: Uuid, key: &str) -> Result<Reply, ApiError> {
    let stored = app
        .engine
        .store()
        .idempotency_key(key)
        .map_err(EngineError::from)?
        .and_then(|row| row.response)
        .and_then(|r| serde_json::from_str::<Value>(&r).ok());
    let reply = match stored {
        Some(stored) => stored_reply(&stored),
        None => {
            let view = app.engine.get(workflow)?;
            if !view.terminal && view.state != "held" {
                return Err(ApiError::conflict(
                    "request_in_progress",
                    format!(
                        "the request with this Idempotency-Key is still running (workflow {workflow}); retry later with the same key or GET {}",
                        location(workflow)
                    ),
                )
                .with_header("Location", location(workflow))
                .with_header("Retry-After", "1"));
            }
            let reply = answer(view::booking(app, workflow)?, 201);
            remember(app, key, &reply);
            reply
        }
    };
    Ok(reply.with_header("Idempotent-Replayed", "true"))
}

fn stored_reply(stored: &Value) -> Reply {
    let status = stored["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(200);
    let reply = Reply::raw_json(status, stored["body"].to_string());
    match stored["location"].as_str() {
        Some(l) => reply.with_header("Location", l),
        None => reply,
    }
}

/// `from`/`to`: an RFC 3339 instant, or a date (midnight UTC).
fn bound(q: &Query, key: &str, v: &str) -> Result<DateTime<Utc>, ApiError> {
    input::instant(v)
        .or_else(|_| input::date(v).map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc()))
        .map_err(|_| {
            q.invalid(
                key,
                format!("{v:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"),
            )
        })
}

fn cursor(q: &Query, raw: &str) -> Result<BookingCursor, ApiError> {
    raw.split_once('.')
        .and_then(|(ms, id)| {
            Some(BookingCursor {
                start: DateTime::from_timestamp_millis(ms.parse().ok()?)?,
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
