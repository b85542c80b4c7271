//! Policy: given a saga and the time, what happens next. One step at a time,
//! in a fixed order: extra bookings are cancelled first (I1); bookings are
//! made in segment order; compensation reconciles uncertain creates, then
//! cancels newest first, then releases reservations; a reschedule cancels the
//! originals only once every new segment exists. Retries wait for the
//! `retry_at` the runner recorded and stop after `RETRY_ATTEMPTS_MAX`;
//! cancellations never stop (forward-only). Pure: `now` is an argument.

use chrono::{DateTime, Utc};

use super::command::{
    Call, CancelCall, Command, CreateCall, MoveBackCall, MoveCall, ReconcileCall, ReleaseCall,
    ReserveCall,
};
use super::event::{BookingRequest, CancelTarget, Event, Failure};
use super::plan::PlannedSegment;
use super::state::{BookedOn, Kind, Make, Phase, Saga, SegmentState, Undo};

/// Attempts of one reservation or booking before the saga compensates.
pub const RETRY_ATTEMPTS_MAX: u32 = 8;

/// The one next thing to do for `saga` at `now`.
pub fn decide(saga: &Saga, now: DateTime<Utc>) -> Command {
    if saga.failure.is_some() {
        return Command::Idle;
    }
    if let Some(c) = duplicates(saga, now) {
        return c;
    }
    let end = Command::Record;
    match &saga.phase {
        Phase::Reserving => reserving(saga, now),
        Phase::Held { expires_at } if now >= *expires_at => end(Event::HoldExpired),
        Phase::Held { expires_at } => Command::WaitUntil(*expires_at),
        Phase::Booking => booking(saga, now),
        Phase::Switching => cancel_originals(saga, now).unwrap_or(end(Event::Rescheduled)),
        Phase::Cancelling => cancel_originals(saga, now).unwrap_or(end(Event::Cancelled)),
        Phase::Compensating { reason } => unwind(saga, reason, now).unwrap_or_else(|| {
            end(Event::Compensated {
                reason: reason.clone(),
            })
        }),
        Phase::Expiring => releases(saga, now).unwrap_or(end(Event::Expired)),
        Phase::Booked
        | Phase::Rescheduled
        | Phase::Compensated { .. }
        | Phase::Cancelled
        | Phase::Expired => Command::Idle,
    }
}

/// What a step needs next.
enum Step {
    Call(Call),
    Wait(DateTime<Utc>),
    /// A make step cannot succeed: compensate.
    GiveUp(String),
    /// An undo or reconcile step was refused for good: an admin must look.
    Stuck(String),
    Done,
}

/// Builds attempt n of a step's call.
type Attempt<'a> = &'a dyn Fn(u32) -> Call;

/// `reconcile`: how to settle an intent without outcome; None when the step
/// may simply run again (reservations: a lost one lapses by itself).
fn make_step<T>(
    step: &Make<T>,
    now: DateTime<Utc>,
    go: Attempt,
    reconcile: Option<Attempt>,
) -> Step {
    match (step, reconcile) {
        (Make::Done(_), _) => Step::Done,
        (Make::Pending, _) => Step::Call(go(1)),
        (Make::Intended { attempt } | Make::Unknown { attempt, .. }, None) => {
            retry(*attempt, None, "the reply was lost", now, go)
        }
        (
            Make::Intended { attempt }
            | Make::Unknown {
                attempt,
                reconcile_failure: None,
            },
            Some(reconcile),
        ) => Step::Call(reconcile(*attempt)),
        (
            Make::Unknown {
                attempt,
                reconcile_failure: Some(failure),
            },
            Some(reconcile),
        ) => match failure {
            Failure::Retryable { retry_at, .. } => {
                wait_then(*retry_at, now, || Step::Call(reconcile(*attempt)))
            }
            Failure::Permanent { reason } | Failure::Taken { reason } => Step::Stuck(format!(
                "listing Cal.com bookings to settle attempt {attempt} was refused: {reason}"
            )),
        },
        (Make::Missing { attempt }, _) => {
            retry(*attempt, None, "reconciling found no booking", now, go)
        }
        (
            Make::Failed {
                attempt,
                failure: Failure::Retryable { reason, retry_at },
            },
            _,
        ) => retry(*attempt, *retry_at, reason, now, go),
        (
            Make::Failed {
                failure: Failure::Permanent { reason } | Failure::Taken { reason },
                ..
            },
            _,
        ) => Step::GiveUp(reason.clone()),
    }
}

fn retry(
    attempt: u32,
    retry_at: Option<DateTime<Utc>>,
    reason: &str,
    now: DateTime<Utc>,
    go: Attempt,
) -> Step {
    if attempt >= RETRY_ATTEMPTS_MAX {
        return Step::GiveUp(format!("gave up after {attempt} attempts (last: {reason})"));
    }
    wait_then(retry_at, now, || Step::Call(go(attempt.saturating_add(1))))
}

fn wait_then(
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    then: impl FnOnce() -> Step,
) -> Step {
    match retry_at {
        Some(at) if at > now => Step::Wait(at),
        _ => then(),
    }
}

/// Undo steps retry without limit; an intent without outcome is repeated.
fn undo_step(undo: &Undo, now: DateTime<Utc>, go: Attempt) -> Step {
    match undo {
        Undo::Live => Step::Call(go(1)),
        Undo::Intended { attempt } => Step::Call(go(attempt.saturating_add(1))),
        Undo::Failed {
            attempt,
            failure: Failure::Retryable { retry_at, .. },
        } => wait_then(*retry_at, now, || Step::Call(go(attempt.saturating_add(1)))),
        Undo::Failed {
            failure: Failure::Permanent { reason } | Failure::Taken { reason },
            ..
        } => Step::Stuck(reason.clone()),
        Undo::Done => Step::Done,
    }
}

/// None when the step is done; `about` names the step in reasons.
fn command(step: Step, about: impl FnOnce() -> String) -> Option<Command> {
    match step {
        Step::Done => None,
        Step::Call(call) => Some(Command::Call(call)),
        Step::Wait(at) => Some(Command::WaitUntil(at)),
        Step::GiveUp(reason) => Some(Command::Record(Event::CompensationStarted {
            reason: format!("{}: {reason}", about()),
        })),
        Step::Stuck(reason) => Some(Command::Record(Event::Failed {
            reason: format!("{}: {reason}", about()),
        })),
    }
}

fn about(verb: &str, p: &PlannedSegment) -> String {
    format!(
        "{verb} segment {} ({}) with host {} at {}",
        p.index, p.name, p.host, p.start
    )
}

fn segments(saga: &Saga) -> impl DoubleEndedIterator<Item = (&PlannedSegment, &SegmentState)> {
    saga.planned().iter().zip(&saga.segments)
}

// ------------------------------------------------------------------ phases

fn reserving(saga: &Saga, now: DateTime<Utc>) -> Command {
    let reservation_min = saga.reserve_min.unwrap_or(1);
    // A moved segment needs no reservation: its original holds the host.
    for (p, s) in segments(saga).filter(|(p, _)| p.moves.is_none()) {
        let go = |attempt| {
            Call::Reserve(ReserveCall {
                segment: p.clone(),
                attempt,
                reservation_min,
            })
        };
        let step = make_step(&s.reservation, now, &go, None);
        if let Some(c) = command(step, || about("reserving", p)) {
            return c;
        }
    }
    if saga.kind == Kind::Hold {
        // The hold lasts as long as its first reservation.
        let expires_at = saga
            .segments
            .iter()
            .filter_map(|s| s.reservation.done().map(|r| r.until))
            .min()
            .unwrap_or(now);
        return Command::Record(Event::Held { expires_at });
    }
    booking(saga, now)
}

fn booking(saga: &Saga, now: DateTime<Utc>) -> Command {
    let Some(request) = &saga.request else {
        return Command::Idle;
    };
    for (p, s) in in_make_order(saga) {
        let step = booking_step(saga, request, p, s, now);
        let verb = if p.moves.is_some() {
            "moving"
        } else {
            "booking"
        };
        if let Some(c) = command(step, || about(verb, p)) {
            return c;
        }
    }
    if let Some(c) = releases(saga, now) {
        return c;
    }
    match saga.kind {
        // Every original moved: nothing is left to cancel.
        Kind::Reschedule => {
            cancel_originals(saga, now).unwrap_or(Command::Record(Event::Rescheduled))
        }
        Kind::Book | Kind::Hold | Kind::Cancel => Command::Record(Event::Booked),
    }
}

fn booking_step(
    saga: &Saga,
    request: &BookingRequest,
    p: &PlannedSegment,
    s: &SegmentState,
    now: DateTime<Utc>,
) -> Step {
    let go = |attempt| match &p.moves {
        Some(from_uid) => Call::Move(MoveCall {
            workflow: saga.workflow,
            segment: p.clone(),
            from_uid: from_uid.clone(),
            attempt,
        }),
        None => Call::Create(Box::new(CreateCall {
            workflow: saga.workflow,
            service_id: request.plan.service_id.clone(),
            segment: p.clone(),
            attempt,
            attendee: request.attendee.clone(),
            notes: request.notes.clone(),
        })),
    };
    let reconcile = |attempt| {
        Call::Reconcile(ReconcileCall {
            workflow: saga.workflow,
            segment: p.clone(),
            attempt,
        })
    };
    make_step(&s.booking, now, &go, Some(&reconcile))
}

/// Reservations still held, in segment order; a permanent refusal to
/// delete one is accepted (it lapses at its deadline).
fn releases(saga: &Saga, now: DateTime<Utc>) -> Option<Command> {
    segments(saga).find_map(|(p, s)| {
        let r = s.reservation.done()?;
        if r.release.is_settled_release() {
            return None;
        }
        let go = |attempt| {
            Call::Release(ReleaseCall {
                segment: p.index,
                attempt,
                reservation_uid: r.reservation_uid.clone(),
            })
        };
        command(undo_step(&r.release, now, &go), || about("releasing", p))
    })
}

/// The segments in the order they are made (`Saga::make_order`).
fn in_make_order(saga: &Saga) -> impl DoubleEndedIterator<Item = (&PlannedSegment, &SegmentState)> {
    saga.make_order().into_iter().filter_map(|k| {
        let k = usize::from(k);
        Some((saga.planned().get(k)?, saga.segments.get(k)?))
    })
}

/// Compensation: first learn the truth about uncertain steps, then undo
/// this saga's bookings newest first (a moved one goes back to its
/// original's time, any other is cancelled), then release reservations.
fn unwind(saga: &Saga, reason: &str, now: DateTime<Utc>) -> Option<Command> {
    let uncertain = in_make_order(saga).rev().find_map(|(p, s)| {
        s.booking.uncertain_attempt()?;
        let step = booking_step(saga, saga.request.as_ref()?, p, s, now);
        command(step, || about("settling", p))
    });
    let undo = || {
        in_make_order(saga).rev().find_map(|(p, s)| {
            let b = s.booking.done()?;
            if p.moves.is_some() {
                return move_back(saga, p, b, reason, now);
            }
            let go = |attempt| {
                Call::Cancel(CancelCall {
                    target: CancelTarget::Segment(p.index),
                    attempt,
                    calcom_uid: b.calcom_uid.clone(),
                    reason: reason.to_owned(),
                })
            };
            command(undo_step(&b.cancel, now, &go), || about("cancelling", p))
        })
    };
    uncertain.or_else(undo).or_else(|| releases(saga, now))
}

/// A moved segment's undo: its booking goes back to the original's time.
fn move_back(
    saga: &Saga,
    p: &PlannedSegment,
    b: &BookedOn,
    reason: &str,
    now: DateTime<Utc>,
) -> Option<Command> {
    let original = saga.original.as_ref()?.segments.get(usize::from(p.index))?;
    let go = |attempt| {
        Call::MoveBack(MoveBackCall {
            segment: original.segment.clone(),
            calcom_uid: b.calcom_uid.clone(),
            attempt,
            reason: reason.to_owned(),
        })
    };
    command(undo_step(&b.cancel, now, &go), || {
        about("moving back", &original.segment)
    })
}

/// The original segments, last first (cancel saga; reschedule after the switch).
fn cancel_originals(saga: &Saga, now: DateTime<Utc>) -> Option<Command> {
    let original = saga.original.as_ref()?;
    let reason = match &saga.cancel_reason {
        Some(reason) => reason.clone(),
        None => format!("rescheduled by calsaga workflow {}", saga.workflow),
    };
    original
        .segments
        .iter()
        .zip(&saga.originals)
        .rev()
        .find_map(|(o, undo)| {
            let go = |attempt| {
                Call::Cancel(CancelCall {
                    target: CancelTarget::Original(o.segment.index),
                    attempt,
                    calcom_uid: o.calcom_uid.clone(),
                    reason: reason.clone(),
                })
            };
            command(undo_step(undo, now, &go), || {
                format!(
                    "cancelling original segment {} ({}) of workflow {}",
                    o.segment.index, o.calcom_uid, original.workflow
                )
            })
        })
}

/// Extra bookings of a segment go before anything else (I1).
fn duplicates(saga: &Saga, now: DateTime<Utc>) -> Option<Command> {
    saga.duplicates.iter().find_map(|d| {
        let go = |attempt| {
            Call::Cancel(CancelCall {
                target: CancelTarget::Duplicate(d.uid.clone()),
                attempt,
                calcom_uid: d.uid.clone(),
                reason: format!(
                    "duplicate booking of segment {} of calsaga workflow {}",
                    d.segment, saga.workflow
                ),
            })
        };
        command(undo_step(&d.cancel, now, &go), || {
            format!("cancelling duplicate booking {}", d.uid)
        })
    })
}
