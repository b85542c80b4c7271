//! The answers of requests that start a saga (book, reschedule, hold,
//! batch items): the `Idempotency-Key` and the request's fingerprint, the
//! wait for the saga and the status it maps to (201/200 done, 409
//! compensated, 502 failed, 202 still running), and the answer stored with
//! the key so a retry gets the same answer (IETF idempotency-key draft): a
//! retry while the saga runs gets 409, the same key with another request
//! 422. Keys are remembered for 24 h (`runtime::IDEMPOTENCY_TTL`).

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::App;
use super::call::Call;
use super::calls::run;
use super::reply::{ApiError, Reply};
use super::view::{self, BookingBody};
use crate::runtime::{EngineError, Idempotency};
use crate::status::Status;
use crate::store::WriteOp;

const IDEMPOTENCY_KEY_CHARS_MAX: usize = 255;

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
        fingerprint: fingerprint(&call.head.method, call.path, &call.body),
    }))
}

/// SHA-256 of method, path and body: "the same request" for a key.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [method.as_bytes(), b"\n", path.as_bytes(), b"\n", body] {
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// The answer to a request that started (or, by its key, found) a saga.
pub fn start_answer(
    app: &App,
    started: Result<Uuid, EngineError>,
    key: Option<&Idempotency>,
    wait: Duration,
) -> Result<Reply, ApiError> {
    match (started, key) {
        (Ok(id), _) => {
            let reply = settle(app, id, wait, 201)?;
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
        Status::Compensated => failed(
            409,
            "slot_unavailable",
            format!(
                "booking {id} could not be made and nothing of it is booked: {reason}; pick another time from GET /api/v2/availability"
            ),
        ),
        Status::Failed => failed(
            502,
            "booking_failed",
            format!(
                "booking {id} stopped and needs an admin: {reason}; see GET /api/v2/workflows/{id}"
            ),
        ),
        Status::Expired => failed(
            409,
            "hold_expired",
            format!("hold {id} expired before it was confirmed; place a new hold or booking"),
        ),
        Status::Pending => Reply::json(202, &body).with_header("Location", location(id)),
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
