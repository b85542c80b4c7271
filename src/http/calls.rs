//! Handlers' way into the engine: running its async calls from a worker
//! thread, how long a request may wait for its saga (`Prefer: wait=N`), and
//! the one mapping from `EngineError` to an HTTP status and code. It never
//! builds a success body (view.rs does).

use std::future::Future;
use std::time::Duration;

use serde_json::json;

use super::App;
use super::call::Call;
use super::reply::ApiError;
use crate::runtime::EngineError;
use crate::saga::PlanError;
use crate::status::StatusError;

/// How long a request waits for its saga without `Prefer: wait=N`.
pub const WAIT_DEFAULT: Duration = Duration::from_secs(10);
/// The longest wait a client may ask for.
pub const WAIT_MAX: Duration = Duration::from_secs(30);

/// Runs an engine call to completion on the engine's runtime.
pub fn run<T>(app: &App, call: impl Future<Output = T>) -> T {
    app.runtime.block_on(call)
}

/// The wait the client prefers (RFC 7240 `wait=N`, `respond-async` for
/// none), capped at `WAIT_MAX`. Preferences we do not know are ignored,
/// as the RFC asks.
pub fn wait(call: &Call<'_>) -> Duration {
    let Some(prefer) = call.header("prefer") else {
        return WAIT_DEFAULT;
    };
    let mut wait = WAIT_DEFAULT;
    for token in prefer.split([',', ';']).map(str::trim) {
        if token.eq_ignore_ascii_case("respond-async") {
            wait = Duration::ZERO;
        } else if let Some(("wait", secs)) =
            token.split_once('=').map(|(k, v)| (k.trim(), v.trim()))
            && let Ok(secs) = secs.parse::<u64>()
        {
            wait = Duration::from_secs(secs);
        }
    }
    wait.min(WAIT_MAX)
}

impl From<StatusError> for ApiError {
    fn from(e: StatusError) -> ApiError {
        match e {
            StatusError::Store(e) => EngineError::from(e).into(),
            e @ StatusError::Projection { .. } => ApiError::internal(e.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let message = e.to_string();
        if e.is_slot_taken() {
            return ApiError::conflict("slot_unavailable", message);
        }
        match e {
            EngineError::UnknownService { id, known } => ApiError::new(
                422,
                "unknown_service",
                format!("unknown service {id:?}; use one of: {known} (GET /api/v2/services)"),
            )
            .details(json!({ "field": "service", "known": known.split(", ").collect::<Vec<_>>() })),
            EngineError::Plan(p, _) => plan_error(&p, message),
            EngineError::UnknownWorkflow { id } => ApiError::not_found(format!(
                "there is no booking or workflow {id}; check the id returned when it was created"
            )),
            EngineError::Illegal { .. } | EngineError::Transition(_) => {
                ApiError::conflict("invalid_state", message)
            }
            EngineError::ChangeInProgress { .. } => {
                ApiError::conflict("change_in_progress", message)
            }
            EngineError::KeyUsed {
                same_request: true, ..
            } => ApiError::conflict(
                "request_in_progress",
                format!("{message}; that request is still running, retry later with the same key"),
            ),
            EngineError::KeyUsed { .. } => ApiError::new(
                422,
                "idempotency_key_reused",
                format!(
                    "{message} with a different request; send a new Idempotency-Key for a new request"
                ),
            ),
            EngineError::Stopped(_) => ApiError::unavailable(message),
            EngineError::Store(_) => ApiError::unavailable(format!(
                "{message}; nothing new was stored, retry with the same Idempotency-Key"
            )),
            EngineError::SlotTaken(_)
            | EngineError::CorruptLog { .. }
            | EngineError::Advance(_) => ApiError::internal(message),
        }
    }
}

fn plan_error(p: &PlanError, message: String) -> ApiError {
    let (code, field) = match p {
        PlanError::StartInPast { .. } => ("start_in_past", "start"),
        PlanError::StartNotAligned { .. } => ("start_not_aligned", "start"),
        PlanError::StartOutOfRange { .. } => ("start_out_of_range", "start"),
        PlanError::NoSuchSegment { .. } => ("no_such_segment", "hosts"),
        PlanError::UnknownHost { .. } | PlanError::HostNotAllowed { .. } => {
            ("host_not_allowed", "host")
        }
        PlanError::HostBusy { .. } | PlanError::NoFreeHost { .. } => {
            return ApiError::conflict("slot_unavailable", message);
        }
    };
    ApiError::new(422, code, message).details(json!({ "field": field }))
}
