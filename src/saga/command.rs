//! What the core asks the runner to do next, and everything the runner needs
//! to do it: each `Call` carries the data of one Cal.com request, the intent
//! event to commit before sending it (I6), and constructors for the events
//! that record its outcome, so the runner never assembles segment or attempt
//! numbers itself. Data only: building HTTP bodies is `calcom/`'s job.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::event::{Attendee, CancelTarget, Event, Failure};
use super::plan::PlannedSegment;

/// The next thing to do for one saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Commit `call.intent()` (if any), then make the call, then record its outcome.
    Call(Call),
    /// Record this fact; no Cal.com call is involved.
    Record(Event),
    /// Nothing to do before this instant (a retry's backoff or a hold's
    /// expiry): arm a durable timer and look again then.
    WaitUntil(DateTime<Utc>),
    /// Nothing to do: the saga ended, or failed and waits for an admin.
    Idle,
}

/// One Cal.com request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Reserve(ReserveCall),
    /// Boxed: it carries the attendee and is much larger than the rest.
    Create(Box<CreateCall>),
    Reconcile(ReconcileCall),
    Release(ReleaseCall),
    Cancel(CancelCall),
    Move(MoveCall),
    MoveBack(MoveBackCall),
}

impl Call {
    /// The intent to commit before the call; None for reads (a reconcile
    /// only lists bookings, so it changes nothing at Cal.com).
    pub fn intent(&self) -> Option<Event> {
        match self {
            Call::Reserve(c) => Some(Event::ReservationIntended {
                segment: c.segment.index,
                attempt: c.attempt,
            }),
            Call::Create(c) => Some(Event::SegmentBookingIntended {
                segment: c.segment.index,
                attempt: c.attempt,
            }),
            Call::Reconcile(_) => None,
            Call::Release(c) => Some(Event::ReleaseIntended {
                segment: c.segment,
                attempt: c.attempt,
            }),
            Call::Cancel(c) => Some(Event::CancelIntended {
                target: c.target.clone(),
                attempt: c.attempt,
            }),
            Call::Move(c) => Some(Event::SegmentMoveIntended {
                segment: c.segment.index,
                attempt: c.attempt,
            }),
            Call::MoveBack(c) => Some(Event::MoveBackIntended {
                segment: c.segment.index,
                attempt: c.attempt,
            }),
        }
    }
}

/// `POST /v2/slots/reservations` for one segment's slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveCall {
    pub segment: PlannedSegment,
    pub attempt: u32,
    pub reservation_min: u32,
}

impl ReserveCall {
    pub fn made(&self, reservation_uid: String, until: DateTime<Utc>) -> Event {
        Event::ReservationMade {
            segment: self.segment.index,
            reservation_uid,
            until,
        }
    }

    /// Also for a lost reply: a reservation we cannot see lapses by itself.
    pub fn failed(&self, failure: Failure) -> Event {
        Event::ReservationFailed {
            segment: self.segment.index,
            attempt: self.attempt,
            failure,
        }
    }
}

/// `POST /v2/bookings` for one segment. Metadata to send:
/// {calsaga_workflow: workflow, calsaga_segment: segment.index, calsaga_attempt: attempt}.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCall {
    pub workflow: Uuid,
    pub service_id: String,
    pub segment: PlannedSegment,
    pub attempt: u32,
    pub attendee: Attendee,
    pub notes: Option<String>,
}

impl CreateCall {
    pub fn booked(&self, calcom_uid: String, start: DateTime<Utc>, end: DateTime<Utc>) -> Event {
        Event::SegmentBooked {
            segment: self.segment.index,
            calcom_uid,
            start,
            end,
        }
    }

    pub fn failed(&self, failure: Failure) -> Event {
        make_failed(&self.segment, self.attempt, failure)
    }

    /// The reply was lost: never create again before a reconcile.
    pub fn unknown(&self, reason: String) -> Event {
        make_unknown(&self.segment, self.attempt, reason)
    }
}

/// List the host's bookings around the segment's times (with paging) and keep the
/// live ones whose metadata names `workflow` and `segment` and whose times
/// match, checked on our side (Cal.com list filters are not trusted), minus
/// the uids the saga already knows (`Saga::known_uids`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileCall {
    pub workflow: Uuid,
    pub segment: PlannedSegment,
    /// The uncertain attempt (matches of any attempt count).
    pub attempt: u32,
}

impl ReconcileCall {
    /// `live_uids`: every matching live booking, oldest first. The first is
    /// the segment's booking; any other is a duplicate to cancel (I1).
    pub fn found(&self, live_uids: &[String]) -> Vec<Event> {
        let mut events = vec![Event::SegmentReconciled {
            segment: self.segment.index,
            found: live_uids.first().cloned(),
        }];
        events.extend(live_uids.iter().skip(1).map(|uid| Event::DuplicateFound {
            segment: self.segment.index,
            uid: uid.clone(),
        }));
        events
    }

    pub fn failed(&self, failure: Failure) -> Event {
        Event::ReconcileFailed {
            segment: self.segment.index,
            failure,
        }
    }
}

/// `DELETE /v2/slots/reservations/{reservation_uid}` (succeeds for unknown uids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseCall {
    pub segment: u16,
    pub attempt: u32,
    pub reservation_uid: String,
}

impl ReleaseCall {
    pub fn released(&self) -> Event {
        Event::ReservationReleased {
            segment: self.segment,
        }
    }

    pub fn failed(&self, failure: Failure) -> Event {
        Event::ReleaseFailed {
            segment: self.segment,
            attempt: self.attempt,
            failure,
        }
    }
}

/// `POST /v2/bookings/{calcom_uid}/cancel` with `reason`. A booking Cal.com
/// reports as already cancelled (or unknown) counts as cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelCall {
    pub target: CancelTarget,
    pub attempt: u32,
    pub calcom_uid: String,
    pub reason: String,
}

impl CancelCall {
    pub fn cancelled(&self) -> Event {
        Event::BookingCancelled {
            target: self.target.clone(),
        }
    }

    /// Also for a lost reply (as retryable): cancelling twice is harmless.
    pub fn failed(&self, failure: Failure) -> Event {
        Event::CancelFailed {
            target: self.target.clone(),
            attempt: self.attempt,
            failure,
        }
    }
}

/// `POST /v2/bookings/{from_uid}/reschedule` to `segment.start`: Cal.com
/// books the new time and cancels the original in one call, the original's
/// own time counting as free for its host. The new booking keeps the
/// original's metadata, so a reconcile follows the original's lineage
/// (`rescheduledToUid`, or `rescheduledFromUid` on the host's bookings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveCall {
    pub workflow: Uuid,
    /// The new segment; `segment.moves` names the original booking.
    pub segment: PlannedSegment,
    pub from_uid: String,
    pub attempt: u32,
}

impl MoveCall {
    pub fn moved(&self, calcom_uid: String, start: DateTime<Utc>, end: DateTime<Utc>) -> Event {
        Event::SegmentMoved {
            segment: self.segment.index,
            calcom_uid,
            start,
            end,
        }
    }

    pub fn failed(&self, failure: Failure) -> Event {
        make_failed(&self.segment, self.attempt, failure)
    }

    /// The reply was lost: the original may be moved already; reconcile.
    pub fn unknown(&self, reason: String) -> Event {
        make_unknown(&self.segment, self.attempt, reason)
    }
}

/// A create or a move that did not happen: one booking step, one failure event.
fn make_failed(segment: &PlannedSegment, attempt: u32, failure: Failure) -> Event {
    Event::SegmentBookingFailed {
        segment: segment.index,
        attempt,
        failure,
    }
}

fn make_unknown(segment: &PlannedSegment, attempt: u32, reason: String) -> Event {
    Event::SegmentOutcomeUnknown {
        segment: segment.index,
        attempt,
        reason,
    }
}

/// Undo of a move while compensating: `POST /v2/bookings/{calcom_uid}/reschedule`
/// back to `to` (the original's start). From attempt 2 on, the runner first
/// asks Cal.com whether an earlier attempt went through, so a move back is
/// never repeated blindly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveBackCall {
    /// The moved segment as the original had it (host, event type, times).
    pub segment: PlannedSegment,
    pub calcom_uid: String,
    pub attempt: u32,
    pub reason: String,
}

impl MoveBackCall {
    pub fn moved_back(&self, calcom_uid: String) -> Event {
        Event::SegmentMovedBack {
            segment: self.segment.index,
            calcom_uid,
        }
    }

    pub fn failed(&self, failure: Failure) -> Event {
        Event::MoveBackFailed {
            segment: self.segment.index,
            attempt: self.attempt,
            failure,
        }
    }
}
