//! The engine's side of the admin request queue. `calsaga workflows
//! resume|compensate` cannot append to the log while `calsaga serve` runs
//! (the engine owns the sequence numbers), so it queues a request; the timer
//! loop (and so every start) takes the pending ones, checks each against the
//! saga as folded now, and either appends the admin event and marks the
//! request applied in ONE commit, or marks it refused with the reason. The
//! legality check is the saga's own `apply`, shared with the CLI's early
//! refusal through `AdminAction::check`; this file never decides a
//! transition itself.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Engine, EngineError, runner};
use crate::saga::{Event, Saga};
use crate::store::{AdminRequestRow, AdminRequestState, NewAdminRequest, StoreError, WriteOp};

/// Requests taken per poll; the rest wait for the next poll.
pub const ADMIN_REQUESTS_PER_POLL: usize = 64;

/// What an admin may ask of a saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAction {
    /// Retry the steps a failed saga stopped at.
    Resume,
    /// Undo what the saga made (cancel its bookings, release reservations).
    Compensate { reason: String },
}

impl AdminAction {
    /// The `action` column of the queue.
    pub fn name(&self) -> &'static str {
        match self {
            AdminAction::Resume => "resume",
            AdminAction::Compensate { .. } => "compensate",
        }
    }

    /// The event the engine appends for it.
    pub fn event(&self) -> Event {
        match self {
            AdminAction::Resume => Event::AdminResumeRequested,
            AdminAction::Compensate { reason } => Event::AdminCompensateRequested {
                reason: reason.clone(),
            },
        }
    }

    /// The row the CLI queues.
    pub fn request(&self, workflow: Uuid, at: DateTime<Utc>) -> NewAdminRequest {
        NewAdminRequest {
            workflow,
            action: self.name().to_string(),
            reason: match self {
                AdminAction::Resume => None,
                AdminAction::Compensate { reason } => Some(reason.clone()),
            },
            at,
        }
    }

    /// The action of a queued row.
    pub fn from_row(row: &AdminRequestRow) -> Result<AdminAction, String> {
        match (row.action.as_str(), &row.reason) {
            ("resume", _) => Ok(AdminAction::Resume),
            ("compensate", Some(reason)) => Ok(AdminAction::Compensate {
                reason: reason.clone(),
            }),
            (action, _) => Err(format!(
                "request {} asks for {action:?} without what it needs; queue it again with `calsaga workflows`",
                row.id
            )),
        }
    }

    /// Whether the saga accepts this action now (tried on a copy), or why not.
    pub fn check(&self, saga: &Saga) -> Result<(), String> {
        if self.cancels(saga) {
            return Ok(());
        }
        let mut copy = saga.clone();
        copy.apply(&self.event())
            .map_err(|e| self.refusal(saga, &e.problem))
    }

    /// A finished booking is undone by a cancel saga (every live segment,
    /// newest first) rather than by rewinding the booking saga itself; this
    /// is also how a broken composite (some segments cancelled in Cal.com)
    /// is cleared.
    fn cancels(&self, saga: &Saga) -> bool {
        matches!(self, AdminAction::Compensate { .. }) && saga.state_name() == "booked"
    }

    fn refusal(&self, saga: &Saga, problem: &str) -> String {
        let state = saga.state_name();
        let hint = match (self, state) {
            (AdminAction::Compensate { .. }, _) => {
                "; only a saga still reserving, held, booking or booked can be compensated"
                    .to_string()
            }
            (AdminAction::Resume, _) => String::new(),
        };
        format!(
            "{} is not possible: workflow {} is {state} ({problem}){hint}",
            self.name(),
            saga.workflow
        )
    }
}

/// Applies (or refuses) every pending request, oldest first, up to
/// `ADMIN_REQUESTS_PER_POLL`. Returns how many were settled; a request that
/// lost a race with the runner stays pending for the next poll.
pub async fn apply_pending(engine: &Engine) -> Result<usize, EngineError> {
    let pending = engine
        .inner
        .store
        .pending_admin_requests(ADMIN_REQUESTS_PER_POLL)?;
    let mut settled = 0;
    for row in &pending {
        if apply_one(engine, row).await? {
            settled += 1;
        }
    }
    Ok(settled)
}

/// True when the request was settled (applied or refused).
async fn apply_one(engine: &Engine, row: &AdminRequestRow) -> Result<bool, EngineError> {
    let action = match AdminAction::from_row(row) {
        Ok(action) => action,
        Err(problem) => return refuse(engine, row, problem).await,
    };
    let saga = match runner::load(&engine.inner, row.workflow) {
        Ok((saga, _)) => saga,
        Err(EngineError::UnknownWorkflow { id }) => {
            return refuse(engine, row, format!("workflow {id} does not exist")).await;
        }
        Err(e) => return Err(e),
    };
    if let Err(problem) = action.check(&saga) {
        return refuse(engine, row, problem).await;
    }
    if let (true, AdminAction::Compensate { reason }) = (action.cancels(&saga), &action) {
        return cancel_booked(engine, row, reason).await;
    }
    let now = engine.inner.clock.now();
    let applied = settle_op(row, AdminRequestState::Applied, applied_text(&action), now);
    match engine
        .append_with(row.workflow, action.event(), vec![applied])
        .await
    {
        Ok(()) => {
            tracing::info!(workflow = %row.workflow, request = row.id, action = action.name(), "admin request applied");
            Ok(true)
        }
        // The runner appended meanwhile: look again on the next poll.
        Err(EngineError::Store(StoreError::SequenceConflict { .. }))
        | Err(EngineError::Transition(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Compensating a booked saga: start its cancel saga, then record the
/// request as applied. A crash in between leaves the request pending; the
/// next poll then finds the booking already being cancelled and refuses
/// with that reason, which names the cancel saga.
async fn cancel_booked(
    engine: &Engine,
    row: &AdminRequestRow,
    reason: &str,
) -> Result<bool, EngineError> {
    let cancel = match engine.cancel(row.workflow, reason.to_string()).await {
        Ok(cancel) => cancel,
        Err(e @ (EngineError::Store(_) | EngineError::Stopped(_))) => return Err(e),
        Err(e) => return refuse(engine, row, e.to_string()).await,
    };
    tracing::info!(workflow = %row.workflow, request = row.id, %cancel, "admin compensate of a booked saga: cancelling it");
    let text = format!("cancelling every segment in workflow {cancel}: {reason}");
    settle(engine, row, AdminRequestState::Applied, text).await
}

fn applied_text(action: &AdminAction) -> String {
    match action {
        AdminAction::Resume => "resumed: the stuck steps are retried".into(),
        AdminAction::Compensate { reason } => format!("compensating: {reason}"),
    }
}

async fn refuse(
    engine: &Engine,
    row: &AdminRequestRow,
    reason: String,
) -> Result<bool, EngineError> {
    tracing::warn!(workflow = %row.workflow, request = row.id, %reason, "admin request refused");
    settle(engine, row, AdminRequestState::Refused, reason).await
}

/// Marks a request settled on its own (no event goes with it).
async fn settle(
    engine: &Engine,
    row: &AdminRequestRow,
    state: AdminRequestState,
    outcome: String,
) -> Result<bool, EngineError> {
    let now = engine.inner.clock.now();
    let op = settle_op(row, state, outcome, now);
    engine
        .inner
        .store
        .commit(vec![op])
        .await
        .map_err(|e| engine.inner.store_failed(e))?;
    engine.notify_changed();
    Ok(true)
}

fn settle_op(
    row: &AdminRequestRow,
    state: AdminRequestState,
    outcome: String,
    at: DateTime<Utc>,
) -> WriteOp {
    WriteOp::SettleAdminRequest {
        id: row.id,
        state,
        outcome,
        at,
    }
}
