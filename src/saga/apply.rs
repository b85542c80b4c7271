//! The transition function: `Saga::apply` for one event, `fold` for a whole
//! log (the first event goes through `Saga::start`, start.rs). This file
//! dispatches each event to its handler (steps.rs) and holds the checks they
//! share. Every event is checked against the state before anything changes
//! (TigerBeetle style: assert every transition), and an illegal one is a
//! `TransitionError` naming the state and the event. Policy (retry caps,
//! waits, order) lives in decide.rs, not here, so old logs fold the same
//! after a policy change (I7).

use uuid::Uuid;

use super::event::Event;
use super::state::{Phase, Saga, SegmentState, Undo};
use super::steps::{release_of, undo_failed};
use crate::catalog::StaffOption;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "saga {workflow}: event {event} is not accepted in state {state}: {problem}; it was not applied. \
     From the runner this is a bug in the caller; from a stored log the log or this calsaga version is \
     wrong: inspect it with `calsaga workflows replay`"
)]
pub struct TransitionError {
    pub workflow: Uuid,
    pub state: &'static str,
    pub event: &'static str,
    pub problem: String,
}

/// Rebuilds a saga from its log.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Result<Saga, TransitionError> {
    let mut events = events.into_iter();
    let Some(first) = events.next() else {
        return Err(TransitionError {
            workflow: Uuid::nil(),
            state: "new",
            event: "nothing",
            problem: "the log is empty; a saga starts with a *_requested event".into(),
        });
    };
    let mut saga = Saga::start(first)?;
    for event in events {
        // In place: on an error the half-built saga is dropped anyway.
        saga.apply_in_place(event)?;
    }
    Ok(saga)
}

pub(super) type Check = Result<(), String>;

impl Saga {
    /// Applies one event, or changes nothing and says why it is illegal here.
    pub fn apply(&mut self, event: &Event) -> Result<(), TransitionError> {
        let mut next = self.clone();
        next.apply_in_place(event)?;
        *self = next;
        Ok(())
    }

    /// Handlers check before they change anything; still, only `fold` (which
    /// drops the saga on error) and `apply` (which works on a copy) call this,
    /// so a missed check can never leave a half-applied event behind.
    fn apply_in_place(&mut self, event: &Event) -> Result<(), TransitionError> {
        let state = self.state_name();
        self.transition(event).map_err(|problem| TransitionError {
            workflow: self.workflow,
            state,
            event: event.kind(),
            problem,
        })?;
        self.version += 1;
        Ok(())
    }

    fn transition(&mut self, event: &Event) -> Check {
        match event {
            Event::Requested { .. }
            | Event::HoldRequested { .. }
            | Event::RescheduleRequested { .. }
            | Event::CancelRequested { .. } => Err("the saga has already started".into()),
            Event::ReservationIntended { segment, attempt } => {
                self.reservation_intended(*segment, *attempt)
            }
            Event::ReservationMade {
                segment,
                reservation_uid,
                until,
            } => self.reservation_made(*segment, reservation_uid, *until),
            Event::ReservationFailed {
                segment,
                attempt,
                failure,
            } => self.make_failed(*segment, *attempt, failure, |s| &mut s.reservation),
            Event::ReleaseIntended { segment, attempt } => {
                self.release_intended(*segment, *attempt)
            }
            Event::ReservationReleased { segment } => {
                self.undo_outcome(*segment, None, Undo::Done, release_of)
            }
            Event::ReleaseFailed {
                segment,
                attempt,
                failure,
            } => self.undo_outcome(
                *segment,
                Some(*attempt),
                undo_failed(*attempt, failure),
                release_of,
            ),
            Event::Held { expires_at } => self.held(*expires_at),
            Event::ConfirmRequested => self.leave_hold(Phase::Booking),
            Event::HoldExpired => self.leave_hold(Phase::Expiring),
            Event::SegmentBookingIntended { segment, attempt } => {
                self.booking_intended(*segment, *attempt)
            }
            Event::SegmentBooked {
                segment,
                calcom_uid,
                start,
                end,
            } => self.segment_booked(*segment, calcom_uid, *start, *end),
            Event::SegmentBookingFailed {
                segment,
                attempt,
                failure,
            } => self.make_failed(*segment, *attempt, failure, |s| &mut s.booking),
            Event::SegmentHostSwitched {
                segment,
                from,
                host,
                event_type_id,
                reason,
            } => self.host_switched(
                *segment,
                *from,
                StaffOption {
                    host: *host,
                    event_type_id: *event_type_id,
                },
                reason,
            ),
            Event::SegmentMoveIntended { segment, attempt } => {
                self.move_intended(*segment, *attempt)
            }
            Event::SegmentMoved {
                segment,
                calcom_uid,
                start,
                end,
            } => self.segment_moved(*segment, calcom_uid, *start, *end),
            Event::MoveBackIntended { segment, attempt } => {
                self.move_back_intended(*segment, *attempt)
            }
            Event::SegmentMovedBack { segment, .. } => self.moved_back(*segment, None),
            Event::MoveBackFailed {
                segment,
                attempt,
                failure,
            } => self.moved_back(*segment, Some((*attempt, failure))),
            Event::SegmentRestored {
                segment,
                calcom_uid,
                ..
            } => self.segment_restored(*segment, calcom_uid),
            Event::SegmentOutcomeUnknown {
                segment, attempt, ..
            } => self.outcome_unknown(*segment, *attempt),
            Event::SegmentReconciled { segment, found } => self.reconciled(*segment, found),
            Event::ReconcileFailed { segment, failure } => self.reconcile_failed(*segment, failure),
            Event::DuplicateFound { segment, uid } => self.duplicate_found(*segment, uid),
            Event::CompensationStarted { reason } => self.compensate(reason, false),
            Event::AdminCompensateRequested { reason } => self.compensate(reason, true),
            Event::CancelIntended { target, attempt } => self.cancel_intended(target, *attempt),
            Event::BookingCancelled { target } => self.cancel_outcome(target, None, Undo::Done),
            Event::CancelFailed {
                target,
                attempt,
                failure,
            } => self.cancel_outcome(target, Some(*attempt), undo_failed(*attempt, failure)),
            Event::Booked => self.end_booked(),
            Event::Rescheduled => self.end_rescheduled(),
            Event::Cancelled => self.end_originals(&Phase::Cancelling, Phase::Cancelled),
            Event::Compensated { reason } => self.end_compensated(reason),
            Event::Expired => self.end_expired(),
            Event::Failed { reason } => self.failed(reason),
            Event::AdminResumeRequested => self.resume(),
        }
    }

    // ------------------------------------------------------------ checks

    pub(super) fn expect_phase(&self, allowed: &[&str]) -> Check {
        if allowed.contains(&self.phase.name()) {
            Ok(())
        } else {
            Err(format!("it needs the phase to be one of {allowed:?}"))
        }
    }

    /// Intents come from decide, which never runs for a failed saga.
    pub(super) fn expect_running(&self, allowed: &[&str]) -> Check {
        if self.failure.is_some() {
            return Err("the saga failed and waits for an admin".into());
        }
        self.expect_phase(allowed)
    }

    /// Outcomes of intents are accepted until the saga ends.
    pub(super) fn expect_open(&self) -> Check {
        if self.phase.is_end() {
            return Err("the saga has ended, so no step of it can be in flight".into());
        }
        Ok(())
    }

    pub(super) fn segment(&self, k: u16) -> Result<&SegmentState, String> {
        self.segments.get(usize::from(k)).ok_or_else(|| {
            format!(
                "there is no segment {k} (the saga has {})",
                self.segments.len()
            )
        })
    }

    pub(super) fn segment_mut(&mut self, k: u16) -> Result<&mut SegmentState, String> {
        self.segment(k)?;
        Ok(&mut self.segments[usize::from(k)])
    }

    /// Steps run in make order (`Saga::make_order`): every segment before
    /// `k` must be done.
    pub(super) fn expect_earlier_done(
        &self,
        k: u16,
        done: impl Fn(&SegmentState) -> bool,
    ) -> Check {
        self.segment(k)?;
        let order = self.make_order();
        let before = order.iter().take_while(|j| **j != k);
        match before.copied().find(|j| !self.segment(*j).is_ok_and(&done)) {
            Some(j) => Err(format!("segment {j} comes first and is not done")),
            None => Ok(()),
        }
    }

    /// Every slot reserved; a moved segment has none (its original holds it).
    pub(super) fn all_reserved(&self) -> bool {
        self.segments
            .iter()
            .enumerate()
            .all(|(k, s)| self.moves(k).is_some() || s.reservation.done().is_some())
    }

    /// The original booking segment `k` moves, if it is a move.
    pub(super) fn moves(&self, k: usize) -> Option<&str> {
        self.planned().get(k)?.moves.as_deref()
    }

    pub(super) fn all_booked(&self) -> bool {
        self.segments.iter().all(|s| s.booking.done().is_some())
    }

    pub(super) fn releases_settled(&self) -> bool {
        self.segments
            .iter()
            .filter_map(|s| s.reservation.done())
            .all(|r| r.release.is_settled_release())
    }

    pub(super) fn expect_ends_clean(&self) -> Check {
        match self.duplicates.iter().find(|d| !d.cancel.is_done()) {
            Some(d) => Err(format!(
                "duplicate booking {} of segment {} is not cancelled yet",
                d.uid, d.segment
            )),
            None => Ok(()),
        }
    }

    pub(super) fn expect_unknown_uid(&self, uid: &str) -> Check {
        if uid.is_empty() {
            return Err("the Cal.com uid is empty".into());
        }
        if self.known_uids().contains(&uid) {
            return Err(format!("uid {uid} is already recorded in this saga"));
        }
        Ok(())
    }
}
