//! Working off the webhook inbox, apart from the request that stored it:
//! one task takes due entries oldest first, turns each into what calsaga
//! must do, and records the attempt (processed, retry later with
//! exponential backoff, or failed for an admin). What a delivery means:
//! - a booking of ours cancelled in Cal.com while calsaga believes it live:
//!   the composite is broken; policy `cancel-rest` starts a cancel saga for
//!   the rest, policy `flag` leaves it; either way the mirror says cancelled
//!   and the booking carries a flag;
//! - a booking of ours moved in Cal.com: the mirror follows it and the
//!   booking is flagged for an admin (a person chose the new time);
//! - a booking whose saga is still running (or being changed by calsaga
//!   itself): retried later, because the saga's own log will record it;
//! - anything else: processed without effect.
//!
//! It never calls Cal.com (I8): cancelling goes through the engine.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::{Engine, EngineError, WorkflowView};
use crate::calcom::RetryPolicy;
use crate::calcom::wire::{
    META_WORKFLOW, TRIGGER_CANCELLED, TRIGGER_CREATED, TRIGGER_RESCHEDULED, WebhookBookingPayload,
    WebhookDelivery,
};
use crate::clock::Clock;
use crate::store::{BookingFlag, InboxRow, InboxState, MirrorEntry, WriteOp};

/// Entries taken per look.
const BATCH_MAX: usize = 32;
/// Look for due retries at least this often.
const POLL: Duration = Duration::from_secs(1);
/// Attempts before an entry is marked failed for an admin, and the wait
/// between them: 1 s doubling to 10 min, without jitter (one worker).
const RETRY: RetryPolicy = RetryPolicy {
    attempts_max: 12,
    base_delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(600),
};
pub const ATTEMPTS_MAX: u32 = RETRY.attempts_max;

/// What to do when a segment of a composite booking is cancelled in Cal.com.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BrokenPolicy {
    /// Cancel the other segments through a cancel saga.
    #[default]
    CancelRest,
    /// Leave the rest and flag the booking for an admin.
    Flag,
}

impl BrokenPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            BrokenPolicy::CancelRest => "cancel-rest",
            BrokenPolicy::Flag => "flag",
        }
    }
}

impl std::str::FromStr for BrokenPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<BrokenPolicy, String> {
        match s {
            "cancel-rest" => Ok(BrokenPolicy::CancelRest),
            "flag" => Ok(BrokenPolicy::Flag),
            other => Err(format!(
                "{other:?} is not a policy; use cancel-rest or flag"
            )),
        }
    }
}

/// The inbox worker: the engine it acts through, the clock, the policy for
/// broken composites, and the bell the webhook route rings after storing.
pub struct Inbox {
    engine: Engine,
    clock: Arc<dyn Clock>,
    policy: BrokenPolicy,
    wake: Arc<Notify>,
}

impl Inbox {
    pub fn new(
        engine: Engine,
        clock: Arc<dyn Clock>,
        policy: BrokenPolicy,
        wake: Arc<Notify>,
    ) -> Inbox {
        Inbox {
            engine,
            clock,
            policy,
            wake,
        }
    }
}

/// What one attempt at an entry came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Done(String),
    /// Look again later.
    Retry(String),
    /// It can never be processed.
    GiveUp(String),
}

/// Works off the inbox until `stop` turns true.
pub async fn run(app: Inbox, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let due = app
            .engine
            .store()
            .inbox_due(app.clock.now(), BATCH_MAX)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading the webhook inbox failed; trying again");
                Vec::new()
            });
        let full = due.len() == BATCH_MAX;
        let mut recorded = true;
        for row in due {
            recorded &= settle(&app, row).await;
        }
        if full && recorded {
            continue;
        }
        tokio::select! {
            _ = app.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

/// One attempt at one entry, recorded; false if the record failed.
async fn settle(app: &Inbox, row: InboxRow) -> bool {
    let outcome = process(app, &row.body).await;
    let now = app.clock.now();
    let attempts = row.attempts.saturating_add(1);
    let (state, next, error) = match outcome {
        Outcome::Done(what) => {
            tracing::info!(inbox = row.id, sha256 = %row.body_sha256, %what, "webhook processed");
            (InboxState::Processed, now, None)
        }
        Outcome::Retry(why) if attempts < ATTEMPTS_MAX => {
            tracing::info!(inbox = row.id, attempts, %why, "webhook processing retried later");
            (InboxState::Pending, now + backoff(attempts), Some(why))
        }
        Outcome::Retry(why) | Outcome::GiveUp(why) => {
            tracing::error!(inbox = row.id, sha256 = %row.body_sha256, attempts, %why, "webhook processing failed; an admin must look");
            (InboxState::Failed, now, Some(why))
        }
    };
    let op = WriteOp::InboxUpdate {
        id: row.id,
        state,
        attempts,
        next_attempt_at: next,
        last_error: error,
    };
    match app.engine.store().commit(vec![op]).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(inbox = row.id, error = %e, "recording a webhook attempt failed");
            false
        }
    }
}

/// The wait after `attempts` failed attempts, by the one backoff formula.
fn backoff(attempts: u32) -> chrono::Duration {
    let wait = RETRY.backoff_delay(attempts, None, 1.0);
    chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
}

async fn process(app: &Inbox, body: &str) -> Outcome {
    let value: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Outcome::GiveUp(format!("the stored body is not JSON: {e}")),
    };
    let trigger = value["triggerEvent"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if ![TRIGGER_CREATED, TRIGGER_CANCELLED, TRIGGER_RESCHEDULED].contains(&trigger.as_str()) {
        return Outcome::Done(format!(
            "{trigger:?} is not a booking change calsaga acts on"
        ));
    }
    let delivery: WebhookDelivery = match serde_json::from_value(value) {
        Ok(d) => d,
        Err(e) => return Outcome::GiveUp(format!("not a {trigger} booking payload: {e}")),
    };
    let p = &delivery.payload;
    // Cached slots around it are stale, whoever changed the booking; times
    // that do not read leave no cached set standing.
    let (start, end) = (instant(&p.start_time), instant(&p.end_time));
    app.engine.availability().invalidate(
        start.unwrap_or(DateTime::<Utc>::MIN_UTC),
        end.unwrap_or(DateTime::<Utc>::MAX_UTC),
    );
    match trigger.as_str() {
        TRIGGER_CANCELLED => cancelled(app, p).await,
        TRIGGER_RESCHEDULED => moved(app, p).await,
        _ => Outcome::Done(format!("booking {} created", p.uid)),
    }
}

/// The live booking of ours with Cal.com uid `uid` and its finished
/// workflow, or the outcome when there is nothing (yet) to do.
fn ours(
    app: &Inbox,
    uid: &str,
    p: &WebhookBookingPayload,
) -> Result<(MirrorEntry, WorkflowView), Outcome> {
    let retry = |e: EngineError| Outcome::Retry(e.to_string());
    let entry = app
        .engine
        .store()
        .mirror_by_uid(uid)
        .map_err(|e| retry(e.into()))?;
    let Some(entry) = entry else {
        let running = p
            .metadata
            .get(META_WORKFLOW)
            .and_then(|id| Uuid::parse_str(id).ok())
            .and_then(|id| app.engine.get(id).ok())
            .filter(|w| !w.terminal);
        return Err(match running {
            Some(w) => Outcome::Retry(format!(
                "booking {uid} belongs to workflow {}, which is still running",
                w.id
            )),
            None => Outcome::Done(format!("booking {uid} is not one calsaga keeps")),
        });
    };
    if entry.status != "accepted" {
        return Err(Outcome::Done(format!(
            "calsaga already knows booking {uid} is {}",
            entry.status
        )));
    }
    let workflow = app.engine.get(entry.workflow).map_err(retry)?;
    if !workflow.terminal {
        return Err(Outcome::Retry(format!(
            "workflow {} is still running; its own log will say what became of booking {uid}",
            workflow.id
        )));
    }
    // A reschedule or cancel of it moves and cancels its bookings itself.
    let changes = app
        .engine
        .store()
        .changes_of(entry.workflow)
        .map_err(|e| retry(e.into()))?;
    if let Some(change) = changes
        .iter()
        .find(|c| !crate::runtime::TERMINAL_STATES.contains(&c.state.as_str()))
    {
        return Err(Outcome::Retry(format!(
            "workflow {} is being changed by {}; that change's log will say what became of booking {uid}",
            workflow.id, change.id
        )));
    }
    Ok((entry, workflow))
}

/// A segment of ours cancelled in Cal.com: the composite is broken.
async fn cancelled(app: &Inbox, p: &WebhookBookingPayload) -> Outcome {
    let (entry, _) = match ours(app, &p.uid, p) {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    let why = p
        .cancellation_reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let reason = format!(
        "segment {} of booking {} (Cal.com booking {}) was cancelled in Cal.com{why}",
        entry.segment, entry.workflow, p.uid
    );
    let (policy, change, detail) = match app.policy {
        BrokenPolicy::Flag => (
            BrokenPolicy::Flag,
            None,
            format!("{reason}; the other segments are left for an admin"),
        ),
        BrokenPolicy::CancelRest => match app.engine.cancel(entry.workflow, reason.clone()).await {
            Ok(change) => (
                BrokenPolicy::CancelRest,
                Some(change),
                format!("{reason}; workflow {change} cancels the other segments"),
            ),
            Err(
                e @ (EngineError::ChangeInProgress { .. }
                | EngineError::Stopped(_)
                | EngineError::Store(_)),
            ) => {
                return Outcome::Retry(e.to_string());
            }
            Err(e) => (
                BrokenPolicy::Flag,
                None,
                format!(
                    "{reason}; the other segments could not be cancelled ({e}), an admin must look"
                ),
            ),
        },
    };
    let flag = BookingFlag {
        workflow: entry.workflow,
        calcom_uid: p.uid.clone(),
        trigger: TRIGGER_CANCELLED.into(),
        policy: policy.as_str().into(),
        detail: detail.clone(),
        change_workflow: change,
        at: app.clock.now(),
    };
    let cancelled = MirrorEntry {
        status: "cancelled".into(),
        ..entry
    };
    record(
        app,
        vec![WriteOp::UpsertMirror(cancelled), WriteOp::FlagBooking(flag)],
        detail,
    )
    .await
}

/// A segment of ours moved in Cal.com: the mirror follows, an admin decides.
async fn moved(app: &Inbox, p: &WebhookBookingPayload) -> Outcome {
    let Some(old) = p.reschedule_uid.as_deref() else {
        return Outcome::Done(format!(
            "booking {} was rescheduled without a rescheduleUid",
            p.uid
        ));
    };
    let (entry, _) = match ours(app, old, p) {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    // The time it left is free again.
    app.engine.availability().invalidate(entry.start, entry.end);
    let (Some(start), Some(end)) = (instant(&p.start_time), instant(&p.end_time)) else {
        return Outcome::GiveUp(format!("booking {} has unreadable times", p.uid));
    };
    let detail = format!(
        "segment {} of booking {} (Cal.com booking {old}) was moved in Cal.com to {start} as booking {}; an admin must look",
        entry.segment, entry.workflow, p.uid
    );
    let new = MirrorEntry {
        calcom_uid: p.uid.clone(),
        event_type_id: p.event_type_id.unwrap_or(entry.event_type_id),
        start,
        end,
        status: "accepted".into(),
        ..entry.clone()
    };
    let flag = BookingFlag {
        workflow: entry.workflow,
        calcom_uid: old.to_string(),
        trigger: TRIGGER_RESCHEDULED.into(),
        policy: BrokenPolicy::Flag.as_str().into(),
        detail: detail.clone(),
        change_workflow: None,
        at: app.clock.now(),
    };
    let old = MirrorEntry {
        status: "rescheduled".into(),
        ..entry
    };
    let ops = vec![
        WriteOp::UpsertMirror(old),
        WriteOp::UpsertMirror(new),
        WriteOp::FlagBooking(flag),
    ];
    record(app, ops, detail).await
}

async fn record(app: &Inbox, ops: Vec<WriteOp>, detail: String) -> Outcome {
    match app.engine.store().commit(ops).await {
        Ok(()) => {
            app.engine.notify_changed();
            Outcome::Done(detail)
        }
        Err(e) => Outcome::Retry(format!("recording it failed: {e}")),
    }
}

fn instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_ten_minutes() {
        let secs: Vec<i64> = [1, 2, 3, 10, 11, 40]
            .map(|a| backoff(a).num_seconds())
            .to_vec();
        assert_eq!(secs, [1, 2, 4, 512, 600, 600]);
    }
}
