//! The transition function: `Saga::start` for a saga's first event,
//! `Saga::apply` for the rest, `fold` for a whole log. Every event is checked
//! against the state before anything changes (TigerBeetle style: assert every
//! transition), and an illegal one is a `TransitionError` naming the state and
//! the event. Policy (retry caps, waits, order) lives in decide.rs, not here,
//! so old logs fold the same after a policy change (I7).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::event::{BookingRequest, CancelTarget, Event, Failure, OriginalBooking};
use super::state::{BookedOn, Duplicate, Kind, Make, Phase, Reserved, Saga, SegmentState, Undo};
use crate::catalog::SEGMENTS_MAX;

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

type Check = Result<(), String>;

impl Saga {
    /// The state after a saga's first event.
    pub fn start(event: &Event) -> Result<Saga, TransitionError> {
        let reject = |workflow: &Uuid, problem: String| TransitionError {
            workflow: *workflow,
            state: "new",
            event: event.kind(),
            problem,
        };
        let saga = match event {
            Event::Requested {
                workflow,
                request,
                reserve_min,
            } => booking_saga(*workflow, Kind::Book, request, *reserve_min, None),
            Event::HoldRequested {
                workflow,
                request,
                hold_min,
            } => booking_saga(*workflow, Kind::Hold, request, Some(*hold_min), None),
            Event::RescheduleRequested {
                workflow,
                original,
                request,
                reserve_min,
            } => check_original(*workflow, original).and_then(|()| {
                booking_saga(
                    *workflow,
                    Kind::Reschedule,
                    request,
                    *reserve_min,
                    Some(original),
                )
            }),
            Event::CancelRequested {
                workflow,
                original,
                reason,
            } => check_original(*workflow, original).map(|()| Saga {
                cancel_reason: Some(reason.clone()),
                originals: vec![Undo::Live; original.segments.len()],
                ..empty(*workflow, Kind::Cancel, Phase::Cancelling, Some(original))
            }),
            other => {
                return Err(reject(
                    &Uuid::nil(),
                    format!(
                        "a saga starts with requested, hold_requested, reschedule_requested or \
                         cancel_requested, not {}",
                        other.kind()
                    ),
                ));
            }
        };
        let workflow = start_workflow(event);
        saga.map_err(|problem| reject(&workflow, problem))
    }

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
            Event::Rescheduled => self.end_originals(&Phase::Switching, Phase::Rescheduled),
            Event::Cancelled => self.end_originals(&Phase::Cancelling, Phase::Cancelled),
            Event::Compensated { reason } => self.end_compensated(reason),
            Event::Expired => self.end_expired(),
            Event::Failed { reason } => self.failed(reason),
            Event::AdminResumeRequested => self.resume(),
        }
    }

    // ------------------------------------------------------------ checks

    fn expect_phase(&self, allowed: &[&str]) -> Check {
        if allowed.contains(&self.phase.name()) {
            Ok(())
        } else {
            Err(format!("it needs the phase to be one of {allowed:?}"))
        }
    }

    /// Intents come from decide, which never runs for a failed saga.
    fn expect_running(&self, allowed: &[&str]) -> Check {
        if self.failure.is_some() {
            return Err("the saga failed and waits for an admin".into());
        }
        self.expect_phase(allowed)
    }

    /// Outcomes of intents are accepted until the saga ends.
    fn expect_open(&self) -> Check {
        if self.phase.is_end() {
            return Err("the saga has ended, so no step of it can be in flight".into());
        }
        Ok(())
    }

    fn segment(&self, k: u16) -> Result<&SegmentState, String> {
        self.segments.get(usize::from(k)).ok_or_else(|| {
            format!(
                "there is no segment {k} (the saga has {})",
                self.segments.len()
            )
        })
    }

    fn segment_mut(&mut self, k: u16) -> Result<&mut SegmentState, String> {
        self.segment(k)?;
        Ok(&mut self.segments[usize::from(k)])
    }

    /// Steps run in segment order: every earlier segment must be done.
    fn expect_earlier_done(&self, k: u16, done: impl Fn(&SegmentState) -> bool) -> Check {
        self.segment(k)?;
        match self
            .segments
            .iter()
            .take(usize::from(k))
            .position(|s| !done(s))
        {
            Some(j) => Err(format!("segment {j} comes first and is not done")),
            None => Ok(()),
        }
    }

    fn all_reserved(&self) -> bool {
        self.segments.iter().all(|s| s.reservation.done().is_some())
    }

    fn all_booked(&self) -> bool {
        self.segments.iter().all(|s| s.booking.done().is_some())
    }

    fn releases_settled(&self) -> bool {
        self.segments
            .iter()
            .filter_map(|s| s.reservation.done())
            .all(|r| r.release.is_settled_release())
    }

    fn expect_ends_clean(&self) -> Check {
        match self.duplicates.iter().find(|d| !d.cancel.is_done()) {
            Some(d) => Err(format!(
                "duplicate booking {} of segment {} is not cancelled yet",
                d.uid, d.segment
            )),
            None => Ok(()),
        }
    }

    fn expect_unknown_uid(&self, uid: &str) -> Check {
        if uid.is_empty() {
            return Err("the Cal.com uid is empty".into());
        }
        if self.known_uids().contains(&uid) {
            return Err(format!("uid {uid} is already recorded in this saga"));
        }
        Ok(())
    }

    // ------------------------------------------------------ reservations

    fn reservation_intended(&mut self, k: u16, attempt: u32) -> Check {
        self.expect_running(&["reserving"])?;
        self.expect_earlier_done(k, |s| s.reservation.done().is_some())?;
        expect_attempt(self.segment(k)?.reservation.next_attempt(true), attempt)?;
        self.segment_mut(k)?.reservation = Make::Intended { attempt };
        Ok(())
    }

    fn reservation_made(&mut self, k: u16, uid: &str, until: DateTime<Utc>) -> Check {
        self.expect_open()?;
        expect_intended(&self.segment(k)?.reservation, None)?;
        if uid.is_empty() {
            return Err("the reservation uid is empty".into());
        }
        self.segment_mut(k)?.reservation = Make::Done(Reserved {
            reservation_uid: uid.to_owned(),
            until,
            release: Undo::Live,
        });
        Ok(())
    }

    fn make_failed<T>(
        &mut self,
        k: u16,
        attempt: u32,
        failure: &Failure,
        step: impl Fn(&mut SegmentState) -> &mut Make<T>,
    ) -> Check {
        self.expect_open()?;
        let step = step(self.segment_mut(k)?);
        expect_intended(step, Some(attempt))?;
        *step = Make::Failed {
            attempt,
            failure: failure.clone(),
        };
        Ok(())
    }

    fn release_intended(&mut self, k: u16, attempt: u32) -> Check {
        self.expect_running(&["booking", "compensating", "expiring"])?;
        if self.phase == Phase::Booking && !self.all_booked() {
            return Err("reservations are released only once every segment is booked".into());
        }
        let release = release_of(self.segment_mut(k)?)?;
        expect_attempt(release.next_attempt(), attempt)?;
        *release = Undo::Intended { attempt };
        Ok(())
    }

    fn undo_outcome(
        &mut self,
        k: u16,
        attempt: Option<u32>,
        next: Undo,
        undo: impl Fn(&mut SegmentState) -> Result<&mut Undo, String>,
    ) -> Check {
        self.expect_open()?;
        let undo = undo(self.segment_mut(k)?)?;
        expect_undo_intended(undo, attempt)?;
        *undo = next;
        Ok(())
    }

    // -------------------------------------------------------------- hold

    fn held(&mut self, expires_at: DateTime<Utc>) -> Check {
        self.expect_running(&["reserving"])?;
        if self.kind != Kind::Hold {
            return Err("only a hold saga is held".into());
        }
        if !self.all_reserved() {
            return Err("not every segment is reserved".into());
        }
        self.phase = Phase::Held { expires_at };
        Ok(())
    }

    fn leave_hold(&mut self, next: Phase) -> Check {
        self.expect_running(&["held"])?;
        self.phase = next;
        Ok(())
    }

    // ---------------------------------------------------------- bookings

    fn booking_intended(&mut self, k: u16, attempt: u32) -> Check {
        self.expect_running(&["booking", "reserving"])?;
        if self.phase == Phase::Reserving && (self.kind == Kind::Hold || !self.all_reserved()) {
            return Err(
                "booking starts after every slot is reserved (a hold waits for confirm_requested)"
                    .into(),
            );
        }
        self.expect_earlier_done(k, |s| s.booking.done().is_some())?;
        expect_attempt(self.segment(k)?.booking.next_attempt(false), attempt)?;
        self.segment_mut(k)?.booking = Make::Intended { attempt };
        self.phase = Phase::Booking;
        Ok(())
    }

    fn segment_booked(
        &mut self,
        k: u16,
        uid: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Check {
        self.expect_open()?;
        expect_intended(&self.segment(k)?.booking, None)?;
        self.expect_unknown_uid(uid)?;
        self.segment_mut(k)?.booking = Make::Done(BookedOn {
            calcom_uid: uid.to_owned(),
            start,
            end,
            cancel: Undo::Live,
        });
        Ok(())
    }

    fn outcome_unknown(&mut self, k: u16, attempt: u32) -> Check {
        self.expect_open()?;
        let booking = &mut self.segment_mut(k)?.booking;
        expect_intended(booking, Some(attempt))?;
        *booking = Make::Unknown {
            attempt,
            reconcile_failure: None,
        };
        Ok(())
    }

    fn uncertain_attempt(&self, k: u16) -> Result<u32, String> {
        self.segment(k)?
            .booking
            .uncertain_attempt()
            .ok_or_else(|| format!("segment {k}'s booking is not uncertain"))
    }

    fn reconciled(&mut self, k: u16, found: &Option<String>) -> Check {
        self.expect_open()?;
        let attempt = self.uncertain_attempt(k)?;
        let next = match found {
            Some(uid) => {
                self.expect_unknown_uid(uid)?;
                let planned = self
                    .planned()
                    .get(usize::from(k))
                    .ok_or_else(|| format!("segment {k} has no plan"))?;
                Make::Done(BookedOn {
                    calcom_uid: uid.clone(),
                    start: planned.start,
                    end: planned.end,
                    cancel: Undo::Live,
                })
            }
            None => Make::Missing { attempt },
        };
        self.segment_mut(k)?.booking = next;
        Ok(())
    }

    fn reconcile_failed(&mut self, k: u16, failure: &Failure) -> Check {
        self.expect_open()?;
        let attempt = self.uncertain_attempt(k)?;
        self.segment_mut(k)?.booking = Make::Unknown {
            attempt,
            reconcile_failure: Some(failure.clone()),
        };
        Ok(())
    }

    /// Any booking made for this saga that it does not count as a segment's
    /// booking is extra: a second one for a segment, or an orphan left by a
    /// lagging list. Only an uncertain segment must be reconciled instead.
    fn duplicate_found(&mut self, k: u16, uid: &str) -> Check {
        if self.segment(k)?.booking.uncertain_attempt().is_some() {
            return Err(format!(
                "segment {k}'s booking is uncertain; record {uid} with segment_reconciled"
            ));
        }
        self.expect_unknown_uid(uid)?;
        self.duplicates.push(Duplicate {
            segment: k,
            uid: uid.to_owned(),
            cancel: Undo::Live,
        });
        Ok(())
    }

    // ----------------------------------------------------- cancellations

    fn compensate(&mut self, reason: &str, by_admin: bool) -> Check {
        if by_admin {
            self.expect_phase(&["reserving", "held", "booking"])?;
        } else {
            self.expect_running(&["reserving", "held", "booking"])?;
        }
        self.failure = None;
        self.phase = Phase::Compensating {
            reason: reason.to_owned(),
        };
        Ok(())
    }

    fn cancel_intended(&mut self, target: &CancelTarget, attempt: u32) -> Check {
        match target {
            CancelTarget::Segment(_) => self.expect_running(&["compensating"])?,
            CancelTarget::Original(_) => self.original_cancel_may_start()?,
            CancelTarget::Duplicate(_) => {
                if self.failure.is_some() {
                    return Err("the saga failed and waits for an admin".into());
                }
            }
        }
        let undo = self.cancel_step(target)?;
        expect_attempt(undo.next_attempt(), attempt)?;
        *undo = Undo::Intended { attempt };
        if let CancelTarget::Original(_) = target
            && self.phase == Phase::Booking
        {
            self.phase = Phase::Switching;
        }
        Ok(())
    }

    /// Originals go only when the replacement is complete (make-before-break).
    fn original_cancel_may_start(&self) -> Check {
        self.expect_running(&["cancelling", "switching", "booking"])?;
        if self.phase == Phase::Booking
            && !(self.kind == Kind::Reschedule && self.all_booked() && self.releases_settled())
        {
            return Err(
                "a reschedule cancels the original only after every new segment is booked \
                 and its reservations are released"
                    .into(),
            );
        }
        Ok(())
    }

    fn cancel_outcome(&mut self, target: &CancelTarget, attempt: Option<u32>, next: Undo) -> Check {
        let undo = self.cancel_step(target)?;
        expect_undo_intended(undo, attempt)?;
        *undo = next;
        Ok(())
    }

    fn cancel_step(&mut self, target: &CancelTarget) -> Result<&mut Undo, String> {
        match target {
            CancelTarget::Segment(k) => match &mut self.segment_mut(*k)?.booking {
                Make::Done(b) => Ok(&mut b.cancel),
                _ => Err(format!("segment {k} has no booking to cancel")),
            },
            CancelTarget::Original(k) => {
                let count = self.originals.len();
                self.originals
                    .get_mut(usize::from(*k))
                    .ok_or_else(|| format!("there is no original segment {k} (it has {count})"))
            }
            CancelTarget::Duplicate(uid) => self
                .duplicates
                .iter_mut()
                .find(|d| d.uid == *uid)
                .map(|d| &mut d.cancel)
                .ok_or_else(|| format!("{uid} is not a known duplicate")),
        }
    }

    // -------------------------------------------------------------- ends

    fn end_booked(&mut self) -> Check {
        self.expect_running(&["booking"])?;
        if !matches!(self.kind, Kind::Book | Kind::Hold) {
            return Err("a reschedule ends rescheduled, not booked".into());
        }
        if !self.all_booked() || !self.releases_settled() {
            return Err("not every segment is booked with its reservation released".into());
        }
        self.expect_ends_clean()?;
        self.phase = Phase::Booked;
        Ok(())
    }

    fn end_originals(&mut self, from: &Phase, to: Phase) -> Check {
        self.expect_running(&[from.name()])?;
        if !self.originals.iter().all(Undo::is_done) {
            return Err("not every original segment is cancelled".into());
        }
        self.expect_ends_clean()?;
        self.phase = to;
        Ok(())
    }

    fn end_compensated(&mut self, reason: &str) -> Check {
        self.expect_running(&["compensating"])?;
        let left = self.segments.iter().position(|s| match &s.booking {
            Make::Done(b) => !b.cancel.is_done(),
            other => other.uncertain_attempt().is_some(),
        });
        if let Some(k) = left {
            return Err(format!("segment {k} still has a live or uncertain booking"));
        }
        if !self.releases_settled() {
            return Err("a reservation is not released yet".into());
        }
        self.expect_ends_clean()?;
        self.phase = Phase::Compensated {
            reason: reason.to_owned(),
        };
        Ok(())
    }

    fn end_expired(&mut self) -> Check {
        self.expect_running(&["expiring"])?;
        if !self.releases_settled() {
            return Err("a reservation is not released yet".into());
        }
        self.expect_ends_clean()?;
        self.phase = Phase::Expired;
        Ok(())
    }

    fn failed(&mut self, reason: &str) -> Check {
        if self.is_terminal() {
            return Err("the saga has no work left (or already failed)".into());
        }
        self.failure = Some(reason.to_owned());
        Ok(())
    }

    /// Turns the permanent refusals that stopped the saga into retries due now.
    fn resume(&mut self) -> Check {
        if self.failure.take().is_none() {
            return Err("only a failed saga is resumed".into());
        }
        let cancels = self
            .segments
            .iter_mut()
            .filter_map(|s| match &mut s.booking {
                Make::Done(b) => Some(&mut b.cancel),
                _ => None,
            })
            .chain(self.originals.iter_mut())
            .chain(self.duplicates.iter_mut().map(|d| &mut d.cancel));
        for undo in cancels {
            if let Undo::Failed { failure, .. } = undo {
                *failure = retry_now(failure);
            }
        }
        for s in &mut self.segments {
            if let Make::Unknown {
                reconcile_failure, ..
            } = &mut s.booking
            {
                *reconcile_failure = None;
            }
        }
        Ok(())
    }
}

fn retry_now(failure: &Failure) -> Failure {
    Failure::Retryable {
        reason: failure.reason().to_owned(),
        retry_at: None,
    }
}

fn undo_failed(attempt: u32, failure: &Failure) -> Undo {
    Undo::Failed {
        attempt,
        failure: failure.clone(),
    }
}

fn release_of(s: &mut SegmentState) -> Result<&mut Undo, String> {
    match &mut s.reservation {
        Make::Done(r) => Ok(&mut r.release),
        _ => Err("the segment has no reservation".into()),
    }
}

fn expect_attempt(next: Option<u32>, attempt: u32) -> Check {
    match next {
        Some(n) if n == attempt => Ok(()),
        Some(n) => Err(format!("attempt {attempt} given, {n} expected")),
        None => Err("the step is not open for a new attempt".into()),
    }
}

/// `attempt`: None when the outcome event does not name one.
fn expect_intended<T>(step: &Make<T>, attempt: Option<u32>) -> Check {
    match (step, attempt) {
        (Make::Intended { attempt: a }, Some(b)) if *a != b => {
            Err(format!("attempt {a} is intended, not attempt {b}"))
        }
        (Make::Intended { .. }, _) => Ok(()),
        _ => Err("no intent of this step waits for an outcome".into()),
    }
}

fn expect_undo_intended(undo: &Undo, attempt: Option<u32>) -> Check {
    match (undo, attempt) {
        (Undo::Intended { attempt: a }, Some(b)) if *a != b => {
            Err(format!("attempt {a} is intended, not attempt {b}"))
        }
        (Undo::Intended { .. }, _) => Ok(()),
        _ => Err("no intent of this step waits for an outcome".into()),
    }
}

fn start_workflow(event: &Event) -> Uuid {
    match event {
        Event::Requested { workflow, .. }
        | Event::HoldRequested { workflow, .. }
        | Event::RescheduleRequested { workflow, .. }
        | Event::CancelRequested { workflow, .. } => *workflow,
        _ => Uuid::nil(),
    }
}

fn empty(workflow: Uuid, kind: Kind, phase: Phase, original: Option<&OriginalBooking>) -> Saga {
    Saga {
        workflow,
        kind,
        phase,
        request: None,
        reserve_min: None,
        original: original.cloned(),
        cancel_reason: None,
        segments: Vec::new(),
        originals: Vec::new(),
        duplicates: Vec::new(),
        failure: None,
        version: 1,
    }
}

fn booking_saga(
    workflow: Uuid,
    kind: Kind,
    request: &BookingRequest,
    reserve_min: Option<u32>,
    original: Option<&OriginalBooking>,
) -> Result<Saga, String> {
    check_request(request)?;
    if reserve_min == Some(0) {
        return Err("reservations must last at least 1 minute".into());
    }
    let phase = match reserve_min {
        Some(_) => Phase::Reserving,
        None => Phase::Booking,
    };
    Ok(Saga {
        request: Some(request.clone()),
        reserve_min,
        segments: vec![SegmentState::default(); request.plan.segments.len()],
        originals: original.map_or(Vec::new(), |o| vec![Undo::Live; o.segments.len()]),
        ..empty(workflow, kind, phase, original)
    })
}

fn check_request(request: &BookingRequest) -> Check {
    let segments = &request.plan.segments;
    if segments.is_empty() || segments.len() > SEGMENTS_MAX {
        return Err(format!(
            "the plan has {} segments; it needs 1 to {SEGMENTS_MAX}",
            segments.len()
        ));
    }
    let mut previous_end: Option<DateTime<Utc>> = None;
    for (k, s) in segments.iter().enumerate() {
        if usize::from(s.index) != k {
            return Err(format!("segment {k} carries index {}", s.index));
        }
        if s.start >= s.end {
            return Err(format!("segment {k} does not end after it starts"));
        }
        if previous_end.is_some_and(|e| s.start < e) {
            return Err(format!("segment {k} starts before segment {} ends", k - 1));
        }
        previous_end = Some(s.end);
    }
    Ok(())
}

fn check_original(workflow: Uuid, original: &OriginalBooking) -> Check {
    if original.workflow == workflow {
        return Err("a saga cannot change itself; original names its own workflow".into());
    }
    if original.segments.is_empty() || original.segments.len() > SEGMENTS_MAX {
        return Err(format!(
            "the original has {} segments; it needs 1 to {SEGMENTS_MAX}",
            original.segments.len()
        ));
    }
    if let Some(k) = original
        .segments
        .iter()
        .enumerate()
        .position(|(k, s)| usize::from(s.segment.index) != k)
    {
        return Err(format!("original segment {k} carries another index"));
    }
    let mut uids: Vec<&str> = original
        .segments
        .iter()
        .map(|s| s.calcom_uid.as_str())
        .collect();
    uids.sort_unstable();
    uids.dedup();
    if uids.len() != original.segments.len() || uids.contains(&"") {
        return Err("the original's Cal.com uids must be present and distinct".into());
    }
    Ok(())
}
