//! The saga core: a pure state machine that books a composite service as one
//! Cal.com booking per segment, all or nothing. It owns the log's vocabulary
//! (`Event`), the projection (`Saga`, rebuilt by `fold`, I7), the transition
//! checks (`Saga::apply`), planning (`plan`), and the policy of what comes next
//! (`decide`, `advance`). It never does I/O, reads a clock or draws random
//! numbers (I8): time, ids and retry instants come in as arguments and events.
//!
//! Kinds: **book** (optionally reserve every slot first, create bookings in
//! segment order, release reservations, `booked`); **hold** (reserve, `held`
//! until `confirm_requested` books or the expiry releases); **reschedule**
//! (make-before-break: book every new segment, only then cancel the
//! originals; a failure compensates the new ones and leaves the originals
//! alone; a segment that overlaps its own original with the same host is
//! moved with Cal.com's reschedule after the others and moved back if the
//! change compensates); **cancel** (cancel every original segment, forward-only). A
//! permanent failure, or `RETRY_ATTEMPTS_MAX` attempts, compensates: cancel
//! this saga's bookings newest first, release reservations, `compensated`.
//!
//! # Runner protocol
//!
//! The API appends the first event (`requested`, ...) together with
//! `claim_change(&Saga::start(&e)?, &e)` in one transaction. To drive a saga,
//! the runner: loads its log and `fold`s it; calls `advance(&saga, vec![], now)`
//! (after a crash this turns intents without outcome into reconciles or
//! repeats, never a second create); appends `batch.events` with the expected
//! next sequence number, applying `batch.claims` in the same transaction;
//! then acts on `batch.then`: for `Call(c)` it makes the Cal.com call (the
//! intent is already committed, I6), turns the result into events with the
//! call's constructors (`c.booked(..)`, `c.failed(..)`, `c.unknown(..)`,
//! `found(..)`...; the runner computes `retry_at` with jitter) and calls
//! `advance(&batch.saga, outcomes, now)` again, so each commit holds the outcome
//! of step k with the intent of step k+1 and an n-step saga costs about n+1
//! commits; for `WaitUntil(t)` it arms a durable timer and stops; for `Idle`
//! it stops (the saga ended, or failed and waits for an admin). `decide` never
//! runs while a call of the same saga is in flight, which is why any intent it
//! sees without an outcome is uncertain. If an append fails its sequence check
//! (the API appended `confirm_requested` or an admin event meanwhile), the
//! runner reloads, folds and runs `advance` again with the same outcomes.

mod apply;
mod batch;
mod command;
mod decide;
mod event;
mod plan;
mod start;
mod state;
mod steps;
mod wire_time;

pub use apply::{TransitionError, fold};
pub use batch::{
    ADVANCE_ROUNDS_MAX, AdvanceError, Batch, ClaimChange, Then, advance, claim_change,
};
pub use command::{
    Call, CancelCall, Command, CreateCall, MoveBackCall, MoveCall, ReconcileCall, ReleaseCall,
    ReserveCall,
};
pub use decide::{RETRY_ATTEMPTS_MAX, decide};
pub use event::{
    Attendee, BookedSegment, BookingRequest, CancelTarget, Event, Failure, OriginalBooking,
};
pub use plan::{
    HostChange, Plan, PlanError, PlanRequest, PlannedSegment, SlotClaim, may_pick, plan,
};
pub use state::{
    BookedOn, Duplicate, KINDS, Kind, Make, NotBooked, Phase, RUNNING_STATES, Reserved, STATES,
    Saga, SegmentState, SegmentStatus, SegmentView, TERMINAL_STATES, Undo,
};

#[cfg(test)]
mod tests;
