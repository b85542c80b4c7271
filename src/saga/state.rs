//! A saga's state: the projection the store keeps beside the log, rebuilt by
//! `fold` from the events alone (invariant I7). It records what is true at
//! Cal.com as far as the log knows (what was intended, made, refused or is
//! uncertain); it decides nothing (decide.rs) and changes only through
//! `apply` (apply.rs). Read-only views for the API live here too.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::{BookedSegment, BookingRequest, Failure, OriginalBooking};
use super::plan::PlannedSegment;

/// What the saga is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Book,
    Hold,
    Reschedule,
    Cancel,
}

/// The kinds by name, as stored and as filters take them.
pub const KINDS: [&str; 4] = ["book", "hold", "reschedule", "cancel"];

/// Every name `Saga::state_name` gives: each phase's, and `failed`; the
/// states with work left first, then those where the runner has none.
pub const STATES: [&str; 13] = [
    "reserving",
    "held",
    "booking",
    "switching",
    "cancelling",
    "compensating",
    "expiring",
    "booked",
    "rescheduled",
    "compensated",
    "cancelled",
    "expired",
    "failed",
];
/// States with work left (their bookings are in flight).
pub const RUNNING_STATES: &[&str] = STATES.split_at(7).0;
/// States in which the runner has nothing left to do.
pub const TERMINAL_STATES: &[&str] = STATES.split_at(7).1;

/// Where the saga is. The last six are ends; `failed` is not a phase but an
/// overlay (`Saga::failure`) so an admin can resume where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Reserving every segment's slot before booking (or for a hold).
    Reserving,
    /// A hold: every slot reserved until `expires_at`.
    Held {
        expires_at: DateTime<Utc>,
    },
    /// Creating bookings in segment order, then releasing reservations.
    Booking,
    /// A reschedule with every new segment booked: cancelling the originals
    /// (forward-only from here).
    Switching,
    /// A cancel saga: cancelling the originals (forward-only).
    Cancelling,
    /// Undoing what this saga made, newest first.
    Compensating {
        reason: String,
    },
    /// A hold expired: releasing its reservations.
    Expiring,
    Booked,
    Rescheduled,
    Compensated {
        reason: String,
    },
    Cancelled,
    Expired,
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Reserving => "reserving",
            Phase::Held { .. } => "held",
            Phase::Booking => "booking",
            Phase::Switching => "switching",
            Phase::Cancelling => "cancelling",
            Phase::Compensating { .. } => "compensating",
            Phase::Expiring => "expiring",
            Phase::Booked => "booked",
            Phase::Rescheduled => "rescheduled",
            Phase::Compensated { .. } => "compensated",
            Phase::Cancelled => "cancelled",
            Phase::Expired => "expired",
        }
    }

    pub fn is_end(&self) -> bool {
        matches!(
            self,
            Phase::Booked
                | Phase::Rescheduled
                | Phase::Compensated { .. }
                | Phase::Cancelled
                | Phase::Expired
        )
    }
}

/// Progress of a step that makes something at Cal.com (a reservation, a
/// booking), retried with new attempts until `Done`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Make<T> {
    #[default]
    Pending,
    /// Intent recorded, no outcome: in flight, or uncertain after a crash.
    Intended {
        attempt: u32,
    },
    Failed {
        attempt: u32,
        failure: Failure,
    },
    /// The reply was lost: only a reconcile can tell what happened.
    Unknown {
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reconcile_failure: Option<Failure>,
    },
    /// Reconciled: the attempt left nothing at Cal.com.
    Missing {
        attempt: u32,
    },
    Done(T),
}

impl<T> Make<T> {
    /// The attempt number a new intent must carry, if one may be made now.
    /// `reissue`: an intent without outcome may simply be repeated (steps
    /// whose repeat is harmless); otherwise it must be reconciled first.
    pub fn next_attempt(&self, reissue: bool) -> Option<u32> {
        match self {
            Make::Pending => Some(1),
            Make::Intended { attempt } if reissue => Some(attempt.saturating_add(1)),
            Make::Failed {
                attempt,
                failure: Failure::Retryable { .. },
            }
            | Make::Missing { attempt } => Some(attempt.saturating_add(1)),
            _ => None,
        }
    }

    pub fn done(&self) -> Option<&T> {
        match self {
            Make::Done(t) => Some(t),
            _ => None,
        }
    }

    /// Why the last attempt failed, while it stands failed.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Make::Failed { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// The attempt of an intent that may have reached Cal.com unseen.
    pub fn uncertain_attempt(&self) -> Option<u32> {
        match self {
            Make::Intended { attempt } | Make::Unknown { attempt, .. } => Some(*attempt),
            _ => None,
        }
    }
}

/// Progress of undoing something at Cal.com (cancel a booking, delete a
/// reservation): idempotent, so an intent without outcome is simply repeated.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Undo {
    /// Exists at Cal.com; nobody asked to undo it yet.
    #[default]
    Live,
    Intended {
        attempt: u32,
    },
    Failed {
        attempt: u32,
        failure: Failure,
    },
    Done,
}

impl Undo {
    pub fn next_attempt(&self) -> Option<u32> {
        match self {
            Undo::Live => Some(1),
            Undo::Intended { attempt }
            | Undo::Failed {
                attempt,
                failure: Failure::Retryable { .. },
            } => Some(attempt.saturating_add(1)),
            _ => None,
        }
    }

    pub fn is_done(&self) -> bool {
        *self == Undo::Done
    }

    /// For reservations: a permanent refusal to delete also ends the step,
    /// because a reservation lapses at its deadline on its own.
    pub fn is_settled_release(&self) -> bool {
        matches!(
            self,
            Undo::Done
                | Undo::Failed {
                    failure: Failure::Permanent { .. } | Failure::Taken { .. },
                    ..
                }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reserved {
    pub reservation_uid: String,
    pub until: DateTime<Utc>,
    pub release: Undo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookedOn {
    pub calcom_uid: String,
    #[serde(serialize_with = "super::wire_time::serialize")]
    pub start: DateTime<Utc>,
    #[serde(serialize_with = "super::wire_time::serialize")]
    pub end: DateTime<Utc>,
    pub cancel: Undo,
}

/// Progress of one planned segment (the plan itself is in `Saga::request`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SegmentState {
    pub reservation: Make<Reserved>,
    pub booking: Make<BookedOn>,
}

/// A second live booking found for a segment; it is cancelled (I1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    pub segment: u16,
    pub uid: String,
    pub cancel: Undo,
}

/// The stored projection of one saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saga {
    pub workflow: Uuid,
    pub kind: Kind,
    pub phase: Phase,
    /// What to book (book, hold, reschedule).
    /// Shared: the request never changes but for a host switch (copied on
    /// write), and a saga is cloned for every event it applies.
    pub request: Option<Arc<BookingRequest>>,
    /// Reserve each slot for this many minutes before booking (hold: the hold).
    pub reserve_min: Option<u32>,
    /// The saga being rescheduled or cancelled.
    pub original: Option<OriginalBooking>,
    /// Why a cancel saga cancels (sent to Cal.com).
    pub cancel_reason: Option<String>,
    /// One per planned segment, same order.
    pub segments: Vec<SegmentState>,
    /// Cancellation of each original segment, same order as `original`.
    pub originals: Vec<Undo>,
    pub duplicates: Vec<Duplicate>,
    /// Set when the saga needs an admin; cleared by an admin event.
    pub failure: Option<String>,
    /// Number of events folded into this state.
    pub version: u64,
}

/// How one segment looks from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentStatus {
    Pending,
    Reserving,
    Reserved,
    Booking,
    /// The create's outcome is unknown; a reconcile is due.
    Uncertain,
    Retrying,
    Failed,
    Booked,
    Cancelling,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentView {
    /// Index, name, host, event type and times (as booked, once booked).
    pub segment: PlannedSegment,
    pub calcom_uid: Option<String>,
    pub status: SegmentStatus,
}

/// A saga that is not (or not yet) a live booking cannot be rescheduled or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "workflow {workflow} is {state}, not booked; only a booked or rescheduled workflow can be rescheduled or cancelled"
)]
pub struct NotBooked {
    pub workflow: Uuid,
    pub state: &'static str,
}

impl Saga {
    /// A short name for the API and the admin CLI: the phase, or "failed".
    pub fn state_name(&self) -> &'static str {
        if self.failure.is_some() {
            "failed"
        } else {
            self.phase.name()
        }
    }

    /// True when the runner has nothing to do: an end with no extra booking
    /// left to cancel, or failed (waiting for an admin).
    pub fn is_terminal(&self) -> bool {
        self.failure.is_some() || (self.phase.is_end() && self.live_duplicates() == 0)
    }

    pub fn planned(&self) -> &[PlannedSegment] {
        self.request
            .as_ref()
            .map_or(&[], |r| r.plan.segments.as_slice())
    }

    /// Every Cal.com booking uid the saga knows (booked, duplicate, original),
    /// so the reconciler can tell ours from new ones.
    pub fn known_uids(&self) -> Vec<&str> {
        let booked = self
            .segments
            .iter()
            .filter_map(|s| s.booking.done())
            .map(|b| b.calcom_uid.as_str());
        let duplicates = self.duplicates.iter().map(|d| d.uid.as_str());
        let originals = self
            .original
            .iter()
            .flat_map(|o| o.segments.iter().map(|s| s.calcom_uid.as_str()));
        booked.chain(duplicates).chain(originals).collect()
    }

    /// The order segments are made in: created ones by index, then the
    /// moved ones (a move cancels its original, so it waits until the rest
    /// of the new booking exists), last first when the booking moves later
    /// (so a stylist's next segment clears the time the one before moves
    /// into), first first when it moves earlier. Compensation undoes in
    /// reverse.
    pub fn make_order(&self) -> Vec<u16> {
        let planned = self.planned();
        let (created, mut moved): (Vec<_>, Vec<_>) =
            planned.iter().partition(|p| p.moves.is_none());
        let later = moved.first().is_some_and(|p| {
            self.original
                .as_ref()
                .and_then(|o| o.segments.get(usize::from(p.index)))
                .is_some_and(|o| p.start > o.segment.start)
        });
        if later {
            moved.reverse();
        }
        created.into_iter().chain(moved).map(|p| p.index).collect()
    }

    pub(super) fn live_duplicates(&self) -> usize {
        self.duplicates
            .iter()
            .filter(|d| !d.cancel.is_done())
            .count()
    }

    /// The segments as the API shows them: the new ones, or for a cancel
    /// saga the originals being cancelled.
    pub fn segments_view(&self) -> Vec<SegmentView> {
        match &self.original {
            Some(original) if self.kind == Kind::Cancel => original
                .segments
                .iter()
                .zip(&self.originals)
                .map(|(s, undo)| original_view(s, undo))
                .collect(),
            _ => self
                .planned()
                .iter()
                .zip(&self.segments)
                .map(|(p, s)| planned_view(p, s))
                .collect(),
        }
    }

    /// This saga's bookings, for starting a reschedule or cancel saga of it.
    pub fn as_original(&self) -> Result<OriginalBooking, NotBooked> {
        let booked = matches!(self.phase, Phase::Booked | Phase::Rescheduled);
        let not_booked = NotBooked {
            workflow: self.workflow,
            state: self.state_name(),
        };
        if !booked || self.failure.is_some() {
            return Err(not_booked);
        }
        let segments = self
            .planned()
            .iter()
            .zip(&self.segments)
            .map(|(p, s)| {
                let b = s.booking.done()?;
                Some(BookedSegment {
                    segment: booked_times(p, b),
                    calcom_uid: b.calcom_uid.clone(),
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or(not_booked)?;
        Ok(OriginalBooking {
            workflow: self.workflow,
            segments,
        })
    }
}

fn undo_status(undo: &Undo) -> SegmentStatus {
    match undo {
        Undo::Live => SegmentStatus::Booked,
        Undo::Intended { .. } | Undo::Failed { .. } => SegmentStatus::Cancelling,
        Undo::Done => SegmentStatus::Cancelled,
    }
}

fn original_view(s: &BookedSegment, undo: &Undo) -> SegmentView {
    SegmentView {
        segment: s.segment.clone(),
        calcom_uid: Some(s.calcom_uid.clone()),
        status: undo_status(undo),
    }
}

/// The plan with the times Cal.com confirmed.
fn booked_times(p: &PlannedSegment, b: &BookedOn) -> PlannedSegment {
    PlannedSegment {
        start: b.start,
        end: b.end,
        ..p.clone()
    }
}

fn planned_view(p: &PlannedSegment, s: &SegmentState) -> SegmentView {
    let status = match &s.booking {
        Make::Done(b) => undo_status(&b.cancel),
        Make::Intended { .. } => SegmentStatus::Booking,
        Make::Unknown { .. } => SegmentStatus::Uncertain,
        Make::Missing { .. } => SegmentStatus::Retrying,
        Make::Failed { failure, .. } => failure_status(failure),
        Make::Pending => reservation_status(&s.reservation),
    };
    let booked = s.booking.done();
    SegmentView {
        segment: booked.map_or_else(|| p.clone(), |b| booked_times(p, b)),
        calcom_uid: booked.map(|b| b.calcom_uid.clone()),
        status,
    }
}

fn reservation_status(r: &Make<Reserved>) -> SegmentStatus {
    match r {
        Make::Pending => SegmentStatus::Pending,
        Make::Done(_) => SegmentStatus::Reserved,
        Make::Failed { failure, .. } => failure_status(failure),
        Make::Intended { .. } | Make::Unknown { .. } | Make::Missing { .. } => {
            SegmentStatus::Reserving
        }
    }
}

fn failure_status(f: &Failure) -> SegmentStatus {
    match f {
        Failure::Retryable { .. } => SegmentStatus::Retrying,
        Failure::Permanent { .. } | Failure::Taken { .. } => SegmentStatus::Failed,
    }
}
