//! The per-event transitions behind `Saga::apply`: one handler per event
//! group, each checking the state before it changes anything. Dispatch and
//! the shared checks are in apply.rs.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::apply::Check;
use super::event::{CancelTarget, Failure};
use super::plan::HostChange;
use super::state::{BookedOn, Duplicate, Kind, Make, Phase, Reserved, Saga, SegmentState, Undo};
use crate::catalog::StaffOption;

impl Saga {
    // ------------------------------------------------------ reservations

    pub(super) fn reservation_intended(&mut self, k: u16, attempt: u32) -> Check {
        self.expect_running(&["reserving"])?;
        self.expect_earlier_done(k, |s| s.reservation.done().is_some())?;
        expect_attempt(self.segment(k)?.reservation.next_attempt(true), attempt)?;
        self.segment_mut(k)?.reservation = Make::Intended { attempt };
        Ok(())
    }

    pub(super) fn reservation_made(&mut self, k: u16, uid: &str, until: DateTime<Utc>) -> Check {
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

    pub(super) fn make_failed<T>(
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

    pub(super) fn release_intended(&mut self, k: u16, attempt: u32) -> Check {
        self.expect_running(&["booking", "compensating", "expiring"])?;
        if self.phase == Phase::Booking && !self.all_booked() {
            return Err("reservations are released only once every segment is booked".into());
        }
        let release = release_of(self.segment_mut(k)?)?;
        expect_attempt(release.next_attempt(), attempt)?;
        *release = Undo::Intended { attempt };
        Ok(())
    }

    pub(super) fn undo_outcome(
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

    pub(super) fn held(&mut self, expires_at: DateTime<Utc>) -> Check {
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

    pub(super) fn leave_hold(&mut self, next: Phase) -> Check {
        self.expect_running(&["held"])?;
        self.phase = next;
        Ok(())
    }

    // ---------------------------------------------------------- bookings

    pub(super) fn booking_intended(&mut self, k: u16, attempt: u32) -> Check {
        if let Some(uid) = self.moves(usize::from(k)) {
            return Err(format!(
                "segment {k} moves Cal.com booking {uid}; it is made by segment_move_intended"
            ));
        }
        self.make_intended(k, attempt)
    }

    pub(super) fn move_intended(&mut self, k: u16, attempt: u32) -> Check {
        self.expect_move(k)?;
        self.make_intended(k, attempt)
    }

    fn expect_move(&self, k: u16) -> Check {
        if self.kind != Kind::Reschedule || self.moves(usize::from(k)).is_none() {
            return Err(format!("segment {k} does not move an original booking"));
        }
        Ok(())
    }

    fn make_intended(&mut self, k: u16, attempt: u32) -> Check {
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

    pub(super) fn segment_booked(
        &mut self,
        k: u16,
        uid: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Check {
        if let Some(moved) = self.moves(usize::from(k)) {
            return Err(format!(
                "segment {k} moves Cal.com booking {moved}; its outcome is segment_moved"
            ));
        }
        self.book(k, uid, start, end)
    }

    fn book(&mut self, k: u16, uid: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Check {
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

    /// A move books the segment and ends its original in one Cal.com call.
    pub(super) fn segment_moved(
        &mut self,
        k: u16,
        uid: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Check {
        self.expect_move(k)?;
        self.original_moved(k)?;
        self.book(k, uid, start, end)?;
        self.originals[usize::from(k)] = Undo::Done;
        Ok(())
    }

    /// The original a move ended, checked before anything changes.
    fn original_moved(&self, k: u16) -> Check {
        match self.originals.get(usize::from(k)) {
            Some(Undo::Live) => Ok(()),
            Some(_) => Err(format!("original segment {k} is already being cancelled")),
            None => Err(format!("there is no original segment {k}")),
        }
    }

    pub(super) fn move_back_intended(&mut self, k: u16, attempt: u32) -> Check {
        self.expect_running(&["compensating"])?;
        if self.moves(usize::from(k)).is_none() {
            return Err(format!("segment {k} was not moved, so it is cancelled"));
        }
        let undo = self.cancel_step(&CancelTarget::Segment(k))?;
        expect_attempt(undo.next_attempt(), attempt)?;
        *undo = Undo::Intended { attempt };
        Ok(())
    }

    /// `failed`: the attempt and why; None: the original's time is booked
    /// again (the original lives on, under the uid the event names).
    pub(super) fn moved_back(&mut self, k: u16, failed: Option<(u32, &Failure)>) -> Check {
        self.expect_open()?;
        let (attempt, next) = match failed {
            Some((attempt, failure)) => (Some(attempt), undo_failed(attempt, failure)),
            None => (None, Undo::Done),
        };
        let done = next.is_done();
        let undo = self.cancel_step(&CancelTarget::Segment(k))?;
        expect_undo_intended(undo, attempt)?;
        *undo = next;
        if done && let Some(original) = self.originals.get_mut(usize::from(k)) {
            *original = Undo::Live;
        }
        Ok(())
    }

    /// A change saga moved this segment and moved it back: same times, new uid.
    pub(super) fn segment_restored(&mut self, k: u16, uid: &str) -> Check {
        self.expect_phase(&["booked", "rescheduled"])?;
        self.expect_unknown_uid(uid)?;
        match &mut self.segment_mut(k)?.booking {
            Make::Done(b) if b.cancel == Undo::Live => {
                b.calcom_uid = uid.to_owned();
                Ok(())
            }
            _ => Err(format!("segment {k} has no live booking to restore")),
        }
    }

    /// Failover: the segment's refused step starts over with `to`, which
    /// leaves its alternatives so no option is tried twice.
    pub(super) fn host_switched(
        &mut self,
        k: u16,
        from: u64,
        to: StaffOption,
        reason: &str,
    ) -> Check {
        self.expect_running(&["reserving", "booking"])?;
        let reserving = self.phase == Phase::Reserving;
        let state = self.segment(k)?;
        let refused_as_taken =
            |failure: Option<&Failure>| matches!(failure, Some(Failure::Taken { .. }));
        let failed = if reserving {
            refused_as_taken(state.reservation.failure())
        } else {
            refused_as_taken(state.booking.failure())
        };
        if !failed {
            return Err(format!(
                "segment {k}'s {} was not refused as taken",
                if reserving { "reservation" } else { "booking" }
            ));
        }
        let planned = self
            .request
            .as_mut()
            .and_then(|r| Arc::make_mut(r).plan.segments.get_mut(usize::from(k)))
            .ok_or_else(|| format!("segment {k} has no plan"))?;
        if planned.host != from {
            return Err(format!(
                "segment {k} is with host {}, not {from}",
                planned.host
            ));
        }
        let Some(at) = planned.alternatives.iter().position(|o| *o == to) else {
            return Err(format!(
                "host {} with event type {} is not a remaining option of segment {k}",
                to.host, to.event_type_id
            ));
        };
        planned.alternatives.remove(at);
        planned.host = to.host;
        planned.event_type_id = to.event_type_id;
        // The new host creates its own booking; the original is cancelled
        // at the switch like any other.
        planned.moves = None;
        planned.host_change = Some(HostChange {
            from,
            reason: reason.to_owned(),
        });
        let state = self.segment_mut(k)?;
        if reserving {
            state.reservation = Make::Pending;
        } else {
            state.booking = Make::Pending;
        }
        Ok(())
    }

    pub(super) fn outcome_unknown(&mut self, k: u16, attempt: u32) -> Check {
        self.expect_open()?;
        let booking = &mut self.segment_mut(k)?.booking;
        expect_intended(booking, Some(attempt))?;
        *booking = Make::Unknown {
            attempt,
            reconcile_failure: None,
        };
        Ok(())
    }

    pub(super) fn uncertain_attempt(&self, k: u16) -> Result<u32, String> {
        self.segment(k)?
            .booking
            .uncertain_attempt()
            .ok_or_else(|| format!("segment {k}'s booking is not uncertain"))
    }

    pub(super) fn reconciled(&mut self, k: u16, found: &Option<String>) -> Check {
        self.expect_open()?;
        let attempt = self.uncertain_attempt(k)?;
        let moved = found.is_some() && self.moves(usize::from(k)).is_some();
        if moved {
            self.original_moved(k)?;
        }
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
        if moved {
            self.originals[usize::from(k)] = Undo::Done;
        }
        Ok(())
    }

    pub(super) fn reconcile_failed(&mut self, k: u16, failure: &Failure) -> Check {
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
    pub(super) fn duplicate_found(&mut self, k: u16, uid: &str) -> Check {
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

    pub(super) fn compensate(&mut self, reason: &str, by_admin: bool) -> Check {
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

    pub(super) fn cancel_intended(&mut self, target: &CancelTarget, attempt: u32) -> Check {
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
    pub(super) fn original_cancel_may_start(&self) -> Check {
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

    pub(super) fn cancel_outcome(
        &mut self,
        target: &CancelTarget,
        attempt: Option<u32>,
        next: Undo,
    ) -> Check {
        let undo = self.cancel_step(target)?;
        expect_undo_intended(undo, attempt)?;
        *undo = next;
        Ok(())
    }

    pub(super) fn cancel_step(&mut self, target: &CancelTarget) -> Result<&mut Undo, String> {
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

    pub(super) fn end_booked(&mut self) -> Check {
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

    /// A reschedule whose segments all moved has no original left to
    /// cancel, so it may end straight from booking.
    pub(super) fn end_rescheduled(&mut self) -> Check {
        if self.phase == Phase::Booking {
            if self.kind != Kind::Reschedule || !self.all_booked() || !self.releases_settled() {
                return Err("not every new segment is booked with its reservation released".into());
            }
            return self.end_originals(&Phase::Booking, Phase::Rescheduled);
        }
        self.end_originals(&Phase::Switching, Phase::Rescheduled)
    }

    pub(super) fn end_originals(&mut self, from: &Phase, to: Phase) -> Check {
        self.expect_running(&[from.name()])?;
        if !self.originals.iter().all(Undo::is_done) {
            return Err("not every original segment is cancelled".into());
        }
        self.expect_ends_clean()?;
        self.phase = to;
        Ok(())
    }

    pub(super) fn end_compensated(&mut self, reason: &str) -> Check {
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

    pub(super) fn end_expired(&mut self) -> Check {
        self.expect_running(&["expiring"])?;
        if !self.releases_settled() {
            return Err("a reservation is not released yet".into());
        }
        self.expect_ends_clean()?;
        self.phase = Phase::Expired;
        Ok(())
    }

    pub(super) fn failed(&mut self, reason: &str) -> Check {
        if self.is_terminal() {
            return Err("the saga has no work left (or already failed)".into());
        }
        self.failure = Some(reason.to_owned());
        Ok(())
    }

    /// Turns the permanent refusals that stopped the saga into retries due now.
    pub(super) fn resume(&mut self) -> Check {
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

pub(super) fn undo_failed(attempt: u32, failure: &Failure) -> Undo {
    Undo::Failed {
        attempt,
        failure: failure.clone(),
    }
}

pub(super) fn release_of(s: &mut SegmentState) -> Result<&mut Undo, String> {
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
