//! One saga step's Cal.com call and the events that record its outcome. The
//! intent is already committed when this runs (I6); this file only turns a
//! `saga::Call` into a request and the reply into the call's own outcome
//! events. It never decides what happens next: that is `saga::decide`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;

use crate::calcom::wire::{
    self, CancelBooking, CreateBooking, NewAttendee, RescheduleBooking, ReserveSlot,
};
use crate::calcom::{CalcomApi, CalcomError, RetryPolicy};
use crate::saga::{
    Attendee, Call, CancelCall, CreateCall, Event, Failure, MoveBackCall, MoveCall, ReconcileCall,
    ReleaseCall, ReserveCall,
};

use super::listings::{Listings, Uncertain};
use super::reconcile;

/// What a runner needs to make calls: the API and how to space retries.
pub struct Caller<'a> {
    pub api: &'a dyn CalcomApi,
    pub retry: &'a RetryPolicy,
    pub rng: &'a Mutex<SmallRng>,
    /// How long after a create was sent it may still land at Cal.com.
    pub settle: chrono::Duration,
    /// The day listings reconciles share.
    pub listings: &'a Listings,
}

impl Caller<'_> {
    /// Makes `call` and returns its outcome events, to be committed together
    /// with the next intent.
    /// `known_uids`: bookings the saga already accounts for, which a
    /// reconcile must not report again.
    /// `intent_at`: when the uncertain create a reconcile is about was
    /// committed; until `settle` has passed since then, that create may still
    /// land at Cal.com, so "not found" is not the truth yet.
    pub async fn perform(
        &self,
        call: &Call,
        known_uids: &[&str],
        intent_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Vec<Event> {
        match call {
            Call::Reserve(c) => vec![self.reserve(c, now).await],
            Call::Create(c) => vec![self.create(c, now).await],
            Call::Reconcile(c) => {
                let uncertain = intent_at.map(|sent| Uncertain {
                    sent,
                    settled: sent + self.settle,
                });
                self.reconcile(c, known_uids, uncertain, now).await
            }
            Call::Release(c) => vec![self.release(c, now).await],
            Call::Cancel(c) => vec![self.cancel(c, now).await],
            Call::Move(c) => vec![self.move_segment(c, now).await],
            Call::MoveBack(c) => vec![self.move_back(c, now).await],
        }
    }

    /// Looks for the uncertain create's booking. "Not found" is the truth
    /// only from a listing begun once the create could no longer land
    /// (`Uncertain::settled`); before that, it is looked for again then.
    async fn reconcile(
        &self,
        c: &ReconcileCall,
        known_uids: &[&str],
        uncertain: Option<Uncertain>,
        now: DateTime<Utc>,
    ) -> Vec<Event> {
        let (mut uids, listed_at) =
            match reconcile::live_uids(self.api, self.listings, c, now, uncertain).await {
                Ok(found) => found,
                Err(e) => return vec![c.failed(self.failure(&e, c.attempt, now))],
            };
        uids.retain(|u| !known_uids.contains(&u.as_str()));
        match uncertain {
            Some(u) if uids.is_empty() && listed_at < u.settled => {
                vec![c.failed(Failure::Retryable {
                    reason: format!(
                        "no booking found yet, but the create sent at {} may still land; \
                         looking again once it cannot",
                        u.sent
                    ),
                    retry_at: Some(u.settled),
                })]
            }
            _ => c.found(&uids),
        }
    }

    async fn reserve(&self, c: &ReserveCall, now: DateTime<Utc>) -> Event {
        let input = ReserveSlot {
            event_type_id: c.segment.event_type_id,
            slot_start: c.segment.start,
            slot_duration: None,
            reservation_duration: Some(c.reservation_min),
        };
        match self.api.reserve_slot(&input).await {
            Ok(r) => c.made(r.reservation_uid, r.reservation_until),
            Err(e) => c.failed(self.failure(&e, c.attempt, now)),
        }
    }

    async fn create(&self, c: &CreateCall, now: DateTime<Utc>) -> Event {
        match self.api.create_booking(&create_input(c)).await {
            Ok(b) => c.booked(b.uid, b.start, b.end),
            Err(CalcomError::OutcomeUnknown { reason }) => c.unknown(reason),
            // After an uncertain attempt, "taken" may mean taken by that
            // attempt landing late: reconcile before it counts as refused.
            Err(e) if e.is_slot_taken() && c.attempt > 1 => c.unknown(format!(
                "{e}; an earlier attempt of this segment may have made it, so it is reconciled first"
            )),
            Err(e) => c.failed(self.failure(&e, c.attempt, now)),
        }
    }

    async fn move_segment(&self, c: &MoveCall, now: DateTime<Utc>) -> Event {
        let input = RescheduleBooking {
            start: c.segment.start,
            rescheduled_by: None,
            rescheduling_reason: Some(format!("moved by calsaga workflow {}", c.workflow)),
        };
        match self.api.reschedule_booking(&c.from_uid, &input).await {
            Ok(b) => c.moved(b.uid, b.start, b.end),
            Err(CalcomError::OutcomeUnknown { reason }) => c.unknown(reason),
            // After an uncertain attempt a refusal may mean that attempt
            // moved the original already: follow its lineage first.
            Err(e @ CalcomError::Permanent { .. }) if c.attempt > 1 => c.unknown(format!(
                "{e}; an earlier attempt may have moved booking {}, so it is reconciled first",
                c.from_uid
            )),
            Err(e) => c.failed(self.failure(&e, c.attempt, now)),
        }
    }

    /// From attempt 2 on, an earlier attempt may have gone through: follow
    /// the booking's lineage before moving it again.
    async fn move_back(&self, c: &MoveBackCall, now: DateTime<Utc>) -> Event {
        if c.attempt > 1 {
            match reconcile::lineage(self.api, &c.calcom_uid, &c.segment).await {
                Ok(reconcile::Lineage::MovedTo(uid)) => return c.moved_back(uid),
                Ok(reconcile::Lineage::Live) => {}
                Ok(reconcile::Lineage::Gone) => {
                    return c.failed(Failure::Permanent {
                        reason: format!(
                            "booking {} was cancelled in Cal.com before it could go back to {}; \
                             the original's time must be booked again by hand",
                            c.calcom_uid, c.segment.start
                        ),
                    });
                }
                Err(e) => return c.failed(self.failure(&e, c.attempt, now)),
            }
        }
        let input = RescheduleBooking {
            start: c.segment.start,
            rescheduled_by: None,
            rescheduling_reason: Some(c.reason.clone()),
        };
        match self.api.reschedule_booking(&c.calcom_uid, &input).await {
            Ok(b) => c.moved_back(b.uid),
            Err(e) => c.failed(self.failure(&e, c.attempt, now)),
        }
    }

    async fn release(&self, c: &ReleaseCall, now: DateTime<Utc>) -> Event {
        match self.api.release_reservation(&c.reservation_uid).await {
            Ok(()) => c.released(),
            Err(e) => c.failed(self.failure(&e, c.attempt, now)),
        }
    }

    async fn cancel(&self, c: &CancelCall, now: DateTime<Utc>) -> Event {
        let input = CancelBooking {
            cancellation_reason: Some(c.reason.clone()),
            cancel_subsequent_bookings: None,
        };
        match self.api.cancel_booking(&c.calcom_uid, &input).await {
            Ok(_) => c.cancelled(),
            // Gone or already cancelled is what a cancel wants.
            Err(e) if e.is_already_cancelled() || is_not_found(&e) => c.cancelled(),
            Err(e) => c.failed(self.failure(&e, c.attempt, now)),
        }
    }

    /// How the saga sees a failed call. A lost reply of anything but a create
    /// is retryable: reservations lapse and cancels and reads repeat safely.
    fn failure(&self, e: &CalcomError, attempt: u32, now: DateTime<Utc>) -> Failure {
        match e {
            CalcomError::Permanent { .. } if e.is_slot_taken() => Failure::Taken {
                reason: e.to_string(),
            },
            CalcomError::Permanent { .. } => Failure::Permanent {
                reason: e.to_string(),
            },
            CalcomError::Retryable { after, .. } => self.retryable(e, attempt, *after, now),
            CalcomError::OutcomeUnknown { .. } => self.retryable(e, attempt, None, now),
        }
    }

    fn retryable(
        &self,
        e: &CalcomError,
        attempt: u32,
        after: Option<std::time::Duration>,
        now: DateTime<Utc>,
    ) -> Failure {
        let delay = {
            let mut rng = self.rng.lock().expect("retry rng lock");
            self.retry.delay(attempt, after, &mut rng)
        };
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        Failure::Retryable {
            reason: e.to_string(),
            retry_at: Some(now + delay),
        }
    }
}

pub(super) fn is_not_found(e: &CalcomError) -> bool {
    matches!(e, CalcomError::Permanent { status: 404, .. })
}

/// The Cal.com booking for one segment, carrying the metadata that lets
/// reconciliation and the orphan check recognise it as ours.
fn create_input(c: &CreateCall) -> CreateBooking {
    let metadata = BTreeMap::from([
        (wire::META_WORKFLOW.to_string(), c.workflow.to_string()),
        (wire::META_SEGMENT.to_string(), c.segment.index.to_string()),
        (wire::META_ATTEMPT.to_string(), c.attempt.to_string()),
    ]);
    CreateBooking {
        start: c.segment.start,
        event_type_id: c.segment.event_type_id,
        attendee: new_attendee(&c.attendee),
        metadata,
        length_in_minutes: None,
        guests: Vec::new(),
        booking_fields_responses: c.notes.as_ref().map(|n| serde_json::json!({ "notes": n })),
    }
}

fn new_attendee(a: &Attendee) -> NewAttendee {
    NewAttendee {
        name: a.name.clone(),
        time_zone: a.time_zone.clone(),
        email: a.email.clone(),
        phone_number: a.phone.clone(),
        language: None,
    }
}
