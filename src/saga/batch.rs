//! What the runner commits together. `advance` applies the outcomes of the
//! last call, then keeps asking `decide` and applying what it records, up to
//! the next call's intent: the result is ONE batch [outcomes.., records..,
//! next intent] for one commit, so an n-step saga costs about n+1 commits.
//! `claim_change` says which slot claims each event takes or frees, for the
//! same transaction. Pure like the rest of the core.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::apply::TransitionError;
use super::command::{Call, Command};
use super::decide::decide;
use super::event::Event;
use super::plan::SlotClaim;
use super::state::Saga;

/// Rounds of decide per `advance`. The longest real chain of records is two
/// (e.g. `compensation_started` then `compensated`) before a call, a wait or
/// idleness; more means decide and apply disagree.
pub const ADVANCE_ROUNDS_MAX: usize = 8;

/// Events to append in one commit, the state after them, and what to do
/// once they are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub events: Vec<Event>,
    /// Slot claim changes for the same transaction, in event order.
    pub claims: Vec<ClaimChange>,
    pub saga: Saga,
    pub then: Then,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// Make this call (its intent is the batch's last event), then
    /// `advance` with its outcome events.
    Call(Call),
    /// Arm a durable timer; at that instant `advance` with no outcomes.
    WaitUntil(DateTime<Utc>),
    /// Nothing to do: `saga.is_terminal()`.
    Idle,
}

/// A change to the store's slot claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimChange {
    /// Take these intervals for `workflow`; the transaction fails if another
    /// workflow holds an overlapping claim on the same host.
    Acquire {
        workflow: Uuid,
        claims: Vec<SlotClaim>,
        /// The booking a reschedule replaces: its claims do not conflict.
        replacing: Option<Uuid>,
    },
    /// Drop every claim `workflow` holds.
    ReleaseAll { workflow: Uuid },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvanceError {
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(
        "saga {workflow}: {rounds} rounds of decide reached no call, wait or end; \
         this is a bug in saga/decide.rs: stop driving this saga and report its log"
    )]
    NoProgress { workflow: Uuid, rounds: usize },
}

/// Applies `outcomes` (what the last call returned; empty when waking up or
/// after a restart) and everything decide records after them.
pub fn advance(
    saga: &Saga,
    outcomes: Vec<Event>,
    now: DateTime<Utc>,
) -> Result<Batch, AdvanceError> {
    let mut batch = Batch {
        events: Vec::new(),
        claims: Vec::new(),
        saga: saga.clone(),
        then: Then::Idle,
    };
    for event in outcomes {
        batch.push(event)?;
    }
    for _ in 0..ADVANCE_ROUNDS_MAX {
        match decide(&batch.saga, now) {
            Command::Record(event) => batch.push(event)?,
            Command::Call(call) => {
                if let Some(intent) = call.intent() {
                    batch.push(intent)?;
                }
                batch.then = Then::Call(call);
                return Ok(batch);
            }
            Command::WaitUntil(at) => {
                batch.then = Then::WaitUntil(at);
                return Ok(batch);
            }
            Command::Idle => return Ok(batch),
        }
    }
    Err(AdvanceError::NoProgress {
        workflow: saga.workflow,
        rounds: ADVANCE_ROUNDS_MAX,
    })
}

impl Batch {
    fn push(&mut self, event: Event) -> Result<(), TransitionError> {
        self.saga.apply(&event)?;
        self.claims.extend(claim_change(&self.saga, &event));
        self.events.push(event);
        Ok(())
    }
}

/// The claim change `event` causes, given the saga after it. Starts and
/// host switches claim the plan; ends without bookings free this saga's claims; a finished
/// reschedule or cancel frees the original's.
pub fn claim_change(saga: &Saga, event: &Event) -> Option<ClaimChange> {
    match event {
        Event::Requested { request, .. }
        | Event::HoldRequested { request, .. }
        | Event::RescheduleRequested { request, .. } => Some(ClaimChange::Acquire {
            workflow: saga.workflow,
            claims: request.plan.claims(),
            replacing: replaced(saga),
        }),
        // The switched segment's claim moves to its new host.
        Event::SegmentHostSwitched { .. } => saga.request.as_ref().map(|r| ClaimChange::Acquire {
            workflow: saga.workflow,
            claims: r.plan.claims(),
            replacing: replaced(saga),
        }),
        Event::Compensated { .. } | Event::Expired => Some(ClaimChange::ReleaseAll {
            workflow: saga.workflow,
        }),
        Event::Rescheduled | Event::Cancelled => {
            saga.original.as_ref().map(|o| ClaimChange::ReleaseAll {
                workflow: o.workflow,
            })
        }
        _ => None,
    }
}

/// A reschedule's original, whose claims overlap its replacement's.
fn replaced(saga: &Saga) -> Option<Uuid> {
    saga.original
        .as_ref()
        .filter(|_| saga.kind == super::state::Kind::Reschedule)
        .map(|o| o.workflow)
}
