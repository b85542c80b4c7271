//! The booking routes: create (Idempotency-Key required), show (with an
//! ETag long-poll), list by appointment time, reschedule (Idempotency-Key
//! required) and cancel (safe to repeat), and the one parser of a booking
//! request. A create or reschedule starts a saga through the engine, which
//! stores the key, the request's fingerprint and the saga in one
//! transaction; `outcome.rs` waits for it and answers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::App;
use super::call::Call;
use super::calls::{self, run};
use super::input::{self, Fields, Query, json_object};
use super::outcome::{idempotency, location, start_answer};
use super::reply::{ApiError, Reply};
use super::view::{self, BookingBody};
use crate::catalog::Hosts;
use crate::runtime::{BookRequest, EngineError, MoveRequest};
use crate::saga::Attendee;
use crate::status::Status;
use crate::store::{BookingCursor, BookingQuery};

/// The fields of a booking request (holds add `holdMinutes`).
pub const BOOKING_FIELDS: &[&str] = &[
    "service", "start", "timeZone", "attendee", "host", "hosts", "notes",
];
const NOTES_CHARS_MAX: usize = 2_000;
const NAME_CHARS_MAX: usize = 200;
const REASON_CHARS_MAX: usize = 500;
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
    start_answer(app, started, Some(&key), calls::wait(call))
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
        let settled = body.status != Status::Pending && body.change_in_progress.is_none();
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
    let names = Status::ALL.map(Status::as_str);
    let status = q
        .one_of("status", &names)?
        .and_then(|s| Status::ALL.into_iter().find(|known| known.as_str() == s));
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
            if status.is_none_or(|s| s == body.status) {
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
    let f = Fields::new(&body, "", &["start", "host", "hosts"])?;
    let hosts = app.engine.catalog().hosts();
    let to = MoveRequest {
        start: f.instant("start")?,
        host: host(&f, "host", hosts)?,
        segment_hosts: segment_hosts(&f, hosts)?,
    };
    let started = run(app, app.engine.reschedule(of, to, Some(key.clone())));
    start_answer(app, started, Some(&key), calls::wait(call))
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
    if before.status == Status::Cancelled {
        return Ok(Reply::json(200, &before));
    }
    let reason = reason.unwrap_or_else(|| "cancelled through the calsaga API".into());
    let change = run(app, app.engine.cancel(of, reason))?;
    let done = run(app, app.engine.wait(change, calls::wait(call)))?;
    let body = view::booking(app, of)?;
    Ok(if done.terminal {
        Reply::json(200, &body)
    } else {
        Reply::json(202, &body).with_header("Location", location(of))
    })
}

/// A booking request's fields, checked against the catalogue.
pub fn parse_booking(app: &App, f: &Fields<'_>) -> Result<BookRequest, ApiError> {
    let service = f.string("service")?;
    // Before the other fields, so a batch refuses an unknown service
    // before it starts anything.
    app.engine.service(service)?;
    let catalog = app.engine.catalog();
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
        host: host(f, "host", catalog.hosts())?,
        segment_hosts: segment_hosts(f, catalog.hosts())?,
        notes: f.bounded("notes", NOTES_CHARS_MAX)?.map(str::to_string),
    })
}

/// `host`: a Cal.com user id, or a host's name as the catalogue has it.
fn host(f: &Fields<'_>, key: &str, hosts: &Hosts) -> Result<Option<u64>, ApiError> {
    f.opt_value(key)
        .map(|v| one_host(f, key, hosts, v, "a host id or name, e.g. 3 or \"Chloe\""))
        .transpose()
}

fn one_host(
    f: &Fields<'_>,
    key: &str,
    hosts: &Hosts,
    v: &Value,
    expected: &str,
) -> Result<u64, ApiError> {
    match v {
        Value::String(name) => hosts.resolve(name).map_err(|e| f.invalid(key, e)),
        v => v.as_u64().ok_or_else(|| f.wrong(key, expected)),
    }
}

/// `hosts`: `{"<segment index>": <host id or name>}`.
fn segment_hosts(f: &Fields<'_>, hosts: &Hosts) -> Result<BTreeMap<u16, u64>, ApiError> {
    let Some(value) = f.opt_value("hosts") else {
        return Ok(BTreeMap::new());
    };
    let expected =
        "an object of segment index to host id or name, e.g. {\"1\": 3} or {\"1\": \"Chloe\"}";
    let map = value
        .as_object()
        .ok_or_else(|| f.wrong("hosts", expected))?;
    map.iter()
        .map(|(k, v)| {
            let segment = k.parse::<u16>().map_err(|_| f.wrong("hosts", expected))?;
            Ok((segment, one_host(f, "hosts", hosts, v, expected)?))
        })
        .collect()
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
