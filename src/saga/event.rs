//! The saga log's vocabulary: one closed enum of past-tense facts. Every
//! variant says who appends it and in which states it is accepted; `apply`
//! (state.rs) enforces exactly that. The log must stay readable by a person
//! and foldable by code for years, so variants are only ever added, never
//! renamed or reshaped. This module holds data only: no policy, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::plan::{Plan, PlannedSegment};

/// The person the bookings are for, as the front end gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendee {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// IANA name, e.g. `Europe/Berlin`.
    pub time_zone: String,
}

/// Everything needed to book a composite service: the planned segments (the
/// service snapshot, so a later catalogue edit cannot change a running saga),
/// who it is for and their notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingRequest {
    pub plan: Plan,
    pub attendee: Attendee,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// One live Cal.com booking of an earlier saga, as a reschedule or cancel saga
/// sees it when it starts (`segment` holds the booked times).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookedSegment {
    pub segment: PlannedSegment,
    pub calcom_uid: String,
}

/// The booked saga a reschedule or cancel saga changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalBooking {
    pub workflow: Uuid,
    pub segments: Vec<BookedSegment>,
}

/// Why a Cal.com call did not do its job, split by what happens next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Failure {
    /// Nothing happened at Cal.com; the same step may run again, not before
    /// `retry_at` (chosen by the runner with jitter, so replay is exact).
    Retryable {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at: Option<DateTime<Utc>>,
    },
    /// Cal.com refused; asking again gives the same answer.
    Permanent { reason: String },
    /// Cal.com refused because the host is not free then (booked, away or
    /// reserved): asking again gives the same answer, but another staff
    /// option of the segment may be free.
    Taken { reason: String },
}

impl Failure {
    pub fn reason(&self) -> &str {
        match self {
            Failure::Retryable { reason, .. }
            | Failure::Permanent { reason }
            | Failure::Taken { reason } => reason,
        }
    }
}

/// Which Cal.com booking a cancellation step is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelTarget {
    /// This saga's own booking of segment k (compensation, reverse order).
    Segment(u16),
    /// Segment k of the original booking (cancel saga; reschedule once every
    /// new segment exists).
    Original(u16),
    /// An extra booking for one segment, by its Cal.com uid (invariant I1).
    Duplicate(String),
}

/// A fact in a saga's log. "Runner" is `runtime/`; "API" is `http/` (and the
/// admin CLI for `Admin*`); "decide" means the runner appends what
/// `saga::decide` returned as `Command::Record`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    // ------------------------------------------------------------ starts
    /// Appended by the API with the slot claims of the plan, in one
    /// transaction. `reserve_min`: reserve every slot for that long before
    /// creating any booking (None: book directly).
    /// Accepted in: a new saga only (its first event).
    Requested {
        workflow: Uuid,
        request: BookingRequest,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reserve_min: Option<u32>,
    },
    /// Appended by the API: reserve every segment for `hold_min` minutes and
    /// wait for `ConfirmRequested`.
    /// Accepted in: a new saga only.
    HoldRequested {
        workflow: Uuid,
        request: BookingRequest,
        hold_min: u32,
    },
    /// Appended by the API: book `request` first (make-before-break), then
    /// cancel `original`'s segments.
    /// Accepted in: a new saga only.
    RescheduleRequested {
        workflow: Uuid,
        original: OriginalBooking,
        request: BookingRequest,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reserve_min: Option<u32>,
    },
    /// Appended by the API: cancel every segment of `original`.
    /// Accepted in: a new saga only.
    CancelRequested {
        workflow: Uuid,
        original: OriginalBooking,
        reason: String,
    },

    // ------------------------------------------------------ reservations
    /// Appended by the runner (from decide) before `POST /v2/slots/reservations`.
    /// Accepted in: reserving, for the first unreserved segment, attempt = last + 1.
    ReservationIntended { segment: u16, attempt: u32 },
    /// Appended by the runner after Cal.com confirmed the reservation.
    /// Accepted in: any open state, with the segment's reservation intended.
    ReservationMade {
        segment: u16,
        reservation_uid: String,
        until: DateTime<Utc>,
    },
    /// Appended by the runner when the reservation call failed (an unknown
    /// outcome is recorded as retryable: a lost reservation lapses by itself).
    /// Accepted in: any open state, with this attempt intended.
    ReservationFailed {
        segment: u16,
        attempt: u32,
        failure: Failure,
    },
    /// Appended by the runner (from decide) before deleting a reservation.
    /// Accepted in: booking (every segment booked), compensating, expiring;
    /// the segment's reservation made and not released.
    ReleaseIntended { segment: u16, attempt: u32 },
    /// Appended by the runner after Cal.com deleted the reservation.
    /// Accepted in: any open state, with the release intended.
    ReservationReleased { segment: u16 },
    /// Appended by the runner when deleting failed. A permanent failure ends
    /// the step: the reservation lapses at its deadline on its own.
    /// Accepted in: any open state, with this attempt intended.
    ReleaseFailed {
        segment: u16,
        attempt: u32,
        failure: Failure,
    },

    // -------------------------------------------------------------- hold
    /// Appended from decide once every segment of a hold is reserved.
    /// Accepted in: reserving (hold sagas), every reservation made.
    Held { expires_at: DateTime<Utc> },
    /// Appended by the API: turn the hold into bookings.
    /// Accepted in: held.
    ConfirmRequested,
    /// Appended from decide when `now` reaches the hold's `expires_at` (the
    /// runner's durable timer wakes the saga then).
    /// Accepted in: held.
    HoldExpired,

    // ---------------------------------------------------------- bookings
    /// Appended by the runner (from decide) before `POST /v2/bookings`; the
    /// booking carries metadata {calsaga_workflow, calsaga_segment, calsaga_attempt}.
    /// Accepted in: booking (or reserving with every slot reserved, which
    /// starts booking), for the first unbooked segment, attempt = last + 1.
    SegmentBookingIntended { segment: u16, attempt: u32 },
    /// Appended by the runner after Cal.com confirmed the booking.
    /// Accepted in: any open state, with the segment's booking intended.
    SegmentBooked {
        segment: u16,
        calcom_uid: String,
        #[serde(serialize_with = "super::wire_time::serialize")]
        start: DateTime<Utc>,
        #[serde(serialize_with = "super::wire_time::serialize")]
        end: DateTime<Utc>,
    },
    /// Appended by the runner when Cal.com did not create the booking.
    /// Accepted in: any open state, with this attempt intended.
    SegmentBookingFailed {
        segment: u16,
        attempt: u32,
        failure: Failure,
    },
    /// Appended by the runner right after a reservation or booking of the
    /// segment was refused as taken (`Failure::Taken`): the segment moves
    /// to the staff option `(host, event_type_id)`, one of its remaining
    /// `alternatives` with no other saga's claim, and its step starts over.
    /// Each option is tried at most once; pinned segments have none.
    /// Accepted in: reserving or booking, the segment's current step failed
    /// as taken with host `from`.
    SegmentHostSwitched {
        segment: u16,
        from: u64,
        host: u64,
        event_type_id: u64,
        reason: String,
    },
    /// Appended by the runner (from decide) before `POST
    /// /v2/bookings/{uid}/reschedule` of the original booking the segment's
    /// plan `moves` (same host and event type, overlapping times). Moves come
    /// after every created segment, so nothing is moved unless the rest of
    /// the new booking exists. A failure or lost reply is recorded as for a
    /// create (`segment_booking_failed`, `segment_outcome_unknown`); a
    /// reconcile looks for the booking Cal.com made from the original.
    /// Accepted in: booking (or reserving with every other slot reserved), a
    /// reschedule, for the next segment in make order, attempt = last + 1.
    SegmentMoveIntended { segment: u16, attempt: u32 },
    /// Appended by the runner after Cal.com moved the original: the new
    /// booking `calcom_uid` is this segment's, and Cal.com cancelled the
    /// original (as rescheduled) in the same call, so the switch has
    /// nothing to cancel for it.
    /// Accepted in: any open state, with the segment's move intended.
    SegmentMoved {
        segment: u16,
        calcom_uid: String,
        #[serde(serialize_with = "super::wire_time::serialize")]
        start: DateTime<Utc>,
        #[serde(serialize_with = "super::wire_time::serialize")]
        end: DateTime<Utc>,
    },
    /// Appended by the runner (from decide) while compensating, before
    /// moving a moved segment's booking back to its original's time (the
    /// undo of a move: cancelling it would lose the original).
    /// Accepted in: compensating, the segment moved and not yet moved back.
    MoveBackIntended { segment: u16, attempt: u32 },
    /// Appended by the runner when the original's time is booked again as
    /// `calcom_uid` (Cal.com gives every move a new uid). In the same commit
    /// the runner appends `segment_restored` to the original's log.
    /// Accepted in: any open state, with the move back intended.
    SegmentMovedBack { segment: u16, calcom_uid: String },
    /// Appended by the runner when the move back failed. Like a cancel it
    /// is forward-only: retryable failures are retried (each retry first
    /// asks Cal.com whether the last one went through); a permanent one
    /// marks the saga failed for an admin.
    /// Accepted in: any state, with this attempt intended.
    MoveBackFailed {
        segment: u16,
        attempt: u32,
        failure: Failure,
    },
    /// Appended to a booked saga's log by the runner of reschedule saga
    /// `by`, in the commit that recorded its move back: Cal.com keeps this
    /// segment, at its booked times, as booking `calcom_uid` now.
    /// Accepted in: booked or rescheduled, the segment booked and live.
    SegmentRestored {
        segment: u16,
        calcom_uid: String,
        by: Uuid,
    },
    /// Appended by the runner when the create's reply was lost (timeout,
    /// reset): the booking may exist, so the next step is a reconcile.
    /// Accepted in: any open state, with this attempt intended.
    SegmentOutcomeUnknown {
        segment: u16,
        attempt: u32,
        reason: String,
    },
    /// Appended by the runner after listing Cal.com's bookings for an
    /// uncertain step. `found`: the booking made for this segment (now
    /// booked); None: none exists, the step may run again as attempt + 1.
    /// Accepted in: any open state, with the segment's booking uncertain.
    SegmentReconciled {
        segment: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        found: Option<String>,
    },
    /// Appended by the runner when listing Cal.com's bookings failed.
    /// Accepted in: any open state, with the segment's booking uncertain.
    ReconcileFailed { segment: u16, failure: Failure },
    /// Appended by the runner (reconcile or the orphan check) for a live
    /// booking made for this saga that is not a segment's booking: a second
    /// one for a segment (I1) or an orphan (I2). It will be cancelled.
    /// Accepted in: any state, the segment not uncertain, the uid not yet
    /// known to the saga.
    DuplicateFound { segment: u16, uid: String },

    // ------------------------------------------------------ cancellations
    /// Appended from decide after a permanent failure or too many attempts:
    /// undo everything this saga made (reverse order), keep originals.
    /// Accepted in: reserving, held, booking.
    CompensationStarted { reason: String },
    /// Appended by the runner (from decide) before `POST /v2/bookings/{uid}/cancel`.
    /// Accepted in: compensating (own segments), cancelling / booking with
    /// every new segment booked and no reservation left / switching
    /// (originals), any state (duplicates); attempt = last + 1.
    CancelIntended { target: CancelTarget, attempt: u32 },
    /// Appended by the runner after Cal.com cancelled the booking (or said it
    /// already was).
    /// Accepted in: any state, with the cancellation intended.
    BookingCancelled { target: CancelTarget },
    /// Appended by the runner when the cancel call failed. Cancellation is
    /// forward-only: retryable failures are retried without limit; a
    /// permanent one marks the saga failed for an admin.
    /// Accepted in: any state, with this attempt intended.
    CancelFailed {
        target: CancelTarget,
        attempt: u32,
        failure: Failure,
    },

    // -------------------------------------------------------------- ends
    /// Appended from decide: every segment booked, reservations released.
    /// Accepted in: booking (book and hold sagas).
    Booked,
    /// Appended from decide: every new segment booked, every original cancelled.
    /// Accepted in: switching.
    Rescheduled,
    /// Appended from decide: nothing this saga made is left.
    /// Accepted in: compensating, when nothing is live or uncertain.
    Compensated { reason: String },
    /// Appended from decide: every original segment cancelled.
    /// Accepted in: cancelling.
    Cancelled,
    /// Appended from decide: the hold expired and its reservations are gone.
    /// Accepted in: expiring.
    Expired,
    /// Appended from decide when a step cannot go on without a person (a
    /// cancel or reconcile refused permanently). Alerted.
    /// Accepted in: any state with work left, not already failed.
    Failed { reason: String },

    // ------------------------------------------------------------- admin
    /// Appended by the admin CLI after fixing the cause: retry the stuck steps.
    /// Accepted in: failed.
    AdminResumeRequested,
    /// Appended by the admin CLI: undo what this saga made.
    /// Accepted in: reserving, held, booking (failed or not).
    AdminCompensateRequested { reason: String },
}

impl Event {
    /// The `kind` tag the log stores beside the JSON payload (same string as serde's).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Requested { .. } => "requested",
            Event::HoldRequested { .. } => "hold_requested",
            Event::RescheduleRequested { .. } => "reschedule_requested",
            Event::CancelRequested { .. } => "cancel_requested",
            Event::ReservationIntended { .. } => "reservation_intended",
            Event::ReservationMade { .. } => "reservation_made",
            Event::ReservationFailed { .. } => "reservation_failed",
            Event::ReleaseIntended { .. } => "release_intended",
            Event::ReservationReleased { .. } => "reservation_released",
            Event::ReleaseFailed { .. } => "release_failed",
            Event::Held { .. } => "held",
            Event::ConfirmRequested => "confirm_requested",
            Event::HoldExpired => "hold_expired",
            Event::SegmentBookingIntended { .. } => "segment_booking_intended",
            Event::SegmentBooked { .. } => "segment_booked",
            Event::SegmentBookingFailed { .. } => "segment_booking_failed",
            Event::SegmentHostSwitched { .. } => "segment_host_switched",
            Event::SegmentMoveIntended { .. } => "segment_move_intended",
            Event::SegmentMoved { .. } => "segment_moved",
            Event::MoveBackIntended { .. } => "move_back_intended",
            Event::SegmentMovedBack { .. } => "segment_moved_back",
            Event::MoveBackFailed { .. } => "move_back_failed",
            Event::SegmentRestored { .. } => "segment_restored",
            Event::SegmentOutcomeUnknown { .. } => "segment_outcome_unknown",
            Event::SegmentReconciled { .. } => "segment_reconciled",
            Event::ReconcileFailed { .. } => "reconcile_failed",
            Event::DuplicateFound { .. } => "duplicate_found",
            Event::CompensationStarted { .. } => "compensation_started",
            Event::CancelIntended { .. } => "cancel_intended",
            Event::BookingCancelled { .. } => "booking_cancelled",
            Event::CancelFailed { .. } => "cancel_failed",
            Event::Booked => "booked",
            Event::Rescheduled => "rescheduled",
            Event::Compensated { .. } => "compensated",
            Event::Cancelled => "cancelled",
            Event::Expired => "expired",
            Event::Failed { .. } => "failed",
            Event::AdminResumeRequested => "admin_resume_requested",
            Event::AdminCompensateRequested { .. } => "admin_compensate_requested",
        }
    }
}
