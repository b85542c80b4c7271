//! `calsaga workflows resume|compensate`: check the request against the
//! saga folded from its log (the saga's own rules, on a copy) and refuse an
//! illegal one at once, writing nothing; otherwise queue it in
//! `admin_requests` for the engine, which applies it (running now, or at the
//! next start), and wait a bounded time to say what became of it. This file
//! never appends to the log: only the engine does.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{AdminError, fold_log, open_checked, workflow};
use crate::runtime::AdminAction;
use crate::store::{AdminRequestState, Store, queue_admin_request};

/// How often the request row is looked at while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOptions {
    /// How long to wait for a running engine to apply the request.
    pub wait: Duration,
    /// How long queueing waits for the engine's writer to let go of the file.
    pub busy_timeout_ms: u64,
}

/// What became of a queued request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The engine appended the admin event; what it said.
    Applied(String),
    /// No engine took it within the wait; the next `calsaga serve` will.
    Queued,
}

/// Checks `action` for workflow `id` in the database at `db`, queues it and
/// waits up to `options.wait`, printing the result to `out`. An illegal
/// action is `Refused` (nothing written); a refusal by the engine (the saga
/// changed meanwhile) is `RefusedByEngine`.
pub fn request(
    db: &Path,
    id: Uuid,
    action: &AdminAction,
    options: &RequestOptions,
    out: &mut dyn Write,
) -> Result<RequestOutcome, AdminError> {
    let store = open_checked(db)?;
    let (_, events) = workflow(&store, id)?;
    let saga = fold_log(id, &events)?;
    action
        .check(&saga)
        .map_err(|reason| AdminError::Refused { reason })?;
    if let Some(pending) = store
        .admin_requests_of(id)?
        .into_iter()
        .find(|q| q.state == AdminRequestState::Pending)
    {
        return Err(AdminError::Refused {
            reason: format!(
                "request {} ({}) for workflow {id} is still pending; wait for the engine to apply it (`calsaga workflows show {id}`)",
                pending.id, pending.action
            ),
        });
    }
    let request = action.request(id, chrono::Utc::now());
    let request_id = queue_admin_request(db, &request, options.busy_timeout_ms)?;
    let outcome = wait_settled(&store, request_id, options.wait)?;
    match &outcome {
        RequestOutcome::Applied(what) => {
            writeln!(out, "applied (request {request_id}): {what}")?;
        }
        RequestOutcome::Queued => writeln!(
            out,
            "queued (request {request_id}); no running calsaga applied it within {} s; the next `calsaga serve` applies it",
            options.wait.as_secs()
        )?,
    }
    Ok(outcome)
}

/// Polls the request until it is settled or `wait` passes.
fn wait_settled(store: &Store, id: i64, wait: Duration) -> Result<RequestOutcome, AdminError> {
    let deadline = Instant::now() + wait;
    loop {
        let row = store.admin_request(id)?;
        if let Some(row) = row {
            let outcome = row.outcome.unwrap_or_default();
            match row.state {
                AdminRequestState::Applied => return Ok(RequestOutcome::Applied(outcome)),
                AdminRequestState::Refused => {
                    return Err(AdminError::RefusedByEngine {
                        request: id,
                        reason: outcome,
                    });
                }
                AdminRequestState::Pending => {}
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(RequestOutcome::Queued);
        }
        std::thread::sleep(left.min(POLL_INTERVAL));
    }
}
